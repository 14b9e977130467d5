"""Loading the scorers of `clipopt analyze`: backbone specs as for `clipopt eval --scorer`, each
with its template set, its weights' SHA-256 (the embedding cache's key) and whether it optimised
any of the outputs it scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from clipstyler_opt.core.backbone_spec import BackboneSpec, LoadContext
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ClipoptError
from clipstyler_opt.evaluate.embeddings import ScorerEmbeddings
from clipstyler_opt.evaluate.scorer import labelled_scorers, optimiser_records, was_optimiser
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


def scorer_specs(requested: Sequence[str], folder: ResultFolder) -> list[tuple[str, BackboneSpec]]:
    """(label, spec) per scorer, as `clipopt eval --scorer` names them (`labelled_scorers`); with
    none, eval's default rule over what optimised the folder's outputs."""
    return labelled_scorers(requested, _optimisers(folder))


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

