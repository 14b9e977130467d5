"""`clipopt sweep`: the grid, cell ids, the output layout, resume, shards and the report."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import tiny
from test_batch_support import (
    EXAMPLES,
    assert_readable_image,
    assert_same_result,
    count_stylizer_loads,
    last_run,
    records,
    statuses,
    tiny_flags,
)

from clipstyler_opt import StyleConfig
from clipstyler_opt.batch import InputFile, SweepCell, build_sweep_jobs, cell_id, derive_seed, expand_grid, parse_vary
from clipstyler_opt.batch.jobs import backbone_key
from clipstyler_opt.cli import main
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.naming import prompt_slug
from clipstyler_opt.report import load_results

PROMPT = "starry night"
NAMES = ("chelsea.png", "coffee.png")
CELLS = ("lambda_content=50", "lambda_content=150")  # the documented ids of lambda_content=50,150
SAFE_ID = re.compile(r"[A-Za-z0-9._+=,~-]+")


def sweep(*args: Any) -> int:
    return main(["sweep", *map(str, args)])


# --- values and the grid ---

@pytest.mark.parametrize(("text", "expected"), [
    ("lambda_content=50,150", ("lambda_content", (50.0, 150.0))),
    ("lambda-content=5e1", ("lambda_content", (50.0,))),  # either spelling; any float syntax
    ("steps=1,+2", ("steps", (1, 2))),
    ("contrast=yes,off", ("contrast", (True, False))),
    ("threshold=none,0.5", ("threshold", (None, 0.5))),  # none: the default of an optional setting
    ("output_size=full,1024", ("output_size", ("full", "1024"))),
    ("source_text=a photo,a painting", ("source_text", ("a photo", "a painting"))),
    ("backbone=ViT-B-16/openai,ViT-B-32/openai+ViT-B-16/openai",
     ("backbone", (("ViT-B-16/openai",), ("ViT-B-32/openai", "ViT-B-16/openai")))),  # + joins an ensemble
    ('backbone=["a,b", ["c", "d+e"]]', ("backbone", (("a,b",), ("c", "d+e")))),  # JSON: commas and + literal
    ("vgg_checkpoint=a.pth,b/c.pth", ("vgg_checkpoint", (Path("a.pth"), Path("b/c.pth")))),
    ("style_image=,x.png:0.5", ("style_image", ((), ("x.png:0.5",)))),  # empty: no style image
])
def test_values_are_read_with_their_fields_type(text: str, expected: tuple[str, tuple[Any, ...]]) -> None:
    assert parse_vary(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("lambda_contnet=1", "did you mean 'lambda_content'"),
    ("size", "FIELD=V1,V2"),
    ("=1,2", "FIELD=V1,V2"),
    ("steps=1.5", "'1.5' is not an integer"),
    ("steps=", "'' is not an integer"),
    ("lr=fast", "'fast' is not a number"),
    ("contrast=maybe", "'maybe' is not true or false"),
    ("steps=2,2", "given twice"),
    ("lambda_tv=1,1.0", "given twice"),  # the same number, written twice
    ("device=cpu,cuda", "does not change the image"),
    ("seed=[1, 2", "not a JSON list"),
    ("seed=[]", "no values"),
    ("seed=[1.5]", "not an integer"),
    ("backbone=[1]", "1 is not a string"),
])
def test_bad_values_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_vary(text)


def test_grid_is_every_combination_in_order_and_checked_cell_by_cell() -> None:
    cells = expand_grid(StyleConfig(), [parse_vary("lambda_content=50,150"), parse_vary("steps=1,2,3")])
    assert [cell.id for cell in cells] == [f"lambda_content={c},steps={s}" for c in (50, 150) for s in (1, 2, 3)]
    assert cells[4].values == (("lambda_content", 150.0), ("steps", 2))
    assert cells[4].apply(StyleConfig(size=64)).replace(size=512) == StyleConfig(lambda_content=150.0, steps=2)
    assert cells[4].record() == {"cell": "lambda_content=150,steps=2", "values": {"lambda_content": 150.0, "steps": 2},
                                 "labels": {"lambda_content": "150", "steps": "2"}}
    with pytest.raises(ConfigError, match=r"^sweep cell size=64,steps=0: steps must be at least 1"):
        expand_grid(StyleConfig(), [parse_vary("size=64"), parse_vary("steps=1,0")])
    with pytest.raises(ConfigError, match="given twice"):
        expand_grid(StyleConfig(), [parse_vary("steps=1"), parse_vary("steps=2")])


def test_cell_ids_are_unique_safe_folder_names_that_depend_only_on_their_values() -> None:
    values = ["ViT-B-16/openai", "ViT-B-16-openai", "ViT-B-16:openai", "../..", "étoile", "a,b", "a=b",
              "x" * 300, "x" * 299 + "y", "", "-", "~"]
    ids = [cell_id([("source_text", value)]) for value in values]
    assert len(set(ids)) == len(values)
    for cid in ids:
        assert SAFE_ID.fullmatch(cid) and len(cid) <= 96 and cid not in (".", "..") and not cid.startswith((".", "-"))
    assert ids[1] == "source_text=ViT-B-16-openai"  # nothing to replace: readable as it is, no hash
    assert re.fullmatch(r"source_text=ViT-B-16-openai~[0-9a-f]{8}", ids[0])  # "/" replaced: a hash tells it apart
    assert cell_id([("lambda_content", 50.0), ("contrast", True), ("threshold", None)]) == \
        "lambda_content=50,contrast=true,threshold=none"
    assert cell_id([("backbone", ("A", "B"))]) == "backbone=A+B"
    grid = expand_grid(StyleConfig(), [parse_vary("source_text=a/b,a-b,c")])
    assert [cell.id for cell in grid] == [cell_id([("source_text", v)]) for v in ("a/b", "a-b", "c")]


def test_cells_loading_the_same_backbones_come_together() -> None:
    cells = expand_grid(StyleConfig(), [parse_vary("lambda_content=1,2"),
                                        parse_vary("backbone=ViT-B-16/openai,ViT-B-32/openai")])
    item = InputFile(EXAMPLES / "chelsea.png", EXAMPLES, PurePosixPath("chelsea.png"))
    jobs = build_sweep_jobs([item], ["a", "b"], Path("out"), cells, StyleConfig())
    keys = [backbone_key(job.config(StyleConfig())) for job in jobs]
    assert len(jobs) == 8 and sum(a != b for a, b in itertools.pairwise(keys)) == 1  # one switch of backbones
    assert [job.cell for job in jobs[:4:2]] == [cells[0], cells[2]]  # grid order within a group
    assert len({job.seed for job in jobs if job.prompt == "a"}) == 1  # the same seed in every cell


# --- end to end with the tiny backbones ---

@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sweep-inputs") / "photos"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(EXAMPLES / name, folder / name)
    return folder


def sweep_args(photos: Path, out: Path, tiny_paths: dict[str, Path], *extra: Any) -> list[Any]:
    return [photos, "-p", PROMPT, "--vary", "lambda_content=50,150", "-o", out, "-q", *tiny_flags(tiny_paths),
            *extra]


@pytest.fixture(scope="module")
def finished(photos: Path, tiny_paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-cell sweep over lambda_content: 2 cells x 2 images x 1 prompt. Tests copy it before changing it."""
    out = tmp_path_factory.mktemp("sweep-finished") / "out"
    assert sweep(*sweep_args(photos, out, tiny_paths)) == 0
    return out


