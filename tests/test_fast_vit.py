"""The attention and patch-embedding rewrites reproduce open_clip's ViT exactly (to rounding)."""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch

import tiny
from clipstyler_opt.backbones.fast_vit import PackedSelfAttention, PatchEmbedding, speed_up_vision_tower


@pytest.fixture(scope="module")
def models(tiny_paths: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    reference = open_clip.create_model(tiny.TINY_CLIP_NAME).eval()
    fast = copy.deepcopy(reference)
    assert speed_up_vision_tower(fast.visual) == tiny.TINY_CLIP_CONFIG["vision_cfg"]["layers"] + 1
    return reference, fast


def test_image_features_and_input_gradients_match_open_clip(models: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    reference, fast = models
    image = torch.rand(5, 3, 32, 32)
    outputs, grads = [], []
    for model in (reference, fast):
        x = image.clone().requires_grad_(True)
        out = model.encode_image(x)
        (out * torch.arange(out.shape[1])).sum().backward()
        outputs.append(out.detach())
        grads.append(x.grad)
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
    assert not torch.equal(outputs[0][0], outputs[0][1])  # the test images differ, so does the check


def test_rewrites_are_in_place_and_text_tower_untouched(models: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    _, fast = models
    assert all(isinstance(b.attn, PackedSelfAttention) for b in fast.visual.transformer.resblocks)
    assert isinstance(fast.visual.conv1, PatchEmbedding)
    assert all(isinstance(b.attn, torch.nn.MultiheadAttention) for b in fast.transformer.resblocks)


def test_cross_attention_falls_back_to_the_original_module() -> None:
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    packed = PackedSelfAttention(mha)
    q, kv = torch.rand(2, 3, 8), torch.rand(2, 4, 8)
    assert torch.allclose(packed(q, kv, kv)[0], mha(q, kv, kv, need_weights=False)[0])
