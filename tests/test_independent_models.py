"""Backbones checked against computations written here: the bf16 image tower against open_clip's
own under the same autocast, the CLIP normalisation by its published constants, and an ensemble
whose members see the image at their own input sizes."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import tiny
import torch
import torch.nn.functional as F
import toy

from clipstyler_opt import StyleConfig, Stylizer
from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.method.precision import cpu_has_native_bf16, store_weights_as

# OpenAI CLIP's published preprocessing (the CLIP repository's Normalize), in R, G, B order.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _by_channel(values: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(values).view(1, 3, 1, 1)


# --- 1. the bf16 image tower ---

def _features_and_input_gradient(encode: object, pixels: torch.Tensor, bf16: bool) -> tuple[torch.Tensor, ...]:
    x = pixels.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        features = encode(x).float()  # type: ignore[operator]
    (features * torch.linspace(-1, 1, features.shape[1])).sum().backward()
    assert x.grad is not None
    return features.detach(), x.grad


def _relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.float() - reference).norm() / reference.norm())


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16: the package runs fp32 here")
@pytest.mark.parametrize("bf16_weights", [False, True], ids=["fp32-weights", "bf16-weights"])
def test_bf16_image_tower_is_as_close_to_fp32_as_open_clips_own_bf16(tiny_config: StyleConfig,
                                                                    tiny_paths: dict[str, Path],
                                                                    bf16_weights: bool) -> None:
    """The package's image tower (rewritten ViT, its own normalisation) under bf16 autocast, against
    open_clip's unmodified tower loaded from the same file and normalised by hand. open_clip's
    own bf16-vs-fp32 error, measured here, sets the tolerance."""
    backbone = Stylizer(tiny_config.replace(precision="bf16")).members[0].backbone
    if bf16_weights:
        assert store_weights_as([backbone.model.visual], torch.bfloat16) > 0
    reference = open_clip.create_model(tiny.TINY_CLIP_NAME, pretrained=str(tiny_paths["clip_checkpoint"]))
    reference = reference.eval().requires_grad_(False)
    assert isinstance(reference.visual.transformer.resblocks[-1].attn, torch.nn.MultiheadAttention)

    def reference_encode(pixels: torch.Tensor) -> torch.Tensor:
        return reference.encode_image((pixels - _by_channel(OPENAI_MEAN)) / _by_channel(OPENAI_STD))

    torch.manual_seed(3)
    pixels = torch.rand(8, 3, 32, 32)
    exact = _features_and_input_gradient(reference_encode, pixels, bf16=False)
    theirs = _features_and_input_gradient(reference_encode, pixels, bf16=True)
    ours = _features_and_input_gradient(backbone.encode_image, pixels, bf16=True)
    for what, ref, their, our in zip(("features", "input gradients"), exact, theirs, ours, strict=True):
        their_error, our_error = _relative_error(their, ref), _relative_error(our, ref)
        assert their_error > 1e-4, f"{what}: open_clip's bf16 run should differ from fp32 ({their_error})"
        assert our_error <= 1.5 * their_error + 1e-4, f"{what}: {our_error:.4g} vs open_clip's {their_error:.4g}"


# --- 2. the normalisation ---

def _recorded_model_input(backbone: torch.nn.Module, pixels: torch.Tensor, monkeypatch: pytest.MonkeyPatch
                          ) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    monkeypatch.setattr(backbone.model, "encode_image", lambda x: seen.append(x.detach().clone()) or x.mean((2, 3)))
    backbone.encode_image(pixels)
    (recorded,) = seen
    return recorded


def _distinct_channels() -> torch.Tensor:
    """Every channel differs from every other, so a mean or std in the wrong order shows."""
    torch.manual_seed(0)
    return torch.rand(2, 3, 32, 32) * torch.tensor([0.2, 0.6, 1.0]).view(1, 3, 1, 1)


def test_clip_normalises_with_openais_mean_and_std_in_rgb_order(tiny_config: StyleConfig,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    backbone = Stylizer(tiny_config).members[0].backbone
    pixels = _distinct_channels()
    expected = torch.empty_like(pixels)
    for channel in range(3):  # (x − mean_c) / std_c, one channel at a time
        expected[:, channel] = (pixels[:, channel] - OPENAI_MEAN[channel]) / OPENAI_STD[channel]
    assert torch.allclose(_recorded_model_input(backbone, pixels, monkeypatch), expected, atol=1e-6)


def test_siglip_normalises_with_half_and_half(tiny_paths: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    paths = tiny.write_tiny_siglip(tmp_path / "siglip")
    config = StyleConfig(backbone=f"{tiny.TINY_SIGLIP_NAME}:file={paths['checkpoint']}:tokenizer={paths['tokenizer']}",
                         clip_model_config=paths["config"], vgg_checkpoint=tiny_paths["vgg_checkpoint"], size=64,
                         steps=1, crops=2, crop_size=32, device="cpu", precision="fp32")
    backbone = Stylizer(config).members[0].backbone
    pixels = _distinct_channels()
    assert torch.allclose(_recorded_model_input(backbone, pixels, monkeypatch), pixels * 2 - 1, atol=1e-6)


@pytest.mark.parametrize("model, tag, mean, std", [
    ("ViT-B-32", "openai", OPENAI_MEAN, OPENAI_STD),
    ("ViT-B-16", "openai", OPENAI_MEAN, OPENAI_STD),
    ("ViT-B-16-SigLIP", "webli", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
])
def test_a_pretrained_tag_brings_its_published_mean_and_std(model: str, tag: str, mean: tuple[float, ...],
                                                            std: tuple[float, ...]) -> None:
    """A weights file loaded under a tag gets that tag's preprocessing (open_clip applies it only
    when it downloads by tag itself)."""
    from clipstyler_opt.models.clip import _tag_settings

    settings, source = _tag_settings(model, tag)
    assert tuple(settings["mean"]) == pytest.approx(mean, abs=1e-8)
    assert tuple(settings["std"]) == pytest.approx(std, abs=1e-8)
    assert source == f"pretrained tag {tag}"


# --- 3. an ensemble whose members have different input sizes ---

class _RecordingToy(toy.ToyColourBackbone):
    """The toy colour embedding at a chosen input size, recording every batch it is given."""

    def __init__(self, input_size: tuple[int, int], interpolation: str) -> None:
        super().__init__()
        self.input_size = input_size
        self.interpolation = interpolation
        self.seen: list[torch.Tensor] = []

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        self.seen.append(pixels.detach().clone())
        return super().encode_image(pixels)


def _directional(features: torch.Tensor, content_embedding: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    image_direction = F.normalize(F.normalize(features, dim=-1) - content_embedding, dim=-1)
    return 1 - image_direction @ direction


def test_ensemble_members_see_the_image_at_their_own_input_sizes(tiny_config: StyleConfig) -> None:
    from clipstyler_opt.method.ensemble import Member
    from clipstyler_opt.method.objective import build_objective
    from clipstyler_opt.method.targets import StyleTarget

    sizes, modes, weights = ((16, 16), (24, 20)), ("bilinear", "bicubic"), (0.25, 0.75)
    backbones = [_RecordingToy(size, mode) for size, mode in zip(sizes, modes, strict=True)]
    members = [Member(BackboneSpec("toy-colour", weight=w), b) for w, b in zip(weights, backbones, strict=True)]
    config = toy.toy_config(tiny_config, crops=3, crop_size=24, threshold=0.0)
    torch.manual_seed(0)
    content = torch.rand(1, 3, 40, 48)
    output = torch.rand(1, 3, 40, 48)
    objective = build_objective(config, members, torch.nn.Identity(), content, StyleTarget.from_prompt("red", "blue"))
    for backbone in backbones:
        backbone.seen.clear()
    losses = objective(output)
    expected_dir = torch.zeros(())
    for backbone, size, mode, weight in zip(backbones, sizes, modes, weights, strict=True):
        (batch,) = backbone.seen  # the whole image and the crops in one call
        assert batch.shape == (1 + 3, 3, *size)
        whole = F.interpolate(output, size=size, mode=mode, align_corners=False)
        assert torch.allclose(batch[:1], whole, atol=1e-6)
        content_embedding = F.normalize(F.interpolate(content, size=size, mode=mode, align_corners=False)
                                        .mean((2, 3)), dim=-1)[0]
        direction = F.normalize(torch.tensor([1.0, 0.0, 0.0]) - torch.tensor([0.0, 0.0, 1.0]), dim=0)
        expected_dir = expected_dir + weight * _directional(whole.mean((2, 3)), content_embedding, direction)[0]
    assert losses["dir"].item() == pytest.approx(expected_dir.item(), rel=1e-5)