def expected_outputs() -> list[str]:
    return sorted(f"{cell}/{prompt_slug(PROMPT)}/{name}" for cell in CELLS for name in NAMES)


def test_sweep_writes_the_documented_layout_and_names_each_cell_in_its_sidecars(finished: Path) -> None:
    jobs = records(finished)
    assert statuses(jobs) == {"done": 4} and sorted(r["output"] for r in jobs) == expected_outputs()
    for cell, value in zip(CELLS, (50.0, 150.0), strict=True):
        for name in NAMES:
            output = finished / cell / prompt_slug(PROMPT) / name
            assert_readable_image(output)
            sidecar = json.loads(output.with_name(name + ".json").read_text())
            assert sidecar["sweep"] == {"cell": cell, "values": {"lambda_content": value},
                                        "labels": {"lambda_content": f"{value:g}"}}
            assert sidecar["settings"]["lambda_content"] == value and sidecar["prompt"] == PROMPT
            assert sidecar["seed"] == derive_seed(0, name, PROMPT)  # the same in every cell
    [summary] = records(finished, "summary")
    assert (summary["jobs"], summary["done"], summary["cells"]) == (4, 4, 2)


def test_a_cell_is_the_batch_with_its_settings(finished: Path, photos: Path, tiny_paths: dict[str, Path],
                                               tmp_path: Path) -> None:
    out = tmp_path / "batch"
    assert main(["batch", str(photos), "-p", PROMPT, "-o", str(out), "-q", "--lambda-content", "50",
                 *tiny_flags(tiny_paths)]) == 0
    for name in NAMES:
        assert_same_result(finished / CELLS[0] / prompt_slug(PROMPT) / name, out / prompt_slug(PROMPT) / name)


