"""`clipopt batch` as real processes: killed, interrupted, and under torchrun."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import subprocess_env
from test_batch_support import (
    assert_readable_image,
    assert_same_result,
    last_run,
    make_photo_folder,
    make_special_files,
    prompt_flags,
    records,
    statuses,
    tiny_flags,
    visible_files,
)

from clipstyler_opt.batch import LOCK_NAME
from clipstyler_opt.cli import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
TIMEOUT = 240


def _restore_default_sigint() -> None:
    # A shell that runs tests in the background starts them with SIGINT ignored, and children
    # inherit that; an interactive terminal would not, so give the child the usual handler.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_batch(*args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "clipstyler_opt", "batch", *map(str, args)],
                            env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_restore_default_sigint)


def wait_for_first_done(process: subprocess.Popen[str], manifest: Path) -> int:
    """Poll the manifest until a job is done; return how many are done at that moment."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if manifest.exists():
            done = manifest.read_text(encoding="utf-8").count('"status": "done"')
            if done:
                return done
        if process.poll() is not None:
            pytest.fail(f"batch ended before any job was done: {process.communicate()}")
        time.sleep(0.02)
    process.kill()
    pytest.fail("no job was done in time")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_photo_folder(tmp_path_factory.mktemp("batch-process-inputs") / "photos")


def slow_job_flags(tiny_paths: dict[str, Path]) -> list[str]:
    # Enough steps that the batch is still running when the first job's record appears.
    return tiny_flags(tiny_paths, steps=12)


def test_sigkill_then_resume_leaves_every_output_whole(photos: Path, tiny_paths: dict[str, Path],
                                                       tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [photos, "-r", *prompt_flags(), "-o", out, "-q", *slow_job_flags(tiny_paths)]
    process = start_batch(*args)
    done_before = wait_for_first_done(process, out / "manifest.jsonl")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=TIMEOUT)
    assert done_before < 6, "the batch finished before it could be killed"
    assert main(["batch", *map(str, args)]) == 0
    resumed = last_run(out)
    assert len(resumed) == 6 and statuses(resumed)["skipped"] >= done_before
    for record in records(out):
        assert record["status"] == "done" or record["status"] == "skipped"
    outputs = [p for p in visible_files(out) if p.suffix == ".png"]
    assert len(outputs) == 6
    for output in outputs:
        assert_readable_image(output)  # none truncated
        assert json.loads(output.with_name(output.name + ".json").read_text())["settings_hash"]


def test_sigint_exits_130_with_a_summary_and_a_consistent_manifest(photos: Path, tiny_paths: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [photos, "-r", *prompt_flags(), "-o", out, "-q", *slow_job_flags(tiny_paths)]
    process = start_batch(*args)
    wait_for_first_done(process, out / "manifest.jsonl")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr
    assert "batch interrupted" in stdout and "images/hour" in stdout
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    parsed = [json.loads(line) for line in lines]  # every line whole
    jobs = [r for r in parsed if r["record"] == "job"]
    assert len({r["output"] for r in jobs}) == len(jobs) and 1 <= len(jobs) < 6
    for record in jobs:
        assert record["status"] == "done"
        assert_readable_image(out / record["output"])
    [summary] = [r for r in parsed if r["record"] == "summary"]
    assert summary["interrupted"] and summary["done"] == len(jobs)
    assert [p.name for p in visible_files(out) if p.name.startswith(".")] == [LOCK_NAME]  # no temporary files left
    assert main(["batch", *map(str, args)]) == 0  # a second run resumes
    assert statuses(last_run(out)) == {"skipped": len(jobs), "done": 6 - len(jobs)}


def test_torchrun_two_ranks_write_one_manifest(photos: Path, tiny_paths: dict[str, Path], tmp_path: Path) -> None:
    out, single = tmp_path / "out", tmp_path / "single"
    args = [photos / "chelsea.png", photos / "coffee.png", *prompt_flags(), *tiny_flags(tiny_paths)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "clipstyler_opt", "batch", *map(str, args), "-o", str(out)]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("batch finished") == 1 and "4 jobs: 4 done" in result.stdout
    jobs = records(out)
    assert statuses(jobs) == {"done": 4} and len({r["output"] for r in jobs}) == 4
    assert sorted(r["rank"] for r in jobs) == [0, 0, 1, 1]
    [summary] = records(out, "summary")
    assert (summary["world_size"], summary["done"], summary["jobs"]) == (2, 4, 4)
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [LOCK_NAME, "manifest.jsonl"]  # journals merged
    assert main(["batch", *map(str, args), "-o", str(single), "-q"]) == 0
    for record in jobs:  # the same result on any rank as in one process
        assert_same_result(out / record["output"], single / record["output"])


def _lock_is_held(lock_file: Path) -> bool:
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_a_second_batch_on_the_same_folder_exits_10_at_once(photos: Path, tiny_paths: dict[str, Path],
                                                            tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [photos / "chelsea.png", "-p", "starry night", "-o", out, "-q"]
    first = start_batch(*args, *tiny_flags(tiny_paths, steps=100_000))  # runs until killed
    try:
        deadline = time.monotonic() + TIMEOUT
        while not _lock_is_held(out / LOCK_NAME):
            if first.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the first batch never took its lock: {first.communicate(timeout=TIMEOUT)}")
            time.sleep(0.05)
        started = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "clipstyler_opt", "batch", *map(str, args),
                                 *tiny_flags(tiny_paths)], env=subprocess_env(), capture_output=True, text=True,
                                timeout=TIMEOUT)
        waited = time.monotonic() - started
        assert first.poll() is None  # the first one was holding the lock all along
        assert second.returncode == 10, second.stderr
        assert second.stderr.strip().splitlines() == [
            f"error: {out} is in use by another clipopt batch; wait for it to finish or choose another -o"]
        assert waited < 60  # interpreter start and imports only: it never waits for the lock
    finally:
        first.kill()
        first.communicate(timeout=TIMEOUT)


def test_a_folder_of_special_files_never_blocks_the_batch(tiny_paths: dict[str, Path], tmp_path: Path) -> None:
    expected = make_special_files(tmp_path / "mixed")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "clipstyler_opt", "batch", str(tmp_path / "mixed"), "-p", "x",
                             "-o", str(out), "-q", *tiny_flags(tiny_paths)], env=subprocess_env(),
                            capture_output=True, text=True, timeout=TIMEOUT)  # a hang fails here
    assert result.returncode == 0, result.stderr
    assert [r["relative"] for r in records(out)] == ["chelsea.png"]
    [summary] = records(out, "summary")
    assert {Path(s["input"]).name: s["reason"] for s in summary["skipped_inputs"]} == expected
