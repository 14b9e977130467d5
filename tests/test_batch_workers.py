"""`--workers-per-device K`: several jobs at once on one device, in worker processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import subprocess_env
from PIL import Image
from test_batch_support import (
    count_stylizer_loads,
    last_run,
    make_photo_folder,
    prompt_flags,
    records,
    statuses,
    tiny_flags,
    visible_files,
)

from clipstyler_opt.batch import LOCK_NAME, BatchSettings
from clipstyler_opt.cli import main
from clipstyler_opt.core.errors import ConfigError

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads worker processes from /proc")
TIMEOUT = 300


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_photo_folder(tmp_path_factory.mktemp("worker-inputs") / "photos")


def batch_args(photos: Path, out: Path, tiny_paths: dict[str, Path], steps: int = 2) -> list[str]:
    return [str(photos), "-r", *prompt_flags(), "-o", str(out), "-q", *tiny_flags(tiny_paths, steps=steps)]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def settings_hash(path: Path) -> str:
    return json.loads(path.with_name(path.name + ".json").read_text())["settings_hash"]


def test_two_workers_give_every_job_exactly_the_image_of_one(photos: Path, tiny_paths: dict[str, Path],
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["batch", *batch_args(photos, one, tiny_paths)]) == 0
    loads = count_stylizer_loads(monkeypatch)
    assert main(["batch", *batch_args(photos, two, tiny_paths), "--workers-per-device", "2"]) == 0
    assert loads == []  # every job ran in a worker process, none in this one
    jobs = records(two)
    assert statuses(jobs) == {"done": 6} and len({r["output"] for r in jobs}) == 6  # each job listed once
    assert sorted(r["output"] for r in jobs) == sorted(r["output"] for r in records(one))
    [summary] = records(two, "summary")
    assert (summary["done"], summary["jobs"], summary["workers_per_device"]) == (6, 6, 2)
    for record in jobs:
        ours, theirs = two / record["output"], one / record["output"]
        assert np.array_equal(pixels(ours), pixels(theirs))  # bit for bit
        assert settings_hash(ours) == settings_hash(theirs)
    assert main(["batch", *batch_args(photos, two, tiny_paths), "--workers-per-device", "2"]) == 0
    assert statuses(last_run(two)) == {"skipped": 6} and loads == []  # resumes like any batch


def test_workers_per_device_must_be_positive(photos: Path, tmp_path: Path, tiny_paths: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        BatchSettings(inputs=(str(photos),), prompts=("p",), output_dir=tmp_path, workers_per_device=0)
    assert main(["batch", *batch_args(photos, tmp_path / "out", tiny_paths), "--workers-per-device", "0"]) == 2


def test_a_worker_error_that_concerns_the_batch_stops_it_with_its_exit_code(photos: Path, tiny_paths: dict[str, Path],
                                                                           tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "vgg.pth"
    broken.write_text("not a checkpoint\n")
    args = [*batch_args(photos, tmp_path / "out", tiny_paths), "--vgg-checkpoint", str(broken)]
    assert main(["batch", *args, "--workers-per-device", "2"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot load weights from") and "Traceback" not in err[0]


# --- as real processes ---

def _restore_default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_batch(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "clipstyler_opt", "batch", *args, "--workers-per-device", "2"],
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_restore_default_sigint)


def worker_pids(parent: int) -> list[int]:
    """The parent's worker processes (not multiprocessing's resource tracker)."""
    pids = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                pids.append(int(child))
    return pids


def wait_until_running(process: subprocess.Popen[str], manifest: Path) -> list[int]:
    """Poll until a job is done and both workers are alive; returns the workers' pids."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"batch ended too soon: {process.communicate()}")
        if manifest.exists() and '"status": "done"' in manifest.read_text(encoding="utf-8"):
            workers = worker_pids(process.pid)
            if len(workers) == 2:
                return workers
        time.sleep(0.02)
    process.kill()
    pytest.fail("no job was done in time")


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_sigterm_stops_the_workers_and_a_rerun_resumes(photos: Path, tiny_paths: dict[str, Path],
                                                       tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = batch_args(photos, out, tiny_paths, steps=30)
    process = start_batch(args)
    workers = wait_until_running(process, out / "manifest.jsonl")
    process.send_signal(signal.SIGTERM)  # to the parent only, as a scheduler would
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr
    assert "batch interrupted" in stdout and "Traceback" not in stderr
    deadline = time.monotonic() + 30
    while not all(map(gone, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(map(gone, workers))  # no worker outlives the batch
    parsed = [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    jobs = [r for r in parsed if r["record"] == "job"]
    assert 1 <= len(jobs) < 6 and len({r["output"] for r in jobs}) == len(jobs)
    assert {r["status"] for r in jobs} == {"done"} and parsed[-1]["interrupted"]
    assert [p.name for p in visible_files(out) if p.name.startswith(".")] == [LOCK_NAME]  # no temporary files
    assert main(["batch", *args]) == 0
    assert statuses(last_run(out)) == {"skipped": len(jobs), "done": 6 - len(jobs)}


def test_a_worker_that_dies_fails_its_job_and_the_others_go_on(photos: Path, tiny_paths: dict[str, Path],
                                                               tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = batch_args(photos, out, tiny_paths, steps=30)
    process = start_batch(args)
    victim, _survivor = wait_until_running(process, out / "manifest.jsonl")
    os.kill(victim, signal.SIGKILL)
    _stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 8, stderr
    assert "ended unexpectedly" in stderr and "Traceback" not in stderr
    [summary] = records(out, "summary")
    jobs = records(out)
    assert len({r["output"] for r in jobs}) == len(jobs) == 6 and summary["not_run"] == 0  # each job once
    assert summary["failed"] >= 1 and summary["done"] >= 3  # the survivor did its whole share
    for record in jobs:
        if record["status"] == "failed":
            assert re.fullmatch(r"(the worker process running it died|not run: its worker process died) "
                                r"\(exit code -9\)", record["error"])
    assert main(["batch", *args]) == 0  # a rerun does what is missing
    assert statuses(last_run(out)) == {"skipped": summary["done"], "done": 6 - summary["done"]}
