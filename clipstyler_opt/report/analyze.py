"""`study analyze`: preference rates, Bradley–Terry strengths with intervals, a test of each pair
of cells, agreement between participants, repeat agreement, attention checks and response times.

Rules:
- A participant is (study id, participant id). One who fails more than `max_attention_failures`
  attention checks is excluded from everything else, and listed. An attention check is passed
  only by choosing the output: choosing the grey image *or answering "can't decide" (a tie)*
  is a failure, since grey carries neither style nor content and the output is the only
  defensible answer.
- Response times: an answer given in less than `min_ms` milliseconds is flagged (counted per
  participant); with `exclude_fast` the flagged answers are left out of every statistic below.
  Attention checks are judged on every answer, fast or not.
- Preference rates, Bradley–Terry strengths, pair tests and agreement use each pair's first
  showing only (repeats would count one judgement twice); attention checks never count. An
  answer with an empty `chosen_cell` is a tie: half a win to each side (see preferences.py).
- Repeat agreement: the share of repeated questions answered with the same cell both times.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.report.answers import REQUIRED_COLUMNS, Answer, read_answers
from clipstyler_opt.report.preferences import RESAMPLES, CellPreference, PairTest, QuestionResult, question_result
from clipstyler_opt.stats import wilson_interval

__all__ = [
    "MIN_MS",
    "REQUIRED_COLUMNS",
    "Answer",
    "CellPreference",
    "PairTest",
    "QuestionResult",
    "StudyAnalysis",
    "analyze",
    "analyze_answers",
    "format_analysis",
    "read_answers",
]

MIN_MS = 500.0  # deciding between two images in under half a second is not a real judgement


@dataclass(frozen=True)
class StudyAnalysis:
    """The whole analysis; `to_dict` is the JSON that `study analyze --json` writes."""

    files: int
    study_ids: tuple[str, ...]
    participants: int
    excluded: dict[str, str]  # participant -> why
    questions: tuple[QuestionResult, ...]
    repeat_agree: int
    repeat_total: int
    repeat_ci: tuple[float, float]
    min_ms: float = MIN_MS
    exclude_fast: bool = False
    fast_answers: int = 0
    fast_by_participant: dict[str, int] | None = None
    resamples: int = RESAMPLES

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; a number that is not finite becomes null."""
        return _json_safe(asdict(self))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _is_fast(answer: Answer, min_ms: float) -> bool:
    return answer.response_ms is not None and answer.response_ms < min_ms


def analyze(answers: Sequence[Answer], *, files: int = 0, max_attention_failures: int = 0, min_ms: float = MIN_MS,
            exclude_fast: bool = False, resamples: int = RESAMPLES, seed: int = 0) -> StudyAnalysis:
    """Apply the module's rules to answers already read (`files`: how many files they came from).

    Example:
        >>> row = Answer("s", "ann", 1, "p1", "style", "a", "b", "a", False, False, "", 120.0)
        >>> result = analyze([row])
        >>> result.participants, result.fast_answers, result.questions[0].answers
        (1, 1, 1)
        >>> analyze([row], exclude_fast=True).questions
        ()
    """
    if not (math.isfinite(min_ms) and min_ms >= 0):
        raise ConfigError(f"--min-ms must be a finite number of milliseconds >= 0, got {min_ms}")
    failures: Counter[tuple[str, str]] = Counter()
    checks: Counter[tuple[str, str]] = Counter()
    for a in answers:
        if a.is_attention_check:
            checks[a.who] += 1
            failures[a.who] += a.chosen_cell != a.expected_cell  # a tie is a failure too
    people = sorted({a.who for a in answers})
    excluded = {who for who in people if failures[who] > max_attention_failures}
    kept = [a for a in answers if a.who not in excluded]
    fast = Counter(a.who for a in kept if _is_fast(a, min_ms))
    if exclude_fast:
        kept = [a for a in kept if not _is_fast(a, min_ms)]
    first_showings = [a for a in kept if not a.is_attention_check and not a.is_repeat]
    by_question: dict[str, list[Answer]] = defaultdict(list)
    for a in first_showings:
        by_question[a.question].append(a)
    first = {(a.who, a.pair, a.question): a.chosen_cell for a in first_showings}
    repeats = [a for a in kept if a.is_repeat and (a.who, a.pair, a.question) in first]
    agree = sum(first[(a.who, a.pair, a.question)] == a.chosen_cell for a in repeats)
    several_studies = len({study for study, _ in people}) > 1

    def name(who: tuple[str, str]) -> str:
        return f"{who[0]}/{who[1]}" if several_studies else who[1]

    return StudyAnalysis(
        files=files, study_ids=tuple(sorted({a.study_id for a in answers})), participants=len(people),
        excluded={name(who): f"failed {failures[who]} of {checks[who]} attention checks" for who in sorted(excluded)},
        questions=tuple(question_result(q, by_question[q], resamples=resamples, seed=seed)
                        for q in sorted(by_question)),
        repeat_agree=agree, repeat_total=len(repeats), repeat_ci=wilson_interval(agree, len(repeats)),
        min_ms=min_ms, exclude_fast=exclude_fast, fast_answers=sum(fast.values()),
        fast_by_participant={name(who): count for who, count in sorted(fast.items())}, resamples=resamples)


