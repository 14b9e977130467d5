"""The HTML report: reading a result folder, cells, SVG charts, escaping, embedding, the CLI."""

from __future__ import annotations

import base64
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clipstyler_opt.cli import cli
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.report import load_results, write_report
from clipstyler_opt.report.markup import clean_text, escape
from clipstyler_opt.report.svg import LabelledPoint, Series, format_tick, line_chart, nice_axis, scatter_chart

SVG = "{http://www.w3.org/2000/svg}"
ODD_PROMPT = 'starry <b>night</b> & "stars"\nsecond line'
PLAIN_PROMPT = "ukiyo-e woodblock print"
DIRECTIONS = {"clip_score": "higher", "directional_similarity": "higher", "patch_clip_score": "higher",
              "ssim": "higher", "vgg_content_distance": "lower", "lpips": "lower", "edge_correlation": "higher",
              "gram_distance": "lower"}


def write_png(path: Path, size: tuple[int, int], seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def make_result_folder(base: Path, *, prompts: Sequence[str] = (ODD_PROMPT, PLAIN_PROMPT),
                       contents: Sequence[str] = ("red.png", "blue.png"), lambdas: Sequence[float] = (300.0, 50.0),
                       history: bool = True, sweep: bool = False, evaluation: bool = True) -> Path:
    """A folder as `clipopt batch` writes it: content images outside it, outputs per prompt and cell
    (cells differ in lambda_content only), sidecars, a manifest with noise, and an eval.json whose
    SSIM of an output is 0.5 + 0.1·(content index) + lambda/1000 and directional similarity
    0.3 − lambda/1000 (so cell means are known by hand)."""
    photos, root = base / "photos", base / "results"
    root.mkdir(parents=True)
    lines: list[dict[str, Any]] = []
    rows = []
    for c, name in enumerate(contents):
        write_png(photos / name, (48, 32), seed=c)
        for p, prompt in enumerate(prompts):
            for lam in lambdas:
                relative = f"prompt-{p}/lam-{lam:g}/{name}"
                output = root / relative
                write_png(output, (48, 32), seed=100 + 10 * c + p + int(lam))
                settings = {"steps": 3, "lambda_content": lam, "lambda_tv": 0.002, "size": 48}
                sidecar: dict[str, Any] = {
                    "prompt": prompt, "seed": 7 + c, "settings": settings, "settings_hash": f"h{c}{p}{lam:g}",
                    "input": {"source": str(photos / name), "sha256": "0" * 64, "size": [48, 32]},
                    "losses": {"total": 10.0 + lam / 100, "content": 1.0, "dir": 0.5},
                    "backbone": {"name": "tiny"}}
                if history:
                    sidecar["history"] = [{"total": 30.0 - 10 * i + lam / 100, "content": 3.0 - i, "dir": 0.5}
                                          for i in range(3)]
                if sweep:
                    sidecar["sweep"] = {"cell": f"c{int(lam)}", "values": {"lambda_content": lam}}
                output.with_name(output.name + ".json").write_text(json.dumps(sidecar))
                lines.append({"record": "job", "status": "done", "input": str(photos / name), "relative": name,
                              "prompt": prompt, "output": relative, "seed": 7 + c, "settings_hash": "x"})
                rows.append({"output": relative, "content": str(photos / name), "prompt": prompt, "metrics": {
                    "clip_score": 0.25, "directional_similarity": 0.3 - lam / 1000,
                    "patch_clip_score": 0.2, "ssim": 0.5 + 0.1 * c + lam / 1000, "vgg_content_distance": 1.0,
                    "lpips": None, "edge_correlation": 0.9, "gram_distance": None}})
    lines.insert(0, {"record": "job", "status": "failed", "input": str(photos / "gone.png"), "relative": "gone.png",
                     "prompt": prompts[0], "output": "prompt-0/gone.png", "seed": 1, "error": "unreadable"})
    lines.append({"record": "job", "status": "done", "input": str(photos / "x.png"), "relative": "x.png",
                  "prompt": prompts[0], "output": "prompt-0/deleted.png", "seed": 1, "settings_hash": "y"})
    lines.append({"record": "summary", "jobs": len(rows), "done": len(rows)})
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"record": "job", "sta'  # a cut last line
    (root / "manifest.jsonl").write_text(text)
    if evaluation:
        (root / "eval.json").write_text(json.dumps({"scorer": {"model": "tiny"}, "rows": rows, "summary": {},
                                                    "directions": DIRECTIONS}))
    return root


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {key: value or "" for key, value in attrs}))


