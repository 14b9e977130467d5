"""The two Inception-v3 feature networks of the set-level metrics, each with its own weights.

- **FID**: pytorch-fid's `InceptionV3` (the port of TensorFlow's FID Inception, with its patched
  blocks), 2048-d average-pool features; the input in [0, 1] is resized to 299×299 (bilinear) and
  scaled to [−1, 1] by pytorch-fid itself. Weights `pt_inception-2015-12-05-6726825d.pth`:
  `--fid-inception-checkpoint FILE`, then `--cache-dir` and `$TORCH_HOME/hub/checkpoints` (where
  pytorch-fid caches it), then a download from pytorch-fid's release (not offline).
- **ArtFID's Inception**: the art-fid package's own `Inception3` (Wright & Ommer's ArtFID; `pip
  install --no-deps art-fid==0.0.2`, see ART_FID_INSTALL), with the art-trained weights
  (`art_inception.pth` of `matthias-wright/art_inception`), fed as the package feeds it: the image in
  [0, 1] at its own size, through `Inception3(x, return_features=True)` (2048-d average pool). Images
  under ART_MIN_SIDE pixels a side cannot go through it. Weights: `--art-inception-checkpoint FILE`,
  then the Hugging Face cache, then a download.

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
from torch import nn

from clipstyler_opt.core.errors import WeightsError
from clipstyler_opt.evaluate.names import MetricUnavailable
from clipstyler_opt.run.record import weights_record
from clipstyler_opt.weights.checkpoints import load_state_dict, weights_error
from clipstyler_opt.weights.download import check_reachable, download_file, torch_hub_checkpoints
from clipstyler_opt.weights.resolve import WeightsFile, resolve_hub_file, resolve_weights

__all__ = ["ART_FID_INSTALL", "ART_FILE", "ART_MIN_SIDE", "ART_REPO", "FID_FILENAME", "FID_URL", "FeatureNetwork",
           "create_art_inception", "load_art_inception", "load_fid_inception", "resolve_fid_weights"]

FID_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
FID_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
ART_REPO, ART_FILE = "matthias-wright/art_inception", "art_inception.pth"
FID_EXTRA = "pip install 'clipstyler_opt[fid]'"
# art-fid declares numpy<2 but runs on numpy 2: installed without its dependencies (the fid extra
# carries the others)
ART_FID_INSTALL = "pip install 'clipstyler_opt[fid]' && pip install --no-deps art-fid==0.0.2"
ART_MIN_SIDE = 75  # Inception-v3 at an image's own size needs 75 pixels a side


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
    min_side: int = 1

    @torch.no_grad()
    def features(self, image: torch.Tensor) -> np.ndarray:
        """(1, 3, H, W) in [0, 1] -> (2048,) float64; MetricUnavailable for an image under `min_side`."""
        assert self.model is not None
        if min(image.shape[-2:]) < self.min_side:
            raise MetricUnavailable(f"an image of {image.shape[-1]}×{image.shape[-2]} is under the {self.min_side} "
                                    f"pixels a side the {self.name} network takes")
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
    """The art-fid package's own `Inception3` (random weights) behind the package's feature call:
    `model(x)` is `Inception3(x, return_features=True)`, the 2048-d average-pool feature of x in
    [0, 1] at its own size (art-fid's `ToTensor()` input: no resizing, no normalisation).

    Example:
        >>> create_art_inception()(torch.rand(1, 3, 80, 80)).shape  # doctest: +SKIP
        torch.Size([1, 2048])
    """
    from art_fid.inception import Inception3

    return _ArtFeatures(Inception3())


class _ArtFeatures(nn.Module):
    def __init__(self, inception: nn.Module) -> None:
        super().__init__()
        self.inception = inception

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.inception(image, return_features=True).flatten(1)


def _art_fid_version() -> str | None:
    try:
        version = metadata.version("art-fid")
        import art_fid.art_fid  # noqa: F401  (its own imports: scipy, scikit-learn, lpips, tqdm, requests)
    except (metadata.PackageNotFoundError, ImportError):
        return None
    return version


def load_art_inception(explicit: Path | None, cache_dir: Path | None, offline: bool,
                       device: torch.device) -> FeatureNetwork:
    """The art-fid package's Inception with the art-trained weights, else the reason (an explicit
    file that cannot be used is an error).

    Example:
        >>> art = load_art_inception(Path("art_inception.pth"), None, True, torch.device("cpu"))  # doctest: +SKIP
        >>> art.provenance["network"]  # doctest: +SKIP
        'art-fid Inception3, art-trained weights, 2048-d pool, images at their own size'
    """
    version = _art_fid_version()
    if version is None:
        if explicit is not None:
            raise WeightsError(f"--art-inception-checkpoint given, but the art-fid package is not installed "
                               f"({ART_FID_INSTALL})") from None
        return FeatureNetwork("art", None, f"the art-fid package is not installed ({ART_FID_INSTALL})")
    try:
        weights = resolve_hub_file(ART_REPO, [ART_FILE], what="ArtFID's art-trained Inception weights",
                                   explicit=explicit, explicit_flag="--art-inception-checkpoint",
                                   cache_dir=cache_dir, offline=offline)
    except WeightsError as missing:
        if explicit is not None:
            raise
        return FeatureNetwork("art", None, f"no art-trained Inception weights: {missing}")
    model = create_art_inception()
    inception: nn.Module = model.inception  # type: ignore[assignment]
    state = load_state_dict(weights.path)
    # art-fid loads the file with strict=False (it may lack the heads); the trunk must all be there
    expected = {key: value for key, value in inception.state_dict().items()
                if not key.startswith(("fc", "AuxLogits"))}
    absent = [key for key in expected if key not in state]
    if absent:
        raise weights_error(weights.path, f"missing {absent[0]} (and {len(absent) - 1} more); is it an "
                                          "Inception-v3 state dict?")
    wrong = [key for key in expected if state[key].shape != expected[key].shape]
    if wrong:
        raise weights_error(weights.path, f"{wrong[0]} has shape {tuple(state[wrong[0]].shape)}, expected "
                                          f"{tuple(expected[wrong[0]].shape)}")
    inception.load_state_dict({key: state[key] for key in expected}, strict=False)
    provenance = {"implementation": f"art-fid {version}",
                  "network": "art-fid Inception3, art-trained weights, 2048-d pool, images at their own size",
                  **weights_record(str(weights.path), weights.origin)}
    return FeatureNetwork("art", model.eval().requires_grad_(False).to(device), None, provenance,
                          min_side=ART_MIN_SIDE)
