"""`clipopt report --figures`: every chart in SVG, PDF and PNG (300 dpi), the image grid at print
resolution, the metrics table as CSV, LaTeX and Markdown, one colour per cell everywhere, intervals,
integer step ticks, labels without paths, the Analysis section, and the figures folder's safety."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import stats as scipy_stats
from test_figures import _pdf_page_count
from test_report import PLAIN_PROMPT, make_result_folder, tags

from clipstyler_opt.cli import cli
from clipstyler_opt.figures.palette import OKABE_ITO
from clipstyler_opt.figures.tables import csv_table, latex_table, markdown_table
from clipstyler_opt.report import write_report
from clipstyler_opt.report.charts import loss_figures, tradeoff_figures
from clipstyler_opt.report.load import load_results
from clipstyler_opt.report.tables import metrics_table

# the cells sort lambda_content 50 before 300, so they take the palette's first two colours
COLOURS = {"lambda_content=50": OKABE_ITO[0], "lambda_content=300": OKABE_ITO[1]}


def _report(root: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["report", str(root), "-q", *args])


@pytest.fixture(scope="module")
def with_figures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one prompt, two cells and two content images, reported with --figures."""
    root = make_result_folder(tmp_path_factory.mktemp("figures"), prompts=(PLAIN_PROMPT,))
    result = CliRunner().invoke(cli, ["report", str(root), "--figures"])
    assert result.exit_code == 0, result.output
    assert "[1/3] report-tradeoff-1-" in result.output  # progress while the figures are drawn
    return root


def test_every_chart_is_svg_pdf_and_png_at_300_dpi_and_the_page_shows_those_files(with_figures: Path) -> None:
    folder = with_figures / "figures"
    stems = sorted({p.stem for p in folder.iterdir()})
    charts = [s for s in stems if not s.endswith("metrics")]
    assert {re.sub(r"-\d+-.*", "", s) for s in charts} == {"report-tradeoff", "report-losses", "report-grid"}
    assert all(s.startswith("report-") for s in stems)  # analyze's names never start so
    for stem in charts:
        assert (folder / f"{stem}.svg").read_bytes().lstrip().startswith(b"<?xml")
        pdf = (folder / f"{stem}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-") and _pdf_page_count(pdf) == 1
        with Image.open(folder / f"{stem}.png") as png:
            assert [round(v) for v in png.info["dpi"]] == [300, 300]
    page = (with_figures / "report.html").read_text(encoding="utf-8")
    shown = [a["src"] for a in tags(page, "img") if "chart" in a.get("class", "")]
    assert sorted(shown) == sorted(f"figures/{s}.svg" for s in charts if "grid" not in s)


def test_the_image_grid_is_at_print_resolution(with_figures: Path) -> None:
    (grid,) = (with_figures / "figures").glob("report-grid-*.png")
    with Image.open(grid) as png:
        # 3 columns (content + 2 cells) and 2 rows of 1.6 in pictures, 0.4 in margins, a title line
        assert png.size == (round((3 * 1.6 + 0.4) * 300), round((2 * 1.6 + 0.4 + 0.4) * 300))
        # the pictures' pixels are there (random noise images: far more colours than any chart has)
        assert png.convert("RGB").getcolors(4096) is None


def _hand_interval(values: list[float]) -> tuple[float, float]:
    """The 95% t-interval of the mean by scipy: one output per content image here, so the
    cluster-robust interval (clusters: content images) is the classic one."""
    low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    return float(low), float(high)