def tags(page: str, name: str) -> list[dict[str, str]]:
    parser = _Tags()
    parser.feed(page)
    return [attrs for tag, attrs in parser.tags if tag == name]


# --- reading a folder ---

def test_cells_are_inferred_from_differing_settings_and_sorted_numerically(tmp_path: Path) -> None:
    results = load_results(make_result_folder(tmp_path))
    assert [cell.label for cell in results.cells] == ["lambda_content=50", "lambda_content=300"]
    assert len(results.outputs) == 2 * 2 * 2
    assert results.prompts == [ODD_PROMPT, PLAIN_PROMPT]
    assert len(results.groups()) == 4 and all(len(g) == 2 for g in results.groups().values())
    assert any("deleted.png" in note and "missing" in note for note in results.notes)
    assert not any("gone.png" in note for note in results.notes)  # a failed job is not an output


def test_sweep_cells_are_taken_from_the_sidecar(tmp_path: Path) -> None:
    results = load_results(make_result_folder(tmp_path, sweep=True))
    assert [(c.id, c.values) for c in results.cells] == [("c50", (("lambda_content", 50.0),)),
                                                         ("c300", (("lambda_content", 300.0),))]
    page = write_report(results.root).read_text(encoding="utf-8")
    assert '<th scope="col"><b>c50</b><br>lambda_content=50</th>' in page


def test_a_single_setting_gives_one_default_cell_and_history_may_be_absent(tmp_path: Path) -> None:
    results = load_results(make_result_folder(tmp_path, lambdas=(150.0,), history=False))
    assert [c.id for c in results.cells] == ["default"]
    assert all(o.history == () for o in results.outputs)


def test_the_latest_manifest_record_of_an_output_wins(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,), contents=("red.png",))
    record = {"record": "job", "status": "skipped", "input": "/elsewhere/red.png", "relative": "red.png",
              "prompt": PLAIN_PROMPT, "output": "prompt-0/lam-50/red.png", "seed": 7}
    with open(root / "manifest.jsonl", "a") as fh:
        fh.write("\n" + json.dumps(record) + "\n")
    by_output = {o.relative: o for o in load_results(root).outputs}
    assert by_output["prompt-0/lam-50/red.png"].content == Path("/elsewhere/red.png")
    assert by_output["prompt-0/lam-300/red.png"].content == tmp_path / "photos" / "red.png"


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "manifest.jsonl").unlink(), "no manifest.jsonl"),
    (lambda root: (root / "manifest.jsonl").write_text('{"record": "summary"}\n'), "no finished output"),
    (lambda root: (root / "eval.json").write_text("{not json"), "eval.json"),
    (lambda root: (root / "eval.json").write_text('{"rows": [{"metrics": {}}]}'), "eval.json"),
])
def test_unusable_folders_are_one_line_errors(tmp_path: Path, damage: Any, message: str) -> None:
    root = make_result_folder(tmp_path)
    damage(root)
    with pytest.raises(ConfigError, match=message) as caught:
        load_results(root)
    assert "\n" not in str(caught.value)


# --- text ---

def test_text_is_escaped_and_undecodable_bytes_become_valid_unicode() -> None:
    assert escape('<a href="x">&</a>') == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
    assert clean_text(os.fsdecode("café".encode())) == "café"  # surrogate-escaped valid UTF-8 decodes
    assert clean_text(os.fsdecode(b"caf\xe9")) == "caf\ufffd"  # Latin-1 bytes are not UTF-8
    assert clean_text("a\ud800b") == "a\ufffdb"


# --- charts ---

@pytest.mark.parametrize("low, high, ticks", [
    (0, 10, [0, 2, 4, 6, 8, 10]),  # raw step 2 -> 2
    (0.13, 0.87, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),  # raw 0.148 -> 0.2, widened to cover the data
    (-3, 7, [-4, -2, 0, 2, 4, 6, 8]),
    (0.1, 0.3, [0.1, 0.15, 0.2, 0.25, 0.3]),  # raw 0.04 -> 0.05
    (5, 5, [4.4, 4.6, 4.8, 5.0, 5.2, 5.4, 5.6]),  # a single value is padded by 10%
])
def test_nice_axis_ticks(low: float, high: float, ticks: list[float]) -> None:
    axis = nice_axis(low, high)
    assert axis.ticks == pytest.approx(ticks)
    assert (axis.low, axis.high) == pytest.approx((ticks[0], ticks[-1]))


def test_tick_labels_have_the_decimals_of_the_step() -> None:
    assert [format_tick(v, 0.05) for v in (0.1, 0.15)] == ["0.10", "0.15"]
    assert format_tick(20000.0, 20000.0) == "20000"
    assert format_tick(2e-5, 1e-5) == "2e-05"


