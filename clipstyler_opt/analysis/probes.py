"""The probes of `clipopt analyze`, on embeddings already computed (one scorer at a time).

With n(v) = v/‖v‖, an output's image direction is ΔI = n(E_I(output)) − n(E_I(content)), and a
style text's direction ΔT is the template-averaged text direction the loss uses (from the source
text to the style text, unit length). A probe returns a dict of results, every number with its n
and what it was computed from, or `Skipped` with the reason; never NaN.

1. `gap_probe`: the modality gap and the cones of the folder's images and style texts.
2. `response_probe`: along a numeric setting a sweep varied, cos(ΔI, ΔT_k) and ΔI·ΔT_k for each
   style text k of the prompt, fitted linear against power law (see `fits`). Outputs are grouped
   by their declared prompt, so the cells of a mix sweep (each running the prompt reweighted)
   form one curve along `mix`; along `weights` each part's curve runs along its own weight. When
   the sweep varied other settings too (a backbone, λ_content), each of their combinations is a
   series with its own curve, named `TEXT [backbone=CLIP]`.
3. `text_image_probe`: for every pair of prompts (a, b) over the same content image and cell,
   cos(ΔT_a, ΔT_b) against cos(ΔI_a, ΔI_b); Spearman's ρ with an interval over content images.
4. `recognition_probe`: each output's style texts ranked by cos(ΔI, ΔT); top-1/top-5 against chance.
5. `agreement_probe`: Kendall's τ between scorers over the outputs' scores.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipstyler_opt.analysis.fits import Skipped, response_curve
from clipstyler_opt.analysis.geometry import modality_gap
from clipstyler_opt.analysis.ranks import kendall_tau_b, spearman_rho
from clipstyler_opt.analysis.recognition import recognition
from clipstyler_opt.core.styles import WEIGHTS_SETTING
from clipstyler_opt.stats.bootstrap import cluster_bootstrap

__all__ = ["DEGENERATE", "Observation", "TextSpace", "agreement_probe", "gap_probe", "recognition_probe",
           "response_probe", "text_image_probe"]

DEGENERATE = 1e-8  # |ΔI| below this: the output equals its content, and has no direction


@dataclass(frozen=True)
class Observation:
    """One output under one scorer: its embedding, its content image's, and how it was made."""

    output: str  # the output's id (its path relative to the folder)
    content: str  # the content image's id: the cluster for intervals
    prompt: str
    parts: tuple[tuple[str, float], ...]  # the prompt's style texts and weights (a mix sweep keeps weight 0)
    image: np.ndarray  # n(E_I(output))
    content_image: np.ndarray  # n(E_I(content))
    cell: str = ""
    settings: Mapping[str, float] = field(default_factory=dict)  # the numeric settings its cell varied
    declared: str = ""  # the prompt as declared, when a mix sweep's cell reweighted it (`prompt` is what ran)
    reweighted: bool = False  # its cell set the parts' weights (`--vary mix` / `--vary weights`)
    labels: Mapping[str, str] = field(default_factory=dict)  # every setting its cell varied (seeds left out), labelled

    def series(self, setting: str) -> str:
        """The cell's other varied settings, `backbone=CLIP, lambda_content=50`: a response curve
        along `setting` is fitted within one series, never across (say) two optimiser backbones."""
        return ", ".join(f"{key}={label}" for key, label in sorted(self.labels.items()) if key != setting)

    @property
    def declared_prompt(self) -> str:
        return self.declared or self.prompt

    @property
    def delta(self) -> np.ndarray:
        return np.asarray(self.image, dtype=np.float64) - np.asarray(self.content_image, dtype=np.float64)

    @property
    def degenerate(self) -> bool:
        return float(np.linalg.norm(self.delta)) < DEGENERATE

    def largest_parts(self) -> set[str]:
        top = max(weight for _, weight in self.parts)
        return {text for text, weight in self.parts if weight == top}


