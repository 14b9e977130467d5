"""Shared helpers for the batch tests (no tests here)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny
from PIL import Image

EXAMPLES = Path(__file__).parent.parent / "examples"
PROMPTS = ("starry night", "ukiyo-e woodblock print")


def tiny_flags(paths: dict[str, Path], steps: int = 2) -> list[str]:
    return ["--clip-model", tiny.TINY_CLIP_NAME, "--clip-model-config", str(paths["clip_model_config"]),
            "--clip-checkpoint", str(paths["clip_checkpoint"]), "--vgg-checkpoint", str(paths["vgg_checkpoint"]),
            "--size", "64", "--steps", str(steps), "--crops", "4", "--crop-size", "32", "--device", "cpu",
            "--precision", "fp32"]


def count_stylizer_loads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The configs of every Stylizer a batch in this process creates from now on (each loads backbones)."""
    from clipstyler_opt.batch import session

    loads: list[Any] = []
    real_stylizer = session.Stylizer

    def counted(config: Any) -> Any:
        loads.append(config)
        return real_stylizer(config)

    monkeypatch.setattr(session, "Stylizer", counted)
    return loads


def prompt_flags(prompts: tuple[str, ...] = PROMPTS) -> list[str]:
    return [flag for prompt in prompts for flag in ("-p", prompt)]


def make_photo_folder(folder: Path) -> Path:
    """chelsea.png and coffee.png at the top, rocket.jpg in a subfolder, and a text file."""
    (folder / "sub").mkdir(parents=True)
    shutil.copy(EXAMPLES / "chelsea.png", folder / "chelsea.png")
    shutil.copy(EXAMPLES / "coffee.png", folder / "coffee.png")
    shutil.copy(EXAMPLES / "rocket.jpg", folder / "sub" / "rocket.jpg")
    (folder / "notes.txt").write_text("not an image\n")
    return folder


def records(output_dir: Path, kind: str = "job") -> list[dict[str, Any]]:
    lines = (output_dir / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in (json.loads(line) for line in lines if line.strip()) if r["record"] == kind]


def last_run(output_dir: Path) -> list[dict[str, Any]]:
    """The job records of the most recent run in the manifest."""
    jobs = records(output_dir)
    return [r for r in jobs if r["run"] == jobs[-1]["run"]]


def statuses(job_records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in job_records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    return counts


def assert_readable_image(path: Path) -> None:
    with Image.open(path) as image:
        image.load()  # a truncated file fails here
        assert image.width > 0 and image.height > 0


def visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def assert_same_result(ours: Path, theirs: Path) -> None:
    """Same seed and settings: equal up to floating-point noise (another seed differs wildly)."""
    sidecars = [json.loads(p.with_name(p.name + ".json").read_text()) for p in (ours, theirs)]
    assert sidecars[0]["seed"] == sidecars[1]["seed"]
    assert sidecars[0]["settings_hash"] == sidecars[1]["settings_hash"]
    pixels = [np.asarray(Image.open(p).convert("RGB"), dtype=np.int16) for p in (ours, theirs)]
    assert pixels[0].shape == pixels[1].shape and np.abs(pixels[0] - pixels[1]).max() <= 4


@contextmanager
def fails_if_blocked(seconds: float = 20.0) -> Iterator[None]:
    """Turn a hang (e.g. a FIFO opened for reading) into a test failure instead of a stuck run."""
    def give_up(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def make_special_files(folder: Path) -> dict[str, str]:
    """A folder with one image and every kind of entry that must never be opened or used as an
    input; returns {name: the reason discovery must give} (a device node only when root)."""
    folder.mkdir(parents=True)
    shutil.copy(EXAMPLES / "chelsea.png", folder / "chelsea.png")
    os.mkfifo(folder / "pipe.png")
    server = socket.socket(socket.AF_UNIX)
    here = Path.cwd()
    os.chdir(folder)  # a socket's path must be short: bind by its bare name
    try:
        server.bind("sock.png")
    finally:
        os.chdir(here)
        server.close()  # the socket file stays
    (folder / "dangling.png").symlink_to(folder / "missing.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    (folder / "empty.png").touch()
    (folder / "x.png").mkdir()
    (folder / "notes.txt").write_text("not an image\n")
    expected = {"pipe.png": "a FIFO (named pipe)", "sock.png": "a socket", "dangling.png": "dangling symbolic link",
                "loop.png": "symbolic link loop", "empty.png": "empty file", "notes.txt": "not an image"}
    if os.geteuid() == 0:
        os.mknod(folder / "dev.png", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # what /dev/null is
        expected["dev.png"] = "a character device"
    return expected
