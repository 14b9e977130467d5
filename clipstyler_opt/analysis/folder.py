"""`clipopt analyze DIR`: every probe for every scorer over a result folder, into `analysis.json`
and `figures/`.

The folder is read as `clipopt report` reads it (manifest, sidecars, cells). For each scorer the
outputs become `Observation`s: ΔI from the scorer's image embeddings, the prompt's style texts
(parts), the cell and its numeric settings; the texts become a `TextSpace`. Each probe then runs or
says why it was skipped.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipstyler_opt.analysis.fits import Skipped
from clipstyler_opt.analysis.humans import MetricValues, StudyStrengths, human_probe
from clipstyler_opt.analysis.probes import (
    Observation,
    TextSpace,
    agreement_probe,
    gap_probe,
    recognition_probe,
    response_probe,
    text_image_probe,
)
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError, OutputError
from clipstyler_opt.core.files import ReadSet, write_bytes
from clipstyler_opt.core.replicates import REPLICATE_SETTINGS
from clipstyler_opt.core.styles import WEIGHTS_SETTING, StyleSpec
from clipstyler_opt.evaluate.embeddings import ScorerEmbeddings
from clipstyler_opt.report.load import ResultFolder, RunOutput, load_results

__all__ = ["ANALYSIS_NAME", "SCHEMA_VERSION", "AnalysisResult", "analyze_folder",
           "check_destinations", "folder_reads", "metric_values", "numeric_settings"]

ANALYSIS_NAME = "analysis.json"
SCHEMA_VERSION = 1
Progress = Callable[[str], None]


@dataclass(frozen=True)
class AnalysisResult:
    summary: dict[str, Any]
    path: Path


def _number(value: Any) -> float:
    """A cell value as a finite number, else NaN (booleans, texts, and numbers too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    try:
        number = float(value)
    except OverflowError:
        return math.nan
    return number if math.isfinite(number) else math.nan


def numeric_settings(folder: ResultFolder) -> list[str]:
    """The settings the folder's cells vary that take numbers (booleans, texts and seeds are left
    out: seed cells are replicates). A `weights` sweep counts as one: each part's curve runs along
    its own weight."""
    values: dict[str, set[float]] = {}
    weight_sets: set[tuple[float, ...]] = set()
    for cell in folder.cells:
        for key, value in cell.values:
            if key == WEIGHTS_SETTING:
                weight_sets.update(o.weights for o in folder.outputs if o.cell == cell and o.weights is not None)
            elif key not in REPLICATE_SETTINGS:
                values.setdefault(key, set()).add(_number(value))
    found = [k for k, v in values.items() if len(v) >= 2 and not any(math.isnan(x) for x in v)]
    return sorted(found + ([WEIGHTS_SETTING] if len(weight_sets) >= 2 else []))


def check_destinations(root: Path, figures: bool) -> None:
    """Before any work: what analyze writes must be writable inside `root`, never through a link
    (a linked `figures/` or cache folder would send files elsewhere)."""
    from clipstyler_opt.evaluate.embeddings import CACHE_FOLDER
    from clipstyler_opt.figures.export import check_figures_folder

    path = root / CACHE_FOLDER
    if path.is_symlink():
        raise ConfigError(f"{path}: is a symbolic link; analyze writes only inside {root}, never through a link")
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is not a folder; cannot write there")
    if figures:
        check_figures_folder(root)
    if (root / ANALYSIS_NAME).is_dir():
        raise OutputError(f"{root / ANALYSIS_NAME}: is a folder; cannot write the analysis there")


def _observations(outputs: Sequence[RunOutput], scorer: ScorerEmbeddings, settings: Sequence[str]
                  ) -> tuple[list[Observation], list[str]]:
    observations, notes = [], []
    for output in outputs:
        try:
            declared = StyleSpec.parse(output.prompt)
            # A mix sweep's cell reweights the declared parts; a part of weight 0 stays, with weight 0,
            # so its curve has every level. The prompt the output was made with is the reweighted one.
            spec = declared if output.weights is None else declared.reweighted(output.weights)
        except ConfigError:
            notes.append(f"{output.relative}: its prompt is not a style spec (or does not fit its weights); left out")
            continue
        weights = declared.weights if output.weights is None else output.weights
        cell_values = dict(output.cell.values)
        numeric = {k: float(cell_values[k]) for k in settings if k in cell_values and k != WEIGHTS_SETTING}
        observations.append(Observation(
            output.relative, str(output.content), str(spec),
            tuple((text, float(w)) for text, w in zip(declared.texts, weights, strict=True)),
            scorer.image(output.image), scorer.image(output.content), output.cell.id, numeric,
            declared=str(declared), reweighted=output.weights is not None,
            labels={key: label for key, label in output.cell.labelled().items() if key not in REPLICATE_SETTINGS}))
    return observations, notes


def _text_space(observations: Sequence[Observation], scorer: ScorerEmbeddings, source_text: str) -> TextSpace:
    texts = sorted({text for o in observations for text, _ in o.parts})
    prompts = sorted({o.prompt for o in observations})
    return TextSpace({t: scorer.text(t) for t in texts},
                     {t: scorer.direction(StyleSpec.single(t), source_text) for t in texts},
                     {p: scorer.direction(StyleSpec.parse(p), source_text) for p in prompts})


def _plain(value: Any) -> Any:
    if isinstance(value, Skipped):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _own_score(observations: Sequence[Observation], texts: TextSpace) -> dict[str, float]:
    """cos(ΔI, ΔT_prompt) per output: how well each output follows its own prompt, for agreement."""
    scores = {}
    for o in observations:
        if not o.degenerate and o.prompt in texts.prompt_directions:
            direction = texts.prompt_directions[o.prompt]
            scores[o.output] = float(o.delta @ direction / (np.linalg.norm(o.delta) * np.linalg.norm(direction)))
    return scores


def analyze_folder(root: Path, scorers: Sequence[ScorerEmbeddings], *, progress: Progress | None = None,
                   source_text: str | None = None, optimised: Mapping[str, int] | None = None,
                   study: StudyStrengths | None = None) -> AnalysisResult:
    """Run every probe for every scorer over the result folder `root`; write `root/analysis.json`.

    Args:
        scorers: loaded scorers with their caches (see `ScorerEmbeddings`).
        source_text: the text the directions start from (default: the config's, "a Photo").
        optimised: per scorer, how many of the outputs it also optimised (it may score them too kindly).
        study: the people's Bradley–Terry strengths (`read_study`), for probe 6.
    """
    folder = load_results(root)
    source = source_text or StyleConfig().source_text
    settings = numeric_settings(folder)
    say = progress or (lambda _message: None)
    result: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "folder": root.name,
                              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                              "n_outputs": len(folder.outputs), "numeric_settings": settings,
                              "replicate_settings": list(REPLICATE_SETTINGS),
                              "source_text": source, "scorers": {}, "notes": list(folder.notes)}
    own_scores: dict[str, dict[str, float]] = {}
    for scorer in scorers:
        say(f"{scorer.name}: embedding {len(folder.outputs)} outputs and their content images")
        observations, notes = _observations(folder.outputs, scorer, settings)
        texts = _text_space(observations, scorer, source)
        probes: dict[str, Any] = {
            "modality_gap": gap_probe(observations, texts),
            "response_curves": {s: response_probe(observations, texts, s) for s in settings}
            or Skipped("no numeric setting was varied (sweep one, e.g. --vary style_strength=0.25,0.5,0.75,1)"),
            "text_vs_image": text_image_probe(observations, texts),
            "recognition": recognition_probe(observations, texts),
        }
        own_scores[scorer.name] = _own_score(observations, texts)
        result["scorers"][scorer.name] = {"spec": scorer.spec_text, "weights_sha256": scorer.weights_sha256,
                                          "templates": scorer.templates,
                                          "images_encoded": scorer.encoded, "probes": probes, "notes": notes,
                                          "optimised_outputs": (optimised or {}).get(scorer.name)}
        scorer.save()
    result["agreement"] = agreement_probe(own_scores)
    result["humans"] = (human_probe(study, metric_values(folder, own_scores, study)) if study is not None else
                        Skipped("no study given (pass --study with the JSON of clipopt study analyze)"))
    summary = _plain(result)
    path = root / ANALYSIS_NAME
    blob = (json.dumps(summary, indent=1, allow_nan=False) + "\n").encode()
    write_bytes(path, blob, reads=folder_reads(folder, study))
    return AnalysisResult(summary, path)


