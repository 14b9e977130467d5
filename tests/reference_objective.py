"""The objective as it was before loss terms became named modules, kept verbatim as a reference:
the named-term objective must reproduce it exactly (same values, same gradients) with one member."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clipstyler_opt.method.losses import (
    content_loss,
    directional_loss,
    resize_for_backbone,
    thresholded_mean,
    total_variation,
)


class PreviousObjective(nn.Module):
    def __init__(self, backbone, vgg, content, direction, crops, weights, threshold) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.backbone, self.vgg, self.crops, self.weights, self.threshold = backbone, vgg, crops, weights, threshold
        self.direction = direction.float()
        with torch.no_grad():
            self.content_embedding = F.normalize(
                backbone.encode_image(resize_for_backbone(content, backbone)).float(), dim=-1)
            self.content_features = [f.detach() for f in vgg(content)]

    def forward(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        views = torch.cat([resize_for_backbone(output, self.backbone), self.crops(output)])
        per_view = directional_loss(self.backbone.encode_image(views), self.content_embedding, self.direction)
        loss_dir = per_view[0]
        loss_patch = thresholded_mean(per_view[1:], self.threshold)
        loss_content = content_loss(self.vgg(output), self.content_features)
        loss_tv = total_variation(output)
        w = self.weights
        total = w["patch"] * loss_patch + w["dir"] * loss_dir + w["content"] * loss_content + w["tv"] * loss_tv
        return {"total": total, "patch": loss_patch, "dir": loss_dir, "content": loss_content, "tv": loss_tv}