def analyze_answers(paths: Sequence[Path], *, max_attention_failures: int = 0, min_ms: float = MIN_MS,
                    exclude_fast: bool = False, resamples: int = RESAMPLES) -> StudyAnalysis:
    """Read the answer files and analyse them (see `analyze`)."""
    if not paths:
        raise ConfigError("no answer files given")
    return analyze(read_answers(paths), files=len(paths), max_attention_failures=max_attention_failures,
                   min_ms=min_ms, exclude_fast=exclude_fast, resamples=resamples)


def _interval(low: float | None, high: float | None) -> str:
    return "n/a" if low is None or high is None or math.isnan(low) else f"[{low:.3f}, {high:.3f}]"


def _alpha(q: QuestionResult) -> str:
    if q.agreement_alpha is None:
        return f"agreement: Krippendorff's alpha n/a ({q.agreement_units} pair(s) answered by two or more)"
    return f"agreement: Krippendorff's alpha = {q.agreement_alpha:.3f} over {q.agreement_units} pair(s)"


def _question_lines(q: QuestionResult) -> list[str]:
    median = "n/a" if q.median_response_ms is None else f"{q.median_response_ms:.0f} ms"
    lines = ["", f"question: {q.question} ({q.answers} answers, median response {median})",
             f"{'cell':<32}{'n':>6}{'wins':>8}{'rate':>8}  {'95% CI (Wilson)':<18}{'Bradley-Terry':>14}  "
             "95% CI (bootstrap over participants)"]
    for c in q.cells:
        lines.append(f"{c.cell:<32}{c.comparisons:>6}{c.wins:>8g}{c.rate:>8.3f}  "
                     f"{_interval(c.ci_low, c.ci_high):<18}{c.bradley_terry:>14.3f}  "
                     f"{_interval(c.bt_ci_low, c.bt_ci_high)}")
    if q.comparison_groups > 1:
        lines.append(f"note: the cells fall into {q.comparison_groups} groups never compared with each other; "
                     "Bradley-Terry strengths compare only within a group")
    if q.pairs:
        lines.append("pairs against 50% (exact binomial test, ties left out; Holm over the pairs of this question):")
        for p in q.pairs:
            lines.append(f"  {p.cell_a} vs {p.cell_b}: {p.a_wins}-{p.b_wins} ({p.ties} tie(s)), "
                         f"p = {p.p_value:.4g}, Holm p = {p.p_holm:.4g}")
    lines.append(_alpha(q))
    return lines


def format_analysis(result: StudyAnalysis) -> str:
    """A plain-text summary with one table per question."""
    lines = [f"{result.files} file(s), study {', '.join(result.study_ids) or '-'}: {result.participants} "
             f"participant(s), {result.participants - len(result.excluded)} analysed"]
    for who, why in result.excluded.items():
        lines.append(f"excluded {who}: {why}")
    if result.fast_answers:
        who = ", ".join(f"{name} {count}" for name, count in (result.fast_by_participant or {}).items())
        what = "left out" if result.exclude_fast else "kept (--exclude-fast leaves them out)"
        lines.append(f"{result.fast_answers} answer(s) faster than {result.min_ms:g} ms, {what}: {who}")
    for q in result.questions:
        lines += _question_lines(q)
    if not result.questions:
        lines.append("no answers left to analyse")
    rate = f" = {result.repeat_agree / result.repeat_total:.3f} {_interval(*result.repeat_ci)}" \
        if result.repeat_total else ""
    lines += ["", f"repeat agreement: {result.repeat_agree}/{result.repeat_total}{rate}"]
    return "\n".join(lines)
