"""Which backbone scores the style metrics: never, by default, one that optimised the output.

A backbone scores its own optimiser's work too kindly: the output was pushed to please exactly
that model. So the default scorer is ViT-B-16/openai, or ViT-B-32-quickgelu/openai for outputs
that ViT-B-16/openai optimised (for a mix, whichever optimised fewer of them). A scorer that
also optimised an output is used with a warning, and that output's row says
`scorer_was_optimiser: true`.

Two backbones count as the same when both weights files are known and have the same SHA-256;
when either is unknown, when their architecture (ignoring a `-quickgelu` suffix: same weights,
other activation) and pretrained tag match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from clipstyler_opt.core.backbone_spec import BackboneSpec
from clipstyler_opt.core.errors import ConfigError

__all__ = ["DEFAULT_SCORERS", "choose_scorer", "optimiser_records", "same_backbone", "was_optimiser"]

DEFAULT_SCORERS = ("ViT-B-16/openai", "ViT-B-32-quickgelu/openai")
Record = Mapping[str, Any]


def optimiser_records(record: Mapping[str, Any]) -> tuple[Record, ...]:
    """The backbones that optimised an output, from its provenance record (`backbones`, or the
    single `backbone` of older records)."""
    backbones = record.get("backbones")
    if backbones is None and isinstance(record.get("backbone"), dict):
        backbones = [record["backbone"]]
    return tuple(b for b in backbones or () if isinstance(b, dict))


def _name_key(part: Record) -> tuple[str, str | None] | None:
    model = part.get("model") or part.get("source")
    pretrained = part.get("pretrained")
    if not model and part.get("spec"):
        try:
            spec = BackboneSpec.parse(str(part["spec"]))
        except ConfigError:
            return None
        model, pretrained = spec.source, spec.pretrained
    if not model:
        return None
    return str(model).lower().removesuffix("-quickgelu"), (str(pretrained).lower() if pretrained else None)


def same_backbone(a: Record, b: Record) -> bool:
    """Same weights file (SHA-256) when both are known, else same architecture and pretrained tag."""
    if a.get("weights_sha256") and b.get("weights_sha256"):
        return a["weights_sha256"] == b["weights_sha256"]
    key = _name_key(a)
    return key is not None and key == _name_key(b)


def _spec_record(spec: BackboneSpec) -> dict[str, Any]:
    return {"model": spec.source, "pretrained": spec.pretrained}


def choose_scorer(requested: str | None, optimisers: Iterable[Sequence[Record]]) -> BackboneSpec:
    """The requested spec, else the default that optimised the fewest of the outputs (the first on
    a tie), so one scorer serves them all; `was_optimiser` flags any it did optimise."""
    if requested is not None:
        return BackboneSpec.parse(requested)
    per_output = [list(records) for records in optimisers]
    defaults = [BackboneSpec.parse(text) for text in DEFAULT_SCORERS]

    def optimised(spec: BackboneSpec) -> int:
        return sum(any(same_backbone(_spec_record(spec), r) for r in records) for records in per_output)

    return min(defaults, key=optimised)


def was_optimiser(scorer: Record, optimisers: Sequence[Record] | None) -> bool | None:
    """Whether the scorer (its provenance record) optimised an output; None when unknown."""
    if optimisers is None:
        return None
    return any(same_backbone(scorer, record) for record in optimisers)
