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
from clipstyler_opt.core.labels import setting_labels, split_label
from clipstyler_opt.core.labels import short_label as value_label

__all__ = ["DEFAULT_SCORERS", "choose_scorer", "labelled_scorers", "optimiser_records", "same_backbone",
           "short_label", "was_optimiser"]

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


def short_label(spec: BackboneSpec) -> str:
    """A scorer's name in files, figures and tables: the backbone short form of core/labels.py
    (MODEL/TAG, or MODEL (weights file name) for an explicit file; never a folder path).

    Example:
        >>> short_label(BackboneSpec.parse("ViT-B-32/openai:file=/data/w/clip.safetensors"))
        'ViT-B-32 (clip)'
        >>> short_label(BackboneSpec.parse("ViT-B-16-SigLIP/webli"))
        'ViT-B-16-SigLIP/webli'
    """
    return value_label(str(spec), "backbone")


def labelled_scorers(requested: Sequence[str], optimisers: Iterable[Sequence[Record]] = ()
                     ) -> list[tuple[str, BackboneSpec]]:
    """(label, spec) per `--scorer` text, parsed before anything loads; with none, the default
    rule (`choose_scorer`) over what optimised the outputs. A scorer may be named `LABEL=SPEC`
    (LABEL: letters, digits, '-', '_', '.'); otherwise its label is `short_label(spec)`. Labels
    follow core/labels.py: short forms that collide are numbered (`-2`, `-3`); the same spec twice,
    or one label for two specs, is refused.

    Raises:
        ConfigError: a spec that does not parse, one given twice, or a label given to two specs.

    Example:
        >>> [label for label, _ in labelled_scorers(["CLIP=ViT-B-32/openai", "ViT-B-16/openai"])]
        ['CLIP', 'ViT-B-16/openai']
        >>> [label for label, _ in labelled_scorers(["m:file=/a/w.pt", "m:file=/b/w.pt"])]
        ['m (w)', 'm (w)-2']
    """
    chosen: list[tuple[str | None, BackboneSpec]] = []
    for text in requested:
        label, spec_text = split_label(text)
        chosen.append((label, BackboneSpec.parse(spec_text)))
    if not chosen:
        chosen = [(None, choose_scorer(None, optimisers))]
    if len({str(spec) for _, spec in chosen}) != len(chosen):
        raise ConfigError("the same --scorer is given twice")
    labels = setting_labels("backbone", [(str(spec), label) for label, spec in chosen])
    return list(zip(labels, (spec for _, spec in chosen), strict=True))
