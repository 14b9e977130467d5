"""The study page's behaviours in headless Chromium, with a simulated participant: buttons
activated by Tab then Enter or Space, undo, progress kept across a reload, "can't decide" analysed
as a tie, hover styles only where hover exists (no highlight left behind by a tap), and on a
phone the pair stacked with each image as wide as the screen."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import launched_browser, watch
from test_report import make_result_folder

from clipstyler_opt.report import analyze_answers, write_study

PHONE = {"width": 390, "height": 844}
REST, HOVER = "rgb(204, 204, 204)", "rgb(42, 111, 219)"  # .choice border: at rest, and hovered


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_browser() as launched:
        yield launched


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("study-page")
    root = make_result_folder(base, prompts=("pencil sketch",), lambdas=(50.0, 150.0, 300.0), evaluation=False)
    made = {}
    for name, cant_decide in (("plain", False), ("cant_decide", True)):
        made[name] = base / f"{name}.html"
        write_study(root, made[name], pairs=3, seed=2, cant_decide=cant_decide, max_side=64)
    return made


def progress(page: Any) -> str:
    return page.locator("#progress-text").text_content()


def stored(page: Any) -> Any:
    return page.evaluate("(() => { const k = Object.keys(localStorage).find(k => k.startsWith('clipopt-study:'));"
                         " return k ? JSON.parse(localStorage.getItem(k)) : null; })()")


def tab_to(page: Any, element: str) -> None:
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == element:
            return
    raise AssertionError(f"Tab never reached #{element}")


def test_keyboard_tab_enter_space_and_undo(browser: Any, pages: dict[str, Path]) -> None:
    context = browser.new_context()
    page = context.new_page()
    problems = watch(page)
    page.goto(pages["plain"].as_uri(), wait_until="load")
    total = len(page.evaluate("JSON.parse(document.getElementById('study-data').textContent).trials"))
    page.keyboard.type("kim")
    tab_to(page, "start")
    page.keyboard.press(" ")  # the focused Start button, by Space
    assert progress(page) == f"Question 1 of {total}"
    assert page.locator("#cant-decide").is_hidden() and page.locator("#undo").is_disabled()
    page.keyboard.press("ArrowDown")  # no "can't decide" on this page: nothing happens
    assert progress(page) == f"Question 1 of {total}"
    tab_to(page, "left")
    page.keyboard.press("Enter")
    assert progress(page) == f"Question 2 of {total}"
    tab_to(page, "right")
    page.keyboard.press(" ")
    assert progress(page) == f"Question 3 of {total}"
    assert [a["chosen_side"] for a in stored(page)["answers"]] == ["left", "right"]
    page.keyboard.press("Backspace")  # undo the last answer only
    assert progress(page) == f"Question 2 of {total}"
    assert [(a["trial"], a["chosen_side"]) for a in stored(page)["answers"]] == [(1, "left")]
    tab_to(page, "undo")
    page.keyboard.press("Enter")  # the undo button, by keyboard
    assert progress(page) == f"Question 1 of {total}" and stored(page)["answers"] == []
    assert page.locator("#undo").is_disabled()
    page.keyboard.press("l")
    assert [(a["trial"], a["chosen_side"]) for a in stored(page)["answers"]] == [(1, "right")]
    assert not problems, problems
    context.close()


def test_reload_resumes_and_cant_decide_is_a_tie(browser: Any, pages: dict[str, Path], tmp_path: Path) -> None:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    problems = watch(page)
    page.goto(pages["cant_decide"].as_uri(), wait_until="load")
    trials = page.evaluate("JSON.parse(document.getElementById('study-data').textContent).trials")
    page.fill("#participant", "lee")
    page.click("#start")
    page.hover("#left")  # a mouse can hover: the hover style applies here
    assert page.eval_on_selector("#left", "e => getComputedStyle(e).borderTopColor") == HOVER
    assert page.eval_on_selector("#right", "e => getComputedStyle(e).borderTopColor") == REST
    page.click("#left")
    page.click("#right")
    page.reload(wait_until="load")
    assert progress(page) == f"Question 3 of {len(trials)}" and page.locator("#resumed").is_visible()
    undecided = next(i for i, t in enumerate(trials) if i >= 2 and not t["is_attention_check"] and not t["is_repeat"])
    for index in range(2, len(trials)):
        trial = trials[index]
        if trial["is_attention_check"]:
            key = "a" if trial["left"]["cell"] == trial["expected_cell"] else "l"
        else:
            key = "ArrowDown" if index == undecided else "a"
        if index == len(trials) - 1:
            with page.expect_download() as download:
                page.keyboard.press(key)
            answers_file = tmp_path / "answers.csv"
            download.value.save_as(answers_file)
        else:
            page.keyboard.press(key)
    assert stored(page) is None  # finished: nothing left to resume
    downloads: list[Any] = []
    page.on("download", lambda download: downloads.append(download))
    page.focus("#download")
    page.keyboard.press("Enter")  # the focused link, by Enter: its own activation, once
    page.wait_for_timeout(300)
    assert len(downloads) == 1
    page.keyboard.press(" ")  # Space, which a link ignores: the page's key handler, once
    page.wait_for_timeout(300)
    assert len(downloads) == 2
    with open(answers_file, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["trial"]) for r in rows] == list(range(1, len(trials) + 1))
    assert [r["chosen_side"] for r in rows[:2]] == ["left", "right"] and rows[0]["participant"] == "lee"
    tie = rows[undecided]
    assert (tie["chosen_cell"], tie["chosen_side"]) == ("", "none")
    result = analyze_answers([answers_file], resamples=50)
    assert not result.excluded
    question = next(q for q in result.questions if q.question == tie["question"])
    cells = tuple(sorted((tie["left_cell"], tie["right_cell"])))
    [test] = [p for p in question.pairs if (p.cell_a, p.cell_b) == cells]
    assert test.ties == 1
    assert any(c.wins % 1 == 0.5 for c in question.cells)  # half a win to each side
    assert not problems, problems
    context.close()


def test_phone_touch_stacks_the_pair_and_leaves_no_highlight(browser: Any, pages: dict[str, Path]) -> None:
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    problems = watch(page)
    page.goto(pages["cant_decide"].as_uri(), wait_until="load")
    assert page.evaluate("matchMedia('(hover: hover)').matches") is False
    page.tap("#start")
    left, right = page.locator("#left-image").bounding_box(), page.locator("#right-image").bounding_box()
    assert left["y"] + left["height"] <= right["y"]  # stacked
    assert all(box["x"] >= 0 and box["width"] >= PHONE["width"] - 8 for box in (left, right))
    assert "Question 1 of" in progress(page)
    page.tap("#left")
    assert "Question 2 of" in progress(page)
    colours = [page.eval_on_selector(f"#{side}", "e => getComputedStyle(e).borderTopColor")
               for side in ("left", "right")]
    assert colours == [REST, REST]  # the side tapped last is not marked on the next pair
    assert page.evaluate("document.activeElement.id") not in ("left", "right")
    page.tap("#cant-decide")
    page.tap("#undo")
    assert "Question 2 of" in progress(page) and len(stored(page)["answers"]) == 1
    page.reload(wait_until="load")  # someone else at the same browser: start over, nothing kept
    assert "Question 2 of" in progress(page)
    page.tap("#start-over")
    assert page.locator("#intro").is_visible() and stored(page) is None
    assert not problems, problems
    context.close()
