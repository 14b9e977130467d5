"""The evaluation driver: load the scorers and the VGG19 (and LPIPS when it can be had) once,
then score every output against its content image, prompt and style images.

Each output is compared with its content image resized to the output's size (bicubic, as the
optimisation resized it). The metrics that need a scorer are computed with every scorer; those
that also need a style text are computed against the whole prompt and against each of its parts
(a sweep's declared parts when it records them). The row's `metrics` hold the first scorer's
values beside the metrics that need no scorer. A metric that cannot be computed is null, and
the reason is kept in the row's `unavailable`; nothing is dropped silently.

Each scorer's whole-image embeddings of the outputs and content images go into the result
folder's embedding cache (`embeddings.py`), which `clipopt analyze` reads.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.styles import StyleSpec
from clipstyler_opt.evaluate.dino import load_dino
from clipstyler_opt.evaluate.embeddings import ScorerEmbeddings, cache_folder_problem
from clipstyler_opt.evaluate.field import ReferenceSet, StyleEmbeddings
from clipstyler_opt.evaluate.gram import GRAM_LAYERS, style_network
from clipstyler_opt.evaluate.names import MetricUnavailable
from clipstyler_opt.evaluate.perceptual import load_perceptual
from clipstyler_opt.evaluate.protocols import SSIM_PROTOCOLS, clipscore_record, ssim_record
from clipstyler_opt.evaluate.registry import Metric, Sample
from clipstyler_opt.evaluate.registry import metrics as registered_metrics
from clipstyler_opt.evaluate.scorer import Record, labelled_scorers, was_optimiser
from clipstyler_opt.evaluate.stats import scorer_summary, summarise
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
from clipstyler_opt.report.evaluation import SCHEMA_VERSION
from clipstyler_opt.run.images import load_image
from clipstyler_opt.run.record import backbone_record, weights_record

__all__ = ["EvalOptions", "EvalReport", "EvalRow", "Evaluator", "LoadedScorer", "evaluate_targets"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOptions:
    scorers: tuple[str, ...] = ()  # --scorer texts, [LABEL=]SPEC; (): the default rule (see scorer.py)
    clip_model_config: tuple[Path, ...] = ()
    vgg_checkpoint: Path | None = None
    lpips_checkpoint: Path | None = None
    cache_dir: Path | None = None
    offline: bool = False
    device: str = "auto"
    patch: PatchProtocol = field(default_factory=PatchProtocol)
    ssim_protocol: str = "default"  # a name of protocols.SSIM_PROTOCOLS
    dino_checkpoint: Path | None = None
    reference_dir: Path | None = None  # a folder of reference images for the set-level metrics
    reference_images: tuple[Path, ...] = ()  # its images (setlevel.reference_images), checked beforehand
    fid_inception_checkpoint: Path | None = None
    art_inception_checkpoint: Path | None = None

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
    metrics: dict[str, float | None]  # the first scorer's, and the metrics that need no scorer
    unavailable: dict[str, str]
    scorer_was_optimiser: bool | None
    seconds: float
    cell: str | None = None
    root: Path | None = None
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # scorer label -> its metrics and parts
    parts_from: str | None = None
    settings: tuple[tuple[str, Any], ...] = ()  # the cell's varied settings
    setting_labels: tuple[tuple[str, str], ...] = ()  # and their labels

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "output": self.output, "content": self.content, "prompt": self.prompt, "metrics": self.metrics,
            "unavailable": self.unavailable, "scorer_was_optimiser": self.scorer_was_optimiser,
            "seconds": round(self.seconds, 4)}
        if self.cell is not None:
            row["cell"] = self.cell
        if self.settings:
            row["settings"] = dict(self.settings)
        if self.setting_labels:
            row["setting_labels"] = dict(self.setting_labels)
        row["scores"] = self.scores
        if self.parts_from is not None:
            row["parts_from"] = self.parts_from
        return row


@dataclass
class EvalReport:
    scorers: list[dict[str, Any]]  # per scorer: label, spec, weights_sha256 and its provenance record
    rows: list[EvalRow]
    warnings: list[str] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)  # content network, LPIPS, protocols, device
    reference: ReferenceSet | None = None  # the set-level metrics' reference set, with --reference-dir

    @property
    def scorer(self) -> dict[str, Any]:
        """The first scorer's record (the one behind each row's `metrics`)."""
        return self.scorers[0]

    def to_json(self, rows: Sequence[EvalRow] | None = None) -> dict[str, Any]:
        """The eval.json document (schema version 2, see report/evaluation.py) for `rows` (default: all)."""
        picked = self.rows if rows is None else rows
        chosen = [row.to_dict() for row in picked]
        names = [metric.name for metric in registered_metrics()]
        sets = {"set_metrics": self.reference.summary(picked)} if self.reference is not None else {}
        scored = [metric.name for metric in registered_metrics() if "scorer" in metric.needs]
        scorers = [{**record, "optimised_outputs": sum(row["scores"][record["label"]]["scorer_was_optimiser"] is True
                                                       for row in chosen)} for record in self.scorers]
        return {"schema_version": SCHEMA_VERSION, "scorer": scorers[0], "scorers": scorers,
                "directions": {metric.name: metric.direction for metric in registered_metrics()},
                "rows": chosen, "summary": summarise(chosen, names),
                "summaries": {record["label"]: scorer_summary(chosen, record["label"], scored) for record in scorers},
                **sets, "warnings": list(self.warnings), **self.setup}


class _WithScorer:
    """The evaluator's networks as a metric's compute sees them, with one of its scorers."""

    def __init__(self, evaluator: Evaluator, scorer: StyleScorer) -> None:
        self._evaluator, self.scorer = evaluator, scorer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._evaluator, name)


@dataclass
class LoadedScorer:
    """One scorer: its label, its backbone with the patch protocol, its provenance record, and per
    result folder its embedding cache."""

    label: str
    style: StyleScorer
    record: dict[str, Any]
    _caches: dict[Path, ScorerEmbeddings | None] = field(default_factory=dict)

    def cache(self, root: Path | None) -> ScorerEmbeddings | None:
        """The embedding cache in `root` (None: a single output, no known weights SHA-256, or a
        cache folder that cannot be used, which is said once)."""
        sha = self.record.get("weights_sha256")
        if root is None or not isinstance(sha, str):
            return None
        if root not in self._caches:
            problem = cache_folder_problem(root)
            if problem is not None:
                log.warning("%s; its embeddings are not cached", problem)
            self._caches[root] = None if problem else ScorerEmbeddings(
                self.label, self.style.member, self.style.templates, sha, root)
        return self._caches[root]

    def encode(self, target: EvalTarget, output: torch.Tensor, content: torch.Tensor) -> None:
        """Encode `output` once for every metric of this scorer; whole images through the cache,
        which also receives the content image at its own size (as `clipopt analyze` embeds it)."""
        cache = self.cache(target.root)
        embedding = None
        if cache is not None:
            embedding = torch.from_numpy(cache.image(target.image, output)).to(output.device, torch.float32)
            cache.image(target.content)
        self.style.encode(output, content, embedding)

    def save(self) -> None:
        """Write the embedding caches that gained entries."""
        for cache in self._caches.values():
            if cache is not None:
                cache.save()


def _compute(networks: Any, target: EvalTarget, output: torch.Tensor, content: torch.Tensor,
             chosen: Sequence[Metric]) -> tuple[dict[str, float | None], dict[str, str]]:
    """Each of `chosen` for one sample: its value, or None and the reason in the second mapping."""
    sample = Sample(networks, target, output, content)
    values: dict[str, float | None] = {}
    unavailable: dict[str, str] = {}
    for metric in chosen:
        values[metric.name] = None
        try:
            value = metric.compute(sample)
        except MetricUnavailable as why:
            unavailable[metric.name] = str(why) or f"unavailable ({metric.unavailable_when})"
            continue
        if math.isfinite(value):
            values[metric.name] = value
        else:
            unavailable[metric.name] = f"not finite ({value})"
    return values, unavailable


class Evaluator:
    """The loaded networks. `evaluate(target)` scores one output."""

    def __init__(self, options: EvalOptions, optimisers: Iterable[Sequence[Record]] = ()) -> None:
        self.device = resolve_device(options.device)
        if options.ssim_protocol not in SSIM_PROTOCOLS:
            raise ConfigError(f"unknown SSIM protocol {options.ssim_protocol!r} (known: {', '.join(SSIM_PROTOCOLS)})")
        self.ssim_protocol = options.ssim_protocol
        specs = labelled_scorers(options.scorers, [list(records) for records in optimisers])
        for _, spec in specs:  # an unknown model or a missing extra, before any weights
            check_backbone_requirements([spec], options.context(spec))
        context = options.context(specs[0][1])
        vgg_weights = resolve_content_weights(options.vgg_checkpoint, context)  # seconds, before CLIP loads
        self.perceptual = load_perceptual(options.lpips_checkpoint, context.cache_dir, context.offline, self.device)
        defaults = StyleConfig()
        self.scorers: list[LoadedScorer] = []
        for label, spec in specs:
            member = Member(spec, create_backbone(spec, options.context(spec), self.device))
            record = {k: v for k, v in backbone_record(member, defaults).items()
                      if k not in ("weight", "threshold", "threshold_calibrated")}
            self.scorers.append(LoadedScorer(label, StyleScorer(member, member_settings(spec, defaults)["templates"],
                                                                options.patch),
                                             {"label": label, "spec": str(spec), "weights_sha256": None, **record}))
        self.scorer, self.scorer_record = self.scorers[0].style, self.scorers[0].record
        self.vgg = create_content_network(vgg_weights, self.device)
        self.gram_vgg = style_network(self.vgg)
        self.dino = load_dino(options.dino_checkpoint, context.cache_dir, context.offline, self.device)
        self.style_embeddings = StyleEmbeddings(lambda path: self._tensor(load_image(path).rgb))
        self.reference = None if options.reference_dir is None else ReferenceSet.load(
            options.reference_dir, options.reference_images, fid_checkpoint=options.fid_inception_checkpoint,
            art_checkpoint=options.art_inception_checkpoint, cache_dir=context.cache_dir, offline=context.offline,
            device=self.device, load=lambda path: self._tensor(load_image(path).rgb))
        self.setup = {
            "content_network": weights_record(str(vgg_weights.path), vgg_weights.origin),
            "lpips": {"available": self.perceptual.model is not None, "reason": self.perceptual.reason,
                      **self.perceptual.provenance},
            "protocols": {"patch_clip_score": options.patch.describe(), "ssim": ssim_record(options.ssim_protocol),
                          "clipscore": clipscore_record()},
            "dino": {"available": self.dino.model is not None, "reason": self.dino.reason, **self.dino.provenance},
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
        """Outputs each scorer optimised, and outputs for which that is unknown."""
        warnings = []
        for scorer in self.scorers:
            flagged = [t.label for t in targets if was_optimiser(scorer.record, t.optimisers)]
            if flagged:
                warnings.append(f"the scorer {scorer.label} also optimised {len(flagged)} of the {len(targets)} "
                                f"outputs (e.g. {flagged[0]}): its style metrics favour them "
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
        """Score one output: every metric, each scorer's, and each part's (see the module docstring)."""
        started = time.perf_counter()
        output, content = self._load(target)
        if self.reference is not None:
            self.reference.add((str(target.root or ""), target.label), output)
        registered = registered_metrics()
        scored = [metric for metric in registered if "scorer" in metric.needs]
        per_part = [metric for metric in scored if "style text" in metric.needs]
        scores: dict[str, dict[str, Any]] = {}
        for scorer in self.scorers:
            if target.style is not None:
                scorer.encode(target, output, content)
            networks = _WithScorer(self, scorer.style)
            values, missing = _compute(networks, target, output, content, scored)
            parts = []
            for text, weight in target.parts:
                part = replace(target, prompt=text, style=StyleSpec.single(text))
                part_values, part_missing = _compute(networks, part, output, content, per_part)
                parts.append({"text": text, "weight": weight, "metrics": part_values, "unavailable": part_missing})
            scores[scorer.label] = {"metrics": values, "unavailable": missing,
                                    "scorer_was_optimiser": was_optimiser(scorer.record, target.optimisers),
                                    "parts": parts}
        plain, plain_missing = _compute(_WithScorer(self, self.scorer), target, output, content,
                                        [metric for metric in registered if "scorer" not in metric.needs])
        first = scores[self.scorers[0].label]
        every = {**plain, **first["metrics"]}
        reasons = {**plain_missing, **first["unavailable"]}
        metrics = {metric.name: every[metric.name] for metric in registered}
        unavailable = {metric.name: reasons[metric.name] for metric in registered if metric.name in reasons}
        return EvalRow(output=target.label, content=str(target.content), prompt=target.prompt, metrics=metrics,
                       unavailable=unavailable, scorer_was_optimiser=first["scorer_was_optimiser"],
                       seconds=time.perf_counter() - started, cell=target.cell, root=target.root, scores=scores,
                       parts_from=target.parts_from if target.parts else None, settings=target.settings,
                       setting_labels=target.setting_labels)


def evaluate_targets(targets: Sequence[EvalTarget], evaluator: Evaluator, notes: Sequence[str] = (),
                     on_row: Callable[[EvalRow], None] | None = None) -> EvalReport:
    """Score every target, in order, with `evaluator` (see `Evaluator.for_targets`)."""
    warnings = list(notes) + evaluator.scorer_warnings(targets)
    for warning in warnings:
        log.warning(warning)
    rows = []
    try:
        for target in targets:
            rows.append(evaluator.evaluate(target))
            if on_row is not None:
                on_row(rows[-1])
    finally:  # what was encoded is kept, even when the evaluation stops half-way
        for scorer in evaluator.scorers:
            scorer.save()
    return EvalReport([scorer.record for scorer in evaluator.scorers], rows, warnings + evaluator.warnings,
                      evaluator.setup, evaluator.reference)
