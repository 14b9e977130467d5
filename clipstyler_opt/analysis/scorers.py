"""Loading the scorers of `clipopt analyze`: backbone specs as for `clipopt eval --scorer`, each
with its template set, its weights' SHA-256 (the embedding cache's key) and whether it optimised
any of the outputs it scores."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from clipstyler_opt.analysis.embeddings import ScorerEmbeddings
from clipstyler_opt.core.backbone_spec import BackboneSpec, LoadContext
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ClipoptError, ConfigError
from clipstyler_opt.evaluate.scorer import choose_scorer, optimiser_records, was_optimiser
from clipstyler_opt.method.ensemble import Member, member_settings
from clipstyler_opt.models import create_backbone
from clipstyler_opt.report.load import ResultFolder
from clipstyler_opt.run.record import backbone_record, read_record

__all__ = ["load_scorers", "scorer_specs"]


def _optimisers(folder: ResultFolder) -> list[tuple[dict[str, Any], ...]]:
    found = []
    for output in folder.outputs:
        try:
            record = read_record(output.image)[0]
        except ClipoptError:  # a missing or damaged record: the optimiser is unknown for that output
            continue
        found.append(tuple(dict(r) for r in optimiser_records(record)))
    return found


_LABEL = re.compile(r"^(?P<label>[A-Za-z0-9_.-]+)=(?P<spec>.+)$")


def short_label(spec: BackboneSpec) -> str:
    """A scorer's name in files, figures and tables: MODEL/TAG, or MODEL (weights file name) for
    an explicit file; never a folder path.

    Example:
        >>> short_label(BackboneSpec.parse("ViT-B-32/openai:file=/data/w/clip.safetensors"))
        'ViT-B-32 (clip)'
    """
    if spec.file is not None:
        return f"{spec.source} ({Path(spec.file).stem})"
    return f"{spec.source}/{spec.pretrained}" if spec.pretrained else spec.source


def scorer_specs(requested: Sequence[str], folder: ResultFolder) -> list[tuple[str, BackboneSpec]]:
    """(label, spec) per scorer, parsed before anything loads; else eval's default rule. A scorer
    may be named `LABEL=SPEC` (LABEL: letters, digits, '-', '_', '.'); labels that collide are
    numbered."""
    chosen = []
    for text in requested:
        match = _LABEL.match(text)
        label, spec_text = (match["label"], match["spec"]) if match else (None, text)
        spec = BackboneSpec.parse(spec_text)
        chosen.append((label or short_label(spec), spec))
    if not chosen:
        spec = choose_scorer(None, _optimisers(folder))
        chosen = [(short_label(spec), spec)]
    if len({str(spec) for _, spec in chosen}) != len(chosen):
        raise ConfigError("the same --scorer is given twice")
    seen: dict[str, int] = {}
    labelled = []
    for label, spec in chosen:
        seen[label] = seen.get(label, 0) + 1
        labelled.append((label if seen[label] == 1 else f"{label}-{seen[label]}", spec))
    return labelled


def load_scorers(specs: Sequence[tuple[str, BackboneSpec]], context: LoadContext, device: torch.device,
                 folder: ResultFolder,
                 *, cache: bool = True) -> tuple[list[ScorerEmbeddings], dict[str, int]]:
    """The loaded scorers, and per scorer how many outputs it also optimised."""
    defaults = StyleConfig()
    optimisers = _optimisers(folder)
    scorers, optimised = [], {}
    for label, spec in specs:
        member = Member(spec, create_backbone(spec, context, device))
        record = backbone_record(member, defaults)
        scorers.append(ScorerEmbeddings(label, member, member_settings(spec, defaults)["templates"],
                                        record.get("weights_sha256"), folder.root if cache else None))
        optimised[label] = sum(bool(was_optimiser(record, o)) for o in optimisers)
    return scorers, optimised

