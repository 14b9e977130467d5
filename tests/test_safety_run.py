"""`clipopt run` never writes over an input, never clobbers a default name, copes with odd and long
names, full disks, too little memory and Ctrl-C/SIGTERM, and embeds no absolute paths. Real files
and real processes; the tiny checkpoints stand in for the weights."""

from __future__ import annotations

import collections
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import subprocess_env
from PIL import Image
from test_cli import invoke
from test_imageio import EPS, fake_ghostscript
from test_outputs import fail_fsync_of_nonempty_files

from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import OutputError
from clipstyler_opt.run.engine import Stylizer
from clipstyler_opt.run.resources import check_free_space, estimate_peak_bytes, is_out_of_memory


def one_line(output: str) -> bool:
    return len(output.strip().splitlines()) == 1 and "Traceback" not in output


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def start(args: list[Any], cwd: Path) -> subprocess.Popen[bytes]:
    """`python -m clipstyler_opt ARGS` with Ctrl-C delivered as in a terminal (SIGINT not ignored)."""
    return subprocess.Popen([sys.executable, "-m", "clipstyler_opt", *args], cwd=cwd, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


# --- inputs are never overwritten ---

@pytest.mark.parametrize("alias", ["same", "dotdot", "symlink", "hardlink", "sidecar", "partial"])
def test_an_output_that_is_an_input_is_refused_before_weights_load(tmp_path: Path, photo: Path,
                                                                   alias: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    image = folder / {"sidecar": "o.png.json", "partial": "o.partial.png"}.get(alias, "photo.png")
    shutil.copy(photo, image)
    out = {"same": image, "dotdot": folder / ".." / "in" / image.name, "symlink": tmp_path / "link.png",
           "hardlink": tmp_path / "hard.png", "sidecar": folder / "o.png", "partial": folder / "o.png"}[alias]
    if alias == "symlink":
        out.symlink_to(image)
    elif alias == "hardlink":
        os.link(image, out)
    # No weights exist and --offline forbids downloads: a check after loading would exit 4.
    code, output = invoke(["run", str(image), "x", "-o", str(out), "--offline"])
    assert code == 2, output
    assert "refusing to overwrite" in output and one_line(output)
    assert image.read_bytes() == photo.read_bytes()
    assert out.is_symlink() == (alias == "symlink")


def test_weight_files_are_inputs_too(tmp_path: Path, photo: Path, tiny_cli_args: list[str],
                                     tiny_paths: dict[str, Path]) -> None:
    vgg = tmp_path / "vgg.png"
    shutil.copy(tiny_paths["vgg_checkpoint"], vgg)
    args = [a if a != str(tiny_paths["vgg_checkpoint"]) else str(vgg) for a in tiny_cli_args]
    code, output = invoke(["run", str(photo), "x", "-o", str(vgg), *args])
    assert code == 2 and "refusing" in output
    assert vgg.read_bytes() == tiny_paths["vgg_checkpoint"].read_bytes()


# --- default names ---

def test_two_processes_started_together_get_distinct_default_names(tmp_path: Path, photo: Path,
                                                                   tiny_cli_args: list[str]) -> None:
    runs = [start(["run", str(photo), "starry night", *tiny_cli_args, "-q", "--seed", str(seed)], tmp_path)
            for seed in (1, 2)]
    for proc in runs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["chelsea-starry-night-2.png", "chelsea-starry-night.png"]
    seeds = set()
    for name in names:  # each image and its sidecar come from the same run
        with Image.open(tmp_path / name) as image:
            embedded = json.loads(image.text["clipstyler_opt"])
        assert json.loads((tmp_path / f"{name}.json").read_text())["seed"] == embedded["seed"]
        seeds.add(embedded["seed"])
    assert seeds == {1, 2} and leftovers(tmp_path) == []


# --- odd and long names ---

def test_a_long_output_name_works(tmp_path: Path, photo: Path, tiny_cli_args: list[str]) -> None:
    out = tmp_path / ("n" * 246 + ".png")  # its sidecar's name is exactly 255 bytes
    code, output = invoke(["run", str(photo), "x", "-o", str(out), *tiny_cli_args, "-q"])
    assert code == 0, output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache-home") == [out.name, out.name + ".json"]


def test_a_long_input_name_gives_a_default_name_that_fits(tmp_path: Path, photo: Path,
                                                          tiny_cli_args: list[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / ("é" * 125 + ".png")  # 254 bytes
    shutil.copy(photo, image)
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path / "out")
    code, output = invoke(["run", str(image), "starry night " * 40, *tiny_cli_args, "-q"])
    assert code == 0, output  # a name built from the whole stem and prompt could not be created
    assert len(list((tmp_path / "out").glob("*.png"))) == len(list((tmp_path / "out").glob("*.png.json"))) == 1


def test_non_utf8_and_newline_names_work_for_input_and_output(tmp_path: Path, photo: Path,
                                                              tiny_cli_args: list[str]) -> None:
    source, target = b"caf\xe9\nin.png", b"out\xe9\nx.png"
    shutil.copy(photo, os.path.join(os.fsencode(tmp_path), source))
    proc = start(["run", source, "x", "-o", target, *tiny_cli_args], tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert target in os.listdir(os.fsencode(tmp_path)) and target + b".json" in os.listdir(os.fsencode(tmp_path))
    raw = (tmp_path / os.fsdecode(target + b".json")).read_bytes()
    # recorded losslessly, by absolute path (the sidecar works from any folder)
    assert os.fsencode(json.loads(raw)["input"]["source"]) == os.path.join(os.fsencode(tmp_path), source)
    assert len(out.decode().strip().splitlines()) == 1  # "wrote ..." stays one line


# --- formats and sizes ---

@pytest.mark.parametrize("name", ["x.eps", "x.png"])
def test_postscript_input_exits_3_and_never_runs_ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             name: str) -> None:
    from PIL import EpsImagePlugin

    marker = fake_ghostscript(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    (tmp_path / name).write_bytes(EPS)
    code, output = invoke(["run", str(tmp_path / name), "x", "-o", str(tmp_path / "out.png")])
    assert code == 3 and one_line(output), output
    assert not marker.exists() and not (tmp_path / "out.png").exists()


def test_an_input_over_the_size_limit_or_a_fifo_exits_3(tmp_path: Path, photo: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPOPT_MAX_INPUT_MB", "0.01")
    code, output = invoke(["run", str(photo), "x", "-o", str(tmp_path / "out.png")])
    assert code == 3 and "CLIPOPT_MAX_INPUT_MB" in output and one_line(output)
    monkeypatch.delenv("CLIPOPT_MAX_INPUT_MB")
    os.mkfifo(tmp_path / "pipe.png")
    proc = start(["run", str(tmp_path / "pipe.png"), "x", "-o", str(tmp_path / "out.png")], tmp_path)
    try:
        _, err = proc.communicate(timeout=60)  # a reader blocked on the FIFO would never return
    finally:
        proc.kill()
    assert proc.returncode == 3 and b"not a regular file" in err


# --- memory and disk ---

def test_the_memory_estimate_follows_its_documented_model() -> None:
    # 512x512: U-Net 3100 B/px + VGG 2100 B/px; 65 ViT-B/32 views of 10.3e6 + 36.4*12*50*768 bytes;
    # weights 4 B x (VGG 20,024,384 + CLIP 12*12*768^2 + 12*12*512^2 + 49408*512); 285e6 for loading.
    # bf16: activations x 0.55 and half-precision copies of the weights (x 1.5).
    activations = 512 * 512 * (3100 + 2100) + 65 * (10.3e6 + 36.4 * 12 * 50 * 768)
    weights = 4 * (20_024_384 + 12 * 12 * 768**2 + 12 * 12 * 512**2 + 49408 * 512)
    assert estimate_peak_bytes(StyleConfig(), 512, 512, "fp32") == pytest.approx(285e6 + weights + activations,
                                                                                  rel=1e-6)
    assert estimate_peak_bytes(StyleConfig(), 512, 512, "bf16") == pytest.approx(
        285e6 + 1.5 * weights + 0.55 * activations, rel=1e-6)


@pytest.mark.parametrize("preset, precision, measured_mib", [
    # peak RSS minus RSS before loading, one process per setting (README, Safety: the memory estimate)
    ("default", "fp32", 4048), ("default", "bf16", 2968), ("fast", "fp32", 2951), ("fast", "bf16", 2400),
    ("quality", "fp32", 5521), ("quality", "bf16", 3796)])
def test_the_estimate_is_within_a_quarter_of_the_measured_growth(preset: str, precision: str,
                                                                 measured_mib: int) -> None:
    estimate = estimate_peak_bytes(StyleConfig(preset=preset), 512, 512, precision) / 2**20
    assert 0.75 * measured_mib <= estimate <= 1.25 * measured_mib


def test_the_estimate_reads_a_registered_architecture(tiny_config: StyleConfig) -> None:
    # tests/tiny.py: vision width 64, 2 layers, patch 8, 32 px (17 tokens); text width 32, 1 layer.
    per_view = 10.3e6 * (32 / 224) ** 2 + 36.4 * 2 * 17 * 64
    activations = 64 * 64 * (3100 + 2100) + 5 * per_view
    weights = 4 * (20_024_384 + 12 * 2 * 64**2 + 12 * 1 * 32**2 + 49408 * 32)
    estimate = estimate_peak_bytes(tiny_config, 64, 64, "fp32")
    assert estimate == pytest.approx(285e6 + weights + activations, rel=1e-6)


def test_a_run_too_big_for_memory_exits_9_before_weights_load(tmp_path: Path, photo: Path) -> None:
    code, output = invoke(["run", str(photo), "x", "-o", str(tmp_path / "o.png"), "--offline", "--device", "cpu",
                           "--precision", "fp32", "--size", "8192", "--crops", "100000"])
    assert code == 9 and one_line(output), output
    suggested = re.search(r"try --size (\d+) --crops (\d+)", output)
    assert suggested and int(suggested.group(1)) <= 8192 and int(suggested.group(2)) < 100000


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                                                "allocate 1073741824 bytes. Error code 12")])
def test_running_out_of_memory_is_exit_9_naming_smaller_settings(
        tmp_path: Path, photo: Path, tiny_cli_args: list[str], monkeypatch: pytest.MonkeyPatch,
        error: Exception) -> None:
    def exhausted(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(Stylizer, "stylize", exhausted)
    code, output = invoke(["run", str(photo), "x", "-o", str(tmp_path / "o.png"), *tiny_cli_args, "--size", "128",
                           "-q"])
    assert code == 9 and one_line(output), output
    assert "--size 96 --crops 2" in output  # 3/4 of the size, half the crops (tiny args: --crops 4)


def test_out_of_memory_is_recognised_by_type_and_message() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("x")) and is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("out of memory"))


def test_free_space_is_checked_against_the_real_file_system(tmp_path: Path) -> None:
    check_free_space(tmp_path / "not" / "created" / "yet", 1)
    with pytest.raises(OutputError, match="free"):
        check_free_space(tmp_path, 2**62)


def test_a_folder_without_room_for_the_output_exits_5(tmp_path: Path, photo: Path, tiny_cli_args: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 100, 100))
    code, output = invoke(["run", str(photo), "x", "-o", str(tmp_path / "o.png"), *tiny_cli_args])
    assert code == 5 and "free" in output and one_line(output), output


