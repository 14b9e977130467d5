"""The metric registry: every metric `clipopt eval` computes is one `Metric` entry.

An entry carries everything the rest of eval asks about a metric: its name (the column in the
table, the CSV and eval.json), which direction is better, its group, what it needs, how it is
computed, and when it is unavailable. The evaluator, the table, the CSV and the summary all read
the registry, so adding a metric is adding an entry; `contract_problems` refuses a half-wired one
(say, declared with no `compute`), which would otherwise be a column of nulls without a reason.

A `compute` takes the `Sample` being scored and returns a float, or raises `MetricUnavailable`
with the reason, which the row records (`unavailable`) and the table lists. Work that several
metrics share (the scorer's pass gives all three style metrics) runs once per sample through
`Sample.shared`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from clipstyler_opt.evaluate.names import MetricUnavailable

if TYPE_CHECKING:
    import torch

    from clipstyler_opt.evaluate.dino import DinoSimilarity
    from clipstyler_opt.evaluate.field import StyleEmbeddings
    from clipstyler_opt.evaluate.perceptual import PerceptualMetric
    from clipstyler_opt.evaluate.style import StyleScorer
    from clipstyler_opt.evaluate.targets import EvalTarget
    from clipstyler_opt.models.vgg import VGGFeatures

__all__ = [
    "DIRECTIONS",
    "GROUPS",
    "METRICS",
    "NEEDS",
    "Metric",
    "Networks",
    "Sample",
    "contract_problems",
    "metric_named",
    "metrics",
    "register_metric",
]

GROUPS = ("style", "content", "style image")
NEEDS: dict[str, str] = {
    "style text": "a style prompt (outputs guided by style images only have none)",
    "scorer": "the scorer backbone (--scorer)",
    "content image": "the content image, from the output's metadata or --content",
    "vgg19": "VGG19 weights (--vgg-checkpoint, the cache or a download)",
    "lpips": "the lpips package and AlexNet weights (--lpips-checkpoint, the cache or a download)",
    "style image": "a style image that guided the output, or --style-image",
    "dino": "timm and DINO ViT-S/16 weights (--dino-checkpoint, the Hugging Face cache or a download)",
}


class Networks(Protocol):
    """What computes need from the evaluator: the loaded networks."""

    scorer: StyleScorer
    vgg: VGGFeatures
    gram_vgg: VGGFeatures
    perceptual: PerceptualMetric
    ssim_protocol: str  # a name of protocols.SSIM_PROTOCOLS
    dino: DinoSimilarity
    style_embeddings: StyleEmbeddings

    def style_features(self, path: Any, long_side: int) -> list[torch.Tensor]:
        """A style image's Gram-layer features at `long_side`; cached."""
        ...


@dataclass
class Sample:
    """One output being scored: its tensors, its target, the networks, and shared results.

    Example:
        >>> sample = Sample(networks=None, target=None, output=None, content=None)  # type: ignore[arg-type]
        >>> sample.shared("twice", lambda: {"x": 1.0})["x"] + sample.shared("twice", lambda: {"x": 9.0})["x"]
        2.0
    """

    networks: Networks
    target: EvalTarget
    output: torch.Tensor  # (1, 3, H, W) in [0, 1]
    content: torch.Tensor  # the content image at the output's size
    _shared: dict[str, Mapping[str, float] | MetricUnavailable] = field(default_factory=dict, repr=False)

    def shared(self, key: str, compute: Callable[[], Mapping[str, float]]) -> Mapping[str, float]:
        """`compute()` once per sample and key; its MetricUnavailable is raised again to every caller."""
        if key not in self._shared:
            try:
                self._shared[key] = compute()
            except MetricUnavailable as why:
                self._shared[key] = why
        value = self._shared[key]
        if isinstance(value, MetricUnavailable):
            raise MetricUnavailable(str(value))
        return value


@dataclass(frozen=True)
class Metric:
    """One metric's entry.

    Args:
        name: the column name (a Python identifier).
        direction: "higher" or "lower" (which is better).
        group: one of GROUPS.
        needs: what it needs, keys of NEEDS.
        compute: `compute(sample) -> float`, raising MetricUnavailable with the reason.
        unavailable_when: when it is null, in a phrase (the README and `--help` speak from it).
        definition: what it computes, in one line.

    Example:
        >>> mean_brightness = Metric(
        ...     "mean_brightness", "higher", "content", ("content image",),
        ...     compute=lambda sample: float(sample.output.mean()),
        ...     unavailable_when="never", definition="mean of the output's pixels")
        >>> contract_problems(mean_brightness)
        []
    """

    name: str
    direction: str
    group: str
    needs: tuple[str, ...]
    compute: Callable[[Sample], float]
    unavailable_when: str
    definition: str


