"""The evaluation driver: load the scorer and the VGG19 (and LPIPS when it can be had) once, then
score every output against its content image, prompt and style images.

Each output is compared with its content image resized to the output's size (bicubic, as the
optimisation resized it). A metric that cannot be computed is null, and the reason is kept in
the row's `unavailable`; nothing is dropped silently.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.evaluate.gram import GRAM_LAYERS, style_network
from clipstyler_opt.evaluate.names import MetricUnavailable
from clipstyler_opt.evaluate.perceptual import load_perceptual
from clipstyler_opt.evaluate.protocols import SSIM_PROTOCOLS, clipscore_record, ssim_record
from clipstyler_opt.evaluate.registry import Sample
from clipstyler_opt.evaluate.registry import metrics as registered_metrics
from clipstyler_opt.evaluate.scorer import Record, choose_scorer, was_optimiser
from clipstyler_opt.evaluate.stats import summarise
from clipstyler_opt.evaluate.style import PatchProtocol, StyleScorer
from clipstyler_opt.evaluate.targets import EvalTarget
from clipstyler_opt.method.ensemble import Member, member_settings
from clipstyler_opt.method.pixels import pil_to_tensor
from clipstyler_opt.method.precision import resolve_device
from clipstyler_opt.method.sizing import MIN_SIDE, working_size
from clipstyler_opt.models import (
    LoadContext,
    check_backbone_requirements,
    create_backbone,
    create_content_network,
    offline_requested,
    resolve_content_weights,
)
from clipstyler_opt.run.images import load_image
from clipstyler_opt.run.record import backbone_record, weights_record

__all__ = ["EvalOptions", "EvalReport", "EvalRow", "Evaluator", "evaluate_targets"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOptions:
    scorer: str | None = None  # a backbone spec; None: the default rule (see scorer.py)
    clip_model_config: tuple[Path, ...] = ()
    vgg_checkpoint: Path | None = None
    lpips_checkpoint: Path | None = None
    cache_dir: Path | None = None
    offline: bool = False
    device: str = "auto"
    patch: PatchProtocol = field(default_factory=PatchProtocol)
    ssim_protocol: str = "default"  # a name of protocols.SSIM_PROTOCOLS

    def context(self, scorer: BackboneSpec | None = None) -> LoadContext:
        """Where the networks come from; messages about missing weights point at `--scorer`."""
        source = f"{scorer.source}/{scorer.pretrained}" if scorer and scorer.pretrained else \
            scorer.source if scorer else "MODEL/TAG"
        return LoadContext(self.cache_dir, offline_requested(self.offline), tuple(self.clip_model_config),
                           weights_option=f"--scorer {source}:file=FILE")


@dataclass
class EvalRow:
    output: str
    content: str
    prompt: str
    metrics: dict[str, float | None]
    unavailable: dict[str, str]
    scorer_was_optimiser: bool | None
    seconds: float
    cell: str | None = None
    root: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        row = {"output": self.output, "content": self.content, "prompt": self.prompt, "metrics": self.metrics,
               "unavailable": self.unavailable, "scorer_was_optimiser": self.scorer_was_optimiser,
               "seconds": round(self.seconds, 4)}
        return {**row, "cell": self.cell} if self.cell is not None else row


@dataclass
class EvalReport:
    scorer: dict[str, Any]
    rows: list[EvalRow]
    warnings: list[str] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)  # content network, LPIPS, protocols, device

    def to_json(self, rows: Sequence[EvalRow] | None = None) -> dict[str, Any]:
        """The eval.json document for `rows` (default: all)."""
        chosen = [row.to_dict() for row in (self.rows if rows is None else rows)]
        names = [metric.name for metric in registered_metrics()]
        return {"scorer": self.scorer, "directions": {metric.name: metric.direction for metric in registered_metrics()},
                "rows": chosen, "summary": summarise(chosen, names), "warnings": list(self.warnings), **self.setup}


class Evaluator:
    """The loaded networks. `evaluate(target)` scores one output."""

    def __init__(self, options: EvalOptions, optimisers: Iterable[Sequence[Record]] = ()) -> None:
        self.device = resolve_device(options.device)
        if options.ssim_protocol not in SSIM_PROTOCOLS:
            raise ConfigError(f"unknown SSIM protocol {options.ssim_protocol!r} (known: {', '.join(SSIM_PROTOCOLS)})")
        self.ssim_protocol = options.ssim_protocol
        spec = choose_scorer(options.scorer, optimisers)
        context = options.context(spec)
        check_backbone_requirements([spec], context)  # an unknown model or a missing extra, before any weights
        vgg_weights = resolve_content_weights(options.vgg_checkpoint, context)  # seconds, before CLIP loads
        self.perceptual = load_perceptual(options.lpips_checkpoint, context.cache_dir, context.offline, self.device)
        member = Member(spec, create_backbone(spec, context, self.device))
        defaults = StyleConfig()
        self.scorer = StyleScorer(member, member_settings(spec, defaults)["templates"], options.patch)
        self.scorer_record = {k: v for k, v in backbone_record(member, defaults).items()
                              if k not in ("weight", "threshold", "threshold_calibrated")}
        self.vgg = create_content_network(vgg_weights, self.device)
        self.gram_vgg = style_network(self.vgg)
        self.setup = {
            "content_network": weights_record(str(vgg_weights.path), vgg_weights.origin),
            "lpips": {"available": self.perceptual.model is not None, "reason": self.perceptual.reason,
                      **self.perceptual.provenance},
            "protocols": {"patch_clip_score": options.patch.describe(), "ssim": ssim_record(options.ssim_protocol),
                          "clipscore": clipscore_record()},
            "gram_layers": list(GRAM_LAYERS),
            "device": str(self.device),
        }
        self.warnings: list[str] = []
        self._styles: dict[tuple[Path, int], list[torch.Tensor]] = {}

    @classmethod
    def for_targets(cls, options: EvalOptions, targets: Sequence[EvalTarget]) -> Evaluator:
        """Load the networks, choosing the default scorer from what optimised `targets`."""
        return cls(options, [target.optimisers or () for target in targets])

    def scorer_warnings(self, targets: Sequence[EvalTarget]) -> list[str]:
        """Outputs the scorer optimised, and outputs for which that is unknown."""
        warnings = []
        flagged = [t.label for t in targets if was_optimiser(self.scorer_record, t.optimisers)]
        if flagged:
            warnings.append(f"the scorer {self.scorer_record.get('spec')} also optimised {len(flagged)} of the "
                            f"{len(targets)} outputs (e.g. {flagged[0]}): its style metrics favour them "
                            "(scorer_was_optimiser: true)")
        unknown = [t.label for t in targets if t.optimisers is None]
        if unknown:
            warnings.append(f"{len(unknown)} output(s) record no optimising backbone (e.g. {unknown[0]}): whether "
                            "the scorer optimised them is unknown (scorer_was_optimiser: null)")
        return warnings

    def _tensor(self, image: Image.Image, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is not None and image.size != size:
            image = image.resize(size, Image.Resampling.BICUBIC)
        return pil_to_tensor(image).to(self.device)

    def style_features(self, path: Path, long_side: int) -> list[torch.Tensor]:
        """A style image at the output's long side (never enlarged), through the Gram layers; cached."""
        key = (path.resolve(), long_side)
        if key not in self._styles:
            rgb = load_image(path).rgb
            size = working_size(*rgb.size, min(long_side, max(rgb.size)))
            if min(size) < MIN_SIDE:
                raise MetricUnavailable(f"style image {path} is under {MIN_SIDE} pixels a side at this size")
            with torch.no_grad():
                self._styles[key] = self.gram_vgg(self._tensor(rgb, size))
        return self._styles[key]

    def _load(self, target: EvalTarget) -> tuple[torch.Tensor, torch.Tensor]:
        output = load_image(target.image).rgb
        content = load_image(target.content)
        if target.content_sha256 and content.sha256 != target.content_sha256:
            self.warnings.append(f"{target.label}: the content image {target.content} differs from the one the "
                                 "output was made from (another SHA-256)")
            log.warning(self.warnings[-1])
        return self._tensor(output), self._tensor(content.rgb, output.size)

    def evaluate(self, target: EvalTarget) -> EvalRow:
        started = time.perf_counter()
        output, content = self._load(target)
        sample = Sample(self, target, output, content)
        metrics: dict[str, float | None] = {}
        unavailable: dict[str, str] = {}
        for metric in registered_metrics():
            metrics[metric.name] = None
            try:
                value = metric.compute(sample)
            except MetricUnavailable as why:
                unavailable[metric.name] = str(why) or f"unavailable ({metric.unavailable_when})"
                continue
            if math.isfinite(value):
                metrics[metric.name] = value
            else:
                unavailable[metric.name] = f"not finite ({value})"
        return EvalRow(output=target.label, content=str(target.content), prompt=target.prompt, metrics=metrics,
                       unavailable=unavailable, scorer_was_optimiser=was_optimiser(self.scorer_record,
                                                                                   target.optimisers),
                       seconds=time.perf_counter() - started, cell=target.cell, root=target.root)


def evaluate_targets(targets: Sequence[EvalTarget], evaluator: Evaluator, notes: Sequence[str] = (),
                     on_row: Callable[[EvalRow], None] | None = None) -> EvalReport:
    """Score every target, in order, with `evaluator` (see `Evaluator.for_targets`)."""
    warnings = list(notes) + evaluator.scorer_warnings(targets)
    for warning in warnings:
        log.warning(warning)
    rows = []
    for target in targets:
        rows.append(evaluator.evaluate(target))
        if on_row is not None:
            on_row(rows[-1])
    return EvalReport(evaluator.scorer_record, rows, warnings + evaluator.warnings, evaluator.setup)