@pytest.mark.parametrize("explicit", [True, False])
def test_disk_full_while_saving_exits_5_and_leaves_nothing(tmp_path: Path, photo: Path, tiny_cli_args: list[str],
                                                           monkeypatch: pytest.MonkeyPatch, explicit: bool) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out.png").write_bytes(b"previous result")
    fail_fsync_of_nonempty_files(monkeypatch)  # after the run: the preflight probes are empty files
    code, output = invoke(["run", str(photo), "x", *(["-o", "out.png"] if explicit else []), *tiny_cli_args, "-q"])
    assert code == 5 and os.strerror(errno.ENOSPC) in output and one_line(output), output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache-home") == ["out.png"]
    assert (tmp_path / "out.png").read_bytes() == b"previous result"


# --- interrupted runs ---

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_keeps_its_latest_image_and_exits_130(tmp_path: Path, photo: Path,
                                                                 tiny_cli_args: list[str], signum: int) -> None:
    args = [a if a != "3" else "100000" for a in tiny_cli_args]  # --steps: far more than will run
    proc = start(["run", str(photo), "x", "-o", "out.png", *args, "--save-every", "1", "-q"], tmp_path)
    deadline = time.monotonic() + 120
    while not (tmp_path / "out_frames" / "00001.png").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1].decode()
        time.sleep(0.05)
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    sidecar = json.loads((tmp_path / "out.partial.png.json").read_text())
    step = sidecar["interrupted_at_step"]
    assert isinstance(step, int) and 1 <= step < 100000
    with Image.open(tmp_path / "out.partial.png") as image:
        assert json.loads(image.text["clipstyler_opt"])["interrupted_at_step"] == step
    assert f"step {step}" in err.decode()
    assert not (tmp_path / "out.png").exists() and leftovers(tmp_path) == []


# --- privacy ---

@pytest.mark.parametrize("portable", [False, True])
def test_no_absolute_path_is_embedded_in_outputs(tmp_path: Path, photo: Path, tiny_cli_args: list[str],
                                                 portable: bool) -> None:
    flag = ["--portable-metadata"] if portable else []
    for name in ("out.png", "out.jpg"):
        code, output = invoke(["run", str(photo), "x", "-o", str(tmp_path / name), *tiny_cli_args, "-q", *flag])
        assert code == 0, output
        with Image.open(tmp_path / name) as image:
            raw = image.text["clipstyler_opt"] if name.endswith(".png") else image.getexif()[0x010E]
        sidecar_text = (tmp_path / f"{name}.json").read_text()
        checked = [raw, sidecar_text] if portable else [raw]
        for text in checked:
            assert not [s for s in strings(json.loads(text)) if os.path.isabs(s)]
            assert str(photo.parent) not in text and str(tmp_path) not in text
        assert json.loads(raw)["input"]["source"] == photo.name
        if not portable:  # the sidecar keeps the full record
            assert json.loads(sidecar_text)["input"]["source"] == str(photo)
