"""The A/B study: its design, its page, the statistics (against hand-computed values) and the analysis."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_report import PLAIN_PROMPT, make_result_folder

from clipstyler_opt.cli import cli
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.report import (
    CSV_COLUMNS,
    GREY_CELL,
    analyze_answers,
    bradley_terry,
    load_results,
    plan_study,
    render_study,
    wilson_interval,
)
from clipstyler_opt.stats.pairs import connected_components

CELLS = ("lambda_content=50", "lambda_content=150", "lambda_content=300")


@pytest.fixture
def three_cells(tmp_path: Path) -> Path:
    return make_result_folder(tmp_path, prompts=('neon "</script>" & <style>', PLAIN_PROMPT),
                              lambdas=(50.0, 150.0, 300.0), evaluation=False)


def page_data(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="study-data">(.*?)</script>', page, re.S)
    assert match
    return json.loads(match.group(1))


# --- design ---

def test_plan_pairs_questions_repeats_and_attention_checks(three_cells: Path) -> None:
    results = load_results(three_cells)
    plan = plan_study(results, pairs=10, seed=3)
    # 2 contents × 2 prompts × C(3, 2) = 12 candidate pairs, 10 drawn
    main = [t for t in plan.trials if not t.is_repeat and not t.is_attention_check]
    pairs = {t.pair for t in main}
    assert len(pairs) == 10 and len(main) == 20
    for pair in pairs:
        asked = [t for t in main if t.pair == pair]
        assert sorted(t.question for t in asked) == ["content", "style"]
        assert len({(frozenset((t.left.cell, t.right.cell)), t.prompt) for t in asked}) == 1
        assert asked[0].left.cell != asked[0].right.cell
        content = next(t for t in asked if t.question == "content").content
        assert content is not None and plan.images[content].parent.name == "photos"
        assert all(plan.images[t.left.image].parent.parent.name.startswith("prompt-") for t in asked)
    repeats = [t for t in plan.trials if t.is_repeat]
    assert len(repeats) == 2 * math.ceil(0.1 * 10)  # one pair, both its questions
    for repeat in repeats:
        original = next(t for t in main if (t.pair, t.question) == (repeat.pair, repeat.question))
        assert (repeat.left, repeat.right) == (original.right, original.left)
        assert plan.trials.index(repeat) > plan.trials.index(original) + 1
    checks = [t for t in plan.trials if t.is_attention_check]
    assert len(checks) == 2  # max(2, ceil(10 / 10))
    for check in checks:
        cells = {check.left.cell, check.right.cell}
        assert GREY_CELL in cells and cells - {GREY_CELL} == {check.expected_cell}
        grey = check.left.image if check.left.cell == GREY_CELL else check.right.image
        assert plan.greys[grey] == (48, 32)
    assert plan.trials[0].is_attention_check is False


def test_plan_is_reproducible_and_the_seed_matters(three_cells: Path) -> None:
    results = load_results(three_cells)
    assert plan_study(results, seed=1) == plan_study(results, seed=1)
    assert plan_study(results, seed=1).trials != plan_study(results, seed=2).trials


def test_plan_uses_every_pair_when_fewer_exist_and_says_so(three_cells: Path) -> None:
    plan = plan_study(load_results(three_cells), pairs=100, repeat_fraction=0, attention_checks=0)
    assert len(plan.trials) == 2 * 12 and any("only 12" in n for n in plan.notes)


def _two_seeds_per_setting(tmp_path: Path, evaluation: bool = False) -> Path:
    """make_result_folder's sweep (lambda_content 50, 150, 300), each output also made with a
    second seed: cells `lambda_content=L,seed=S`."""
    root = make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,), lambdas=(50.0, 150.0, 300.0), sweep=True,
                              evaluation=evaluation)
    manifest = root / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    extra = []
    for sidecar_path in sorted(root.glob("*/*/*.png.json")):
        sidecar = json.loads(sidecar_path.read_text())
        lam = sidecar["sweep"]["values"]["lambda_content"]
        for seed in (0, 1):
            sidecar["sweep"] = {"cell": f"lambda_content={lam:g},seed={seed}",
                                "values": {"lambda_content": lam, "seed": seed}}
            image = sidecar_path.with_name(sidecar_path.name.removesuffix(".json"))
            target = image if seed == 0 else image.with_name(f"s1-{image.name}")
            if seed:
                target.write_bytes(image.read_bytes())
            target.with_name(target.name + ".json").write_text(json.dumps(sidecar))
            if seed:
                relative = target.relative_to(root).as_posix()
                extra.append(json.dumps({"record": "job", "status": "done", "input": sidecar["input"]["source"],
                                         "relative": Path(sidecar["input"]["source"]).name, "prompt": PLAIN_PROMPT,
                                         "output": relative, "seed": 8, "settings_hash": "z"}))
    manifest.write_text("\n".join(lines[:-1] + extra) + "\n")
    return root


def test_cells_that_differ_only_in_the_seed_are_one_cell_of_the_study(tmp_path: Path) -> None:
    results = load_results(_two_seeds_per_setting(tmp_path))
    assert len(results.cells) == 6 and len(results.pooled_cells) == 3
    plan = plan_study(results, pairs=100, repeat_fraction=0, attention_checks=2)
    pooled = {"lambda_content=50", "lambda_content=150", "lambda_content=300"}
    main = [t for t in plan.trials if not t.is_attention_check]
    assert len(main) == 2 * 2 * 3  # 2 contents x C(3, 2) pairs x 2 questions: never a setting against itself
    assert {t.left.cell for t in main} | {t.right.cell for t in main} == pooled
    assert {t.expected_cell for t in plan.trials if t.is_attention_check} <= pooled
    shown = {plan.images[side.image].name for t in plan.trials for side in (t.left, t.right)
             if side.image in plan.images}
    assert any(name.startswith("s1-") for name in shown) and any(not name.startswith("s1-") for name in shown)
    # the id differs from that of a page made before seeds were pooled (other trials, same folder)
    unpooled = hashlib.sha256(json.dumps([0, 100, 0, 2, sorted(o.relative for o in results.outputs)])
                              .encode()).hexdigest()[:12]
    assert plan.study_id != unpooled


def test_metrics_meet_a_study_under_the_cells_it_names(tmp_path: Path) -> None:
    """A study of pooled cells is compared with metric means per pooled cell; one made before
    studies pooled seeds (seed cells) with the seed cells' means."""
    from clipstyler_opt.analysis.folder import metric_values
    from clipstyler_opt.analysis.humans import StudyStrengths

    results = load_results(_two_seeds_per_setting(tmp_path, evaluation=True))
    pooled = StudyStrengths("s.json", {"style": {"lambda_content=50": 0.5, "lambda_content=150": 0.3,
                                                 "lambda_content=300": 0.2}})
    [ssim] = [m for m in metric_values(results, {}, pooled) if m.name == "ssim"]
    assert {cell for cell, _, _ in ssim.values} == set(pooled.questions["style"])
    by_seed = StudyStrengths("s.json", {"style": {"lambda_content=50,seed=0": 0.6, "lambda_content=150,seed=0": 0.4}})
    [ssim] = [m for m in metric_values(results, {}, by_seed) if m.name == "ssim"]
    assert {cell for cell, _, _ in ssim.values} == {f"lambda_content={lam},seed=0" for lam in (50, 150, 300)}
    assert set(results.cell_ids()) >= set(pooled.questions["style"]) | set(by_seed.questions["style"])


