"""The report and the study page in a real (headless) browser, opened from disk."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import launched_browser, watch
from PIL import Image
from test_report import ODD_PROMPT, make_result_folder, rename_to_undecodable

from clipstyler_opt.report import GREY_CELL, analyze_answers, write_report, write_study

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_browser() as launched:
        yield launched


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True)
    yield context
    context.close()


def image_states(page: Any) -> list[list[Any]]:
    return page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src').slice(0, 60), i.complete,"
                         " i.naturalWidth])")


@pytest.mark.parametrize("embed", [False, True])
def test_report_loads_every_image_without_errors(context: Any, tmp_path: Path, embed: bool) -> None:
    root = make_result_folder(tmp_path)
    rename_to_undecodable(root, "prompt-1/lam-50/red.png")
    report = write_report(root, embed=embed)
    page = context.new_page()
    problems = watch(page)
    page.goto(report.as_uri(), wait_until="load")
    states = image_states(page)
    assert len(states) == 12 + 4 and all(complete and width > 0 for _, complete, width in states), states
    assert not problems, problems
    assert page.locator("h3.prompt").first.text_content() == ODD_PROMPT  # escaped text reads back exactly
    assert page.locator("img.chart").count() == 2 + 2  # a trade-off plot and loss curves per prompt
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as image:
        assert image.width > 300 and image.height > 300


OVERFLOW = "[document.documentElement.scrollWidth, window.innerWidth]"
BOXES = ("Array.from(document.querySelectorAll('.table-box')).map(b => [b.clientWidth, b.scrollWidth, "
         "b.getBoundingClientRect().right])")


@pytest.fixture(scope="module")
def small_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of two prompts, two content images and two cells (no loss history: fewer charts)."""
    return write_report(make_result_folder(tmp_path_factory.mktemp("small"), history=False))


@pytest.mark.parametrize("size", [{"width": 1280, "height": 900}, PHONE], ids=["desktop", "phone"])
def test_report_fits_the_screen_and_enlarges_an_image_against_its_content(browser: Any, tmp_path: Path,
                                                                          small_report: Path,
                                                                          size: dict[str, int]) -> None:
    report = small_report
    context = browser.new_context(viewport=size)
    page = context.new_page()
    problems = watch(page)
    page.goto(report.as_uri(), wait_until="load")
    width, viewport = page.evaluate(OVERFLOW)
    assert width <= viewport == size["width"]  # nothing runs off the page sideways
    states = image_states(page)
    assert states and all(complete and natural > 0 for _, complete, natural in states), states
    for client, _scroll, right in page.evaluate(BOXES):  # a wide table scrolls inside its own box
        assert right <= size["width"] and client < size["width"]
    if size is PHONE:
        assert any(scroll > client for client, scroll, _ in page.evaluate(BOXES))
    page.screenshot(path=str(tmp_path / f"report-{size['width']}.png"), full_page=True)
    page.locator("table.grid img[data-before]").first.click()
    dialog = page.locator("dialog.zoom")
    assert dialog.evaluate("d => d.open")
    pictures = dialog.evaluate("d => Array.from(d.querySelectorAll('img')).map(i => [i.className, i.complete, "
                               "i.naturalWidth, i.getBoundingClientRect().width])")
    assert [p[0] for p in pictures] == ["", "before"] and all(p[1] and p[2] > 0 for p in pictures)
    assert pictures[0][3] > 4 * pictures[0][2] or pictures[0][3] >= 0.8 * size["width"]  # enlarged
    dialog.locator("input[type=range]").fill("20")
    assert dialog.locator("img.before").evaluate("i => i.style.clipPath") == "inset(0px 80% 0px 0px)"
    page.keyboard.press("Escape")
    assert not dialog.evaluate("d => d.open")
    assert not problems, problems
    context.close()


def test_report_prints_on_a4_with_every_column(browser: Any, tmp_path: Path, small_report: Path) -> None:
    report = small_report
    context = browser.new_context(viewport={"width": 718, "height": 1000})  # A4 less 10 mm margins, at 96 dpi
    page = context.new_page()
    problems = watch(page)
    page.emulate_media(media="print")
    page.goto(report.as_uri(), wait_until="load")
    width, viewport = page.evaluate(OVERFLOW)
    assert width <= viewport
    tables = page.evaluate("Array.from(document.querySelectorAll('table')).filter(t => t.offsetParent)"
                           ".map(t => [t.className, t.scrollWidth, t.clientWidth, t.getBoundingClientRect().right])")
    assert {t[0] for t in tables} == {"grid", "metrics"}
    for _, scroll, client, right in tables:  # every column on the paper
        assert scroll <= client + 1 and right <= viewport
    columns = page.evaluate("Array.from(document.querySelectorAll('table.grid tr:first-child th'))"
                            ".map(th => th.getBoundingClientRect().right)")
    assert len(columns) == 2 * 3 and max(columns) <= viewport
    page.screenshot(path=str(tmp_path / "report-print.png"), full_page=True)
    pdf = page.pdf(path=str(tmp_path / "report.pdf"), format="A4")
    assert pdf.startswith(b"%PDF-")
    assert not problems, problems
    context.close()


