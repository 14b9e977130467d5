"""`clipopt batch` end to end, in this process, with the tiny backbones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import tiny
import torch
from test_batch_support import (
    EXAMPLES,
    PROMPTS,
    assert_readable_image,
    assert_same_result,
    last_run,
    make_photo_folder,
    prompt_flags,
    records,
    statuses,
    tiny_flags,
    visible_files,
)

from clipstyler_opt.batch import LOCK_NAME, derive_seed, session
from clipstyler_opt.cli import main
from clipstyler_opt.core.errors import BatchFailures
from clipstyler_opt.core.naming import prompt_slug

EXPECTED = ["chelsea.png", "coffee.png", "sub/rocket.png"]


def batch(*args: Any) -> int:
    return main(["batch", *map(str, args)])


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_photo_folder(tmp_path_factory.mktemp("batch-inputs") / "photos")


@pytest.fixture(scope="module")
def finished(photos: Path, tiny_paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished batch: 3 images (one in a subfolder) x 2 prompts. Tests copy it before changing it."""
    out = tmp_path_factory.mktemp("batch-finished") / "out"
    assert batch(photos, "-r", *prompt_flags(), "-o", out, "-q", *tiny_flags(tiny_paths)) == 0
    return out


def copy_of(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "out"))


def test_basic_batch_writes_every_output_manifest_and_summary(photos: Path, tiny_paths: dict[str, Path],
                                                              tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert batch(photos, "-r", *prompt_flags(), "-o", out, "-q", *tiny_flags(tiny_paths)) == 0
    stdout = capsys.readouterr().out
    assert "6 jobs: 6 done, 0 skipped, 0 failed" in stdout and "images/hour" in stdout
    for prompt in PROMPTS:
        for name in EXPECTED:
            output = out / prompt_slug(prompt) / name
            assert_readable_image(output)
            sidecar = json.loads(output.with_name(output.name + ".json").read_text())
            assert sidecar["prompt"] == prompt
    jobs = records(out)
    assert statuses(jobs) == {"done": 6}
    assert sorted(r["output"] for r in jobs) == sorted(f"{prompt_slug(p)}/{n}" for p in PROMPTS for n in EXPECTED)
    for record in jobs:
        assert record["seed"] == derive_seed(0, record["relative"], record["prompt"])
        assert record["error"] is None and record["timings"]["job_s"] > 0 and len(record["input_sha256"]) == 64
    [summary] = records(out, "summary")
    assert (summary["done"], summary["failed"], summary["jobs"]) == (6, 0, 6)
    assert [p.name for p in visible_files(out) if p.name.startswith(".")] == [LOCK_NAME]  # no temporary files left


def test_resume_runs_only_the_missing_job(finished: Path, photos: Path, tiny_paths: dict[str, Path],
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = copy_of(finished, tmp_path)
    removed = out / prompt_slug(PROMPTS[1]) / "coffee.png"
    removed.unlink()
    assert batch(photos, "-r", *prompt_flags(), "-o", out, "-q", *tiny_flags(tiny_paths)) == 0
    run = last_run(out)
    assert statuses(run) == {"done": 1, "skipped": 5}
    assert [r["output"] for r in run if r["status"] == "done"] == [f"{prompt_slug(PROMPTS[1])}/coffee.png"]
    assert_readable_image(removed)
    assert "1 done, 5 skipped, 0 failed" in capsys.readouterr().out


def test_finished_batch_resumes_without_loading_backbones(finished: Path, photos: Path,
                                                          tiny_paths: dict[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = copy_of(finished, tmp_path)
    loads: list[Any] = []
    real_stylizer = session.Stylizer
    monkeypatch.setattr(session, "Stylizer", lambda config: loads.append(config) or real_stylizer(config))
    assert batch(photos, "-r", *prompt_flags(), "-o", out, "-q", *tiny_flags(tiny_paths)) == 0
    assert statuses(last_run(out)) == {"skipped": 6} and loads == []  # nothing to do: no weights loaded
    assert batch(photos / "chelsea.png", "-p", PROMPTS[0], "-o", out, "-q", "--overwrite",
                 *tiny_flags(tiny_paths)) == 0
    assert statuses(last_run(out)) == {"done": 1} and len(loads) == 1


def test_other_weights_redo_the_jobs(finished: Path, photos: Path, tiny_paths: dict[str, Path],
                                     tmp_path: Path) -> None:
    out = copy_of(finished, tmp_path)
    other = {**tiny_paths, "vgg_checkpoint": tmp_path / "other-vgg19.pth"}
    torch.save(tiny.tiny_vgg_state_dict(seed=1), other["vgg_checkpoint"])
    assert batch(photos, "-r", *prompt_flags(), "-o", out, "-q", *tiny_flags(other)) == 0
    assert statuses(last_run(out)) == {"done": 6}


def test_changed_settings_redo_the_jobs(finished: Path, photos: Path, tiny_paths: dict[str, Path],
                                        tmp_path: Path) -> None:
    out = copy_of(finished, tmp_path)
    assert batch(photos, "-r", "-p", PROMPTS[0], "-o", out, "-q", *tiny_flags(tiny_paths, steps=3)) == 0
    assert statuses(last_run(out)) == {"done": 3}
    sidecar = json.loads((out / prompt_slug(PROMPTS[0]) / "chelsea.png.json").read_text())
    assert sidecar["settings"]["steps"] == 3


def test_failed_job_is_recorded_and_the_batch_goes_on(tiny_paths: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(EXAMPLES / "chelsea.png", photos / "chelsea.png")
    shutil.copy(EXAMPLES / "coffee.png", photos / "holiday-photo")  # an image without an extension
    (photos / "broken.jpg").write_bytes(b"this is not a jpeg " * 20)
    out = tmp_path / "out"
    code = batch(photos, "-p", PROMPTS[0], "-o", out, "-q", *tiny_flags(tiny_paths))
    assert code == BatchFailures.exit_code == 8
    captured = capsys.readouterr()
    assert "3 jobs: 2 done, 0 skipped, 1 failed" in captured.out
    assert "failed: broken.jpg | starry night" in captured.out and "1 of 3 jobs failed" in captured.err
    by_input = {r["relative"]: r for r in records(out)}
    assert by_input["broken.jpg"]["status"] == "failed" and "not an image" in by_input["broken.jpg"]["error"]
    assert by_input["chelsea.png"]["status"] == by_input["holiday-photo"]["status"] == "done"
    assert_readable_image(out / prompt_slug(PROMPTS[0]) / "holiday-photo.png")
    assert not (out / prompt_slug(PROMPTS[0]) / "broken.png").exists()


def test_shards_together_do_every_job_once(finished: Path, photos: Path, tiny_paths: dict[str, Path],
                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    for shard in ("0/2", "1/2"):
        assert batch(photos, "-r", *prompt_flags(), "-o", out, "-q", "--shard", shard, *tiny_flags(tiny_paths)) == 0
    jobs = records(out)
    assert len({r["run"] for r in jobs}) == 2 and [len(last_run(out)), len(jobs)] == [3, 6]
    assert sorted(r["output"] for r in jobs) == sorted(r["output"] for r in records(finished))
    assert {s["shard"] for s in records(out, "summary")} == {"0/2", "1/2"}
    for record in jobs:  # a job gives the same image alone, in a batch or in a shard
        assert_same_result(out / record["output"], finished / record["output"])
    assert batch(photos, "-p", "x", "-o", out, "--shard", "2/2", *tiny_flags(tiny_paths)) == 2


def test_prompts_cannot_write_outside_the_output_folder(tiny_paths: dict[str, Path], tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "in").mkdir(parents=True)
    shutil.copy(EXAMPLES / "chelsea.png", work / "in" / "chelsea.png")
    prompts = ("../../escaped", "/tmp/absolute ☃ " + "long " * 100)
    out = work / "deep" / "out"
    assert batch(work / "in", *prompt_flags(prompts), "-o", out, "-q", *tiny_flags(tiny_paths)) == 0
    created = [p.relative_to(work) for p in visible_files(work)]
    assert all(p.parts[0] == "in" or p.parts[:2] == ("deep", "out") for p in created), created
    for prompt in prompts:
        output = out / prompt_slug(prompt) / "chelsea.png"
        assert_readable_image(output) if output.exists() else pytest.fail(f"missing {output}")
        assert len(output.parent.name) <= 60 and output.parent.name.isascii()


def test_config_file_holds_batch_options_and_the_command_line_wins(tiny_paths: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    shutil.copy(EXAMPLES / "chelsea.png", tmp_path / "photos" / "chelsea.png")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "prompts.txt").write_text("# one prompt\nukiyo-e woodblock print\n")
    flags = tiny_flags(tiny_paths)
    weights = {flags[i][2:].replace("-", "_"): flags[i + 1] for i in range(0, 8, 2)}
    config = tmp_path / "jobs" / "batch.toml"
    config.write_text("\n".join([
        'inputs = ["../photos"]', 'prompt = "starry night"', 'prompts-file = "prompts.txt"',
        'output = "../from-config"', 'format = "jpg"', "size = 64", "steps = 3", "crops = 4", "crop_size = 32",
        'device = "cpu"', 'precision = "fp32"', *(f"{key} = {json.dumps(value)}" for key, value in weights.items()),
    ]))
    assert main(["batch", "--config", str(config), "--steps", "2", "-q"]) == 0
    out = tmp_path / "from-config"  # relative paths in the file are relative to the file
    for prompt in ("starry night", "ukiyo-e woodblock print"):
        output = out / prompt_slug(prompt) / "chelsea.jpg"
        assert_readable_image(output)
        assert json.loads(output.with_name("chelsea.jpg.json").read_text())["settings"]["steps"] == 2


def test_progress_bars_show_the_batch_above_the_job(photos: Path, tiny_paths: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert batch(photos / "chelsea.png", "-p", PROMPTS[0], "-o", tmp_path / "out", *tiny_flags(tiny_paths)) == 0
    captured = capsys.readouterr()
    assert "batch: 100%" in captured.err and "1/1" in captured.err and "job" in captured.err
    assert "chelsea.png | starry night" in captured.err  # the per-job step bar
    assert "1 job: 1 done" in captured.out
