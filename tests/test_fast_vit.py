"""The image-tower rewrites reproduce open_clip's ViT exactly (to rounding)."""

from __future__ import annotations

import copy
import math

import open_clip
import pytest
import tiny
import torch

from clipstyler_opt.models.fast_vit import (
    ClassTokenBlock,
    PackedSelfAttention,
    PatchEmbedding,
    fold_quick_gelu,
    speed_up_vision_tower,
)

LAYERS = tiny.TINY_CLIP_CONFIG["vision_cfg"]["layers"]


@pytest.fixture(scope="module")
def models(tiny_paths: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    reference = open_clip.create_model(tiny.TINY_CLIP_NAME).eval()
    fast = copy.deepcopy(reference)
    # attention and QuickGELU in every block, the patch embedding, the last block for the class token
    assert speed_up_vision_tower(fast.visual) == 2 * LAYERS + 2
    return reference, fast


def _features_and_input_gradients(model: torch.nn.Module, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = image.clone().requires_grad_(True)
    out = model.encode_image(x)
    (out * torch.arange(out.shape[1])).sum().backward()
    assert x.grad is not None
    return out.detach(), x.grad


def test_image_features_and_input_gradients_match_open_clip(models: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    image = torch.rand(5, 3, 32, 32)
    (out_ref, grad_ref), (out_fast, grad_fast) = (_features_and_input_gradients(m, image) for m in models)
    assert torch.allclose(out_ref, out_fast, atol=1e-5)
    assert torch.allclose(grad_ref, grad_fast, atol=1e-5)
    assert not torch.equal(out_ref[0], out_ref[1])  # the test images differ, so does the check


def test_full_size_vit_b_32_matches_to_float_rounding() -> None:
    """The real architecture, 12 blocks of width 768, random weights: fp32 features and input
    gradients agree with open_clip's to well under the 1e-5 the losses are held to."""
    torch.manual_seed(1)
    reference = open_clip.create_model("ViT-B-32-quickgelu").visual.eval()
    fast = copy.deepcopy(reference)
    assert speed_up_vision_tower(fast) == 2 * 12 + 2
    image = torch.rand(2, 3, 224, 224)
    (out_ref, grad_ref), (out_fast, grad_fast) = (_features_and_input_gradients(m, image)
                                                  for m in (_Encoder(reference), _Encoder(fast)))
    assert (out_ref - out_fast).abs().max() <= 1e-5 * out_ref.abs().max()
    assert (grad_ref - grad_fast).abs().max() <= 1e-5 * grad_ref.abs().max()


class _Encoder(torch.nn.Module):
    def __init__(self, visual: torch.nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image)


def test_rewrites_are_in_place_and_text_tower_untouched(models: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    _, fast = models
    blocks = fast.visual.transformer.resblocks
    assert isinstance(blocks[-1], ClassTokenBlock)
    inner = [*blocks[:-1], blocks[-1].block]
    assert all(isinstance(b.attn, PackedSelfAttention) for b in inner)
    assert all(isinstance(b.mlp.gelu, torch.nn.SiLU) for b in inner)
    assert isinstance(fast.visual.conv1, PatchEmbedding)
    assert all(isinstance(b.attn, torch.nn.MultiheadAttention) for b in fast.transformer.resblocks)
    assert all(type(b.mlp.gelu).__name__ == "QuickGELU" for b in fast.transformer.resblocks)


def test_applying_the_rewrites_again_changes_nothing(models: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    _, fast = models
    image = torch.rand(2, 3, 32, 32)
    before = fast.encode_image(image)
    assert speed_up_vision_tower(fast.visual) == 0  # QuickGELU's scale is folded in once only
    assert torch.equal(before, fast.encode_image(image))


def test_quick_gelu_fold_is_the_same_function() -> None:
    torch.manual_seed(0)
    mlp = copy.deepcopy(open_clip.create_model(tiny.TINY_CLIP_NAME).visual.transformer.resblocks[0].mlp)
    folded = copy.deepcopy(mlp)
    assert fold_quick_gelu(folded)
    x = torch.randn(3, 7, mlp.c_fc.in_features) * 3
    assert torch.allclose(mlp(x), folded(x), atol=1e-5)
    assert not fold_quick_gelu(torch.nn.Sequential(torch.nn.Linear(2, 2)))  # another layout: untouched


def test_a_tower_that_returns_its_tokens_keeps_every_token_in_the_last_block() -> None:
    torch.manual_seed(0)
    visual = open_clip.create_model(tiny.TINY_CLIP_NAME).visual
    visual.output_tokens = True
    speed_up_vision_tower(visual)
    assert not isinstance(visual.transformer.resblocks[-1], ClassTokenBlock)
    _pooled, tokens = visual(torch.rand(2, 3, 32, 32))
    assert tokens.shape[1] == 16


def test_queries_from_a_subset_of_the_keys_match_multihead_attention() -> None:
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    packed = PackedSelfAttention(mha)
    kv = torch.rand(2, 4, 8)
    assert torch.allclose(packed(kv[:, :1], kv, kv)[0], mha(kv[:, :1], kv, kv, need_weights=False)[0], atol=1e-6)


def test_cross_attention_falls_back_to_the_original_module() -> None:
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    packed = PackedSelfAttention(mha)
    q, k, v = torch.rand(2, 3, 8), torch.rand(2, 4, 8), torch.rand(2, 4, 8)
    assert torch.equal(packed(q, k, v)[0], mha(q, k, v, need_weights=False)[0])


def test_default_losses_and_gradients_equal_those_of_the_unmodified_networks(
        tiny_config, photo) -> None:  # type: ignore[no-untyped-def]
    """The whole fp32 objective, with the rewritten image tower and channels-last VGG, against
    open_clip's own tower and a plain-layout VGG: the same values to 1e-5, on the same crops."""
    from PIL import Image

    from clipstyler_opt import Stylizer
    from clipstyler_opt.method.ensemble import Member
    from clipstyler_opt.method.objective import build_objective
    from clipstyler_opt.method.pixels import pil_to_tensor
    from clipstyler_opt.method.targets import StyleTarget
    from clipstyler_opt.models.clip import create_open_clip
    from clipstyler_opt.models.vgg import plain_layout_copy
    from clipstyler_opt.run.engine import working_size

    config = tiny_config.replace(threshold=0.0)  # every crop counts, so every crop is compared
    stylizer = Stylizer(config)
    spec = config.backbone_specs()[0]
    plain_member = Member(spec, create_open_clip(spec, config.load_context(), torch.device("cpu"),
                                                 fast_vit=False))
    plain_vgg = plain_layout_copy(stylizer.vgg)
    rgb = Image.open(photo).convert("RGB")
    content = pil_to_tensor(rgb.resize(working_size(*rgb.size, config.size)))
    target = StyleTarget.from_prompt("starry night", config.source_text)
    torch.manual_seed(0)
    output = torch.rand_like(content, requires_grad=True)

    def losses_and_gradient(members: list, vgg: torch.nn.Module) -> tuple[dict, torch.Tensor]:
        objective = build_objective(config, members, vgg, content, target)
        torch.manual_seed(5)  # the same crops for both
        values = objective(output)
        (gradient,) = torch.autograd.grad(values["total"], output)
        return {name: float(value.detach()) for name, value in values.items()}, gradient

    fast, fast_gradient = losses_and_gradient(stylizer.members, stylizer.vgg)
    plain, plain_gradient = losses_and_gradient([plain_member], plain_vgg)
    assert isinstance(stylizer.members[0].backbone.model.visual.transformer.resblocks[-1], ClassTokenBlock)
    assert stylizer.vgg.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert plain_vgg.features[0].weight.is_contiguous() and plain_vgg.channels_last_on == ()
    for name, value in plain.items():
        assert math.isclose(fast[name], value, rel_tol=1e-5, abs_tol=1e-9), name
    assert (fast_gradient - plain_gradient).abs().max() <= 1e-5 * plain_gradient.abs().max()
    assert plain["content"] > 0 and plain["patch"] > 0


def test_the_class_token_block_runs_under_open_clips_gradient_checkpointing(
        models: tuple[torch.nn.Module, torch.nn.Module]) -> None:
    _, fast = models
    image = torch.rand(2, 3, 32, 32)
    expected = fast.encode_image(image)
    fast.visual.transformer.grad_checkpointing = True  # open_clip then calls block(x, None, None, mask)
    try:
        assert torch.allclose(fast.encode_image(image), expected, atol=1e-6)
    finally:
        fast.visual.transformer.grad_checkpointing = False