def _preferred(trial: dict[str, Any], careless: bool) -> str:
    """The side to choose. Careful: the output in attention checks, else the cell sorting last
    (a consistent rule, so repeats agree). Careless: the grey image, else always left."""
    cells = {"left": trial["left"]["cell"], "right": trial["right"]["cell"]}
    if trial["is_attention_check"]:
        wanted = GREY_CELL if careless else trial["expected_cell"]
        return next(side for side, cell in cells.items() if cell == wanted)
    if careless:
        return "left"
    return max(cells, key=cells.__getitem__)


def take_study(context: Any, page_path: Path, participant: str, careless: bool, download_dir: Path) -> tuple[
        Path, list[dict[str, Any]]]:
    page = context.new_page()
    problems = watch(page)
    page.set_viewport_size(PHONE)
    page.goto(page_path.as_uri(), wait_until="load")
    data = page.evaluate("JSON.parse(document.getElementById('study-data').textContent)")
    trials = data["trials"]
    page.fill("#participant", participant)
    page.keyboard.press("Enter")
    for index, trial in enumerate(trials):
        assert page.locator("#progress-text").text_content() == f"Question {index + 1} of {len(trials)}"
        assert page.locator("#reference").is_visible() == (trial["question"] == "content")
        if index == 0:  # phone layout: the pair stacked, each image as wide as the screen
            left, right = page.locator("#left-image").bounding_box(), page.locator("#right-image").bounding_box()
            assert left["y"] + left["height"] <= right["y"]
            assert all(box["x"] >= 0 and box["width"] >= PHONE["width"] - 8 for box in (left, right))
        side = _preferred(trial, careless)
        answer = [lambda side=side: page.click(f"#{side}"),
                  lambda side=side: page.keyboard.press("ArrowLeft" if side == "left" else "ArrowRight"),
                  lambda side=side: page.keyboard.press("a" if side == "left" else "l")][index % 3]
        if index == len(trials) - 1:
            with page.expect_download() as download:
                answer()
            target = download_dir / download.value.suggested_filename
            download.value.save_as(target)
        else:
            answer()
    assert page.locator("#done").is_visible() and not problems, problems
    page.close()
    return target, trials


def test_study_can_be_completed_and_its_answers_analysed(context: Any, tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, prompts=('neon "</script>" & co', "pencil sketch"),
                              lambdas=(50.0, 150.0, 300.0), evaluation=False)
    study_page = tmp_path / "study.html"
    write_study(root, study_page, pairs=6, seed=1)
    careful, trials = take_study(context, study_page, 'ann, "one"', careless=False, download_dir=tmp_path)
    careless, _ = take_study(context, study_page, "bob", careless=True, download_dir=tmp_path)

    with open(careful, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(trials) and {r["participant"] for r in rows} == {'ann, "one"'}
    assert all(int(r["response_ms"]) >= 0 for r in rows)

    result = analyze_answers([careful, careless])
    assert result.participants == 2 and list(result.excluded) == ["bob"]
    main = [t for t in trials if not t["is_repeat"] and not t["is_attention_check"]]
    for question in result.questions:
        asked = [t for t in main if t["question"] == question.question]
        for cell in question.cells:
            met = [t for t in asked if cell.cell in (t["left"]["cell"], t["right"]["cell"])]
            won = [t for t in met if max(t["left"]["cell"], t["right"]["cell"]) == cell.cell]
            assert (cell.comparisons, cell.wins) == (len(met), len(won)), cell
    repeated = sum(bool(t["is_repeat"]) for t in trials)
    assert repeated > 0 and (result.repeat_agree, result.repeat_total) == (repeated, repeated)
    assert sum(q.answers for q in result.questions) == len(main)


def test_study_answers_neutralise_formula_characters_and_read_back_exactly(context: Any, tmp_path: Path) -> None:
    """A participant name starting with = + - @ must not reach a spreadsheet as a formula: the
    page writes it with a leading single quote (OWASP), and the analysis reads the name as typed."""
    root = make_result_folder(tmp_path, prompts=("pencil sketch",), lambdas=(50.0, 150.0), evaluation=False)
    study_page = tmp_path / "study.html"
    write_study(root, study_page, pairs=2, seed=1)
    name = '=HYPERLINK("http://example.invalid","x")'
    careless, _ = take_study(context, study_page, name, careless=True, download_dir=tmp_path)
    with open(careless, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    fields = [field for row in rows[1:] for field in row]
    assert {row[2] for row in rows[1:]} == {"'" + name}
    assert not [f for f in fields if f[:1] in ("=", "+", "-", "@")], fields
    assert list(analyze_answers([careless]).excluded) == [name]