def test_missing_content_images_get_the_style_question_only(three_cells: Path, tmp_path: Path) -> None:
    for photo in (tmp_path / "photos").iterdir():
        photo.unlink()
    plan = plan_study(load_results(three_cells), pairs=4, repeat_fraction=0)
    assert {t.question for t in plan.trials} == {"style"} and len(plan.trials) == 4 + 2
    assert any("style question only" in n for n in plan.notes)


def test_plan_refuses_a_folder_without_two_cells(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="two different cells"):
        plan_study(load_results(make_result_folder(tmp_path, lambdas=(150.0,))))


# --- the page ---

def test_page_is_self_contained_and_safe(three_cells: Path) -> None:
    plan = plan_study(load_results(three_cells), pairs=6, seed=0)
    page = render_study(plan, max_side=32)
    assert page.count("</script>") == 2  # the prompt's "</script>" did not end the data block
    assert '<meta name="viewport"' in page
    assert not re.search(r"(src|href)=\"(https?:|//)", page) and "<link" not in page and "@@" not in page
    data = page_data(page)
    assert data["columns"] == list(CSV_COLUMNS) and data["study_id"] == plan.study_id
    assert {t["prompt"] for t in data["trials"]} >= {'neon "</script>" & <style>'}
    used = {t[side]["image"] for t in data["trials"] for side in ("left", "right")}
    used |= {t["content"] for t in data["trials"] if t["content"]}
    assert used == set(data["images"])
    for uri in data["images"].values():
        assert uri.startswith("data:image/jpeg;base64,")
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
            assert image.format == "JPEG" and max(image.size) == 32  # 48×32 scaled to a long side of 32


