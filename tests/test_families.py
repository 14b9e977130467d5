"""The backbone-family registry: every family meets the contract, a half-wired one is refused
naming what is missing, and each optional capability that is absent is a one-line error or a
stated default (never open_clip's own error, never a silent skip)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tiny
import torch
import toy
from click.testing import CliRunner
from safetensors.torch import load_file

from clipstyler_opt import StyleConfig, Stylizer
from clipstyler_opt.cli import cli, main
from clipstyler_opt.core.backbone_spec import BackboneSpec, LoadContext
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.method.ensemble import Member
from clipstyler_opt.method.precision import frozen_image_towers
from clipstyler_opt.models import (
    BackboneFamily,
    TowerMemory,
    families,
    family_of,
    register_backbone,
    register_family,
)
from clipstyler_opt.models.families import CAPABILITIES, contract_problems
from clipstyler_opt.models.open_clip_family import PROVENANCE_KEYS
from clipstyler_opt.run.resources import estimate_peak_bytes

CPU = torch.device("cpu")


def tiny_context(paths: dict[str, Path]) -> LoadContext:
    return LoadContext(model_configs=(paths["clip_model_config"],))


def test_every_registered_family_meets_the_contract(tiny_paths: dict[str, Path], tmp_path: Path) -> None:
    toy.register_toy()
    names = [family.name for family in families()]
    assert "open_clip" in names and "toy-colour" in names
    for family in families():
        assert contract_problems(family) == [], family.name
        assert "family" in family.provenance_keys
    # The toy family, capability by capability.
    family = family_of(BackboneSpec.parse("toy-colour"))
    spec = BackboneSpec.parse("toy-colour")
    backbone = family.build(spec, LoadContext(), CPU)
    assert backbone.provenance["family"] == "toy-colour"
    assert family.tower_memory(spec, LoadContext()) == TowerMemory(0, 3 * 16 * 16 * 4)
    assert family.random_spec(spec, tmp_path) == spec and family.towers(backbone) == []


def test_the_open_clip_family_provides_every_capability(tiny_paths: dict[str, Path], tmp_path: Path) -> None:
    context = tiny_context(tiny_paths)
    spec = BackboneSpec(tiny.TINY_CLIP_NAME, file=tiny_paths["clip_checkpoint"])
    family = family_of(spec)
    assert family.name == "open_clip"
    family.requirements(spec, context)
    backbone = family.build(spec, context, CPU)
    assert set(PROVENANCE_KEYS) <= set(backbone.provenance)
    assert family.towers(backbone) == [backbone.model.visual]  # type: ignore[attr-defined]
    # tests/tiny.py: vision width 64, 2 layers, patch 8, 32 px (17 tokens); text width 32, 1 layer, 49408 tokens.
    memory = family.tower_memory(spec, context)
    assert memory.view_bytes == pytest.approx(10.3e6 * (32 / 224) ** 2 + 36.4 * 2 * 17 * 64)
    assert memory.weight_bytes == pytest.approx(4 * (12 * 2 * 64**2 + 12 * 1 * 32**2 + 49408 * 32))
    random = family.random_spec(BackboneSpec(tiny.TINY_CLIP_NAME, "openai"), tmp_path, 0)
    assert random.file is not None and random.pretrained == "openai"
    stored = load_file(str(random.file))
    expected = load_file(str(tiny_paths["clip_checkpoint"]))
    assert {k: v.shape for k, v in stored.items()} == {k: v.shape for k, v in expected.items()}


def test_a_half_wired_family_is_refused_naming_what_is_missing() -> None:
    def no_device(spec: BackboneSpec, context: LoadContext) -> None:
        return None

    def no_context(spec: BackboneSpec) -> TowerMemory:
        return TowerMemory(0, 0)

    loose: Any = (no_device, None, no_context)  # mistyped on purpose
    half = BackboneFamily("half-wired", create=loose[0], requirements=loose[1], provenance_keys=("model",),
                          memory=loose[2])
    with pytest.raises(ConfigError) as refused:
        register_family(half)
    message = str(refused.value)
    assert "'half-wired' is half-wired" in message and "\n" not in message
    for missing in ("create has the wrong signature (expected create(spec, context, device))",
                    "requirements is missing", 'provenance_keys must include "family"',
                    "memory has the wrong signature (expected memory(spec, context))"):
        assert missing in message
    assert "half-wired" not in [family.name for family in families()]
    assert set(CAPABILITIES) == {"create", "requirements", "memory", "random_weights", "frozen_towers"}


def test_a_backbone_without_its_declared_provenance_keys_is_an_error() -> None:
    family = register_backbone("no-spec-record", lambda spec, context, device: toy.ToyColourBackbone(),
                               provenance_keys=("family", "weights"))
    with pytest.raises(ConfigError, match="provenance lacks weights"):
        family.build(BackboneSpec.parse("no-spec-record"), LoadContext(), CPU)


def test_a_family_without_a_memory_profile_is_a_one_line_error(tiny_config: StyleConfig, tmp_path: Path,
                                                               photo: Path, capsys: pytest.CaptureFixture[str]
                                                               ) -> None:
    register_backbone("no-memory", lambda spec, context, device: toy.ToyColourBackbone())
    config = toy.toy_config(tiny_config, backbone="no-memory")
    with pytest.raises(ConfigError, match="'no-memory' declares no memory profile"):
        estimate_peak_bytes(config, 64, 64, "fp32")
    code = main(["run", str(photo), "red", "-o", str(tmp_path / "o.png"), "--backbone", "no-memory",
                 "--vgg-checkpoint", str(tiny_config.vgg_checkpoint), "--device", "cpu", "--size", "64"])
    err = capsys.readouterr().err
    assert code == 2 and "no memory profile" in err and len(err.strip().splitlines()) == 1
    # With a profile, the toy's views count as declared, not as a ViT-B/32's.
    toy.register_toy()
    toy_estimate = estimate_peak_bytes(toy.toy_config(tiny_config), 64, 64, "fp32")
    assert toy_estimate == pytest.approx(285e6 + 4 * 20_024_384 + 64 * 64 * (3100 + 2100) + 5 * 3 * 16 * 16 * 4)


def bench_args(paths: dict[str, Path], backbone: str) -> list[str]:
    return ["bench", "--backbone", backbone, "--size", "32", "--crops", "2", "--crop-size", "16", "--steps", "1",
            "--precision", "fp32", "--vgg-checkpoint", str(paths["vgg_checkpoint"]), "--device", "cpu",
            "--no-startup", "-q"]


def test_bench_measures_a_registered_family_and_refuses_what_it_cannot_build(
        tiny_paths: dict[str, Path], photo: Path) -> None:
    toy.register_toy()
    runner = CliRunner()
    result = runner.invoke(cli, [*bench_args(tiny_paths, "toy-colour"), "--image", str(photo), "--no-reference"])
    assert result.exit_code == 0, result.output
    assert any(line.startswith("toy-colour") for line in result.output.splitlines())
    result = runner.invoke(cli, [*bench_args(tiny_paths, "toy-colour"), "--image", str(photo)])
    assert result.exit_code == 2 and "open_clip backbones only" in result.output and "--no-reference" in result.output
    register_backbone("no-random", lambda spec, context, device: toy.ToyColourBackbone())
    result = runner.invoke(cli, [*bench_args(tiny_paths, "no-random"), "--image", str(photo), "--no-reference"])
    assert result.exit_code == 2 and "'no-random' declares no random weights" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(cli, [*bench_args(tiny_paths, "no-such-model/xyz"), "--image", str(photo)])
    assert result.exit_code == 2 and "unknown model 'no-such-model'" in result.output


def test_bf16_weights_take_the_towers_each_family_declares(tiny_config: StyleConfig) -> None:
    toy.register_toy()
    register_backbone("no-towers", lambda spec, context, device: toy.ToyColourBackbone())
    open_clip_member = Stylizer(tiny_config).members[0]
    toy_member = Member(BackboneSpec.parse("toy-colour"), toy.ToyColourBackbone())
    undeclared = Member(BackboneSpec.parse("no-towers"), toy.ToyColourBackbone())
    towers, notes = frozen_image_towers([open_clip_member, toy_member, undeclared])
    assert towers == [open_clip_member.backbone.model.visual]  # type: ignore[attr-defined]
    [note] = notes
    assert "'no-towers' declares no frozen towers" in note and "kept in fp32" in note


def test_an_unknown_model_or_tag_is_exit_2_before_any_weights(tmp_path: Path, photo: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "cache"
    for backbone, named in (("no-such-model/xyz", "unknown model 'no-such-model'"),
                            ("ViT-B-32/no-such-tag", "unknown pretrained tag 'no-such-tag' for ViT-B-32")):
        code = main(["run", str(photo), "red", "-o", str(tmp_path / "o.png"), "--backbone", backbone, "--offline",
                     "--cache-dir", str(empty), "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 2 and named in err and "VGG19" not in err, err
        # The same check guards the Python API, where no memory estimate runs first.
        with pytest.raises(ConfigError, match=named):
            Stylizer(StyleConfig(backbone=(backbone,), offline=True, cache_dir=empty, device="cpu"))
