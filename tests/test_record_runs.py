"""Records made by real runs with the tiny checkpoints, read back: absolute content paths, `run
--from` with explicit files, `-q` output, a resume past a broken sidecar, `eval DIR` past a
damaged eval.json, and SIGTERM during an --output-size render and during eval."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import subprocess_env
from PIL import Image
from test_batch_support import EXAMPLES, last_run, statuses, tiny_flags
from test_eval_cli import batch_folder, private_cache, scorer_flags  # module fixtures
from test_record_reading import DEEP, one_line_error

from clipstyler_opt.cli import cli, main

__all__ = ["batch_folder", "private_cache"]


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_a_relative_input_is_recorded_by_absolute_path_and_q_prints_what_was_written(
        tmp_path: Path, tiny_paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(EXAMPLES / "chelsea.png", tmp_path / "cat.png")
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "cat.png", "oil", "-o", "out.png", "--save-every", "1", "--animation", "gif", "-q",
                    *tiny_flags(tiny_paths))
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "out.png.json").read_text())
    assert sidecar["input"]["source"] == os.path.join(os.path.realpath(tmp_path), "cat.png")
    animation = next(p.name for p in tmp_path.iterdir() if p.suffix == ".gif")
    assert result.stdout.splitlines() == ["out.png", animation]  # -q: only the paths, for scripts
    assert "WARNING" not in result.stderr
    result = invoke("run", "cat.png", "oil", "-o", "two.png", "--save-every", "1", "--animation", "gif",
                    *tiny_flags(tiny_paths))
    assert result.exit_code == 0, result.output
    assert "WARNING" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("wrote two.png (") and lines[1].startswith("wrote ")
    assert lines[1].endswith("(animation, 2 frames)")


def test_run_from_a_name_only_record_takes_explicit_files_with_the_recorded_sha256(
        tmp_path: Path, tiny_paths: dict[str, Path]) -> None:
    first = tmp_path / "first.png"
    assert main(["run", str(EXAMPLES / "chelsea.png"), "oil", "-o", str(first), "--portable-metadata", "-q",
                 *tiny_flags(tiny_paths)]) == 0
    shutil.copy(EXAMPLES / "chelsea.png", tmp_path / "chelsea.png")  # the record names it only
    result = invoke("run", "--from", first, "-o", tmp_path / "refused.png")
    assert result.exit_code == 4 and "pass the file explicitly" in result.output  # nothing to find it by
    files = ["--clip-checkpoint", tiny_paths["clip_checkpoint"], "--vgg-checkpoint", tiny_paths["vgg_checkpoint"],
             "--clip-model-config", tiny_paths["clip_model_config"]]
    again = tmp_path / "again.png"
    result = invoke("run", "--from", first, "-o", again, "-q", *files)
    assert result.exit_code == 0, result.output
    assert np.array_equal(pixels(first), pixels(again))
    (tmp_path / "first.png.json").unlink()  # the embedded record alone: names only, too
    result = invoke("run", "--from", first, "-o", tmp_path / "third.png", "-q", *files)
    assert result.exit_code == 0, result.output
    assert np.array_equal(pixels(first), pixels(tmp_path / "third.png"))
    cache = tmp_path / "cache"
    (cache / "sub").mkdir(parents=True)
    for name in ("clip_checkpoint", "vgg_checkpoint", "clip_model_config"):
        shutil.copy(tiny_paths[name], cache / "sub" / tiny_paths[name].name)
    result = invoke("run", "--from", first, "-o", tmp_path / "cached.png", "-q", "--cache-dir", cache)
    assert result.exit_code == 0, result.output  # the files found by name and sha256 in the given cache
    assert np.array_equal(pixels(first), pixels(tmp_path / "cached.png"))
    other = tmp_path / "other-vgg.pth"
    other.write_bytes(tiny_paths["vgg_checkpoint"].read_bytes() + b"\0")
    files[3] = other
    line = one_line_error(invoke("run", "--from", first, "-o", tmp_path / "bad.png", *files), 4)
    assert str(other) in line and "not the file the output was made with" in line
    assert not (tmp_path / "bad.png").exists()


def test_run_from_a_name_only_backbone_spec_takes_the_explicit_clip_checkpoint(
        tmp_path: Path, tiny_paths: dict[str, Path]) -> None:
    """A record made with --backbone MODEL:file=F names F only; --clip-checkpoint F (same sha256)
    is put in that spec, not taken as a new backbone."""
    first = tmp_path / "first.png"
    flags = [f for f in map(str, tiny_flags(tiny_paths)) if f not in (str(tiny_paths["clip_checkpoint"]),
                                                                   "--clip-checkpoint", "--clip-model",
                                                                   "clipopt-tiny-test")]
    spec = f"clipopt-tiny-test/openai:file={tiny_paths['clip_checkpoint']}"
    assert main(["run", str(EXAMPLES / "chelsea.png"), "oil", "-o", str(first), "--backbone", spec,
                 "--portable-metadata", "-q", *flags]) == 0
    shutil.copy(EXAMPLES / "chelsea.png", tmp_path / "chelsea.png")  # the record names it only
    again = tmp_path / "again.png"
    result = invoke("run", "--from", first, "-o", again, "-q", "--clip-checkpoint", tiny_paths["clip_checkpoint"],
                    "--vgg-checkpoint", tiny_paths["vgg_checkpoint"],
                    "--clip-model-config", tiny_paths["clip_model_config"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(pixels(first), pixels(again))
    records = [json.loads((tmp_path / f"{name}.png.json").read_text()) for name in ("first", "again")]
    assert records[0]["settings_hash"] == records[1]["settings_hash"]  # the same backbone spec, not a new one
    assert records[1]["config"]["backbone"] == ["clipopt-tiny-test/openai:file=tiny-clip.safetensors"]


def test_a_resume_redoes_a_job_whose_sidecar_is_nested_too_deeply(tmp_path: Path, tiny_paths: dict[str, Path],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(EXAMPLES / "chelsea.png", tmp_path / "cat.png")
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "cat.png"), "-p", "oil", "-o", str(out), "-q", *tiny_flags(tiny_paths)]
    assert main(args) == 0
    sidecar = next(out.rglob("*.png.json"))
    written = sidecar.with_name(sidecar.name.removesuffix(".json"))
    assert f"s) -> {written}\n" in capsys.readouterr().out  # -q names the file written
    sidecar.write_text(DEEP)
    assert main(args) == 0
    assert statuses(last_run(out)) == {"done": 1}
    assert isinstance(json.loads(sidecar.read_text())["settings_hash"], str)
    assert main(args) == 0
    assert statuses(last_run(out)) == {"skipped": 1}


def test_eval_dir_replaces_a_damaged_eval_json(batch_folder: Path, tiny_paths: dict[str, Path]) -> None:
    damaged = batch_folder / "eval.json"
    damaged.write_text('{"rows": [{"output": ')
    result = invoke("eval", batch_folder, *scorer_flags(tiny_paths))
    assert result.exit_code == 0, result.output
    document = json.loads(damaged.read_text())
    assert len(document["rows"]) == 4
    assert not [p for p in batch_folder.iterdir() if p.name.endswith(".tmp")]


# --- SIGTERM ---

def wait_for(path: Path, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1].decode()
        time.sleep(0.05)


def test_sigterm_during_the_output_size_render_keeps_the_working_size_image(
        tmp_path: Path, tiny_paths: dict[str, Path]) -> None:
    """--output-size 1600 takes tens of seconds to render with the tiny U-Net on one thread; the
    signal arrives a moment after the last step's frame."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipstyler_opt", "run", str(EXAMPLES / "chelsea.png"), "x", "-o", "out.png",
         *map(str, tiny_flags(tiny_paths, steps=3)), "--save-every", "1", "--output-size", "1600", "-q"],
        cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(tmp_path / "out_frames" / "00003.png", proc)
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    partial = tmp_path / "out.partial.png"
    with Image.open(partial) as image:
        assert max(image.size) == 64  # --size 64: the working size, not 1600
    record = json.loads((tmp_path / "out.partial.png.json").read_text())
    assert record["render_interrupted"] is True and record["output_size"] == list(Image.open(partial).size)
    assert len(record["history"]) == 3 and "interrupted_at_step" not in record
    assert "rendering" in err.decode() and str(partial.name) in err.decode()
    assert not (tmp_path / "out.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_sigterm_during_eval_exits_130(tmp_path: Path) -> None:
    """eval's work is replaced by a wait (the signal handling is what is tested), then a real SIGTERM."""
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        import clipstyler_opt.evaluate as command  # the eval command imports it when it runs
        def wait(*args, **kwargs):
            Path({str(ready)!r}).write_text("")
            time.sleep(120)
        command.collect_targets = wait
        from clipstyler_opt.cli import main
        sys.exit(main(["eval", "x.png"]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(ready, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    assert err.decode().strip() == "interrupted"


def test_a_batch_animation_is_not_reported_as_a_warning(tmp_path: Path, tiny_paths: dict[str, Path]) -> None:
    shutil.copy(EXAMPLES / "chelsea.png", tmp_path / "cat.png")
    result = invoke("batch", tmp_path / "cat.png", "-p", "oil", "-o", tmp_path / "out", "--save-every", "1",
                    "--animation", "gif", *tiny_flags(tiny_paths))
    assert result.exit_code == 0, result.output
    assert [p.suffix for p in (tmp_path / "out").rglob("*.gif")] == [".gif"]
    assert "WARNING" not in result.stderr, result.stderr
