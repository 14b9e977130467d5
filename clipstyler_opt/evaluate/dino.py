"""DINO content similarity: the cosine of the CLS tokens of output and content under a
self-supervised ViT (Caron et al. 2021), insensitive to colour and texture, sensitive to layout.

  dino_content_similarity = cos(D(view(output)), D(view(content)))      higher is better

D is timm's `vit_small_patch16_224.dino` (ViT-S/16, 384-d CLS token after the final norm) and
view() squashes the whole image to 224×224 (bicubic, antialiased; as the scorer's view, no centre
crop) with ImageNet normalisation, the model's own pretrained configuration. Its weights are
found like every weights file: `--dino-checkpoint FILE`, then the Hugging Face cache
(`timm/vit_small_patch16_224.dino`, as timm itself stores it), then a download (not offline).
Without timm or the weights the metric is null with the reason; an explicit file that cannot be
loaded is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clipstyler_opt.core.errors import ConfigError, WeightsError
from clipstyler_opt.evaluate.names import MetricUnavailable
from clipstyler_opt.run.record import weights_record
from clipstyler_opt.weights.checkpoints import load_state_dict, weights_error
from clipstyler_opt.weights.resolve import resolve_hub_file

__all__ = ["DINO_MODEL", "DINO_REPO", "DinoSimilarity", "create_dino", "load_dino"]

DINO_MODEL = "vit_small_patch16_224.dino"
DINO_REPO = "timm/vit_small_patch16_224.dino"
DINO_FILES = ["model.safetensors", "pytorch_model.bin"]
TIMM_EXTRA = "pip install 'clipstyler_opt[siglip]' (timm)"


def create_dino() -> nn.Module:
    """timm's DINO ViT-S/16 with random weights and no head: `model(x)` is the CLS token.

    Example:
        >>> create_dino()(torch.rand(1, 3, 224, 224)).shape  # doctest: +SKIP
        torch.Size([1, 384])
    """
    import timm

    return timm.create_model(DINO_MODEL, pretrained=False, num_classes=0)


@dataclass
class DinoSimilarity:
    """cos(D(view(output)), D(view(content))), or `reason` when it cannot be computed.

    Example:
        >>> DinoSimilarity(None, "no DINO weights")(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
        Traceback (most recent call last):
        ...
        clipstyler_opt.evaluate.names.MetricUnavailable: no DINO weights
    """

    model: nn.Module | None
    reason: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def view(self, image: torch.Tensor) -> torch.Tensor:
        """`image` (B, 3, H, W) in [0, 1] squashed to the model's input and normalised."""
        assert self.model is not None
        config: dict[str, Any] = getattr(self.model, "pretrained_cfg")  # noqa: B009 (timm's attribute)
        size = tuple(config["input_size"][-2:])
        resized = F.interpolate(image.float(), size=size, mode="bicubic", align_corners=False, antialias=True)
        mean = torch.tensor(config["mean"], device=image.device).view(1, 3, 1, 1)
        std = torch.tensor(config["std"], device=image.device).view(1, 3, 1, 1)
        return (resized - mean) / std

    @torch.no_grad()
    def __call__(self, output: torch.Tensor, content: torch.Tensor) -> float:
        if self.model is None:
            raise MetricUnavailable(self.reason or "DINO is unavailable")
        tokens = self.model(self.view(torch.cat([output, content]))).float()
        return float(F.cosine_similarity(tokens[:1], tokens[1:2])[0])


def load_dino(explicit: Path | None, cache_dir: Path | None, offline: bool, device: torch.device) -> DinoSimilarity:
    """DINO ViT-S/16 when timm and its weights are there, else the reason (an explicit file that
    cannot be used is an error).

    Example:
        >>> dino = load_dino(Path("dino.pth"), None, offline=True, device=torch.device("cpu"))  # doctest: +SKIP
        >>> round(dino(output, content), 4)  # doctest: +SKIP
        0.9132
    """
    try:
        version = metadata.version("timm")
    except metadata.PackageNotFoundError:
        if explicit is not None:
            raise ConfigError(f"--dino-checkpoint given, but timm is not installed ({TIMM_EXTRA})") from None
        return DinoSimilarity(None, f"timm is not installed ({TIMM_EXTRA})")
    try:
        weights = resolve_hub_file(DINO_REPO, DINO_FILES, what=f"DINO weights {DINO_MODEL}", explicit=explicit,
                                   explicit_flag="--dino-checkpoint", cache_dir=cache_dir, offline=offline)
    except WeightsError as missing:
        if explicit is not None:
            raise
        return DinoSimilarity(None, f"no DINO weights: {missing}")
    model = create_dino()
    state = load_state_dict(weights.path)
    expected = model.state_dict()
    missing_keys = [key for key in expected if key not in state]
    if missing_keys:
        raise weights_error(weights.path, f"missing {missing_keys[0]} (and {len(missing_keys) - 1} more); is it "
                                          f"timm's {DINO_MODEL}?")
    wrong = [key for key in expected if state[key].shape != expected[key].shape]
    if wrong:
        raise weights_error(weights.path, f"{wrong[0]} has shape {tuple(state[wrong[0]].shape)}, expected "
                                          f"{tuple(expected[wrong[0]].shape)}")
    model.load_state_dict({key: state[key] for key in expected})
    provenance = {"implementation": f"timm {version}", "network": DINO_MODEL, "token": "CLS after the final norm",
                  "view": "squashed to 224x224, bicubic, ImageNet mean/std",
                  **weights_record(str(weights.path), weights.origin)}
    return DinoSimilarity(model.eval().requires_grad_(False).to(device), None, provenance)
