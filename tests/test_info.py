"""`clipopt info`: the provenance record read back from sidecars, PNG iTXt and EXIF."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from clipstyler_opt.cli import cli
from clipstyler_opt.run.images import save_image

SHA = "ab" * 32


def _record(weights_folder: Path) -> dict[str, Any]:
    return {
        "tool": "clipstyler_opt",
        "prompt": "starry night by Vincent van Gogh",
        "seed": 42,
        "created": "2025-01-02T03:04:05+00:00",
        "input": {"source": str(weights_folder / "photos" / "cat.jpg"), "sha256": "cd" * 32, "size": [640, 480]},
        "output_size": [512, 384],
        "settings": {"size": 512, "steps": 50, "lambda_content": 300.0, "future_knob": 3},
        "settings_hash": "0123456789abcdef",
        "device": "cuda:0",
        "precision": "bf16",
        "requested_precision": "auto",
        "backbones": [{"family": "open_clip", "model": "ViT-B-32-quickgelu", "pretrained": "openai",
                       "spec": "ViT-B-32-quickgelu/openai", "weight": 1.0,
                       "weights": str(weights_folder / "clip.safetensors"), "weights_name": "clip.safetensors",
                       "weights_sha256": SHA, "weights_origin": "cache"}],
        "content_network": {"weights": str(weights_folder / "vgg19-dcbb9e9d.pth"), "weights_origin": "explicit"},
        "losses": {"total": 1234.5, "patch": 0.1},
        "history": [{"total": 2000.0}, {"total": 1234.5}],
        "skipped_steps": [7],
        "warnings": ["crop size 128 exceeds the image's short side"],
        "timings": {"setup_s": 1.5, "optimise_s": 60.25, "total_s": 62.0},
        "versions": {"clipstyler_opt": "0.1.0", "torch": "2.4.0"},
        "render": {"tile": 512},
    }


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _image() -> Image.Image:
    return Image.new("RGB", (32, 24), (10, 20, 30))


@pytest.mark.parametrize("name, where", [("out.png", "PNG iTXt chunk"), ("out.jpg", "EXIF ImageDescription"),
                                         ("out.webp", "EXIF ImageDescription")])
def test_embedded_record_is_shown_readably(tmp_path: Path, name: str, where: str) -> None:
    output = tmp_path / name
    save_image(_image(), output, _record(tmp_path), sidecar=False)
    result = invoke(["info", str(output)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"read from: {where} of {output}")
    assert "prompt: starry night by Vincent van Gogh" in lines and "seed: 42" in lines
    assert "created: 2025-01-02T03:04:05+00:00" in lines
    assert "output: 512x384 from cat.jpg (640x480, sha256 " + "cd" * 32 + ")" in lines  # embedded: names only
    assert "  steps: 50 (default 200)" in lines and "  lambda_content: 300 (default 150)" in lines
    assert "  future_knob: 3 (not a setting of this version)" in lines
    assert not any(line.startswith("  size:") for line in lines)  # equal to the default: not listed
    assert "settings hash: 0123456789abcdef" in lines
    assert f"backbone 1: ViT-B-32-quickgelu/openai weights clip.safetensors, sha256 {SHA} (cache)" in lines
    assert "content network: weights vgg19-dcbb9e9d.pth (explicit)" in lines
    assert "device: cuda:0, precision bf16 (requested auto)" in lines
    # Embedded JSON is written with sorted keys, so the terms come in alphabetical order.
    assert "timings: optimise 60.25 s, setup 1.5 s, total 62 s" in lines
    assert "losses: patch 0.1, total 1234.5" in lines
    assert "history: 2 steps (see --json)" in lines and "skipped steps: 7" in lines
    assert "warning: crop size 128 exceeds the image's short side" in lines
    assert "versions: clipstyler_opt 0.1.0, torch 2.4.0" in lines
    assert 'render: {"tile": 512}' in lines  # unknown keys are shown as they are


def test_the_sidecar_is_preferred_and_keeps_full_paths(tmp_path: Path) -> None:
    output = tmp_path / "out.png"
    record = _record(tmp_path)
    save_image(_image(), output, record)
    result = invoke(["info", str(output)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"read from: sidecar {output}.json"
    assert f"from {tmp_path / 'photos' / 'cat.jpg'} (" in result.output
    assert f"weights clip.safetensors at {tmp_path / 'clip.safetensors'}, sha256 {SHA}" in result.output
    raw = invoke(["info", str(output), "--json"])
    assert raw.exit_code == 0 and json.loads(raw.output) == record


def test_sidecar_only_output(tmp_path: Path) -> None:
    output = tmp_path / "plain.png"
    _image().save(output)  # nothing embedded
    record = _record(tmp_path)
    (tmp_path / "plain.png.json").write_text(json.dumps(record))
    for target in (output, tmp_path / "plain.png.json"):
        result = invoke(["info", str(target), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == record


def test_old_single_backbone_records_are_read(tmp_path: Path) -> None:
    record = {"prompt": "ukiyo-e", "seed": 0, "settings": {"steps": 200},
              "backbone": {"family": "open_clip", "model": "ViT-B-32-quickgelu", "pretrained": "openai",
                           "weights": "/w/open_clip_model.safetensors", "weights_origin": "cache"}}
    output = tmp_path / "old.png"
    save_image(_image(), output, record)
    result = invoke(["info", str(output)])
    assert result.exit_code == 0, result.output
    assert "settings: all defaults" in result.output.splitlines()
    assert ("backbone 1: ViT-B-32-quickgelu/openai weights open_clip_model.safetensors at "
            "/w/open_clip_model.safetensors (cache)") in result.output.splitlines()


@pytest.mark.parametrize("case", ["no metadata", "missing", "bad sidecar", "not an image", "empty record"])
def test_files_without_a_record_fail_with_one_line_and_exit_3(tmp_path: Path, case: str) -> None:
    output = tmp_path / "x.png"
    if case == "no metadata":
        _image().save(output)
    elif case == "bad sidecar":
        _image().save(output)
        (tmp_path / "x.png.json").write_text("{not json")
    elif case == "not an image":
        output.write_bytes(b"hello")
    elif case == "empty record":
        save_image(_image(), output, {}, sidecar=False)
    result = invoke(["info", str(output)])
    assert result.exit_code == 3
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert result.stdout == ""
