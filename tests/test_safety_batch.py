"""`clipopt batch` keeps its inputs whole, takes any file name, and survives a full disk."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_batch_support import (
    EXAMPLES,
    assert_readable_image,
    fails_if_blocked,
    last_run,
    records,
    statuses,
    tiny_flags,
    visible_files,
)

from clipstyler_opt.batch import BatchSettings, run_batch
from clipstyler_opt.batch.runner import SilentObserver
from clipstyler_opt.cli import main
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.naming import prompt_slug
from clipstyler_opt.run.engine import ProgressCallback

PROMPT = "starry night"
SLUG = prompt_slug(PROMPT)


def batch(*args: Any) -> int:
    return main(["batch", *map(str, args)])


def two_photos(folder: Path) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(EXAMPLES / "chelsea.png", folder / "chelsea.png")
    shutil.copy(EXAMPLES / "coffee.png", folder / "coffee.png")
    return folder


def broken_weights(tiny_paths: dict[str, Path], folder: Path) -> dict[str, Path]:
    """Same names and sizes (so the same settings), unloadable: a batch that loads them exits 4."""
    broken = dict(tiny_paths)
    folder.mkdir()
    for key in ("clip_checkpoint", "vgg_checkpoint"):
        broken[key] = folder / tiny_paths[key].name
        broken[key].write_bytes(bytes(tiny_paths[key].stat().st_size))
    return broken


# --- inputs are sacred ---

def test_inputs_inside_the_output_folder_are_never_overwritten(tiny_paths: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    two_photos(out / SLUG)  # e.g. `clipopt batch out/<slug> -p PROMPT -o out`: each output is its input
    before = {p.name: p.read_bytes() for p in (out / SLUG).iterdir()}
    weights = broken_weights(tiny_paths, tmp_path / "weights")
    assert batch(out / SLUG, "-p", PROMPT, "-o", out, "-q", *tiny_flags(weights)) == 8  # 4 if weights loaded
    assert {p.name: p.read_bytes() for p in (out / SLUG).iterdir()} == before
    jobs = records(out)
    assert statuses(jobs) == {"failed": 2}
    assert all("refusing to write" in r["error"] and "is the same file as the input" in r["error"] for r in jobs)
    assert "2 of 2 jobs failed" in capsys.readouterr().err


def test_links_in_the_output_folder_never_lead_to_an_input(tiny_paths: dict[str, Path], tmp_path: Path) -> None:
    photos = two_photos(tmp_path / "photos")
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    (tmp_path / "out" / SLUG).mkdir(parents=True)
    (tmp_path / "out" / SLUG / "chelsea.png").symlink_to(photos / "chelsea.png")
    os.link(photos / "coffee.png", tmp_path / "out" / SLUG / "coffee.png")
    weights = broken_weights(tiny_paths, tmp_path / "weights")
    assert batch(photos, "-p", PROMPT, "-o", tmp_path / "out", "-q", *tiny_flags(weights)) == 8
    by_input = {r["relative"]: r["error"] for r in records(tmp_path / "out")}
    assert "a symbolic link to the input" in by_input["chelsea.png"]
    assert "the same file as the input" in by_input["coffee.png"]
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    assert (tmp_path / "out" / SLUG / "chelsea.png").is_symlink()  # left as it was


class _LinkPlanter(SilentObserver):
    """Plants a link to the input at the output path while the job runs."""

    def job_started(self, job: Any) -> ProgressCallback | None:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        job.output.symlink_to(os.path.abspath(job.input))
        return None


def test_a_link_planted_while_the_job_runs_is_refused(tiny_config: StyleConfig, tmp_path: Path) -> None:
    photos = two_photos(tmp_path / "photos")
    (photos / "coffee.png").unlink()
    before = (photos / "chelsea.png").read_bytes()
    settings = BatchSettings(inputs=(str(photos),), prompts=(PROMPT,), output_dir=tmp_path / "out")
    summary = run_batch(settings, tiny_config, _LinkPlanter())
    assert (summary.done, summary.failed) == (0, 1) and "symbolic link to the input" in summary.failures[0][1]
    assert (photos / "chelsea.png").read_bytes() == before


# --- any file name ---

def test_names_that_are_not_utf8_or_hold_newlines_work_and_resume(tiny_paths: dict[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    names = [b"caf\xe9.png", b"caf%E9.png", b"new\nline.png"]
    for name, source in zip(names, ("chelsea.png", "coffee.png", "chelsea.png"), strict=True):
        shutil.copy(EXAMPLES / source, os.path.join(os.fsencode(photos), name))
    out = tmp_path / "out"
    assert batch(photos, "-p", PROMPT, "-o", out, "-q", *tiny_flags(tiny_paths)) == 0
    jobs = records(out)  # every line parses as JSON
    assert statuses(jobs) == {"done": 3}
    assert sorted(os.fsencode(r["relative"]) for r in jobs) == sorted(names)  # recorded without loss
    assert sorted(os.fsencode(r["input"]) for r in jobs) == sorted(os.path.join(os.fsencode(photos), n) for n in names)
    outputs = sorted(p.relative_to(out).as_posix() for p in visible_files(out / SLUG) if p.suffix == ".png")
    assert len(outputs) == 3 and all(name.isprintable() for name in outputs)
    for name in outputs:
        name.encode("utf-8")  # valid UTF-8: no surrogate escapes
        assert_readable_image(out / name)
    assert sorted(r["output"] for r in jobs) == outputs
    assert "\\n" in capsys.readouterr().out  # the newline is shown escaped, and the line stays one line
    assert batch(photos, "-p", PROMPT, "-o", out, "-q", *tiny_flags(tiny_paths)) == 0
    assert statuses(last_run(out)) == {"skipped": 3}


def test_long_names_keep_room_for_every_file_the_batch_writes(tiny_paths: dict[str, Path], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    long_name = "x" * 251 + ".jpg"  # 255 bytes: as long as a name can be; the .png sidecar would be 260
    shutil.copy(EXAMPLES / "rocket.jpg", photos / long_name)
    out = tmp_path / "out"
    assert batch(photos, "-p", PROMPT, "-o", out, "-q", "--format", "png", *tiny_flags(tiny_paths)) == 0
    [record] = records(out)
    output = out / record["output"]
    assert_readable_image(output)
    assert len(output.name.encode()) + len(".json") <= 255 and output.with_name(output.name + ".json").is_file()
    assert batch(photos, "-p", PROMPT, "-o", out, "-q", *tiny_flags(tiny_paths)) == 0
    assert statuses(last_run(out)) == {"skipped": 1}


def test_a_fifo_named_as_input_is_refused_without_blocking(tmp_path: Path, tiny_paths: dict[str, Path]) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    with fails_if_blocked():
        assert batch(tmp_path / "pipe.png", "-p", PROMPT, "-o", tmp_path / "out", *tiny_flags(tiny_paths)) == 3


# --- a full disk ---

def _disk_full_on_save(monkeypatch: pytest.MonkeyPatch, failing_call: int) -> None:
    """The `failing_call`-th image save (1-based) runs out of space after writing a few bytes."""
    real_save = Image.Image.save
    calls = []

    def save(self: Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(fp)
        if len(calls) == failing_call:
            fp.write(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)


def test_disk_full_fails_that_job_only(tiny_paths: dict[str, Path], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    photos, out = two_photos(tmp_path / "photos"), tmp_path / "out"
    _disk_full_on_save(monkeypatch, failing_call=2)  # jobs run in name order: coffee.png is the second
    assert batch(photos, "-p", PROMPT, "-o", out, "-q", *tiny_flags(tiny_paths)) == 8
    by_input = {r["relative"]: r for r in records(out)}
    assert by_input["chelsea.png"]["status"] == "done"
    assert by_input["coffee.png"]["status"] == "failed" and "No space left on device" in by_input["coffee.png"]["error"]
    [summary] = records(out, "summary")
    assert (summary["done"], summary["failed"]) == (1, 1)
    assert "1 done, 0 skipped, 1 failed" in capsys.readouterr().out
    assert [p.relative_to(out).as_posix() for p in visible_files(out) if p.name != ".clipopt.lock"] == [
        "manifest.jsonl", f"{SLUG}/chelsea.png", f"{SLUG}/chelsea.png.json"]  # nothing half-written
    monkeypatch.undo()
    assert batch(photos, "-p", PROMPT, "-o", out, "-q", *tiny_flags(tiny_paths)) == 0
    assert statuses(last_run(out)) == {"skipped": 1, "done": 1}


def test_an_unwritable_manifest_stops_the_batch_with_exit_5(tiny_paths: dict[str, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    photos, out = two_photos(tmp_path / "photos"), tmp_path / "out"
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("manifest.jsonl"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell the manifest's descriptor")
    monkeypatch.setattr(os, "write", write)
    assert batch(photos, "-p", PROMPT, "-o", out, "-q", *tiny_flags(tiny_paths)) == 5
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "manifest.jsonl: cannot write (No space left on device)" in errors[0]
    saved = out / SLUG / "chelsea.png"
    assert_readable_image(saved)  # saved before its record failed: kept, and not called failed
    assert json.loads(saved.with_name("chelsea.png.json").read_text())["settings_hash"]
    assert (out / "manifest.jsonl").read_bytes() == b""
    monkeypatch.undo()
    assert batch(photos, "-p", PROMPT, "-o", out, "-q", *tiny_flags(tiny_paths)) == 0
    assert statuses(last_run(out)) == {"skipped": 1, "done": 1}
