"""LPIPS (Zhang et al., 2018), when its weights can be had; otherwise the reason why not.

LPIPS = Σ_l mean_{h,w} ‖w_l ⊙ (n(F_l(output)) − n(F_l(content)))‖², with F_l AlexNet's five ReLU
outputs, n() unit length over channels and w_l learned per-channel weights; 0 for identical
images, lower is better. It needs two sets of weights:
- the small learned layers w_l, which the optional `lpips` package ships inside itself
  (`pip install 'clipstyler_opt[lpips]'`);
- torchvision's AlexNet, found like every other weights file here: `--lpips-checkpoint FILE`,
  then `$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth` (and `--cache-dir`), then a download
  (not with --offline).
Without either the metric is null and the reason is recorded; an explicit file that cannot be
loaded is an error.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clipstyler_opt.core.errors import ConfigError, WeightsError
from clipstyler_opt.evaluate.names import MetricUnavailable
from clipstyler_opt.run.record import weights_record
from clipstyler_opt.weights.checkpoints import load_state_dict, weights_error
from clipstyler_opt.weights.download import check_reachable, download_file, torch_hub_checkpoints
from clipstyler_opt.weights.resolve import WeightsFile, resolve_weights

__all__ = [
    "ALEXNET_FILENAME",
    "ALEXNET_URL",
    "LPIPS_EXTRA",
    "MIN_LPIPS_SIDE",
    "PerceptualMetric",
    "load_perceptual",
    "resolve_alexnet_weights",
]

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
ALEXNET_FILENAME = "alexnet-owt-7be5be79.pth"
ALEXNET_CONVS = (0, 3, 6, 8, 10)  # indices of the convolutions in torchvision's alexnet.features
MIN_LPIPS_SIDE = 32  # AlexNet's stride-4 stem and two 3×3 pools leave nothing of smaller images
LPIPS_EXTRA = "pip install 'clipstyler_opt[lpips]'"


@dataclass
class PerceptualMetric:
    """LPIPS(output, content), or `reason` when it cannot be computed."""

    model: nn.Module | None
    reason: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def __call__(self, output: torch.Tensor, content: torch.Tensor) -> float:
        if self.model is None:
            raise MetricUnavailable(self.reason or "LPIPS is unavailable")
        if min(output.shape[-2:]) < MIN_LPIPS_SIDE:
            raise MetricUnavailable(f"the image is smaller than LPIPS's {MIN_LPIPS_SIDE} pixels a side")
        return float(self.model(output.float(), content.float(), normalize=True).flatten()[0])


def resolve_alexnet_weights(explicit: Path | None, cache_dir: Path | None, offline: bool) -> WeightsFile:
    """AlexNet weights (torchvision layout): explicit file -> caches -> download -> WeightsError."""
    candidates = [Path(folder) / ALEXNET_FILENAME for folder in ([cache_dir] if cache_dir else [])
                  + [torch_hub_checkpoints()]]

    def download() -> Path:
        check_reachable(ALEXNET_URL)
        return download_file(ALEXNET_URL, candidates[0], sha256_prefix=ALEXNET_FILENAME.split("-")[2][:8])

    return resolve_weights("AlexNet weights for LPIPS", explicit=explicit, explicit_flag="--lpips-checkpoint",
                           cached=(p for p in candidates if p.is_file()), download=download, offline=offline,
                           looked_in=" and ".join(str(p) for p in candidates))


def _load_alexnet(model: nn.Module, path: Path) -> None:
    """Copy torchvision AlexNet `features.<i>` convolutions into lpips's sliced trunk."""
    state = load_state_dict(path)
    trunk: nn.Module = model.net  # type: ignore[assignment]  # lpips's AlexNet: five slices of features
    layers = {name: module for part in trunk.children() for name, module in part.named_children()}
    for index in ALEXNET_CONVS:
        conv = layers[str(index)]
        for part in ("weight", "bias"):
            key = f"features.{index}.{part}"
            if key not in state:
                raise weights_error(path, f"missing {key}; is it a torchvision AlexNet state dict?")
            expected = getattr(conv, part).shape
            if state[key].shape != expected:
                raise weights_error(path, f"{key} has shape {tuple(state[key].shape)}, expected {tuple(expected)}")
            getattr(conv, part).data.copy_(state[key])


def load_perceptual(explicit: Path | None, cache_dir: Path | None, offline: bool,
                    device: torch.device) -> PerceptualMetric:
    """LPIPS-AlexNet v0.1 when the `lpips` package and AlexNet weights are there, else the reason."""
    try:
        import lpips
    except ImportError:
        if explicit is not None:
            raise ConfigError(f"--lpips-checkpoint given, but the lpips package is not installed ({LPIPS_EXTRA})") \
                from None
        return PerceptualMetric(None, f"the lpips package is not installed ({LPIPS_EXTRA})")
    try:
        weights = resolve_alexnet_weights(explicit, cache_dir, offline)
    except WeightsError as missing:
        if explicit is not None:
            raise
        return PerceptualMetric(None, f"no AlexNet weights: {missing}")
    with warnings.catch_warnings():  # lpips asks torchvision for an untrained trunk with a deprecated flag
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    _load_alexnet(model, weights.path)
    provenance = {"package": f"lpips {metadata.version('lpips')}", "net": "alex", "version": "0.1",
                  **weights_record(str(weights.path), weights.origin)}
    return PerceptualMetric(model.eval().requires_grad_(False).to(device), None, provenance)