def test_tables_are_csv_latex_and_markdown_with_mean_interval_and_n(with_figures: Path) -> None:
    folder = with_figures / "figures"
    rows = list(csv.DictReader(io.StringIO((folder / "report-metrics.csv").read_text())))
    assert list(rows[0])[:8] == ["prompt", "cell", "lambda_content", "n", "clip_score", "clip_score_low",
                                 "clip_score_high", "clip_score_n"]
    row = next(r for r in rows if r["lambda_content"] == "50")
    # SSIM = 0.5 + 0.1·(content index) + lambda/1000 over red.png and blue.png: 0.55 and 0.65
    assert float(row["ssim"]) == pytest.approx(0.6) and row["n"] == "2" and row["ssim_n"] == "2"
    assert (float(row["ssim_low"]), float(row["ssim_high"])) == pytest.approx(_hand_interval([0.55, 0.65]))
    assert row["lpips"] == row["lpips_low"] == ""
    tex = (folder / "report-metrics.tex").read_text()
    lines = tex.splitlines()
    assert lines[0] == r"\begin{table}[htbp]" and lines[-1] == r"\end{table}"
    assert [ln for ln in lines if ln in (r"\toprule", r"\midrule", r"\bottomrule")] == [
        r"\toprule", r"\midrule", r"\bottomrule"]
    body = lines[lines.index(r"\toprule") + 1:lines.index(r"\bottomrule")]
    body.remove(r"\midrule")
    columns = re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1)
    assert all(ln.endswith(r" \\") and ln.count(" & ") == len(columns) - 1 for ln in body), body
    low, high = _hand_interval([0.55, 0.65])
    assert r"clip\_score" in tex and f"0.600 [{low:.3f}, {high:.3f}]" in tex
    md = (folder / "report-metrics.md").read_text().splitlines()
    assert md[0].startswith("| prompt | cell | lambda_content | n |") and set(md[1]) <= set("|-:")
    assert len({ln.count("|") for ln in md[:4]}) == 1


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex")
def test_the_latex_table_compiles(with_figures: Path, tmp_path: Path) -> None:
    source = (with_figures / "figures" / "report-metrics.tex").read_text()
    (tmp_path / "t.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage[utf8]{inputenc}"
                                    "\\begin{document}" + source + "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path, capture_output=True)
    assert done.returncode == 0, done.stdout[-2000:]


def _colours_in(svg: str) -> list[str]:
    return [c.upper() for c in re.findall(r"#[0-9a-fA-F]{6}", svg)]


def test_a_cell_has_one_colour_in_every_chart_and_in_the_page(with_figures: Path) -> None:
    folder = with_figures / "figures"
    for svg in [*folder.glob("report-tradeoff-*.svg"), *folder.glob("report-losses-*.svg")]:
        found = set(_colours_in(svg.read_text()))
        assert set(COLOURS.values()) <= found, svg.name
        assert not set(OKABE_ITO[2:7]) & found, svg.name  # no third cell colour appears
    results = load_results(with_figures)
    (tradeoff,), _ = tradeoff_figures(results)
    legend = tradeoff.figure.legends[0]
    drawn = {t.get_text(): handle.get_facecolor()[0] for t, handle in zip(legend.get_texts(), legend.legend_handles,
                                                                          strict=True)}
    for label, colour in COLOURS.items():
        assert tuple(round(v * 255) for v in drawn[label][:3]) == tuple(int(colour[i:i + 2], 16)
                                                                               for i in (1, 3, 5))
    page = (with_figures / "report.html").read_text(encoding="utf-8")
    headers = re.findall(r'<th scope="col" style="border-top: 5px solid (#\w+)">(.*?)</th>', page)
    assert dict((label, colour) for colour, label in headers) == COLOURS


def test_tradeoff_points_are_cell_means_with_interval_bars(tmp_path: Path) -> None:
    results = load_results(make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,), history=False))
    (tradeoff,), missing = tradeoff_figures(results)
    assert missing == []
    axes = tradeoff.figure.axes[0]
    assert axes.get_xlabel() == "ssim (higher is better)"
    points = {tuple(np.round(c.get_offsets()[0], 6)) for c in axes.collections if c.get_label() in COLOURS}
    # SSIM 0.5 + 0.1c + lambda/1000 over c = 0, 1; direction 0.3 − lambda/1000
    assert points == {(0.6, 0.25), (0.85, 0.0)}
    bars = [np.asarray(seg) for c in axes.collections if c.get_label() not in COLOURS for seg in c.get_segments()]
    horizontal = sorted((round(s[0][0], 6), round(s[1][0], 6)) for s in bars
                        if s[0][1] == s[1][1] and s[0][0] != s[1][0])
    wanted = sorted(tuple(round(v, 6) for v in _hand_interval([0.5 + 0.1 * c + lam / 1000 for c in (0, 1)]))
                    for lam in (50, 300))
    assert horizontal == wanted


def test_loss_curves_have_whole_step_ticks_and_mean_bands(tmp_path: Path) -> None:
    results = load_results(make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,), evaluation=False))
    (losses,) = loss_figures(results)
    assert [a.get_ylabel() for a in losses.figure.axes] == ["total", "content", "dir"]
    losses.figure.canvas.draw()
    total = losses.figure.axes[0]
    ticks = [t for t in total.get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)
    line = next(ln for ln in total.lines if ln.get_label() == "lambda_content=50")
    # history: total = 30 − 10·step + lambda/100 for each content image (identical, so no band width)
    assert list(line.get_xdata()) == [1, 2, 3] and list(line.get_ydata()) == pytest.approx([30.5, 20.5, 10.5])