def test_rerun_skips_every_job_without_loading_weights_and_a_new_value_adds_one_cell(
        finished: Path, photos: Path, tiny_paths: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = Path(shutil.copytree(finished, tmp_path / "out"))
    loads = count_stylizer_loads(monkeypatch)
    assert sweep(*sweep_args(photos, out, tiny_paths)) == 0
    assert statuses(last_run(out)) == {"skipped": 4} and loads == []
    args = sweep_args(photos, out, tiny_paths)
    args[args.index("lambda_content=50,150")] = "lambda_content=50,150,300"
    assert sweep(*args) == 0
    run = last_run(out)
    assert statuses(run) == {"skipped": 4, "done": 2} and len(loads) == 1
    assert {r["output"].split("/")[0] for r in run if r["status"] == "done"} == {"lambda_content=300"}


def test_two_shards_cover_the_grid_exactly_once(finished: Path, photos: Path, tiny_paths: dict[str, Path],
                                                tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert sweep(*sweep_args(photos, out, tiny_paths, "--shard", "0/2")) == 0
    assert sweep(*sweep_args(photos, out, tiny_paths, "--shard", "1/2", "--workers-per-device", "2")) == 0
    jobs = records(out)
    assert sorted(r["output"] for r in jobs) == expected_outputs()  # each job once
    assert [len(last_run(out)), len({r["run"] for r in jobs})] == [2, 2]
    for record in jobs:
        assert_same_result(out / record["output"], finished / record["output"])


def test_the_report_recognises_the_cells(finished: Path) -> None:
    folder = load_results(finished)
    assert sorted(cell.id for cell in folder.cells) == sorted(CELLS)
    assert len(folder.outputs) == 4
    for output in folder.outputs:
        cell = output.relative.split("/")[0]
        assert output.cell.id == cell
        assert output.cell.values == (("lambda_content", 50.0 if cell == CELLS[0] else 150.0),)


def test_each_set_of_backbones_loads_once(photos: Path, tiny_paths: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _, other_clip = tiny.write_tiny_clip(tmp_path / "other", seed=1)
    loads = count_stylizer_loads(monkeypatch)
    out = tmp_path / "out"
    vary = f'clip_checkpoint={json.dumps([str(tiny_paths["clip_checkpoint"]), str(other_clip)])}'
    assert sweep(photos / "chelsea.png", "-p", PROMPT, "--vary", "lambda_content=50,150", "--vary", vary,
                 "-o", out, "-q", *tiny_flags(tiny_paths)) == 0
    assert statuses(records(out)) == {"done": 4}
    assert [config.clip_checkpoint for config in loads] == [tiny_paths["clip_checkpoint"], other_clip]
    weights = {json.loads((out / r["output"]).with_name("chelsea.png.json").read_text())["settings"]
               ["backbone"][0]["file"] for r in records(out)}
    assert len(weights) == 2  # the cells really used different weights


def test_a_bad_cell_exits_2_naming_it_before_any_work(photos: Path, tiny_paths: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert sweep(photos, "-p", PROMPT, "--vary", "lambda_content=50,150", "--vary", "crop_size=32,0",
                 "-o", out, *tiny_flags(tiny_paths)) == 2
    err = capsys.readouterr().err
    assert "sweep cell lambda_content=50,crop_size=0: crop-size must be at least 1" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert sweep(photos, "-p", PROMPT, "-o", out, *tiny_flags(tiny_paths)) == 2  # no --vary
    assert sweep(photos, "-p", PROMPT, "--vary", "steps=1", "--vary", "steps=2", "-o", out,
                 *tiny_flags(tiny_paths)) == 2
    assert not out.exists()


def test_a_sweep_cell_round_trips_through_its_record() -> None:
    cell = SweepCell("x", (("backbone", ("A", "B")), ("vgg_checkpoint", Path("v.pth")), ("threshold", None)))
    assert cell.record() == {"cell": "x", "values": {"backbone": ["A", "B"], "vgg_checkpoint": "v.pth",
                                                     "threshold": None}}


def test_varying_the_seed_gives_each_cell_the_jobs_of_a_batch_with_that_seed(
        photos: Path, tiny_paths: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert sweep(photos / "chelsea.png", "-p", PROMPT, "--vary", "seed=1,2", "-o", out, "-q",
                 *tiny_flags(tiny_paths)) == 0
    assert statuses(records(out)) == {"done": 2}
    for seed in (1, 2):
        sidecar = json.loads((out / f"seed={seed}" / prompt_slug(PROMPT) / "chelsea.png.json").read_text())
        assert sidecar["seed"] == derive_seed(seed, "chelsea.png", PROMPT)
    batch = tmp_path / "batch"
    assert main(["batch", str(photos / "chelsea.png"), "-p", PROMPT, "-o", str(batch), "-q", "--seed", "2",
                 *tiny_flags(tiny_paths)]) == 0
    assert_same_result(out / "seed=2" / prompt_slug(PROMPT) / "chelsea.png",
                       batch / prompt_slug(PROMPT) / "chelsea.png")


@pytest.mark.parametrize("vary", ['style_image=[["s+t.png"],["s","t.png"]]', 'output_size=[64,"64"]'])
def test_values_that_would_share_a_cell_folder_are_refused(photos: Path, tiny_paths: dict[str, Path],
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch, vary: str) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("s+t.png", "s", "t.png"):
        shutil.copy(EXAMPLES / "chelsea.png", tmp_path / name)
    out = tmp_path / "out"
    assert sweep(photos, "-p", PROMPT, "--vary", vary, "-o", out, *tiny_flags(tiny_paths)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("share the cell folder" in err[0] or "given twice" in err[0]), err
    assert not out.exists()


def test_the_progress_label_keeps_the_whole_cell_id() -> None:
    from clipstyler_opt.cli.progress import job_label

    cell = "lambda_content=50,contrast=true,style_strength=0.25"
    label = job_label("holidays/2024/beach-at-sunset.png", "starry night by Vincent van Gogh", cell)
    assert label.endswith(" | " + cell) and label.startswith("holidays/20") and "…" in label
    assert job_label("a.png", "oil", "seed=1") == "a.png | oil | seed=1"  # short labels are left whole