@dataclass(frozen=True)
class TextSpace:
    """A scorer's text side: n(T(text)) for each style text, and the directions ΔT of every style
    text and every whole prompt (a multi-style prompt's direction as its fusion defines it)."""

    embeddings: Mapping[str, np.ndarray]
    part_directions: Mapping[str, np.ndarray]
    prompt_directions: Mapping[str, np.ndarray]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _usable(observations: Sequence[Observation]) -> tuple[list[Observation], int]:
    kept = [o for o in observations if not o.degenerate]
    return kept, len(observations) - len(kept)


def gap_probe(observations: Sequence[Observation], texts: TextSpace) -> dict[str, Any] | Skipped:
    """Modality gap and cones over the folder's images (outputs and contents) and style texts.

    Example:
        >>> obs = [Observation("o.png", "c.png", "red", (("red", 1.0),), np.array([1.0, 0.0]), np.array([0.0, 1.0]))]
        >>> space = TextSpace({"red": np.array([0.0, 1.0])}, {}, {})
        >>> round(gap_probe(obs, space)["gap"], 4)
        0.7071
    """
    if not observations or not texts.embeddings:
        return Skipped("no outputs or no style texts")
    images = {o.output: o.image for o in observations} | {f"content:{o.content}": o.content_image
                                                           for o in observations}
    result = modality_gap(np.stack(list(images.values())), np.stack(list(texts.embeddings.values())))
    result["computed_from"] = "outputs and content images against the prompts' style texts"
    return result


def response_probe(observations: Sequence[Observation], texts: TextSpace, setting: str, *,
                   seed: int = 0) -> dict[str, Any] | Skipped:
    """Response curves of the image along `setting`, per style text (see module docstring).

    Example:
        >>> obs = [Observation(f"o{i}", "c", "red", (("red", 1.0),), np.array([x, 1.0 - x]), np.array([0.0, 1.0]),
        ...                    settings={"style_strength": x}) for i, x in enumerate([0.25, 0.5, 0.75, 1.0])]
        >>> space = TextSpace({}, {"red": np.array([1.0, 0.0])}, {})
        >>> curves = response_probe(obs, space, "style_strength")
        >>> curves["red"]["along"]["linear"]["r2"] > 0.999
        True
    """
    along_own_weight = setting == WEIGHTS_SETTING

    def x_of(o: Observation, text: str) -> float:
        return dict(o.parts)[text] if along_own_weight else float(o.settings[setting])

    chosen = [o for o in observations if (o.reweighted if along_own_weight else setting in o.settings)]
    kept, degenerate = _usable(chosen)
    levels = {x_of(o, text) for o in kept for text, _ in o.parts}
    if len(levels) < 2:
        return Skipped(f"{setting} takes {len(levels)} value(s) among the usable outputs; a curve needs 2 or more")
    result: dict[str, Any] = {"setting": setting, "degenerate_outputs_left_out": degenerate}
    declared_with = defaultdict(set)  # style text -> the declared prompts it is a part of
    for o in kept:
        for text, _ in o.parts:
            declared_with[text].add(o.declared_prompt)
    series = sorted({o.series(setting) for o in kept})
    for text, declared in sorted((t, d) for t, prompts in declared_with.items() for d in sorted(prompts)):
        if text not in texts.part_directions:
            continue
        direction = np.asarray(texts.part_directions[text], dtype=np.float64)
        for one in series:
            cos: dict[str, list[tuple[float, float]]] = defaultdict(list)
            along: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for o in kept:
                if o.declared_prompt == declared and text in dict(o.parts) and o.series(setting) == one:
                    x = x_of(o, text)
                    cos[o.content].append((x, _cos(o.delta, direction)))
                    along[o.content].append((x, float(o.delta @ direction)))
            if cos:  # named by the text; by text and prompt when the text is a part of several prompts
                name = text if len(declared_with[text]) == 1 else f"{text} (in {declared})"
                name += f" [{one}]" if one else ""
                result[name] = {"cos": response_curve(list(cos.values()), seed=seed),
                                "along": response_curve(list(along.values()), seed=seed)}
    return result


