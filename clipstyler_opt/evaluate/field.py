"""The networks of the field's standard metrics, loaded once per eval: DINO (content similarity),
the scorer's image tower against style images (CLIP style similarity), and the reference set's
Inception features (FID, ArtFID). Each one missing leaves its metric null with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clipstyler_opt.evaluate.inception import FeatureNetwork, load_art_inception, load_fid_inception
from clipstyler_opt.evaluate.names import MetricUnavailable
from clipstyler_opt.evaluate.setlevel import MIN_IMAGES, SET_METRICS, set_summary
from clipstyler_opt.method.losses import resize_for_backbone
from clipstyler_opt.models import VisionLanguageBackbone

__all__ = ["ReferenceSet", "StyleEmbeddings"]

log = logging.getLogger(__name__)
RowKey = tuple[str, str]  # (result folder or "", output label)


class StyleEmbeddings:
    """n(E_I(view(style image))) under a scorer's backbone, cached per backbone and file.

    Example:
        >>> class MeanColour(torch.nn.Module):  # embeds an image as its mean colour
        ...     input_size, interpolation = (4, 4), "bilinear"
        ...     def encode_image(self, x): return x.mean(dim=(2, 3))
        >>> embed = StyleEmbeddings(lambda path: torch.ones(1, 3, 8, 8))
        >>> [round(v, 4) for v in embed(MeanColour(), Path("any.png"))[0].tolist()]  # type: ignore[arg-type]
        [0.5774, 0.5774, 0.5774]
    """

    def __init__(self, load: Callable[[Path], torch.Tensor]) -> None:
        self.load = load
        self._cache: dict[tuple[int, Path], torch.Tensor] = {}

    @staticmethod
    @torch.no_grad()
    def embed(backbone: VisionLanguageBackbone, image: torch.Tensor) -> torch.Tensor:
        """n(E_I(view(image))) of (1, 3, H, W) in [0, 1], (1, D) in fp32."""
        return F.normalize(backbone.encode_image(resize_for_backbone(image.float(), backbone)).float(), dim=-1)

    def __call__(self, backbone: VisionLanguageBackbone, path: Path) -> torch.Tensor:
        key = (id(backbone), Path(path).resolve())
        if key not in self._cache:
            self._cache[key] = self.embed(backbone, self.load(path))
        return self._cache[key]


def _features_of(net: FeatureNetwork, image: torch.Tensor, name: str) -> np.ndarray:
    try:
        return net.features(image)
    except MetricUnavailable as why:
        raise MetricUnavailable(f"{name}: {why}") from None


class ReferenceSet:
    """The reference images' features under each set-level network, and each output's, kept until
    the summary; `summary(rows)` gives eval.json's `set_metrics` for those rows.

    Example:
        >>> refs = ReferenceSet(Path("refs"), [Path("a.png")], [FeatureNetwork("fid", None, "no weights")],
        ...                     load=lambda path: torch.rand(1, 3, 8, 8))
        >>> row = type("Row", (), {"root": None, "output": "x.png", "to_dict": lambda self: {"metrics": {}}})()
        >>> refs.add(("", "x.png"), torch.rand(1, 3, 8, 8))
        >>> summary = refs.summary([row])["overall"]
        >>> summary["fid"]["reason"], summary["artfid"]["reason"]
        ('no weights', 'the art feature network was not loaded')
    """

    def __init__(self, folder: Path, paths: Sequence[Path], networks: Sequence[FeatureNetwork],
                 load: Callable[[Path], torch.Tensor]) -> None:
        self.folder, self.paths = folder, list(paths)
        self.networks = {net.name: net for net in networks if net.model is not None}
        self.unavailable = {net.name: str(net.reason) for net in networks if net.model is None}
        self.provenance = {net.name: net.provenance for net in networks}
        if "art" in self.provenance:  # ArtFID's other factor: the rows' lpips column
            self.provenance["art"] = {**self.provenance["art"], "content_distance": "mean of the rows' lpips "
                                      "(LPIPS-AlexNet v0.1 of the lpips package on [−1, 1], as art-fid's "
                                      "compute_content_distance; see eval.json's lpips)"}
        self.reference: dict[str, np.ndarray] = {}
        for name, net in list(self.networks.items()):
            log.info("reference set: %d images through the %s network", len(self.paths), name)
            try:
                self.reference[name] = np.stack([_features_of(net, load(path), path.name) for path in self.paths])
            except MetricUnavailable as why:
                del self.networks[name]
                self.unavailable[name] = f"reference {why}"
        self._features: dict[RowKey, dict[str, np.ndarray | MetricUnavailable]] = {}
        self._summaries: dict[tuple[RowKey, ...], dict[str, Any]] = {}  # a Fréchet distance takes 15–20 s

    @classmethod
    def load(cls, folder: Path, paths: Sequence[Path], *, fid_checkpoint: Path | None,
             art_checkpoint: Path | None, cache_dir: Path | None, offline: bool, device: torch.device,
             load: Callable[[Path], torch.Tensor]) -> ReferenceSet:
        """Load both networks (each may be unavailable, with its reason) and the reference features."""
        networks = [load_fid_inception(fid_checkpoint, cache_dir, offline, device),
                    load_art_inception(art_checkpoint, cache_dir, offline, device)]
        return cls(folder, paths, networks, load)

    def add(self, key: RowKey, output: torch.Tensor) -> None:
        """Keep the features of one output (1, 3, H, W) in [0, 1]."""
        kept: dict[str, np.ndarray | MetricUnavailable] = {}
        for name, net in self.networks.items():
            try:
                kept[name] = _features_of(net, output, key[1])
            except MetricUnavailable as why:  # the metric is null for every set holding this output
                kept[name] = why
        self._features[key] = kept

    def summary(self, rows: Sequence[Any]) -> dict[str, Any]:
        """eval.json's `set_metrics` for `rows` (EvalRow objects added before); computed once per set of rows."""
        keys = tuple((str(row.root or ""), row.output) for row in rows)
        if keys in self._summaries:
            return self._summaries[keys]
        if self.networks:
            log.info("set metrics: %d output(s) against %d reference image(s); each Fréchet distance of 2048-d "
                     "features takes 15-20 s on a 2-core CPU", len(rows), len(self.paths))
        dicts = [row.to_dict() for row in rows]
        unavailable = dict(self.unavailable)
        features = {}
        for name in self.networks:
            kept = [self._features[key][name] for key in keys]
            arrays = [value for value in kept if isinstance(value, np.ndarray)]
            if len(arrays) < len(kept):
                missing = [value for value in kept if not isinstance(value, np.ndarray)]
                unavailable[name] = f"{len(missing)} output(s) without features: {missing[0]}"
            features[name] = np.stack(arrays) if rows and len(arrays) == len(kept) else np.zeros((0, 1))
        self._summaries[keys] = {"reference": {"folder": str(self.folder), "n": len(self.paths)},
                                 "min_images": MIN_IMAGES,
                                 "directions": {metric.name: metric.direction for metric in SET_METRICS},
                                 **set_summary(dicts, features, self.reference, unavailable, self.provenance)}
        return self._summaries[keys]
