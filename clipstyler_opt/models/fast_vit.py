"""Same weights, same maths, less work for open_clip's ViT image towers.

Each rewrite computes what the module it replaces computes, up to float rounding (see
tests/test_fast_vit.py), and is applied only where the module layout is exactly the one it
reproduces:
- self-attention as plain matrix products: `nn.MultiheadAttention(batch_first=True)` transposes
  and copies, and in bf16 on CPUs the fused attention kernel's backward pass is slow;
- the patch embedding (a convolution whose stride equals its kernel) as one matrix product;
- QuickGELU, x·σ(1.702x), as SiLU with the 1.702 folded into the neighbouring linear layers
  (one fused kernel each way instead of five elementwise passes);
- the last block for the class token only: the tower's output is the class token, so the last
  block needs keys and values of every token but queries, projections and MLP for one.
"""

from __future__ import annotations

from typing import Any, TypeGuard

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ClassTokenBlock", "PackedSelfAttention", "PatchEmbedding", "fold_quick_gelu", "speed_up_vision_tower"]

QUICK_GELU_SCALE = 1.702  # QuickGELU(x) = x·σ(1.702x) = SiLU(1.702x) / 1.702


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ/√d)·v over (batch, heads, tokens, head width)."""
    if q.device.type != "cpu" or q.dtype == torch.float32:
        return F.scaled_dot_product_attention(q, k, v)
    # In bf16 on CPUs the fused kernel's backward pass costs 1.6x (196 tokens) to 4x (50 tokens)
    # the three products below; in fp32 the two tie up to ~100 tokens and the fused one wins beyond.
    weights = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), dim=-1)
    return weights.to(v.dtype) @ v


class PackedSelfAttention(nn.Module):
    """Drop-in for a batch-first `nn.MultiheadAttention` whose keys and values are one tensor."""

    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        self.attention = attention
        self.heads = attention.num_heads

    def _split_heads(self, x: torch.Tensor, parts: int) -> tuple[torch.Tensor, ...]:
        batch, length, width = x.shape
        head_width = width // parts // self.heads
        return x.view(batch, length, parts, self.heads, head_width).permute(2, 0, 3, 1, 4).unbind(0)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, need_weights: bool = False,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        if need_weights or attn_mask is not None or key is not value:
            return self.attention(query, key, value, need_weights=need_weights, attn_mask=attn_mask)
        a, width = self.attention, query.shape[-1]
        if query is key:
            q, k, v = self._split_heads(F.linear(query, a.in_proj_weight, a.in_proj_bias), 3)
        else:  # fewer queries than keys (ClassTokenBlock)
            (q,) = self._split_heads(F.linear(query, a.in_proj_weight[:width], a.in_proj_bias[:width]), 1)
            k, v = self._split_heads(F.linear(key, a.in_proj_weight[width:], a.in_proj_bias[width:]), 2)
        out = attend(q, k, v).transpose(1, 2).reshape(query.shape)
        return F.linear(out, a.out_proj.weight, a.out_proj.bias), None


class PatchEmbedding(nn.Module):
    """A stride == kernel, unpadded, bias-free convolution computed as one matrix product."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self.patch = conv.kernel_size[0]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = image.shape
        p, rows, cols = self.patch, height // self.patch, width // self.patch
        patches = image[..., : rows * p, : cols * p].reshape(batch, channels, rows, p, cols, p)
        patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(batch, rows * cols, channels * p * p)
        weight = self.conv.weight.reshape(self.conv.out_channels, -1)
        return (patches @ weight.t().to(patches.dtype)).reshape(batch, rows, cols, -1).permute(0, 3, 1, 2)


class ClassTokenBlock(nn.Module):
    """An open_clip residual block whose output is read only at the class token (position 0):
    returns that token alone, shape (batch, 1, width)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor, k_x: torch.Tensor | None = None, v_x: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attn_mask is not None or k_x is not None or v_x is not None:
            return self.block(x, k_x, v_x, attn_mask=attn_mask)[:, :1]
        b: Any = self.block  # an open_clip block: its parts are untyped
        normed = b.ln_1(x)
        x = x[:, :1] + b.ls_1(b.attn(normed[:, :1], normed, normed, need_weights=False)[0])
        return x + b.ls_2(b.mlp(b.ln_2(x)))


def fold_quick_gelu(mlp: nn.Module) -> bool:
    """c_proj(QuickGELU(c_fc(x))) → c_proj'(SiLU(c_fc'(x))) with c_fc' = 1.702·c_fc and
    c_proj'.weight = c_proj.weight / 1.702, in place. False (nothing changed) for other layouts."""
    c_fc, gelu, c_proj = (getattr(mlp, name, None) for name in ("c_fc", "gelu", "c_proj"))
    if not (isinstance(mlp, nn.Sequential) and type(gelu).__name__ == "QuickGELU"
            and isinstance(c_fc, nn.Linear) and isinstance(c_proj, nn.Linear)):
        return False
    with torch.no_grad():
        c_fc.weight.mul_(QUICK_GELU_SCALE)
        if c_fc.bias is not None:
            c_fc.bias.mul_(QUICK_GELU_SCALE)
        c_proj.weight.div_(QUICK_GELU_SCALE)
    mlp.gelu = nn.SiLU()
    return True


def _is_plain_self_attention(module: nn.Module) -> bool:
    return (isinstance(module, nn.MultiheadAttention) and module.batch_first and module._qkv_same_embed_dim
            and module.in_proj_weight is not None and module.in_proj_bias is not None and module.bias_k is None
            and not module.add_zero_attn and module.dropout == 0.0)


def _is_patch_conv(module: object) -> TypeGuard[nn.Conv2d]:
    return (isinstance(module, nn.Conv2d) and module.bias is None and module.groups == 1
            and module.kernel_size == module.stride and module.kernel_size[0] == module.kernel_size[1]
            and module.padding in (0, (0, 0)) and module.dilation == (1, 1))


def _reads_only_the_class_token(visual: nn.Module) -> bool:
    """True where the tower's pooled output depends on the last block's class token alone."""
    transformer = getattr(visual, "transformer", None)
    blocks: Any = getattr(transformer, "resblocks", None)
    return (bool(blocks) and getattr(visual, "pool_type", None) == "tok" and getattr(visual, "attn_pool", 1) is None
            and not getattr(visual, "output_tokens", True) and getattr(transformer, "batch_first", False)
            and type(blocks[-1]).__name__ == "ResidualAttentionBlock" and not hasattr(blocks[-1], "ln_1_kv")
            and isinstance(getattr(blocks[-1], "attn", None), PackedSelfAttention))


def speed_up_vision_tower(visual: nn.Module) -> int:
    """Swap in the rewrites where the module layout is exactly the one they reproduce.
    Returns how many modules were replaced (0 for towers of another design, e.g. timm's).
    Applying it again changes nothing."""
    replaced = 0
    for block in getattr(getattr(visual, "transformer", None), "resblocks", []):
        if _is_plain_self_attention(getattr(block, "attn", None)):  # type: ignore[arg-type]
            block.attn = PackedSelfAttention(block.attn)
            replaced += 1
        replaced += fold_quick_gelu(getattr(block, "mlp", None))  # type: ignore[arg-type]
    conv1 = getattr(visual, "conv1", None)
    if _is_patch_conv(conv1):
        visual.conv1 = PatchEmbedding(conv1)
        replaced += 1
    if _reads_only_the_class_token(visual):
        transformer: Any = visual.transformer  # open_clip's: untyped
        blocks = transformer.resblocks
        blocks[-1] = ClassTokenBlock(blocks[-1])
        replaced += 1
    return replaced