def contract_problems(metric: Metric) -> list[str]:
    """What is missing or mis-declared in `metric`'s entry; [] for a complete one.

    Example:
        >>> declared_only = Metric("sharpness", "up", "content", (), None, "", "")  # type: ignore[arg-type]
        >>> contract_problems(declared_only)  # doctest: +NORMALIZE_WHITESPACE
        ["direction must be 'higher' or 'lower', not 'up'", 'needs is empty (name what it needs: keys of NEEDS)',
         'compute is missing: the metric is declared but not wired', 'unavailable_when is empty',
         'definition is empty']
    """
    problems = []
    if not isinstance(metric.name, str) or not metric.name.isidentifier():
        problems.append(f"name must be an identifier, not {metric.name!r}")
    if metric.direction not in ("higher", "lower"):
        problems.append(f"direction must be 'higher' or 'lower', not {metric.direction!r}")
    if metric.group not in GROUPS:
        problems.append(f"group must be one of {', '.join(GROUPS)}, not {metric.group!r}")
    if not metric.needs:
        problems.append("needs is empty (name what it needs: keys of NEEDS)")
    unknown = [need for need in metric.needs if need not in NEEDS]
    if unknown:
        problems.append(f"needs names unknown requirements {', '.join(map(repr, unknown))} (keys of NEEDS)")
    if metric.compute is None:
        problems.append("compute is missing: the metric is declared but not wired")
    elif not callable(metric.compute):
        problems.append("compute is not callable (expected compute(sample) -> float)")
    else:
        try:
            inspect.signature(metric.compute).bind(None)
        except TypeError:
            problems.append("compute has the wrong signature (expected compute(sample) -> float)")
        except ValueError:  # a builtin without a signature
            pass
    for text in ("unavailable_when", "definition"):
        if not isinstance(getattr(metric, text), str) or not getattr(metric, text).strip():
            problems.append(f"{text} is empty")
    return problems