def metric_values(folder: ResultFolder, own_scores: Mapping[str, Mapping[str, float]],
                  study: StudyStrengths | None = None) -> list[MetricValues]:
    """Every metric of the folder, per output: each `eval.json` metric, then each scorer's own
    cos(ΔI, ΔT_prompt) (named "SCORER: direction"); each output under its cell as `study` names
    cells (pooled over seeds, unless the study names seed cells)."""
    raw = {cell.id for cell in folder.cells}
    named = {cell for strengths in study.questions.values() for cell in strengths} if study is not None else set()
    pooled = bool(named) and not named <= raw

    def cell_of(output: RunOutput) -> str:
        return output.cell.pooled().id if pooled else output.cell.id

    found: list[MetricValues] = []
    evaluation = folder.evaluation
    if evaluation is not None:
        for metric in evaluation.metrics:
            points = [(cell_of(o), str(o.content), value) for o in folder.outputs
                      if (value := evaluation.value(o, metric)) is not None]
            if points:
                found.append(MetricValues(metric, evaluation.directions.get(metric) != "lower", points))
    by_output = {o.relative: o for o in folder.outputs}
    for name, scores in own_scores.items():
        points = [(cell_of(by_output[rel]), str(by_output[rel].content), score) for rel, score in scores.items()
                  if rel in by_output]
        if points:
            found.append(MetricValues(f"{name}: direction", True, points))
    return found


def folder_reads(folder: ResultFolder, study: StudyStrengths | None = None) -> ReadSet:
    """Every file an analysis reads: what it writes may never be one of them."""
    return ReadSet([*folder.input_files(), *([study.path] if study is not None and study.path else [])])
