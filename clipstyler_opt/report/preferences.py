"""The statistics of one study question: preference rates, Bradley–Terry strengths with intervals,
a binomial test of each pair of cells, and the agreement between participants.

- Rates: wins / comparisons per cell with a 95% Wilson interval; a tie is half a win to each side.
- Bradley–Terry strengths (`stats.pairs.bradley_terry`, 0.5 extra wins to each side of every
  compared pair) with a 95% percentile interval from a bootstrap over participants: whole
  participants are resampled, since one person's answers are not independent of each other.
  With one participant there is no interval.
- Pairs: for each pair of cells compared, the exact two-sided binomial test of "each cell is
  preferred half of the time" on the answers that chose one of them (ties leave the test, as in
  a sign test, and are counted), with Holm's correction over the pairs of this question.
- Agreement: Krippendorff's α (nominal) over the questions answered by two or more participants;
  a unit is one pair of one study, its values the cells chosen (a tie is a value of its own).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clipstyler_opt.report.answers import Answer
from clipstyler_opt.stats import (
    binomial_test,
    bootstrap_limits,
    bradley_terry,
    connected_components,
    holm,
    krippendorff_alpha,
    resampled_strengths,
    wilson_interval,
)

__all__ = ["RESAMPLES", "TIE", "CellPreference", "PairTest", "QuestionResult", "question_result"]

RESAMPLES = 2000
TIE = "(tie)"  # the value a tie takes in the agreement


@dataclass(frozen=True)
class CellPreference:
    """One cell's comparisons, wins (ties half), rate with its Wilson interval, and its
    Bradley–Terry strength with the bootstrap interval over participants (None without one)."""

    cell: str
    comparisons: int
    wins: float
    rate: float
    ci_low: float
    ci_high: float
    bradley_terry: float
    bt_ci_low: float | None = None
    bt_ci_high: float | None = None


@dataclass(frozen=True)
class PairTest:
    """Two cells (in sorted order), the answers preferring each, the ties, the binomial test's
    p-value against 50% and its Holm-adjusted value."""

    cell_a: str
    cell_b: str
    a_wins: int
    b_wins: int
    ties: int
    p_value: float
    p_holm: float


@dataclass(frozen=True)
class QuestionResult:
    """Everything analysed for one question ("style" or "content")."""

    question: str
    answers: int
    median_response_ms: float | None
    cells: tuple[CellPreference, ...]
    comparison_groups: int  # >1: Bradley-Terry strengths compare only within a group
    pairs: tuple[PairTest, ...] = ()
    agreement_alpha: float | None = None
    agreement_units: int = 0


def _wins(answers: Sequence[Answer], index: dict[str, int]) -> np.ndarray:
    wins = np.zeros((len(index), len(index)))
    for a in answers:
        left, right = index[a.left_cell], index[a.right_cell]
        if not a.chosen_cell:
            wins[left, right] += 0.5
            wins[right, left] += 0.5
        elif a.chosen_cell == a.left_cell:
            wins[left, right] += 1
        else:
            wins[right, left] += 1
    return wins


def _strength_intervals(answers: Sequence[Answer], index: dict[str, int], strengths: np.ndarray, *,
                        resamples: int, seed: int) -> list[tuple[float | None, float | None]]:
    by_person: dict[tuple[str, str], list[Answer]] = defaultdict(list)
    for a in answers:
        by_person[a.who].append(a)
    if len(by_person) < 2:
        return [(None, None)] * len(index)
    per_person = np.stack([_wins(by_person[who], index) for who in sorted(by_person)])
    values = resampled_strengths(per_person, resamples=resamples, seed=seed)
    limits: list[tuple[float | None, float | None]] = []
    for column in range(len(index)):
        found = bootstrap_limits(values[:, column], float(strengths[column]), method="percentile")
        limits.append(found if found is not None else (None, None))
    return limits


def _pair_tests(answers: Sequence[Answer]) -> tuple[PairTest, ...]:
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for a in answers:
        first, second = sorted((a.left_cell, a.right_cell))
        counts[(first, second)]["tie" if not a.chosen_cell else "a" if a.chosen_cell == first else "b"] += 1
    keys = sorted(counts)
    pvalues = [binomial_test(counts[k]["a"], counts[k]["a"] + counts[k]["b"]) for k in keys]
    adjusted = holm(pvalues)
    return tuple(PairTest(a, b, counts[(a, b)]["a"], counts[(a, b)]["b"], counts[(a, b)]["tie"], p, q)
                 for (a, b), p, q in zip(keys, pvalues, adjusted, strict=True))


def _agreement(answers: Sequence[Answer]) -> tuple[float | None, int]:
    units: dict[tuple[str, str], list[str]] = defaultdict(list)
    for a in answers:
        units[(a.study_id, a.pair)].append(a.chosen_cell or TIE)
    pairable = [values for values in units.values() if len(values) >= 2]
    return krippendorff_alpha(pairable), len(pairable)


def question_result(question: str, answers: Sequence[Answer], *, resamples: int = RESAMPLES,
                    seed: int = 0) -> QuestionResult:
    """The statistics of `answers` (first showings of one question, attention checks left out).

    Example:
        >>> from clipstyler_opt.report.answers import Answer
        >>> row = Answer("s", "ann", 1, "p1", "style", "a", "b", "a", False, False, "", 900.0)
        >>> result = question_result("style", [row])
        >>> [(c.cell, c.wins) for c in result.cells], result.pairs[0].p_value
        ([('a', 1.0), ('b', 0.0)], 1.0)
    """
    cells = sorted({c for a in answers for c in (a.left_cell, a.right_cell)})
    index = {cell: i for i, cell in enumerate(cells)}
    wins = _wins(answers, index)
    strengths = bradley_terry(wins)
    intervals = _strength_intervals(answers, index, strengths, resamples=resamples, seed=seed)
    games = wins + wins.T
    rows = []
    for cell in cells:
        i = index[cell]
        n, w = round(float(games[i].sum())), float(wins[i].sum())
        low, high = wilson_interval(w, n)
        rows.append(CellPreference(cell=cell, comparisons=n, wins=w, rate=w / n if n else math.nan, ci_low=low,
                                   ci_high=high, bradley_terry=float(strengths[i]), bt_ci_low=intervals[i][0],
                                   bt_ci_high=intervals[i][1]))
    rows.sort(key=lambda r: -r.bradley_terry)
    times = [a.response_ms for a in answers if a.response_ms is not None]
    alpha, units = _agreement(answers)
    return QuestionResult(question=question, answers=len(answers),
                          median_response_ms=statistics.median(times) if times else None, cells=tuple(rows),
                          comparison_groups=len(connected_components(games > 0)), pairs=_pair_tests(answers),
                          agreement_alpha=alpha, agreement_units=units)
