"""Backbone specs, SigLIP through open_clip (timm tower, Hugging Face tokenizer), and ensembles."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiny
import torch
from click.testing import CliRunner
from conftest import subprocess_env

from clipstyler_opt import StyleConfig, Stylizer
from clipstyler_opt.cli import cli
from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.core.errors import ConfigError, WeightsError


@pytest.fixture(scope="session")
def siglip_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tiny.write_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip"))


def siglip_spec(paths: dict[str, Path], extra: str = "") -> str:
    return f"{tiny.TINY_SIGLIP_NAME}:file={paths['checkpoint']}:tokenizer={paths['tokenizer']}{extra}"


def clip_spec(paths: dict[str, Path], extra: str = "") -> str:
    return f"{tiny.TINY_CLIP_NAME}:file={paths['clip_checkpoint']}{extra}"


def small(**changes: object) -> dict[str, object]:
    return {"size": 64, "steps": 2, "crops": 4, "crop_size": 32, "device": "cpu", "precision": "fp32", **changes}


# --- spec parsing ---

@pytest.mark.parametrize("text, expected", [
    ("ViT-B-32-quickgelu/openai", BackboneSpec("ViT-B-32-quickgelu", "openai")),
    ("ViT-B-16-SigLIP/webli:0.5", BackboneSpec("ViT-B-16-SigLIP", "webli", weight=0.5)),
    ("ViT-B-16-SigLIP:file=w.safetensors", BackboneSpec("ViT-B-16-SigLIP", file=Path("w.safetensors"))),
    ("ViT-L-14/openai:weight=2:tau=0.8:templates=simple",
     BackboneSpec("ViT-L-14", "openai", weight=2.0, tau=0.8, templates="simple")),
    ("hf-hub:timm/ViT-B-16-SigLIP", BackboneSpec("hf-hub:timm/ViT-B-16-SigLIP")),
    ("local-dir:/models/my:clip:0.3", BackboneSpec("local-dir:/models/my:clip", weight=0.3)),
    ("ViT-B-16/openai:file=C:/w.pt", BackboneSpec("ViT-B-16", "openai", file=Path("C:/w.pt"))),
])
def test_good_specs_parse(text: str, expected: BackboneSpec) -> None:
    spec = BackboneSpec.parse(text)
    assert spec == expected
    assert BackboneSpec.parse(str(spec)) == spec  # the canonical form round-trips


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("ViT-B-32/openai:abc", "neither a weight"), ("ViT-B-32/openai:0", "non-zero"),
    ("ViT-B-32/openai:tau=x", "not a number"), ("ViT-B-32/openai:templates=fancy", "templates"),
    ("ViT-B-32/openai:0.5:weight=2", "given twice"), ("hf-hub:nothing", "ORG/NAME"),
    ("hf-hub:timm/x/openai", "ORG/NAME"), ("ViT B 32", "not a model name"), ("ViT-B-32/openai:colour=red", "unknown"),
    ("ViT-B-32/openai:nan", "finite"), ("ViT-B-32/openai:tau=9", "tau"),
])
def test_bad_specs_fail_with_a_pointer(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BackboneSpec.parse(text)


def test_a_bad_spec_exits_2_fast_before_any_weights(tmp_path: Path, photo: Path) -> None:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "clipstyler_opt", "run", str(photo), "x", "--backbone",
                           "ViT-B-32/openai:oops", "-o", str(tmp_path / "o.png")],
                          env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "oops" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3  # click's usage line, then our one line
    assert time.monotonic() - start < 30  # interpreter and torch start-up included; no weights touched


def test_backbone_and_legacy_clip_options_cannot_both_name_a_backbone(tiny_config: StyleConfig) -> None:
    with pytest.raises(ConfigError, match="both name a backbone"):
        tiny_config.replace(backbone="ViT-B-16/openai").backbone_specs()


def test_legacy_options_still_name_the_backbone(tiny_config: StyleConfig, tiny_paths: dict[str, Path]) -> None:
    (spec,) = tiny_config.backbone_specs()
    assert (spec.source, spec.file) == (tiny.TINY_CLIP_NAME, tiny_paths["clip_checkpoint"])


# --- SigLIP: timm image tower + Hugging Face tokenizer, offline ---

def test_siglip_run_records_backbone_preprocessing_and_weights(siglip_paths: dict[str, Path],
                                                                tiny_paths: dict[str, Path], photo: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "siglip.png"
    result = CliRunner().invoke(cli, ["run", str(photo), "starry night", "-o", str(out), "-q",
                                      "--backbone", siglip_spec(siglip_paths),
                                      "--clip-model-config", str(siglip_paths["config"]),
                                      "--vgg-checkpoint", str(tiny_paths["vgg_checkpoint"]),
                                      *(arg for k, v in small().items()
                                        for arg in ("--" + k.replace("_", "-"), str(v)))])
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    (member,) = meta["backbones"]
    assert member["model"] == tiny.TINY_SIGLIP_NAME
    assert member["preprocess"]["mean"] == [0.5, 0.5, 0.5] and member["preprocess"]["resize_mode"] == "squash"
    assert member["preprocess"]["size"] == [32, 32]
    import hashlib

    assert member["weights_sha256"] == hashlib.sha256(siglip_paths["checkpoint"].read_bytes()).hexdigest()
    assert member["fast_vit"].startswith("skipped")  # a timm tower: the ViT rewrite does not apply
    assert member["threshold_calibrated"] is False


def test_siglip_normalises_with_its_own_mean_and_std(siglip_paths: dict[str, Path],
                                                     tiny_paths: dict[str, Path]) -> None:
    config = StyleConfig(backbone=siglip_spec(siglip_paths), clip_model_config=siglip_paths["config"],
                         vgg_checkpoint=tiny_paths["vgg_checkpoint"], **small())  # type: ignore[arg-type]
    backbone = Stylizer(config).members[0].backbone
    pixels = torch.rand(2, 3, 32, 32)
    by_hand = backbone.model.encode_image((pixels - 0.5) / 0.5)  # SigLIP: mean = std = 0.5
    assert torch.allclose(backbone.encode_image(pixels), by_hand, atol=1e-6)


def test_tokenizer_is_found_in_the_hub_cache_offline(siglip_paths: dict[str, Path], tiny_paths: dict[str, Path],
                                                     isolated_caches: Path) -> None:
    repo = isolated_caches / "hf" / "hub" / f"models--{tiny.TINY_SIGLIP_TOKENIZER_REPO.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for item in siglip_paths["tokenizer"].iterdir():
        (snapshot / item.name).write_bytes(item.read_bytes())
    config = StyleConfig(backbone=f"{tiny.TINY_SIGLIP_NAME}:file={siglip_paths['checkpoint']}",
                         clip_model_config=siglip_paths["config"], vgg_checkpoint=tiny_paths["vgg_checkpoint"],
                         offline=True, **small())  # type: ignore[arg-type]
    (member,) = Stylizer(config).members
    assert Path(member.backbone.provenance["tokenizer"]).resolve() == snapshot.resolve()


def test_missing_tokenizer_offline_is_a_one_line_weights_error(siglip_paths: dict[str, Path],
                                                               tiny_paths: dict[str, Path]) -> None:
    config = StyleConfig(backbone=f"{tiny.TINY_SIGLIP_NAME}:file={siglip_paths['checkpoint']}",
                         clip_model_config=siglip_paths["config"], vgg_checkpoint=tiny_paths["vgg_checkpoint"],
                         offline=True, **small())  # type: ignore[arg-type]
    with pytest.raises(WeightsError, match="tokenizer clipopt-test/tiny-siglip-tokenizer not found offline") as error:
        Stylizer(config)
    assert "\n" not in str(error.value) and "tokenizer=FOLDER" in str(error.value)


def test_siglip_without_the_extra_names_the_extra_before_any_download(
        siglip_paths: dict[str, Path], tiny_paths: dict[str, Path], photo: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # Python's way of making an import fail
    result = CliRunner().invoke(cli, ["run", str(photo), "x", "-o", str(tmp_path / "o.png"),
                                      "--backbone", "ViT-B-16-SigLIP/webli"])
    assert result.exit_code == 2, result.output
    assert "clipstyler_opt[siglip]" in result.output and "transformers" in result.output
    assert len(result.output.strip().splitlines()) == 1


# --- ensembles ---

def test_two_member_ensemble_is_the_weighted_sum_of_single_members(
        siglip_paths: dict[str, Path], tiny_paths: dict[str, Path], photo: Path) -> None:
    from PIL import Image

    from clipstyler_opt.method.objective import build_objective
    from clipstyler_opt.method.pixels import pil_to_tensor
    from clipstyler_opt.method.targets import StyleTarget
    from clipstyler_opt.run.engine import working_size

    configs = (tiny_paths["clip_model_config"], siglip_paths["config"])
    base = StyleConfig(clip_model_config=configs, vgg_checkpoint=tiny_paths["vgg_checkpoint"],
                       **small(crops=3))  # type: ignore[arg-type]
    ensemble = Stylizer(base.replace(backbone=(clip_spec(tiny_paths, ":0.3"),
                                               siglip_spec(siglip_paths, ":0.7:tau=0.5"))))
    rgb = Image.open(photo).convert("RGB")
    content = pil_to_tensor(rgb.resize(working_size(*rgb.size, 64)))
    target = StyleTarget.from_prompt("starry night", "a Photo")
    both = build_objective(ensemble.config, ensemble.members, ensemble.vgg, content, target)
    from clipstyler_opt.method.ensemble import Member

    unweighted = [Member(m.spec.with_defaults(weight=1.0), m.backbone) for m in ensemble.members]
    singles = [build_objective(ensemble.config, [m], ensemble.vgg, content, target) for m in unweighted]
    # The members' own thresholds: CLIP's table value, SigLIP's tau= option.
    assert [m.threshold for m in both.clip.members] == [0.7, 0.5]
    assert [m.member.spec.weight for m in both.clip.members] == [0.3, 0.7]
    assert both.clip.members[0].crops.out_size == (32, 32) and both.clip.members[1].crops.out_size == (32, 32)
    output = torch.rand_like(content)
    torch.manual_seed(11)
    joint = both(output)
    torch.manual_seed(11)
    first = singles[0](output)
    torch.manual_seed(11)
    both.clip.members[0].crops(output)  # member 1 draws its crops first: advance the RNG the same way
    second = singles[1](output)
    for name in ("patch", "dir"):
        expected = 0.3 * first[name] + 0.7 * second[name]
        assert joint[name].item() == pytest.approx(expected.item(), rel=1e-6), name
    assert torch.equal(joint["content"], first["content"]) and torch.equal(joint["tv"], first["tv"])


def test_clip_plus_siglip_ensemble_runs_and_records_both(siglip_paths: dict[str, Path],
                                                         tiny_paths: dict[str, Path], photo: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "ensemble.png"
    result = CliRunner().invoke(cli, [
        "run", str(photo), "starry night", "-o", str(out), "-q",
        "--backbone", clip_spec(tiny_paths, ":0.5"), "--backbone", siglip_spec(siglip_paths, ":0.5"),
        "--clip-model-config", str(tiny_paths["clip_model_config"]),
        "--clip-model-config", str(siglip_paths["config"]),
        "--vgg-checkpoint", str(tiny_paths["vgg_checkpoint"]),
        *(arg for k, v in small().items() for arg in ("--" + k.replace("_", "-"), str(v)))])
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert [m["model"] for m in meta["backbones"]] == [tiny.TINY_CLIP_NAME, tiny.TINY_SIGLIP_NAME]
    assert [m["weight"] for m in meta["backbones"]] == [0.5, 0.5]
    assert [m["preprocess"]["mean"][0] for m in meta["backbones"]] == pytest.approx([0.48145466, 0.5])
    assert len(meta["settings"]["backbone"]) == 2 and meta["settings"]["backbone"][1]["weight"] == 0.5
