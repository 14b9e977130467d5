"""A `clipopt studio` subprocess on a free port with the tiny models, for the studio's tests."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import tiny
from conftest import subprocess_env

START_TIMEOUT_S = 180


@dataclass
class StudioProcess:
    process: subprocess.Popen[str]
    url: str
    output_dir: Path
    temp_dir: Path  # the server's TMPDIR: empty once it has stopped
    lines: list[str] = field(default_factory=list)  # what it printed after the address

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def studio_args(paths: dict[str, Path], *extra: str) -> list[str]:
    return [sys.executable, "-m", "clipstyler_opt", "studio", "--port", "0", "--no-catalog",
            "--clip-model", tiny.TINY_CLIP_NAME, "--clip-model-config", str(paths["clip_model_config"]),
            "--clip-checkpoint", str(paths["clip_checkpoint"]), "--vgg-checkpoint", str(paths["vgg_checkpoint"]),
            "--device", "cpu", "--precision", "fp32", *extra]


@contextmanager
def running_studio(paths: dict[str, Path], folder: Path, *extra: str) -> Iterator[StudioProcess]:
    """The studio started in `folder` (output in folder/out, TMPDIR folder/tmp), stopped afterwards."""
    output, temp = folder / "out", folder / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([*studio_args(paths, "--output-dir", str(output)), *extra], cwd=folder,
                               env=subprocess_env(TMPDIR=str(temp), GRADIO_ANALYTICS_ENABLED="False"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    deadline, url, seen = time.monotonic() + START_TIMEOUT_S, None, []
    while url is None:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            raise AssertionError(f"the studio did not start: {seen}") from None
        seen.append(line)
        if line.startswith("studio: "):
            url = line.split()[1].rstrip("/")
        elif process.poll() is not None and lines.empty():
            raise AssertionError(f"the studio exited {process.returncode}: {seen}")
    studio = StudioProcess(process, url, output, temp, seen)
    threading.Thread(target=lambda: [studio.lines.append(lines.get()) for _ in iter(int, 1)], daemon=True).start()
    try:
        yield studio
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
