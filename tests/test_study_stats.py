"""`study analyze`'s statistics on constructed answers with a known result: Bradley–Terry
intervals from a bootstrap over participants, binomial tests against 50% with Holm's correction
(hand formulas), Krippendorff's α by hand, the response-time rule, and ties on attention checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_study import answers_csv

from clipstyler_opt.cli import cli
from clipstyler_opt.cli.study import study as study_command
from clipstyler_opt.report.analyze import MIN_MS, Answer, analyze
from clipstyler_opt.report.study import GREY_CELL

A, B, C = "cell-a", "cell-b", "cell-c"


def answer(person: str, trial: int, pair: str, left: str, right: str, chosen: str, ms: float = 2000.0,
           attention: bool = False, expected: str = "") -> Answer:
    return Answer("s1", person, trial, pair, "style", left, right, chosen, False, attention, expected, ms)


def binomial_p_by_hand(k: int, n: int) -> float:
    """Two-sided exact test against 1/2: twice the smaller tail, at most 1."""
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def test_bradley_terry_intervals_resample_participants() -> None:
    """20 participants, 10 A-vs-B questions each: 10 always choose A, 10 always B. With 0.5 extra
    wins per side, A's strength is (10·K + 0.5)/201 where K, the number of A-choosers in a
    resample of participants, is Binomial(20, 1/2); its 2.5% and 97.5% quantiles are 6 and 14.
    Resampling the 200 answers instead would give about [0.43, 0.57]."""
    answers = [answer(f"p{person:02d}", q, f"q{q}", A, B, A if person < 10 else B)
               for person in range(20) for q in range(10)]
    result = analyze(answers, resamples=2000)
    [question] = result.questions
    by_cell = {c.cell: c for c in question.cells}
    assert by_cell[A].bradley_terry == pytest.approx(0.5)
    assert 50.5 / 201 <= by_cell[A].bt_ci_low <= 60.5 / 201
    assert 140.5 / 201 <= by_cell[A].bt_ci_high <= 150.5 / 201
    assert by_cell[B].bt_ci_low == pytest.approx(1 - by_cell[A].bt_ci_high)
    lone = analyze([a for a in answers if a.participant == "p00"]).questions[0]
    assert lone.cells[0].bt_ci_low is None  # one participant: nothing to resample


def test_pair_tests_against_half_with_holm() -> None:
    """Three participants over three pairs: A beats B 9-1, A beats C 10-0, B against C 6-4 with
    2 ties (left out of the test). Holm, sorted: 3·p(A,C), then 2·p(A,B), then max(that, p(B,C))."""
    answers: list[Answer] = []

    def add(left: str, right: str, outcomes: list[str]) -> None:
        for i, chosen in enumerate(outcomes):
            answers.append(answer(f"r{i % 3}", len(answers), f"{left}{right}{i}", left, right, chosen))

    add(A, B, [A] * 9 + [B])
    add(C, A, [A] * 10)
    add(B, C, [B] * 6 + [C] * 4 + ["", ""])
    [question] = analyze(answers, resamples=200).questions
    tests = {(p.cell_a, p.cell_b): p for p in question.pairs}
    ab, ac, bc = tests[(A, B)], tests[(A, C)], tests[(B, C)]
    assert (ab.a_wins, ab.b_wins, ab.ties, ac.a_wins, ac.b_wins, bc.a_wins, bc.b_wins, bc.ties) == (
        9, 1, 0, 10, 0, 6, 4, 2)
    p_ab, p_ac, p_bc = binomial_p_by_hand(9, 10), binomial_p_by_hand(10, 10), binomial_p_by_hand(6, 10)
    assert (ab.p_value, ac.p_value, bc.p_value) == pytest.approx((p_ab, p_ac, p_bc))
    assert (p_ab, p_ac) == pytest.approx((22 / 1024, 2 / 1024))
    assert ac.p_holm == pytest.approx(3 * p_ac)
    assert ab.p_holm == pytest.approx(2 * p_ab)
    assert bc.p_holm == pytest.approx(max(2 * p_ab, p_bc))


def test_agreement_is_krippendorffs_alpha_by_hand() -> None:
    """Two raters, four pairs: (A, A), (B, B), (A, B), (A, A). Coincidences: o_AA = 4, o_BB = 2,
    o_AB = o_BA = 1; n_A = 5, n_B = 3, n = 8; α = 1 − 7·2/(2·5·3) = 8/15. A tie is a value of its own."""
    chosen = [(A, A), (B, B), (A, B), (A, A)]
    answers = [answer(person, i, f"p{i}", A, B, pick[k]) for i, pick in enumerate(chosen)
               for k, person in enumerate(("ann", "bob"))]
    [question] = analyze(answers, resamples=50).questions
    assert question.agreement_alpha == pytest.approx(8 / 15) and question.agreement_units == 4
    tied = [answer(p, q, f"p{q}", A, B, "" if q == 0 else A) for p in ("ann", "bob") for q in (0, 1)]
    assert analyze(tied, resamples=50).questions[0].agreement_alpha == pytest.approx(1.0)


def test_fast_answers_are_flagged_and_can_be_left_out() -> None:
    answers = [answer("ann", 1, "p1", A, B, A, ms=150), answer("ann", 2, "p2", A, B, B, ms=2500),
               answer("bob", 1, "p1", A, B, A, ms=499), answer("bob", 2, "p2", A, B, A, ms=500),
               answer("bob", 3, "a1", A, GREY_CELL, A, ms=10, attention=True, expected=A)]
    flagged = analyze(answers, min_ms=500, resamples=50)
    assert flagged.fast_answers == 3 and flagged.fast_by_participant == {"ann": 1, "bob": 2}
    assert flagged.questions[0].answers == 4 and not flagged.excluded
    dropped = analyze(answers, min_ms=500, exclude_fast=True, resamples=50)
    assert dropped.questions[0].answers == 2  # 2500 ms and 500 ms remain
    assert {c.cell: c.wins for c in dropped.questions[0].cells} == {A: 1, B: 1}


def test_a_tie_on_an_attention_check_is_a_failure() -> None:
    answers = [answer("ann", 1, "p1", A, B, A),
               answer("ann", 2, "a1", GREY_CELL, A, "", attention=True, expected=A)]
    assert analyze(answers, resamples=50).excluded == {"ann": "failed 1 of 1 attention checks"}
    assert analyze(answers, max_attention_failures=1, resamples=50).excluded == {}


def test_study_analyze_cli_reports_intervals_tests_agreement_and_fast_answers(tmp_path: Path) -> None:
    rows = [(1, "p1", "style", A, B, A, 0, 0, ""), (2, "p2", "style", B, C, B, 0, 0, ""),
            (3, "p3", "style", A, C, "", 0, 0, "")]  # response times 901-903 ms
    files = [answers_csv(tmp_path / f"{who}.csv", who, rows) for who in ("ann", "bob")]
    out = tmp_path / "s.json"
    result = CliRunner().invoke(cli, ["study", "analyze", *map(str, files), "--min-ms", "902", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 answer(s) faster than 902 ms, kept" in result.output
    assert f"{A} vs {B}: 2-0 (0 tie(s)), p = 0.5, Holm p = 1" in result.output
    assert "Krippendorff's alpha = 1.000 over 3 pair(s)" in result.output
    data = json.loads(out.read_text())
    cell = data["questions"][0]["cells"][0]
    assert cell["bt_ci_low"] <= cell["bradley_terry"] <= cell["bt_ci_high"]
    assert data["fast_by_participant"] == {"ann": 1, "bob": 1}
    dropped = CliRunner().invoke(cli, ["study", "analyze", *map(str, files), "--min-ms", "902", "--exclude-fast"])
    assert "left out" in dropped.output and "(4 answers" in dropped.output
    default = next(p for p in study_command.commands["analyze"].params if p.name == "min_ms")
    assert default.default == MIN_MS
