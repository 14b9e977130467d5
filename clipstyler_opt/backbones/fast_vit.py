"""Same weights, same maths, less overhead for open_clip's ViT image towers.

`nn.MultiheadAttention(batch_first=True)` transposes its input and projects it with a
broadcast batched matmul plus copies; the patch embedding is a convolution whose stride equals
its kernel, whose backward pass is slow on CPUs. Both are rewritten below as plain matrix
products. Outputs agree with open_clip's to float rounding (see tests/test_fast_vit.py); on a
2-core CPU the image tower's forward+backward over 65 views is ~1.3x faster.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PackedSelfAttention", "PatchEmbedding", "speed_up_vision_tower"]


class PackedSelfAttention(nn.Module):
    """Drop-in for a batch-first `nn.MultiheadAttention` used as self-attention."""

    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        self.attention = attention
        self.heads = attention.num_heads

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, need_weights: bool = False,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        if need_weights or not (query is key and key is value):
            return self.attention(query, key, value, need_weights=need_weights, attn_mask=attn_mask)
        batch, length, width = query.shape
        a = self.attention
        qkv = F.linear(query, a.in_proj_weight, a.in_proj_bias)
        q, k, v = qkv.view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(batch, length, width)
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


def _is_plain_self_attention(module: nn.Module) -> bool:
    return (isinstance(module, nn.MultiheadAttention) and module.batch_first and module._qkv_same_embed_dim
            and module.in_proj_weight is not None and module.bias_k is None and not module.add_zero_attn
            and module.dropout == 0.0)


def _is_patch_conv(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and module.bias is None and module.groups == 1
            and module.kernel_size == module.stride and module.kernel_size[0] == module.kernel_size[1]
            and module.padding in (0, (0, 0)) and module.dilation == (1, 1))


def speed_up_vision_tower(visual: nn.Module) -> int:
    """Swap in the rewrites where the module layout is exactly the one they reproduce.
    Returns how many modules were replaced (0 for towers of another design, e.g. timm's)."""
    replaced = 0
    for block in getattr(getattr(visual, "transformer", None), "resblocks", []):
        if _is_plain_self_attention(getattr(block, "attn", None)):  # type: ignore[arg-type]
            block.attn = PackedSelfAttention(block.attn)
            replaced += 1
    if _is_patch_conv(getattr(visual, "conv1", None)):  # type: ignore[arg-type]
        visual.conv1 = PatchEmbedding(visual.conv1)
        replaced += 1
    return replaced