def _plot_area(root: ET.Element) -> tuple[float, float, float, float]:
    rect = next(r for r in root.iter(f"{SVG}rect") if r.get("class") == "plot-area")
    x, y, width, height = (float(rect.get(k, "nan")) for k in ("x", "y", "width", "height"))
    return x, y, width, height


def test_line_chart_maps_data_linearly_onto_the_plot_area() -> None:
    svg = line_chart([Series("total <&>", [(0, 0), (5, 10), (10, 5), (11, float("nan"))])],
                     title="loss & more", x_label="step", y_label="value")
    root = ET.fromstring(svg)  # well-formed XML, whatever the labels contain
    x0, y0, width, height = _plot_area(root)
    (line,) = [p for p in root.iter(f"{SVG}polyline")]
    points = [tuple(map(float, pair.split(","))) for pair in line.get("points", "").split()]
    # axis 0..10 on both sides (the NaN point is dropped): x = x0 + x/10·w, y = y0 + (1 − y/10)·h
    expected = [(x0, y0 + height), (x0 + width / 2, y0), (x0 + width, y0 + height / 2)]
    assert len(points) == len(expected)
    for got, want in zip(points, expected, strict=True):
        assert got == pytest.approx(want, abs=0.01)
    assert line.get("data-name") == "total <&>"
    texts: dict[str | None, list[str | None]] = {t.get("class"): [] for t in root.iter(f"{SVG}text")}
    for t in root.iter(f"{SVG}text"):
        texts[t.get("class")].append(t.text)
    assert texts["x-tick"] == ["0", "2", "4", "6", "8", "10"]
    assert texts["title"] == ["loss & more"] and texts["legend"] == ["total <&>"]


def test_scatter_chart_labels_each_finite_point() -> None:
    svg = scatter_chart([LabelledPoint(0.2, 0.4, "a=1"), LabelledPoint(0.6, 0.2, 'b="2"'),
                         LabelledPoint(float("inf"), 0.3, "dropped")], title="t", x_label="ssim", y_label="dir")
    root = ET.fromstring(svg)
    x0, y0, width, height = _plot_area(root)
    circles = list(root.iter(f"{SVG}circle"))
    assert len(circles) == 2
    # x: 0.2..0.6 padded by 5% of the span to 0.18..0.62, raw step 0.088 -> ticks 0.1..0.7 by 0.1;
    # y: 0.2..0.4 padded to 0.19..0.41, raw step 0.044 -> ticks 0.15..0.45 by 0.05
    def expected(x: float, y: float) -> tuple[float, float]:
        return (x0 + (x - 0.1) / 0.6 * width, y0 + (0.45 - y) / 0.3 * height)

    for circle, (x, y) in zip(circles, [(0.2, 0.4), (0.6, 0.2)], strict=True):
        assert (float(circle.get("cx", "nan")), float(circle.get("cy", "nan"))) == pytest.approx(expected(x, y),
                                                                                               abs=0.01)
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "y-tick"]
    assert ticks == ["0.15", "0.20", "0.25", "0.30", "0.35", "0.40", "0.45"]
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "point-label"]
    assert labels == ["a=1", 'b="2"']


def test_charts_refuse_to_draw_nothing() -> None:
    with pytest.raises(ValueError):
        line_chart([Series("empty", [(1.0, float("nan"))])], title="t", x_label="x", y_label="y")


# --- the page ---

def test_report_grid_references_every_image_relatively(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path)
    path = write_report(root)
    assert path == root / "report.html"
    page = path.read_text(encoding="utf-8")
    sources = [attrs["src"] for attrs in tags(page, "img")]
    assert len(sources) == 8 + 2 * 2  # the outputs, and each content image once per prompt
    for src in sources:
        assert not src.startswith(("data:", "/", "file:")), src
        assert (root / os.fsdecode(unquote_to_bytes(src))).resolve().is_file(), src
    headers = re.findall(r'<th scope="col">(.*?)</th>', page)
    assert headers[:3] == ["content", "lambda_content=50", "lambda_content=300"]
    first_row = re.search(r"<tbody><tr>(.*?)</tr>", page).group(1)
    assert 'class="content"' in first_row.split("<td>")[0]  # the content image comes first


def test_report_escapes_prompts_and_keeps_no_raw_markup(tmp_path: Path) -> None:
    page = write_report(make_result_folder(tmp_path)).read_text(encoding="utf-8")
    assert "<b>night</b>" not in page
    assert "starry &lt;b&gt;night&lt;/b&gt; &amp; &quot;stars&quot;" in page


