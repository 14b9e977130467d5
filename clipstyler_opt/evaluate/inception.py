"""The two Inception-v3 feature networks of the set-level metrics, each with its own weights.

- **FID**: pytorch-fid's `InceptionV3` (the port of TensorFlow's FID Inception, with its patched
  blocks), 2048-d average-pool features; the input in [0, 1] is resized to 299×299 (bilinear) and
  scaled to [−1, 1] by pytorch-fid itself. Weights `pt_inception-2015-12-05-6726825d.pth`:
  `--fid-inception-checkpoint FILE`, then `--cache-dir` and `$TORCH_HOME/hub/checkpoints` (where
  pytorch-fid caches it), then a download from pytorch-fid's release (not offline).
- **ArtFID's Inception**: the art-trained Inception-v3 of Wright & Ommer's ArtFID
  (`art_inception.pth` of `matthias-wright/art_inception`), loaded into torchvision's Inception-v3
  trunk, 2048-d average-pool features, with pytorch-fid's input handling (bilinear 299×299,
  [−1, 1]). The art-fid package itself cannot be installed beside numpy 2, so this loader is
  written from the published weights' layout, not taken from it; its preprocessing may differ.
  Weights: `--art-inception-checkpoint FILE`, then the Hugging Face cache, then a download.

The two are never mixed: FID uses only the first, ArtFID only the second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clipstyler_opt.core.errors import WeightsError
from clipstyler_opt.run.record import weights_record
from clipstyler_opt.weights.checkpoints import load_state_dict, weights_error
from clipstyler_opt.weights.download import check_reachable, download_file, torch_hub_checkpoints
from clipstyler_opt.weights.resolve import WeightsFile, resolve_hub_file, resolve_weights

__all__ = ["ART_FILE", "ART_REPO", "FID_FILENAME", "FID_URL", "FeatureNetwork", "create_art_inception",
           "load_art_inception", "load_fid_inception", "resolve_fid_weights"]

FID_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
FID_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
ART_REPO, ART_FILE = "matthias-wright/art_inception", "art_inception.pth"
FID_EXTRA = "pip install 'clipstyler_opt[fid]'"
INPUT_SIDE = 299


@dataclass
class FeatureNetwork:
    """A network giving one 2048-d feature vector per image, or `reason` when it is unavailable.

    Example:
        >>> FeatureNetwork("fid", None, "no FID Inception weights").model is None
        True
        >>> art = FeatureNetwork("art", create_art_inception().eval())  # doctest: +SKIP
        >>> art.features(torch.rand(1, 3, 32, 32)).shape  # doctest: +SKIP
        (2048,)
    """

    name: str
    model: nn.Module | None
    reason: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def features(self, image: torch.Tensor) -> np.ndarray:
        """(1, 3, H, W) in [0, 1] -> (2048,) float64."""
        assert self.model is not None
        return self.model(image.float()).reshape(-1).double().cpu().numpy()


def resolve_fid_weights(explicit: Path | None, cache_dir: Path | None, offline: bool) -> WeightsFile:
    """pytorch-fid's Inception weights: explicit file -> caches -> download -> WeightsError.

    Example:
        >>> resolve_fid_weights(Path("fid.pth"), None, offline=True).origin  # doctest: +SKIP
        'explicit'
    """
    candidates = [Path(folder) / FID_FILENAME for folder in ([cache_dir] if cache_dir else [])
                  + [torch_hub_checkpoints()]]

    def download() -> Path:
        check_reachable(FID_URL)
        return download_file(FID_URL, candidates[0])

    return resolve_weights("FID Inception weights", explicit=explicit, explicit_flag="--fid-inception-checkpoint",
                           cached=(p for p in candidates if p.is_file()), download=download, offline=offline,
                           looked_in=" and ".join(str(p) for p in candidates))


class _FidFeatures(nn.Module):
    def __init__(self, inception: nn.Module) -> None:
        super().__init__()
        self.inception = inception

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.inception(image)[0].flatten(1)


def load_fid_inception(explicit: Path | None, cache_dir: Path | None, offline: bool,
                       device: torch.device) -> FeatureNetwork:
    """pytorch-fid's InceptionV3 with the FID weights, else the reason (an explicit file that cannot
    be used is an error).

    Example:
        >>> fid = load_fid_inception(Path("pt_inception.pth"), None, True, torch.device("cpu"))  # doctest: +SKIP
        >>> fid.features(torch.rand(1, 3, 64, 64)).shape  # doctest: +SKIP
        (2048,)
    """
    try:
        version = metadata.version("pytorch-fid")
        from pytorch_fid import inception
    except (metadata.PackageNotFoundError, ImportError):
        if explicit is not None:
            raise WeightsError(f"--fid-inception-checkpoint given, but pytorch-fid is not installed ({FID_EXTRA})") \
                from None
        return FeatureNetwork("fid", None, f"pytorch-fid is not installed ({FID_EXTRA})")
    try:
        weights = resolve_fid_weights(explicit, cache_dir, offline)
    except WeightsError as missing:
        if explicit is not None:
            raise
        return FeatureNetwork("fid", None, f"no FID Inception weights: {missing}")
    state = load_state_dict(weights.path)
    # pytorch-fid fetches its weights by URL; it is handed the file found here instead
    with mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: state):
        try:
            model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
        except RuntimeError as exc:  # missing or mis-shaped keys
            raise weights_error(weights.path, f"not pytorch-fid's Inception ({str(exc).splitlines()[0]})") from None
    provenance = {"implementation": f"pytorch-fid {version}", "network": "pytorch-fid InceptionV3 (FID weights, "
                  "TensorFlow port), 2048-d pool3", **weights_record(str(weights.path), weights.origin)}
    return FeatureNetwork("fid", _FidFeatures(model).eval().requires_grad_(False).to(device), None, provenance)


def create_art_inception() -> nn.Module:
    """torchvision's Inception-v3 trunk (no auxiliary head), random weights; `model(x)` is the
    2048-d average-pool feature of x in [0, 1] (resized to 299, scaled to [−1, 1]).

    Example:
        >>> create_art_inception()(torch.rand(1, 3, 64, 64)).shape  # doctest: +SKIP
        torch.Size([1, 2048])
    """
    from torchvision.models import inception_v3

    trunk = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
    trunk.fc = nn.Identity()
    return _ArtFeatures(trunk)


class _ArtFeatures(nn.Module):
    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(image, size=(INPUT_SIDE, INPUT_SIDE), mode="bilinear", align_corners=False)
        return self.trunk(2 * x - 1).flatten(1)


def load_art_inception(explicit: Path | None, cache_dir: Path | None, offline: bool,
                       device: torch.device) -> FeatureNetwork:
    """The art-trained Inception when its weights are there, else the reason (an explicit file that
    cannot be used is an error).

    Example:
        >>> art = load_art_inception(Path("art_inception.pth"), None, True, torch.device("cpu"))  # doctest: +SKIP
        >>> art.provenance["network"]  # doctest: +SKIP
        'art-trained Inception-v3 (ArtFID), 2048-d pool'
    """
    try:
        weights = resolve_hub_file(ART_REPO, [ART_FILE], what="ArtFID's art-trained Inception weights",
                                   explicit=explicit, explicit_flag="--art-inception-checkpoint",
                                   cache_dir=cache_dir, offline=offline)
    except WeightsError as missing:
        if explicit is not None:
            raise
        return FeatureNetwork("art", None, f"no art-trained Inception weights: {missing}")
    model = create_art_inception()
    trunk: nn.Module = model.trunk  # type: ignore[assignment]
    state = load_state_dict(weights.path)
    expected = {key: value for key, value in trunk.state_dict().items() if not key.startswith("fc.")}
    absent = [key for key in expected if key not in state]
    if absent:
        raise weights_error(weights.path, f"missing {absent[0]} (and {len(absent) - 1} more); is it an "
                                          "Inception-v3 state dict?")
    wrong = [key for key in expected if state[key].shape != expected[key].shape]
    if wrong:
        raise weights_error(weights.path, f"{wrong[0]} has shape {tuple(state[wrong[0]].shape)}, expected "
                                          f"{tuple(expected[wrong[0]].shape)}")
    trunk.load_state_dict({key: state[key] for key in expected}, strict=False)
    provenance = {"implementation": f"clipstyler_opt (ArtFID by its definition; torchvision "
                                    f"{metadata.version('torchvision')} Inception-v3)",
                  "network": "art-trained Inception-v3 (ArtFID), 2048-d pool",
                  **weights_record(str(weights.path), weights.origin)}
    return FeatureNetwork("art", model.eval().requires_grad_(False).to(device), None, provenance)
