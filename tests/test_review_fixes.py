"""Defects a review found after the hardening, each with the test that would have caught it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import tiny
from test_batch_support import EXAMPLES, tiny_flags

from clipstyler_opt.cli import main
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files import ReadSet


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_run_from_an_output_onto_itself_is_refused_before_any_work(
        tmp_path: Path, tiny_paths: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs" / "k.png"
    assert main(["run", str(EXAMPLES / "chelsea.png"), "oil", "-o", str(out), "-q", *tiny_flags(tiny_paths)]) == 0
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    capsys.readouterr()
    assert main(["run", "--from", str(out), "-o", str(out), "-q"]) == 2
    assert "refusing to overwrite" in _one_line(capsys)
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before


@pytest.mark.parametrize("name", [".clipopt.lock", ".clipopt.lock.shard-1-of-2", "manifest.r1.rank-0.jsonl"])
def test_no_command_writes_onto_a_batchs_lock_or_journal(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="keeps for a result folder"):
        ReadSet().refuse(tmp_path / name)
    ReadSet().refuse(tmp_path / f"x{name}.csv")  # only those exact names


def test_eval_csv_onto_a_running_batchs_lock_is_refused(tmp_path: Path, tiny_paths: dict[str, Path],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs" / "o.png"
    assert main(["run", str(EXAMPLES / "chelsea.png"), "oil", "-o", str(out), "-q", *tiny_flags(tiny_paths)]) == 0
    lock = tmp_path / "folder" / ".clipopt.lock"
    lock.parent.mkdir()
    lock.write_bytes(b"")
    inode = os.stat(lock).st_ino
    capsys.readouterr()
    code = main(["eval", str(out), "--scorer", f"{tiny.TINY_CLIP_NAME}:file={tiny_paths['clip_checkpoint']}",
                 "--clip-model-config", str(tiny_paths["clip_model_config"]), "--vgg-checkpoint",
                 str(tiny_paths["vgg_checkpoint"]), "--device", "cpu", "--offline", "--csv", str(lock)])
    assert code == 2 and "keeps for a result folder" in _one_line(capsys)
    assert os.stat(lock).st_ino == inode


@pytest.mark.parametrize("where", ["sidecar", "animation"])  # a folder at -o itself: click refuses it (exit 2)
def test_a_folder_at_a_destination_of_run_is_refused_before_any_work(
        tmp_path: Path, tiny_paths: dict[str, Path], capsys: pytest.CaptureFixture[str], where: str) -> None:
    runs = tmp_path / "runs"
    out = runs / "an.png"
    folder = {"sidecar": runs / "an.png.json", "animation": runs / "dd.gif"}[where]
    folder.mkdir(parents=True)
    capsys.readouterr()
    code = main(["run", str(EXAMPLES / "chelsea.png"), "oil", "-o", str(out), "--animation",
                 str(runs / "dd.gif"), *tiny_flags(tiny_paths)])
    assert code == 5 and "is a folder" in _one_line(capsys)
    assert sorted(p.name for p in runs.iterdir()) == [folder.name]  # nothing written beside it


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("review")
    paths = tiny.write_all(root / "weights")
    inputs = root / "in"
    inputs.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(EXAMPLES / name, inputs / name)
    out = root / "sweep"
    assert main(["sweep", str(inputs), "-p", "oil painting", "-p", "red", "--vary", "seed=1,2", "--vary",
                 "style_strength=0.5,1", "-o", str(out), "-q", *tiny_flags(paths, steps=1)]) == 0
    return out, paths


def _analyze(folder: Path, paths: dict[str, Path], *extra: str) -> int:
    return main(["analyze", str(folder), "--scorer", f"{tiny.TINY_CLIP_NAME}:file={paths['clip_checkpoint']}",
                 "--clip-model-config", str(paths["clip_model_config"]), "--device", "cpu", "-q", *extra])


def _copy(swept: tuple[Path, dict[str, Path]], tmp_path: Path) -> Path:
    copy = tmp_path / "sweep"
    shutil.copytree(swept[0], copy, symlinks=True)
    return copy


def test_seeds_are_replicates_not_a_response_setting(swept: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    folder = _copy(swept, tmp_path)
    assert _analyze(folder, swept[1], "--no-figures") == 0
    summary = json.loads((folder / "analysis.json").read_text())
    assert summary["numeric_settings"] == ["style_strength"] and summary["replicate_settings"] == ["seed"]


@pytest.mark.parametrize("sub", ["figures", ".clipopt-embeddings"])
def test_analyze_never_writes_through_a_linked_folder(swept: tuple[Path, dict[str, Path]], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str], sub: str) -> None:
    folder = _copy(swept, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "modality-gap.png").write_bytes(b"keep")
    (folder / sub).symlink_to(elsewhere)
    capsys.readouterr()
    assert _analyze(folder, swept[1]) == 2
    assert "never through a link" in _one_line(capsys)
    assert [p.name for p in elsewhere.iterdir()] == ["modality-gap.png"]
    assert (elsewhere / "modality-gap.png").read_bytes() == b"keep"
    assert not (folder / "analysis.json").exists()


def test_a_file_where_the_figures_folder_goes_is_exit_5_before_any_work(
        swept: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(swept, tmp_path)
    (folder / "figures").write_text("x")
    capsys.readouterr()
    assert _analyze(folder, swept[1]) == 5
    assert "is not a folder" in _one_line(capsys)
    assert not (folder / "analysis.json").exists()


@pytest.mark.parametrize("forged", ["short", "zeros", "huge", "nan", "not unit"])
def test_a_forged_cache_entry_is_encoded_again(swept: tuple[Path, dict[str, Path]], tmp_path: Path,
                                               forged: str) -> None:
    folder = _copy(swept, tmp_path)
    assert _analyze(folder, swept[1], "--no-figures") == 0
    [cache] = (folder / ".clipopt-embeddings").glob("*.json")
    data = json.loads(cache.read_text())
    key = next(iter(data["images"]))
    size = len(data["images"][key])
    data["images"][key] = {"short": [1.0], "zeros": [0.0] * size, "huge": [1e308] * size,
                           "nan": [float("nan")] * size, "not unit": [0.5] * size}[forged]
    cache.write_text(json.dumps(data))
    assert _analyze(folder, swept[1], "--no-figures") == 0
    summary = json.loads((folder / "analysis.json").read_text())
    [scorer] = summary["scorers"].values()
    assert scorer["images_encoded"] == 1


def test_a_cell_value_too_large_for_a_float_is_not_a_numeric_setting(
        swept: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    from clipstyler_opt.analysis.folder import numeric_settings
    from clipstyler_opt.report.load import Cell, ResultFolder

    cells = (Cell("a", (("style_strength", 10**400),)), Cell("b", (("style_strength", 0.5),)))
    folder = ResultFolder(root=tmp_path, outputs=(), cells=cells, evaluation=None, notes=())
    assert numeric_settings(folder) == []


def test_sweep_refuses_seed_given_twice(tmp_path: Path, tiny_paths: dict[str, Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", str(EXAMPLES / "chelsea.png"), "-p", "oil", "--seed", "5", "--vary", "seed=1,2",
                 "-o", str(tmp_path / "sw"), *tiny_flags(tiny_paths)])
    assert code == 2 and "both set the seed" in _one_line(capsys)
    assert not (tmp_path / "sw").exists()


def test_batch_refuses_an_animation_path_it_would_not_use(tmp_path: Path, tiny_paths: dict[str, Path],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["batch", str(EXAMPLES / "chelsea.png"), "-p", "oil", "--animation", str(tmp_path / "one.gif"),
                 "-o", str(tmp_path / "b"), *tiny_flags(tiny_paths)])
    assert code == 2 and "not a path" in _one_line(capsys)
    assert not (tmp_path / "one.gif").exists()
    assert main(["batch", str(EXAMPLES / "chelsea.png"), "-p", "oil", "--animation", "gif", "-q",
                 "-o", str(tmp_path / "b2"), *tiny_flags(tiny_paths)]) == 0
    assert len(list((tmp_path / "b2").rglob("chelsea.gif"))) == 1
