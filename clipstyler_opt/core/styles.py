"""Multi-style prompts: weighted style texts and style images, and the arithmetic that fuses them.

Style spec grammar (parsed before any weights load)::

    SPEC := PART (" | " PART)...          parts are separated by an unescaped "|"
    PART := TEXT [":" NUMBER]             NUMBER: the part's weight (default 1)

- ``\\:``, ``\\|`` and ``\\\\`` stand for a literal ``:``, ``|`` and backslash; any other
  backslash is an error.
- Only the last unescaped ``:`` of a part can start a weight. When what follows it is a number
  (``oil painting:0.7``, ``blurry:-0.5``) it is the weight; when it contains a space
  (``photo: 1920s style``) the colon is part of the text, so ordinary prompts keep working;
  anything else (``blurry:abc``, ``oil:0.5x``) is refused as a mistyped weight, with a hint
  to write ``\\:`` for a literal colon.
- Every part needs a text; weights must be finite and non-zero; two parts may not have the
  same text (compared ignoring case and repeated spaces, as CLIP's tokenizer does); the weights
  may not sum to 0, because they are divided by the absolute value of their sum.

``str(spec)`` is a canonical form (escaped texts, ``" | "`` between parts, weight 1 omitted) that
parses back to an equal spec. A spec with one part of weight 1 is exactly a plain prompt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from clipstyler_opt.core.errors import ConfigError, InputImageError

__all__ = [
    "FUSION_MODES",
    "MIN_WEIGHT_SUM",
    "MIX_SETTING",
    "WEIGHTS_SETTING",
    "StyleImage",
    "StylePart",
    "StyleSpec",
    "fuse_directions",
    "normalised_weights",
]

MIN_WEIGHT_SUM = 1e-6
MIX_SETTING, WEIGHTS_SETTING = "mix", "weights"  # sweep settings that reweight the parts (batch/prompt_weights.py)
FUSION_MODES = ("directions", "losses")  # see targets.py
_ESCAPABLE = (":", "|", "\\")


@dataclass(frozen=True)
class StylePart:
    """One weighted style text."""

    text: str
    weight: float = 1.0

    def __str__(self) -> str:
        escaped = "".join("\\" + ch if ch in _ESCAPABLE else ch for ch in self.text)
        return escaped if self.weight == 1.0 else f"{escaped}:{_format_number(self.weight)}"


@dataclass(frozen=True)
class StyleSpec:
    """A weighted combination of style texts; validated on construction (`ConfigError`)."""

    parts: tuple[StylePart, ...]

    def __post_init__(self) -> None:
        if not self.parts:
            raise ConfigError("style prompt is empty")
        seen: dict[str, int] = {}
        for number, part in enumerate(self.parts, start=1):
            where = f"part {number} ({str(part)!r})"
            if not part.text.strip():
                raise ConfigError(f"style prompt: {where}: the style text is empty")
            if not math.isfinite(part.weight):
                raise ConfigError(f"style prompt: {where}: weight {part.weight} is not finite")
            if part.weight == 0:
                raise ConfigError(f"style prompt: {where}: weight is 0; drop the part instead")
            key = " ".join(part.text.split()).casefold()
            if key in seen:
                raise ConfigError(f"style prompt: {where} repeats part {seen[key]}; merge their weights")
            seen[key] = number
        normalised_weights(self.weights)

    @classmethod
    def parse(cls, text: str) -> StyleSpec:
        """Parse a style spec such as ``"starry night:0.7 | ukiyo-e woodblock print:0.3"``.

        Args:
            text: the spec; see the module docstring for the grammar.

        Returns:
            The validated spec.

        Raises:
            ConfigError: with the number and text of the offending part.
        """
        parts = []
        for number, chars in enumerate(_split_parts(text), start=1):
            raw = "".join(("\\" + ch if escaped else ch) for ch, escaped in chars).strip()
            if not raw:
                raise ConfigError(f"style prompt: part {number} is empty (nothing between two '|')"
                                  if "|" in text else "style prompt is empty")
            parts.append(_parse_part(chars, f"part {number} ({raw!r})"))
        return cls(tuple(parts))

    @classmethod
    def single(cls, text: str) -> StyleSpec:
        """A one-part spec of weight 1 holding `text` verbatim (no escapes, no weight syntax)."""
        return cls((StylePart(text.strip()),))

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(part.text for part in self.parts)

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(part.weight for part in self.parts)

    @property
    def is_single(self) -> bool:
        """True when the spec is one text of weight 1, i.e. exactly a plain prompt."""
        return len(self.parts) == 1 and self.parts[0].weight == 1.0

    def reweighted(self, weights: Sequence[float]) -> StyleSpec:
        """This spec's parts with new weights, one per part; parts given weight 0 are left out
        (the only way a weight of 0 is accepted: a weight sweep's end points).

        Raises:
            ConfigError: the number of weights does not match the parts, every weight is 0, or
                the weights left sum to 0.

        Example:
            >>> str(StyleSpec.parse("oil | ink:3").reweighted([0.25, 0.75]))
            'oil:0.25 | ink:0.75'
            >>> str(StyleSpec.parse("oil | ink").reweighted([0, 1]))
            'ink'
        """
        if len(weights) != len(self.parts):
            raise ConfigError(f"has {len(self.parts)} part{'s' if len(self.parts) != 1 else ''} but "
                              f"{len(weights)} weight{'s' if len(weights) != 1 else ''} were given "
                              f"({'/'.join(_format_number(float(w)) for w in weights)})")
        kept = tuple(StylePart(part.text, float(w)) for part, w in zip(self.parts, weights, strict=True) if w != 0)
        if not kept:
            raise ConfigError("every weight is 0; a run needs a style")
        return StyleSpec(kept)

    def __str__(self) -> str:
        return " | ".join(str(part) for part in self.parts)

    def to_dict(self) -> dict[str, Any]:
        """For provenance: the canonical spec and each part's text and weight."""
        return {"spec": str(self), "parts": [{"text": p.text, "weight": p.weight} for p in self.parts]}


@dataclass(frozen=True)
class StyleImage:
    """A style image and its weight, as given by ``--style-image FILE[:WEIGHT]``."""

    path: Path
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> StyleImage:
        """Parse ``FILE`` or ``FILE:WEIGHT``.

        An existing file named by the whole string is taken as is (so file names may contain
        ``:``); otherwise a suffix ``:NUMBER`` is the weight.

        Args:
            text: the option value.

        Returns:
            The style image; its file exists.

        Raises:
            ConfigError: the weight is not finite or is 0.
            InputImageError: the file does not exist.
        """
        whole = Path(text).expanduser()
        path, weight = whole, 1.0
        head, colon, tail = text.rpartition(":")
        if not whole.is_file() and colon and head and _as_number(tail) is not None:
            path, weight = Path(head).expanduser(), float(tail)
        if not math.isfinite(weight) or weight == 0:
            raise ConfigError(f"style image {text!r}: weight must be a finite non-zero number, got {tail.strip()}")
        from clipstyler_opt.core.files import not_a_file

        reason = not_a_file(path)  # a FIFO is named as one, not as missing
        if reason == "no such file":
            raise InputImageError(f"style image {str(path)!r}: no such file (a weight is written FILE:NUMBER)")
        if reason is not None:
            raise InputImageError(f"style image {str(path)!r}: {reason}")
        return cls(path, weight)

    def __str__(self) -> str:
        return f"{self.path}:{_format_number(self.weight)}"


def normalised_weights(weights: Sequence[float]) -> tuple[float, ...]:
    """Divide weights by the absolute value of their sum, keeping their signs.

    Used by both fusion modes: ``directions`` mixes text embeddings with them
    (`fuse_directions`), ``losses`` forms the objective Σ_k ŵ_k L_k from per-style losses.

    Args:
        weights: one weight per style, each finite.

    Returns:
        ŵ_k = w_k / |Σ w|; a single weight of 1 stays exactly 1.

    Raises:
        ConfigError: when there are no weights or |Σ w| < `MIN_WEIGHT_SUM`.
    """
    total = math.fsum(weights)
    if not weights or abs(total) < MIN_WEIGHT_SUM:
        listed = ", ".join(_format_number(w) for w in weights) or "(none)"
        raise ConfigError(f"style weights {listed} sum to {total:g}; they must not sum to 0 "
                          f"(each is divided by the absolute value of the sum)")
    return tuple(w / abs(total) for w in weights)


def fuse_directions(style_embeddings: torch.Tensor, weights: Sequence[float],
                    source_embedding: torch.Tensor) -> torch.Tensor:
    """The text direction of a weighted style mix (the ``directions`` fusion mode).

    ΔT = n(Σ_k ŵ_k T_k − T_source) with ŵ from `normalised_weights` and n(v) = v / ‖v‖. With one
    style of weight 1 this is exactly today's single-prompt n(T_style − T_source).

    Args:
        style_embeddings: (K, D) normalised text embeddings T_k, one row per style.
        weights: K weights.
        source_embedding: (D,) normalised embedding of the source text.

    Returns:
        The (D,) unit direction.
    """
    import torch
    import torch.nn.functional as F

    if style_embeddings.dim() != 2 or style_embeddings.shape[0] != len(weights):
        raise ValueError(f"expected ({len(weights)}, D) style embeddings, got {tuple(style_embeddings.shape)}")
    if source_embedding.shape != style_embeddings.shape[1:]:
        raise ValueError(f"source embedding must have shape {tuple(style_embeddings.shape[1:])}, "
                         f"got {tuple(source_embedding.shape)}")
    scale = torch.tensor(normalised_weights(weights), dtype=style_embeddings.dtype, device=style_embeddings.device)
    fused = (scale[:, None] * style_embeddings).sum(dim=0)
    return F.normalize(fused - source_embedding, dim=-1)


# --- parsing helpers ---

_Chars = list[tuple[str, bool]]  # each character, and whether it was escaped


def _split_parts(text: str) -> list[_Chars]:
    parts: list[_Chars] = [[]]
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            following = next(chars, None)
            if following not in _ESCAPABLE:
                shown = "\\" + (following or "")
                raise ConfigError(f"style prompt {text!r}: unknown escape {shown!r}; only \\:, \\| and \\\\ "
                                  f"are escapes")
            parts[-1].append((following, True))
        elif ch == "|":
            parts.append([])
        else:
            parts[-1].append((ch, False))
    return parts


def _parse_part(chars: _Chars, where: str) -> StylePart:
    colons = [i for i, (ch, escaped) in enumerate(chars) if ch == ":" and not escaped]
    text = "".join(ch for ch, _ in chars)
    if not colons:
        return StylePart(text.strip())
    cut = colons[-1]
    suffix = "".join(ch for ch, _ in chars[cut + 1:]).strip()
    weight = _as_number(suffix)
    if weight is not None:
        return StylePart(text[:cut].strip(), weight)
    if any(ch.isspace() for ch in suffix):
        return StylePart(text.strip())  # "photo: 1920s style": the colon is prose
    if not suffix:
        raise ConfigError(f"style prompt: {where}: nothing after ':'; give a weight or write \\: for a "
                          f"literal colon")
    raise ConfigError(f"style prompt: {where}: weight {suffix!r} is not a number; write \\: for a literal colon")


def _as_number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _format_number(value: float) -> str:
    short = f"{value:g}"
    return short if float(short) == value else repr(value)
