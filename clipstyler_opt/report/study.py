"""The A/B study's design: which pairs, which sides, repeats and attention checks, in what order.

Design (two-alternative forced choice):
- A *pair* is two outputs of the same content image and prompt from two different cells, drawn
  at random from all such pairs. Cells that differ only in the seed are one cell (its replicates,
  `Cell.pooled`): each side shows one of its seeds' outputs, drawn at random, so no question
  compares a setting with itself. Each pair is asked two separate questions: "style" (which
  better matches the style text, which is shown) and "content" (which better keeps the content
  of the photo, which is shown; skipped when the content image is missing). Left/right is
  randomised per question, and all trials are shuffled.
- *Repeats*: a fraction of the pairs (10% by default, at least one) is asked again with the
  sides swapped, later in the sequence and never straight after the original. Agreement
  between the two answers measures consistency.
- *Attention checks*: an output against a flat mid-grey image of the same shape, asked as a
  style or a content question. The grey image carries neither style nor content, so the output
  is the only defensible answer; participants who pick the grey image are excluded.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.report.images import image_size
from clipstyler_opt.report.load import Cell, ResultFolder, RunOutput

__all__ = ["CSV_COLUMNS", "FORMULA_STARTS", "GREY_CELL", "QUESTIONS", "Side", "StudyPlan", "Trial",
           "escape_csv_field", "plan_study", "unescape_csv_field"]

QUESTIONS = ("style", "content")
GREY_CELL = "attention:grey"
CSV_COLUMNS = ("study_id", "seed", "participant", "trial", "pair", "question", "left_cell", "right_cell",
               "chosen_cell", "chosen_side", "is_repeat", "is_attention_check", "expected_cell", "response_ms")

# A spreadsheet reads a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_csv_field(text: str) -> str:
    """A text field as the answers CSV holds it: prefixed with a single quote when it starts with
    a formula character, or with a quote itself (so that `unescape_csv_field` undoes it exactly).
    The study page's script applies the same rule to every text field it writes.

    Example:
        >>> escape_csv_field("=HYPERLINK(1)"), escape_csv_field("ann"), escape_csv_field("'x")
        ("'=HYPERLINK(1)", 'ann', "''x")
    """
    return "'" + text if text.startswith((*FORMULA_STARTS, "'")) else text


def unescape_csv_field(text: str) -> str:
    """The original text of a field written by `escape_csv_field`.

    Example:
        >>> unescape_csv_field("'=HYPERLINK(1)"), unescape_csv_field("ann"), unescape_csv_field("''x")
        ('=HYPERLINK(1)', 'ann', "'x")
    """
    return text[1:] if text.startswith("'") else text


@dataclass(frozen=True)
class Side:
    cell: str
    image: str  # key into StudyPlan.images or StudyPlan.greys


@dataclass(frozen=True)
class Trial:
    pair: str
    question: str
    prompt: str
    content: str | None  # image key of the content photo (content questions only)
    left: Side
    right: Side
    is_repeat: bool = False
    is_attention_check: bool = False
    expected_cell: str = ""


@dataclass(frozen=True)
class StudyPlan:
    study_id: str
    seed: int
    trials: tuple[Trial, ...]
    images: Mapping[str, Path]  # image key -> file
    greys: Mapping[str, tuple[int, int]]  # image key -> (width, height) of a flat grey image
    notes: tuple[str, ...] = field(default=())
    cant_decide: bool = False  # the page offers "can't decide" (a tie in the analysis)


class _Keys:
    """One image key per file."""

    def __init__(self) -> None:
        self.images: dict[str, Path] = {}
        self._by_path: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        if path not in self._by_path:
            self._by_path[path] = key = f"img{len(self._by_path) + 1}"
            self.images[key] = path
        return self._by_path[path]


def _candidates(results: ResultFolder) -> list[tuple[Path, str, Cell, Cell]]:
    order = {cell: index for index, cell in enumerate(results.pooled_cells)}
    found: list[tuple[Path, str, Cell, Cell]] = []
    for (content, prompt), outputs in results.groups().items():
        cells = sorted({o.cell.pooled() for o in outputs}, key=order.__getitem__)
        found.extend((content, prompt, a, b) for i, a in enumerate(cells) for b in cells[i + 1:])
    return found


def _sides(rng: random.Random, first: Side, second: Side) -> tuple[Side, Side]:
    return (first, second) if rng.random() < 0.5 else (second, first)


def _pick(rng: random.Random, outputs: list[RunOutput], content: Path, prompt: str, cell: Cell) -> RunOutput:
    """One output of the pooled `cell` for this content and prompt, of any of its seeds."""
    return rng.choice(sorted((o for o in outputs
                              if o.content == content and o.prompt == prompt and o.cell.pooled() == cell),
                             key=lambda o: o.relative))


def plan_study(results: ResultFolder, *, pairs: int = 30, seed: int = 0, repeat_fraction: float = 0.1,
               attention_checks: int | None = None, cant_decide: bool = False) -> StudyPlan:
    """Draw the study's trials from `results`; the same inputs and seed give the same plan.
    `cant_decide` offers a third answer, recorded as a tie (it changes the study id)."""
    if pairs < 1:
        raise ConfigError(f"--pairs must be at least 1, got {pairs}")
    if not 0 <= repeat_fraction <= 1:
        raise ConfigError(f"--repeat-fraction must be between 0 and 1, got {repeat_fraction}")
    if attention_checks is not None and attention_checks < 0:
        raise ConfigError(f"--attention-checks must be 0 or more, got {attention_checks}")
    candidates = _candidates(results)
    if not candidates:
        raise ConfigError(f"{results.root}: no content image and prompt has outputs of two different cells "
                          f"to compare")
    rng, keys, notes = random.Random(seed), _Keys(), []
    rng.shuffle(candidates)
    if pairs > len(candidates):
        notes.append(f"only {len(candidates)} different pairs exist; all of them are used")
    chosen = candidates[:pairs]
    outputs = list(results.outputs)
    trials: list[Trial] = []
    missing_content = 0
    for index, (content, prompt, cell_a, cell_b) in enumerate(chosen):
        a = Side(cell_a.id, keys(_pick(rng, outputs, content, prompt, cell_a).image))
        b = Side(cell_b.id, keys(_pick(rng, outputs, content, prompt, cell_b).image))
        pair = f"p{index + 1:03d}"
        trials.append(Trial(pair, "style", prompt, None, *_sides(rng, a, b)))
        if content.is_file():
            trials.append(Trial(pair, "content", prompt, keys(content), *_sides(rng, a, b)))
        else:
            missing_content += 1
    if missing_content:
        notes.append(f"{missing_content} pair(s) have no content image on disk; they get the style question only")
    rng.shuffle(trials)
    _add_repeats(rng, trials, [f"p{i + 1:03d}" for i in range(len(chosen))], repeat_fraction)
    count = attention_checks if attention_checks is not None else max(2, math.ceil(len(chosen) / 10))
    greys = _add_attention_checks(rng, trials, chosen, outputs, keys, count)
    design: list[object] = [seed, pairs, repeat_fraction, count, sorted(o.relative for o in outputs)]
    if cant_decide:  # studies made without the option keep their ids
        design.append("cant-decide")
    if any(cell.pooled() != cell for cell in results.cells):  # pages made before seeds were pooled had other trials
        design.append("seeds-pooled")
    study_id = hashlib.sha256(json.dumps(design).encode()).hexdigest()[:12]
    return StudyPlan(study_id=study_id, seed=seed, trials=tuple(trials), images=dict(keys.images), greys=greys,
                     notes=tuple(notes), cant_decide=cant_decide)


def _add_repeats(rng: random.Random, trials: list[Trial], pair_ids: list[str], fraction: float) -> None:
    count = min(len(pair_ids), math.ceil(fraction * len(pair_ids))) if fraction > 0 else 0
    for pair in rng.sample(pair_ids, count):
        for original in [t for t in trials if t.pair == pair and not t.is_repeat]:
            repeat = replace(original, left=original.right, right=original.left, is_repeat=True)
            after = trials.index(original)
            if after == len(trials) - 1 and after > 0:  # make room for a trial in between
                trials[after - 1], trials[after] = trials[after], trials[after - 1]
                after -= 1
            trials.insert(rng.randint(min(after + 2, len(trials)), len(trials)), repeat)


def _add_attention_checks(rng: random.Random, trials: list[Trial], chosen: list[tuple[Path, str, Cell, Cell]],
                          outputs: list[RunOutput], keys: _Keys, count: int) -> dict[str, tuple[int, int]]:
    greys: dict[str, tuple[int, int]] = {}
    for index in range(count):
        content, prompt, cell_a, cell_b = rng.choice(chosen)
        cell = rng.choice((cell_a, cell_b))
        output = _pick(rng, outputs, content, prompt, cell)
        grey = f"grey{index + 1}"
        greys[grey] = image_size(output.image) or (512, 512)
        question = "content" if index % 2 and content.is_file() else "style"
        left, right = _sides(rng, Side(cell.id, keys(output.image)), Side(GREY_CELL, grey))
        check = Trial(f"a{index + 1:02d}", question, prompt, keys(content) if question == "content" else None,
                      left, right, is_attention_check=True, expected_cell=cell.id)
        trials.insert(rng.randint(1, len(trials)), check)
    return greys