def text_image_probe(observations: Sequence[Observation], texts: TextSpace, *, seed: int = 0
                     ) -> dict[str, Any] | Skipped:
    """Does text-side similarity of two prompts predict image-side similarity of their outputs?

    Pairs are formed within one content image and one cell; ρ's interval resamples content images.
    """
    kept, degenerate = _usable(observations)
    groups: dict[tuple[str, str], list[Observation]] = defaultdict(list)
    for o in kept:
        if o.prompt in texts.prompt_directions:
            groups[(o.content, o.cell)].append(o)
    pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (content, _), members in groups.items():
        for a, b in itertools.combinations(members, 2):
            if a.prompt != b.prompt:
                pairs[content].append((_cos(texts.prompt_directions[a.prompt], texts.prompt_directions[b.prompt]),
                                       _cos(a.delta, b.delta)))
    everything = [p for group in pairs.values() for p in group]
    if len(everything) < 3:
        return Skipped(f"{len(everything)} pair(s) of different prompts over one content image; ρ needs 3 or more")
    if len({round(x, 12) for x, _ in everything}) < 2:
        return Skipped("every pair of prompts has the same text-side similarity (two prompts give one pair): "
                       "ρ is undefined; compare 3 or more prompts")

    def rho(clusters: list[list[tuple[float, float]]]) -> float | None:
        points = [p for c in clusters for p in c]
        return spearman_rho([x for x, _ in points], [y for _, y in points]) if len(points) >= 3 else None

    interval = cluster_bootstrap(list(pairs.values()), rho, seed=seed)
    return {"pairs": [{"text_cos": x, "image_cos": y} for x, y in everything], "n_pairs": len(everything),
            "spearman_rho": interval.to_dict() if interval else None, "degenerate_outputs_left_out": degenerate,
            "computed_from": "pairs of prompts over the same content image and cell"}


def recognition_probe(observations: Sequence[Observation], texts: TextSpace) -> dict[str, Any] | Skipped:
    """Zero-shot recognition of each output's style among the folder's style texts.

    Example:
        >>> obs = [Observation(t, "c", t, ((t, 1.0),), np.array(v), np.zeros(2))
        ...        for t, v in (("red", [1.0, 0.0]), ("blue", [0.0, 1.0]))]
        >>> space = TextSpace({}, {"red": np.array([1.0, 0.0]), "blue": np.array([0.0, 1.0])}, {})
        >>> recognition_probe(obs, space)["top1"]
        1.0
    """
    kept, degenerate = _usable(observations)
    candidates = sorted({text for o in kept for text, _ in o.parts if text in texts.part_directions})
    if len(candidates) < 2:
        return Skipped(f"{len(candidates)} style text(s) in the folder; recognition needs 2 or more")
    directions = np.stack([np.asarray(texts.part_directions[t], dtype=np.float64) for t in candidates])
    deltas = np.stack([o.delta for o in kept])
    similarity = (deltas / np.linalg.norm(deltas, axis=1, keepdims=True)) @ directions.T
    truths = [{candidates.index(t) for t in o.largest_parts() if t in candidates} for o in kept]
    result = recognition(similarity, truths)
    result.update({"labels": candidates, "degenerate_outputs_left_out": degenerate,
                   "computed_from": "cos(ΔI, ΔT) of each output against every style text of the folder"})
    return result


def agreement_probe(scores: Mapping[str, Mapping[str, float]]) -> dict[str, Any] | Skipped:
    """Kendall's τ-b between every pair of scorers, over the outputs both scored.

    Args:
        scores: scorer -> {output id: score}.

    Example:
        >>> agreement_probe({"a": {"x": 0.1, "y": 0.3}, "b": {"x": 0.2, "y": 0.9}})["pairs"][0]["tau"]
        1.0
    """
    if len(scores) < 2:
        return Skipped(f"{len(scores)} scorer(s); agreement needs 2 or more")
    pairs = []
    for first, second in itertools.combinations(sorted(scores), 2):
        common = sorted(set(scores[first]) & set(scores[second]))
        tau = kendall_tau_b([scores[first][o] for o in common], [scores[second][o] for o in common])
        pairs.append({"scorers": [first, second], "tau": tau, "n": len(common)} if tau is not None else
                     {"scorers": [first, second], "skipped": "fewer than 2 outputs, or a constant score",
                      "n": len(common)})
    return {"pairs": pairs}