_REGISTRY: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add `metric` after the others (replacing one of the same name in place); a half-wired entry
    is refused with a ValueError naming what is missing.

    Example:
        >>> register_metric(Metric("doc_half", "higher", "content", ("content image",), None, "x", "y"))
        Traceback (most recent call last):
        ...
        ValueError: metric 'doc_half' is half-wired: compute is missing: the metric is declared but not wired
    """
    problems = contract_problems(metric)
    if problems:
        raise ValueError(f"metric {metric.name!r} is half-wired: {'; '.join(problems)}")
    _REGISTRY[metric.name] = metric
    return metric


def metrics() -> tuple[Metric, ...]:
    """Every registered metric, in column order."""
    return tuple(_REGISTRY.values())


def metric_named(name: str) -> Metric:
    """The entry called `name`; KeyError when there is none."""
    return _REGISTRY[name]


# --- the built-in metrics ---
def _style_scores(sample: Sample) -> Mapping[str, float]:
    target = sample.target
    return sample.shared("scorer", lambda: sample.networks.scorer.score(sample.output, sample.content, target.style,
                                                                        target.source_text))


def _ssim(sample: Sample) -> float:
    from clipstyler_opt.evaluate.content import ssim
    from clipstyler_opt.evaluate.protocols import wang_ssim

    if sample.networks.ssim_protocol == "wang":
        return wang_ssim(sample.output, sample.content)
    return ssim(sample.output, sample.content)


def _edge_correlation(sample: Sample) -> float:
    from clipstyler_opt.evaluate.content import edge_correlation

    return edge_correlation(sample.output, sample.content)


def _vgg_content_distance(sample: Sample) -> float:
    from clipstyler_opt.evaluate.content import vgg_content_distance
    from clipstyler_opt.method.sizing import MIN_SIDE

    if min(sample.output.shape[-2:]) < MIN_SIDE:
        raise MetricUnavailable(f"the image is under the VGG19's {MIN_SIDE} pixels a side")
    return vgg_content_distance(sample.networks.vgg, sample.output, sample.content)


def _lpips(sample: Sample) -> float:
    return sample.networks.perceptual(sample.output, sample.content)


NOT_GUIDED = "not applicable: no style image guided this output (give --style-image to compare with one)"


def _gram_distance(sample: Sample) -> float:
    import torch

    from clipstyler_opt.evaluate.gram import weighted_gram_distance
    from clipstyler_opt.method.sizing import MIN_SIDE

    target = sample.target
    if not target.style_images:
        raise MetricUnavailable(target.style_images_missing or NOT_GUIDED)
    if min(sample.output.shape[-2:]) < MIN_SIDE:
        raise MetricUnavailable(f"the image is under the VGG19's {MIN_SIDE} pixels a side")
    long_side = max(sample.output.shape[-2:])
    styles = [(sample.networks.style_features(image.path, long_side), image.weight) for image in target.style_images]
    with torch.no_grad():
        return weighted_gram_distance(sample.networks.gram_vgg(sample.output), styles)


def _dino_content_similarity(sample: Sample) -> float:
    return sample.networks.dino(sample.output, sample.content)


def _clip_style_similarity(sample: Sample) -> float:
    import torch

    target = sample.target
    if not target.style_images:
        raise MetricUnavailable(target.style_images_missing or NOT_GUIDED)
    embed, backbone = sample.networks.style_embeddings, sample.networks.scorer.member.backbone
    output = embed.embed(backbone, sample.output)
    weights = [abs(image.weight) for image in target.style_images]
    if not sum(weights) > 0:
        raise MetricUnavailable("every style image has weight 0")
    cosines = [float((output * embed(backbone, image.path)).sum()) for image in target.style_images]
    return float(torch.tensor(cosines, dtype=torch.float64) @ torch.tensor(weights, dtype=torch.float64)
                 / sum(weights))


def _scored(name: str) -> Callable[[Sample], float]:
    def compute(sample: Sample) -> float:
        return _style_scores(sample)[name]

    compute.__name__ = f"_{name}"
    return compute


_NO_STYLE_TEXT = "the output was guided by style images only (no style text)"
for _metric in (
    Metric("clip_score", "higher", "style", ("scorer", "style text"), _scored("clip_score"), _NO_STYLE_TEXT,
           "cos(E_I(view(output)), T(prompt))"),
    Metric("clipscore", "higher", "style", ("scorer", "style text"), _scored("clipscore"), _NO_STYLE_TEXT,
           "Hessel et al.'s CLIPScore: 2.5 * max(cos(E_I(view(output)), T_1('A photo depicts ' + prompt)), 0)"),
    Metric("directional_similarity", "higher", "style", ("scorer", "style text", "content image"),
           _scored("directional_similarity"), _NO_STYLE_TEXT,
           "cos(n(n(E_I(output)) - n(E_I(content))), n(T(prompt) - T(source text))) = 1 - L_dir"),
    Metric("patch_clip_score", "higher", "style", ("scorer", "style text"), _scored("patch_clip_score"),
           _NO_STYLE_TEXT, "mean clip_score over the patch protocol's (--patch-protocol) plain random crops"),
    Metric("ssim", "higher", "content", ("content image",), _ssim,
           "the image is 5 px or less a side (default protocol), or under 11 px after the wang protocol's "
           "downsampling", "mean SSIM (11x11 Gaussian window) against the content image, by --ssim-protocol"),
    Metric("vgg_content_distance", "lower", "content", ("content image", "vgg19"), _vgg_content_distance,
           "the image is under VGG19's minimum side", "sum of MSE of VGG19 relu4_2 and relu5_2"),
    Metric("lpips", "lower", "content", ("content image", "lpips"), _lpips,
           "no lpips package or AlexNet weights, or an image under 32 px a side", "LPIPS-AlexNet v0.1"),
    Metric("edge_correlation", "higher", "content", ("content image",), _edge_correlation,
           "an image without edges (flat)", "Pearson r of the Sobel magnitudes of the luminances"),
    Metric("gram_distance", "lower", "style image", ("style image", "vgg19"), _gram_distance,
           "no style image guided the output and none is given; an image under VGG19's minimum side",
           "mean over relu1_1..relu5_1 of the squared Frobenius distance of normalised Gram matrices"),
    Metric("dino_content_similarity", "higher", "content", ("content image", "dino"), _dino_content_similarity,
           "no timm or DINO weights", "cos of the CLS tokens of timm's vit_small_patch16_224.dino, output vs content"),
    Metric("clip_style_similarity", "higher", "style image", ("style image", "scorer"), _clip_style_similarity,
           "no style image guided the output and none is given",
           "weighted mean over style images of cos(E_I(view(output)), E_I(view(style image)))"),
):
    register_metric(_metric)

METRICS = tuple(metric.name for metric in metrics())  # the built-in metrics, in column order
DIRECTIONS: dict[str, str] = {metric.name: metric.direction for metric in metrics()}
