"""`clipopt run` end to end through click's runner, with the tiny checkpoint files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import subprocess_env
from PIL import Image
from test_imageio import png_header_only

from clipstyler_opt.cli import cli


def invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.output


def test_help_lists_every_option_with_defaults() -> None:
    code, out = invoke(["run", "--help"])
    assert code == 0
    for flag in ["--size", "--steps", "--crops", "--crop-size", "--threshold", "--lr", "--source-text",
                 "--lambda-patch", "--lambda-dir", "--lambda-content", "--lambda-tv", "--seed", "--device",
                 "--precision", "--clip-model", "--clip-pretrained", "--clip-checkpoint", "--vgg-checkpoint",
                 "--cache-dir", "--offline", "--save-every", "--contrast", "--config", "--quiet", "--verbose"]:
        assert flag in out, flag
    flat = " ".join(out.split())
    assert "[default: 9000.0]" in flat and "[default: ViT-B-32-quickgelu]" in flat
    code, top = invoke(["--help"])
    assert code == 0 and "Exit codes" in top


def test_run_writes_image_and_metadata(tmp_path: Path, photo: Path, tiny_cli_args: list[str],
                                       tiny_paths: dict[str, Path]) -> None:
    out = tmp_path / "result.png"
    code, output = invoke(["run", str(photo), "starry night", "-o", str(out), *tiny_cli_args])
    assert code == 0, output
    with Image.open(out) as image:
        assert image.size == (64, 43)
        embedded = json.loads(image.text["clipstyler_opt"])
    sidecar = json.loads((tmp_path / "result.png.json").read_text())
    assert sidecar["prompt"] == "starry night" and sidecar["seed"] == 0
    assert sidecar["settings"]["steps"] == 3 and sidecar["precision"] == "fp32"
    for key in ("prompt", "seed", "settings", "settings_hash", "losses", "precision"):
        assert embedded[key] == sidecar[key], key
    # the sidecar says where the files were; the image names them by base name and digest only
    assert sidecar["input"]["source"] == str(photo) and embedded["input"]["source"] == photo.name
    assert embedded["input"]["sha256"] == sidecar["input"]["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    vgg = tiny_paths["vgg_checkpoint"]
    assert sidecar["content_network"]["weights"] == str(vgg) and embedded["content_network"]["weights"] == vgg.name


def test_default_output_name_is_derived_and_never_overwrites(tmp_path: Path, photo: Path,
                                                             tiny_cli_args: list[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["run", str(photo), "Starry night / by Vincent van Gogh!", *tiny_cli_args, "-q"]
    assert invoke(args)[0] == 0
    assert invoke(args)[0] == 0
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["chelsea-starry-night-by-vincent-van-gogh-2.png", "chelsea-starry-night-by-vincent-van-gogh.png"]


def test_jpeg_and_webp_outputs_follow_the_extension(tmp_path: Path, photo: Path, tiny_cli_args: list[str]) -> None:
    for name, fmt in [("a.jpg", "JPEG"), ("b.webp", "WEBP")]:
        code, output = invoke(["run", str(photo), "x", "-o", str(tmp_path / name), *tiny_cli_args, "-q"])
        assert code == 0, output
        with Image.open(tmp_path / name) as image:
            assert image.format == fmt


def test_config_file_sets_options_and_the_command_line_overrides(tmp_path: Path, photo: Path,
                                                                  tiny_cli_args: list[str]) -> None:
    config = tmp_path / "style.toml"
    config.write_text('steps = 2\nseed = 5\nlambda-tv = 0.5\nsize = 48\n')
    out = tmp_path / "out.png"
    code, output = invoke(["run", str(photo), "x", "-o", str(out), *tiny_cli_args, "--config", str(config),
                           "--seed", "9", "-q"])
    assert code == 0, output
    meta = json.loads((tmp_path / "out.png.json").read_text())
    # steps comes from the command line (tiny args: 3), seed from the command line, lambda-tv from the file
    assert meta["settings"]["steps"] == 3 and meta["seed"] == 9 and meta["settings"]["lambda_tv"] == 0.5


def test_a_flag_set_in_the_config_file_can_be_switched_off(tmp_path: Path, photo: Path,
                                                           tiny_cli_args: list[str]) -> None:
    config = tmp_path / "style.toml"
    config.write_text("contrast = true\n")
    out = tmp_path / "out.png"
    assert invoke(["run", str(photo), "x", "-o", str(out), *tiny_cli_args, "--config", str(config), "-q"])[0] == 0
    assert json.loads((tmp_path / "out.png.json").read_text())["settings"]["contrast"] is True
    assert invoke(["run", str(photo), "x", "-o", str(out), *tiny_cli_args, "--config", str(config),
                   "--no-contrast", "-q"])[0] == 0
    assert json.loads((tmp_path / "out.png.json").read_text())["settings"]["contrast"] is False


def test_config_file_with_an_unknown_key_is_a_usage_error(tmp_path: Path, photo: Path) -> None:
    config = tmp_path / "style.toml"
    config.write_text("stpes = 2\n")
    code, output = invoke(["run", str(photo), "x", "--config", str(config)])
    assert code == 2 and "did you mean 'steps'" in output


def test_save_every_writes_numbered_frames(tmp_path: Path, photo: Path, tiny_cli_args: list[str]) -> None:
    out = tmp_path / "out.png"
    code, output = invoke(["run", str(photo), "x", "-o", str(out), *tiny_cli_args, "--save-every", "1", "-q"])
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "out_frames").iterdir()) == ["00001.png", "00002.png", "00003.png"]


@pytest.mark.parametrize("case, expected", [
    ("missing", 3), ("corrupt", 3), ("not-an-image", 3), ("bomb", 3), ("absurd-size", 2),
    ("unwritable", 5), ("bad-extension", 5), ("bad-device", 6), ("bad-choice", 2), ("nan-lr", 2),
    ("huge-seed", 2),
])
def test_bad_inputs_give_one_line_errors_and_documented_exit_codes(
        tmp_path: Path, photo: Path, tiny_cli_args: list[str], case: str, expected: int) -> None:
    image, out, extra = str(photo), str(tmp_path / "out.png"), []
    if case == "missing":
        image = str(tmp_path / "nope.jpg")
    elif case == "corrupt":
        (tmp_path / "corrupt.png").write_bytes(photo.read_bytes()[:3000])
        image = str(tmp_path / "corrupt.png")
    elif case == "not-an-image":
        (tmp_path / "notes.png").write_text("just text")
        image = str(tmp_path / "notes.png")
    elif case == "bomb":
        image = str(png_header_only(tmp_path / "bomb.png", 40000, 40000))
    elif case == "absurd-size":
        extra = ["--size", "100000"]
    elif case == "unwritable":
        (tmp_path / "a-file").write_text("")
        out = str(tmp_path / "a-file" / "out.png")
    elif case == "bad-extension":
        out = str(tmp_path / "out.gif")
    elif case == "bad-device":
        extra = ["--device", "cuda:7"] if not __import__("torch").cuda.is_available() else ["--device", "cuda:99"]
    elif case == "bad-choice":
        extra = ["--precision", "fp8"]
    elif case == "nan-lr":
        extra = ["--lr", "nan"]
    elif case == "huge-seed":
        extra = ["--seed", str(2**70)]
    code, output = invoke(["run", image, "starry night", "-o", out, *tiny_cli_args, *extra])
    assert code == expected, output
    assert "Traceback" not in output
    assert not Path(out).exists()
    if expected != 2:  # click prints usage for its own errors; ours are exactly one line
        assert len(output.strip().splitlines()) == 1, output


def test_offline_with_nothing_cached_fails_within_seconds(tmp_path: Path, photo: Path) -> None:
    start = time.monotonic()
    code, output = invoke(["run", str(photo), "starry night", "--offline", "-o", str(tmp_path / "o.png")])
    assert time.monotonic() - start < 5
    assert code == 4 and "not found offline" in output and "--" in output
    assert len(output.strip().splitlines()) == 1


def test_console_entry_point_without_network_reports_weights_error(tmp_path: Path, photo: Path) -> None:
    """A new user's first run, no cache and no network: a clear error, no traceback, quickly."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "clipstyler_opt", "run", str(photo), "starry night"],
                          cwd=tmp_path, env=subprocess_env(HF_HOME=str(tmp_path / "hf"),
                                                            TORCH_HOME=str(tmp_path / "torch")),
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr and "download failed" in proc.stderr
    # Not a benchmark: a bound far above the few seconds it takes, that a download retried with long
    # back-off (or a hang on the closed network) would exceed.
    assert elapsed < 45
    assert list(tmp_path.glob("*.png")) == []


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "clipstyler_opt", "run", str(tmp_path / "no.png"), "x", "-v"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "Traceback" in proc.stderr
