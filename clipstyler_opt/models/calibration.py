"""Per-backbone defaults for the patch threshold τ and the prompt template set: one table.

τ rejects crops whose directional loss is already low (CLIPstyler: 0.7 for CLIP ViT-B/32). Its
right value depends on how spread out a backbone's crop directions are, which can only be
measured with pretrained weights. Values that have not been measured that way are marked
`calibrated=False`, and the README's calibration table says so. Users override τ per member with
`tau=` in the backbone spec, or for every member with --threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CALIBRATION", "BackboneDefaults", "defaults_for"]


@dataclass(frozen=True)
class BackboneDefaults:
    pattern: str  # regular expression matched against the open_clip model name
    tau: float
    templates: str
    calibrated: bool
    reason: str


CALIBRATION: tuple[BackboneDefaults, ...] = (
    BackboneDefaults(r"ViT-B-32(-quickgelu)?", 0.7, "imagenet", True,
                     "CLIPstyler's value and its 79 templates, tuned by its authors on this model"),
    BackboneDefaults(r".*SigLIP2.*", 0.7, "imagenet", False,
                     "not calibrated: needs pretrained weights; CLIP's value as a starting point"),
    BackboneDefaults(r".*SigLIP.*", 0.7, "imagenet", False,
                     "not calibrated: needs pretrained weights; CLIP's value as a starting point"),
    BackboneDefaults(r".*", 0.7, "imagenet", False,
                     "not calibrated: other CLIP models share ViT-B/32's loss scale only approximately"),
)


def defaults_for(model_name: str) -> BackboneDefaults:
    """The first row whose pattern matches the whole model name (the last row matches anything)."""
    return next(row for row in CALIBRATION if re.fullmatch(row.pattern, model_name))