def test_study_make_cli(three_cells: Path, tmp_path: Path) -> None:
    out = tmp_path / "study.html"
    result = CliRunner().invoke(cli, ["study", "make", str(three_cells), "--pairs", "5", "--seed", "4",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "14 questions (2 repeated, 2 attention checks)" in result.output  # 5 pairs × 2, 1 pair again, 2 checks
    assert len(page_data(out.read_text(encoding="utf-8"))["trials"]) == 10 + 2 + 2
    result = CliRunner().invoke(cli, ["study", "make", str(three_cells), "--pairs", "0", "-o", str(out)])
    assert result.exit_code == 2


# --- statistics ---

def test_wilson_interval_by_hand() -> None:
    # 8/10: centre (0.8 + 1.9208/10)/(1 + 0.38415) = 0.71674; half 1.95996/1.38415·sqrt(0.016 + 0.0096037) = 0.22658
    assert wilson_interval(8, 10) == pytest.approx((0.49016, 0.94332), abs=1e-5)
    # 0/n: lower bound 0, upper z²/(n + z²) = 3.84146/13.84146
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_bradley_terry_two_items_follow_the_win_ratio() -> None:
    # two items: P(0 beats 1) = p0/(p0+p1) is estimated by its win share
    assert bradley_terry(np.array([[0, 7], [3, 0]]), prior=0) == pytest.approx([0.7, 0.3])
    # with the prior, 0.5 wins are added to each side: (7.5, 3.5)/11
    assert bradley_terry(np.array([[0, 7], [3, 0]])) == pytest.approx([7.5 / 11, 3.5 / 11])
    # a cell that never won still gets a finite strength: (0.5, 5.5)/6
    assert bradley_terry(np.array([[0, 0], [5, 0]])) == pytest.approx([0.5 / 6, 5.5 / 6])


def test_bradley_terry_recovers_strengths_that_satisfy_the_likelihood_equations() -> None:
    strengths = np.array([0.5, 0.3, 0.2])
    games = np.array([[0, 10, 20], [10, 0, 30], [20, 30, 0]])
    # expected wins w_ij = n_ij p_i/(p_i + p_j) solve the ML equations W_i = Σ_j n_ij p_i/(p_i + p_j)
    wins = games * strengths[:, None] / (strengths[:, None] + strengths[None, :])
    assert bradley_terry(wins, prior=0) == pytest.approx(strengths, abs=1e-8)


def test_bradley_terry_leaves_uncompared_items_out_and_finds_groups() -> None:
    result = bradley_terry(np.array([[0, 5, 0], [0, 0, 0], [0, 0, 0]]))
    assert result[:2] == pytest.approx([5.5 / 6, 0.5 / 6]) and math.isnan(result[2])
    assert connected_components(np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]])) == [[0, 1], [2]]


# --- analysis ---