def test_labels_never_show_an_absolute_path_and_legends_are_not_cut(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,), sweep=True, history=False)
    long_file = str(tmp_path / "styles" / "a-rather-long-reference-image-name-for-a-legend.png")
    for sidecar in root.rglob("*.png.json"):
        record = json.loads(sidecar.read_text())
        lam = record["sweep"]["values"]["lambda_content"]
        record["sweep"]["values"]["style_image"] = long_file if lam == 50 else str(tmp_path / "b" / "s.png")
        sidecar.write_text(json.dumps(record))
    page = write_report(root).read_text(encoding="utf-8")
    charts = [base64.b64decode(a["src"].split(",", 1)[1]).decode() for a in tags(page, "img")
              if a["src"].startswith("data:image/svg+xml;base64,")]
    table = metrics_table(load_results(root))
    assert charts and table is not None
    for text in [page, *charts, csv_table(table), latex_table(table), markdown_table(table)]:
        assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text
    assert "style_image=a-rather-long-reference-image-name-for-a-legend.png" in page
    results = load_results(root)
    (tradeoff,), _ = tradeoff_figures(results)
    figure = tradeoff.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    page = figure.bbox
    entries = figure.legends[0].get_texts()
    for text in entries:
        box = text.get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1 + 0.5 and page.y0 <= box.y0 and box.y1 <= page.y1 + 0.5
    shown = {t.get_text().replace("\n", "").replace(" ", "") for t in entries}  # wrapped, nothing dropped
    assert shown == {"lambda_content=50,style_image=a-rather-long-reference-image-name-for-a-legend.png",
                     "lambda_content=300,style_image=s.png"}


def _analysis(scorers: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": 1, "scorers": scorers}


def _probes(gap: float) -> dict[str, Any]:
    return {"modality_gap": {"gap": gap, "image_cone": 0.5, "text_cone": 0.6, "n_images": 4, "n_texts": 2},
            "response_curves": {"skipped": "no numeric setting was varied"},
            "text_vs_image": {"pairs": [{"text_cos": 0.1, "image_cos": 0.2}, {"text_cos": 0.3, "image_cos": 0.5}],
                              "n_pairs": 2, "spearman_rho": {"estimate": 1.0, "ci_low": 0.4, "ci_high": 1.0,
                                                             "n_clusters": 2}},
            "recognition": {"top1": 1.0, "chance_top1": 0.5, "top5": 1.0, "labels": ["oil", "ink"],
                            "confusion": [[2, 0], [0, 2]]}}


def test_the_analysis_section_shows_analysis_json_and_its_figures(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,), history=False, evaluation=False)
    scorers = {"CLIP": {"probes": _probes(0.8125)}, "SigLIP": {"probes": {"modality_gap": {"gap": 0.25}}}}
    (root / "analysis.json").write_text(json.dumps(_analysis(scorers)))
    result = _report(root)
    assert result.exit_code == 0, result.output
    page = (root / "report.html").read_text(encoding="utf-8")
    section = page.split('<h2 id="analysis">')[1]
    rows = re.findall(r"<tr><td>(CLIP|SigLIP)</td><td[^>]*>([\d.]+)", section)
    assert rows == [("CLIP", "0.8125"), ("SigLIP", "0.25")]
    assert "response curves skipped: no numeric setting was varied" in section
    charts = [a["alt"] for a in tags(section, "img")]
    assert charts == ["text-vs-image-clip", "recognition-clip", "modality-gap"]
    (root / "analysis.json").write_text(json.dumps(_analysis({"CLIP": {"probes": {"recognition": {"confusion": 3,
                                                                                                   "labels": 1}}}})))
    result = _report(root)
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "analysis.json" in result.output


def test_a_linked_or_blocked_figures_folder_is_refused_and_links_inside_are_replaced(tmp_path: Path) -> None:
    root = make_result_folder(tmp_path, prompts=(PLAIN_PROMPT,), history=False, evaluation=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "figures").symlink_to(elsewhere)
    result = _report(root, "--figures")
    assert result.exit_code == 2 and "symbolic link" in result.output and result.output.count("\n") == 1
    assert list(elsewhere.iterdir()) == [] and not (root / "report.html").exists()
    (root / "figures").unlink()
    (root / "figures").write_text("x")
    result = _report(root, "--figures")
    assert result.exit_code == 5 and "is not a folder" in result.output
    (root / "figures").unlink()
    (root / "figures").mkdir()
    keep = elsewhere / "keep.csv"
    keep.write_text("keep")
    (root / "figures" / "report-grid-1-ukiyo-e-woodblock-print.png").symlink_to(keep)
    assert _report(root, "--figures").exit_code == 0
    assert keep.read_text() == "keep"  # the link was replaced by the file, never written through
    assert not (root / "figures" / "report-grid-1-ukiyo-e-woodblock-print.png").is_symlink()