def test_report_embeds_images_as_data_uris(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,))
    out = tmp_path / "mail" / "page.html"
    write_report(root, out, embed=True)
    page = out.read_text(encoding="utf-8")
    sources = [attrs["src"] for attrs in tags(page, "img")]
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    files = {p.read_bytes() for p in root.rglob("*.png")} | {p.read_bytes() for p in (tmp_path / "photos").iterdir()}
    assert all(base64.b64decode(src.split(",", 1)[1]) in files for src in sources)


def test_report_metrics_table_means_and_unavailable(tmp_path: Path) -> None:
    page = write_report(make_result_folder(tmp_path)).read_text(encoding="utf-8")
    # SSIM is 0.5 + 0.1·(content index) + lambda/1000: the lambda=50 cell averages 0.55 and 0.65 = 0.6
    row_50 = re.search(r"<tr><td class=\"prompt\">ukiyo-e woodblock print</td><td>lambda_content=50</td>(.*?)</tr>",
                       page).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row_50)
    headers = re.findall(r"<th>(.*?)</th>", page.split('class="metrics"')[1].split("</thead>")[0])
    values = dict(zip(headers[2:], cells, strict=True))
    assert float(values["ssim ↑"]) == pytest.approx(0.6)
    assert float(values["directional_similarity ↑"]) == pytest.approx(0.25)
    assert values["lpips ↓"] == "unavailable" and values["gram_distance ↓"] == "unavailable"
    assert values["images"] == "2"


def test_report_tradeoff_plot_has_one_point_per_cell_and_prompt(tmp_path: Path) -> None:
    page = write_report(make_result_folder(tmp_path)).read_text(encoding="utf-8")
    tradeoff = page.split('id="tradeoff"')[1].split('id="losses"')[0]
    assert tradeoff.count("<circle") == 2 * 2
    assert "ssim (higher is better)" in tradeoff and "directional_similarity (higher is better)" in tradeoff
    assert '>lambda_content=50</text>' in tradeoff


def test_report_loss_curves_come_from_the_history(tmp_path: Path) -> None:
    page = write_report(make_result_folder(tmp_path)).read_text(encoding="utf-8")
    losses = page.split('id="losses"')[1]
    # 4 groups (content × prompt) × 3 loss names, each with one line per cell
    assert losses.count("<svg") == 12 and losses.count("<polyline") == 24


def test_report_without_metrics_or_history_says_how_to_get_them(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, history=False, evaluation=False)
    page = write_report(root).read_text(encoding="utf-8")
    assert "clipopt eval" in page and "<circle" not in page and "No per-step loss history" in page


def rename_to_undecodable(root: Path, relative: str) -> str:
    """Rename an output (and its sidecar) to a name whose bytes are not UTF-8 (b"caf\\xff.png"),
    as the manifest would then record it; returns the new relative path."""
    source = root / relative
    odd = os.fsdecode(b"caf\xff.png")
    source.rename(source.with_name(odd))
    source.with_name(source.name + ".json").rename(source.with_name(odd + ".json"))
    renamed = relative.rsplit("/", 1)[0] + "/caf\\udcff.png"
    (root / "manifest.jsonl").write_text((root / "manifest.jsonl").read_text().replace(relative, renamed))
    return renamed


def test_undecodable_file_names_are_percent_encoded_from_their_bytes(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,), contents=("a.png",), evaluation=False)
    rename_to_undecodable(root, "prompt-0/lam-50/a.png")
    page = write_report(root).read_bytes().decode("utf-8")  # strict: no lone surrogate reached the file
    assert 'src="prompt-0/lam-50/caf%FF.png"' in page


def test_report_cli_writes_elsewhere_and_fails_in_one_line(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path)
    out = tmp_path / "other" / "r.html"
    result = CliRunner().invoke(cli, ["report", str(root), "-o", str(out)])
    assert result.exit_code == 0, result.output
    src = tags(out.read_text(encoding="utf-8"), "img")[0]["src"]
    assert src.startswith("../") and (out.parent / src).resolve().is_file()
    (root / "eval.json").write_text("[")
    result = CliRunner().invoke(cli, ["report", str(root)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert not (root / "report.html").exists()  # nothing half-written


def test_report_never_writes_over_what_it_reads(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path)
    manifest = (root / "manifest.jsonl").read_bytes()
    result = CliRunner().invoke(cli, ["report", str(root), "-o", str(root / "manifest.jsonl")])
    assert result.exit_code == 2 and "refusing to overwrite" in result.output
    assert (root / "manifest.jsonl").read_bytes() == manifest