def answers_csv(path: Path, participant: str, rows: list[tuple[Any, ...]], study: str = "s1") -> Path:
    """rows: (trial, pair, question, left, right, chosen, is_repeat, is_attention, expected)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for trial, pair, question, left, right, chosen, repeat, attention, expected in rows:
            writer.writerow([study, 0, participant, trial, pair, question, left, right, chosen,
                             "left" if chosen == left else "right", repeat, attention, expected, 900 + trial])
    return path


A, B, C = "lambda=50", "lambda=150, x", 'lambda="300"'
GOOD = [
    (1, "p1", "style", A, B, A, 0, 0, ""),
    (2, "p2", "style", B, C, B, 0, 0, ""),
    (3, "a1", "style", A, GREY_CELL, A, 0, 1, A),
    (4, "p3", "style", C, A, A, 0, 0, ""),
    (5, "p1", "content", B, A, B, 0, 0, ""),
    (6, "p1", "style", B, A, A, 1, 0, ""),  # repeat: agrees with trial 1
    (7, "p2", "style", C, B, C, 1, 0, ""),  # repeat: disagrees with trial 2
    (8, "p4", "style", A, C, "", 0, 0, ""),  # a tie
]
CARELESS = [
    (1, "p1", "style", A, B, B, 0, 0, ""),
    (2, "a1", "content", GREY_CELL, C, GREY_CELL, 0, 1, C),
]


def test_analysis_by_hand(tmp_path: Path) -> None:
    result = analyze_answers([answers_csv(tmp_path / "good.csv", "ann", GOOD),
                              answers_csv(tmp_path / "bad.csv", "bob", CARELESS)])
    assert result.participants == 2 and result.excluded == {"bob": "failed 1 of 1 attention checks"}
    style = next(q for q in result.questions if q.question == "style")
    by_cell = {c.cell: c for c in style.cells}
    # first presentations only: A beat B (1), B beat C (2), A beat C (4), A-C tie (8)
    assert (by_cell[A].comparisons, by_cell[A].wins) == (3, 2.5)
    assert (by_cell[B].comparisons, by_cell[B].wins) == (2, 1)
    assert (by_cell[C].comparisons, by_cell[C].wins) == (3, 0.5)
    assert (by_cell[A].ci_low, by_cell[A].ci_high) == pytest.approx(wilson_interval(2.5, 3))
    assert [c.cell for c in style.cells] == [A, B, C]  # ordered by Bradley-Terry strength
    assert sum(c.bradley_terry for c in style.cells) == pytest.approx(1)
    assert style.median_response_ms == 903  # 901, 902, 904, 908
    content = next(q for q in result.questions if q.question == "content")
    assert [(c.cell, c.wins) for c in content.cells] == [(B, 1), (A, 0)]
    assert (result.repeat_agree, result.repeat_total) == (1, 2)


def test_attention_failures_can_be_tolerated(tmp_path: Path) -> None:
    path = answers_csv(tmp_path / "bad.csv", "bob", CARELESS)
    assert analyze_answers([path], max_attention_failures=1).excluded == {}


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace("is_repeat,", ""), "missing columns: is_repeat"),
    (lambda text: text.replace(",lambda=50,left", ",nobody,left", 1), "neither the left nor the right"),
    (lambda text: text.replace(",901\r\n", ",fast\r\n", 1), "response_ms"),
    (lambda text: text.replace(",0,0,,901", ",maybe,0,,901", 1), "expected 0 or 1"),
])
def test_malformed_answers_are_one_line_errors(tmp_path: Path, edit: Any, message: str) -> None:
    path = answers_csv(tmp_path / "a.csv", "ann", GOOD)
    path.write_bytes(edit(path.read_bytes().decode()).encode())
    with pytest.raises(ConfigError, match=message):
        analyze_answers([path])


def test_the_same_answers_twice_are_refused(tmp_path: Path) -> None:
    path = answers_csv(tmp_path / "a.csv", "ann", GOOD)
    with pytest.raises(ConfigError, match="twice"):
        analyze_answers([path, path])


def test_study_analyze_cli_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    good = answers_csv(tmp_path / "good.csv", "ann", GOOD)
    bad = answers_csv(tmp_path / "bad.csv", "bob", CARELESS)
    out = tmp_path / "analysis.json"
    result = CliRunner().invoke(cli, ["study", "analyze", str(good), str(bad), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "excluded bob: failed 1 of 1 attention checks" in result.output
    assert re.search(r"^lambda=50\s+3\s+2.5\s+0.833", result.output, re.M)
    assert "repeat agreement: 1/2 = 0.500" in result.output
    data = json.loads(out.read_text())
    assert data["repeat_total"] == 2 and data["excluded"] == {"bob": "failed 1 of 1 attention checks"}
    result = CliRunner().invoke(cli, ["study", "analyze", str(good), "--json", str(good)])
    assert result.exit_code == 2 and "refusing to overwrite" in result.output
    result = CliRunner().invoke(cli, ["study", "analyze", str(tmp_path / "analysis.json")])
    assert result.exit_code == 2 and result.output.startswith("error: ") and result.output.count("\n") == 1
