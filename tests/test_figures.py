"""Figures: three formats, print resolution, reproducible bytes, one colour per cell, integer ticks."""

from __future__ import annotations

import contextlib
import re
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

from PIL import Image

from clipstyler_opt.figures.charts import Bar, Point, Series, bar_chart, curve_chart, heatmap_chart, scatter_chart
from clipstyler_opt.figures.export import figure_bytes, save_figure
from clipstyler_opt.figures.palette import OKABE_ITO, cell_colours


def _pdf_page_count(data: bytes) -> int:
    """Pages of a PDF counted from its objects (uncompressed, or inside Flate streams)."""
    text = data
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        with contextlib.suppress(zlib.error):
            text += zlib.decompress(stream)
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", text))


def test_a_figure_is_written_as_svg_pdf_and_png_at_300_dpi(tmp_path: Path) -> None:
    figure = curve_chart([Series("CLIP", [0, 1, 2], [0.1, 0.2, 0.25], [0.05, 0.15, 0.2], [0.15, 0.25, 0.3])],
                         xlabel="style strength", ylabel="cos(ΔI, ΔT)")
    paths = save_figure(figure, tmp_path / "figures", "response CLIP")
    assert [p.name for p in paths] == ["response-clip.svg", "response-clip.pdf", "response-clip.png"]
    svg = ET.fromstring(paths[0].read_bytes())
    texts = "".join(svg.itertext())
    assert "style strength" in texts and "cos(ΔI, ΔT)" in texts and "CLIP" in texts
    pdf = paths[1].read_bytes()
    assert pdf.startswith(b"%PDF-") and _pdf_page_count(pdf) == 1
    with Image.open(paths[2]) as png:
        assert png.format == "PNG"
        assert [round(v) for v in png.info["dpi"]] == [300, 300]
        assert png.size == (round(6.4 * 300), round(4.0 * 300))
    assert not [p for p in (tmp_path / "figures").iterdir() if p not in paths]  # no temporary left behind


def test_the_same_figure_gives_the_same_bytes() -> None:
    def make() -> bytes:
        return figure_bytes(bar_chart([Bar("a", 1.0, 0.5, 1.5), Bar("b", 2.0)], xlabel="x", ylabel="y"), "svg")

    assert make() == make()


def test_a_cell_has_one_colour_in_every_chart() -> None:
    colours = cell_colours(["SigLIP", "CLIP"])
    assert colours == {"SigLIP": OKABE_ITO[0], "CLIP": OKABE_ITO[1]}
    curve = figure_bytes(curve_chart([Series("CLIP", [0, 1], [0, 1])], xlabel="x", ylabel="y", colours=colours),
                         "svg").decode()
    scatter = figure_bytes(scatter_chart([Point("CLIP", 0, 1)], xlabel="x", ylabel="y", colours=colours),
                           "svg").decode()
    clip = colours["CLIP"].lower()
    assert clip in curve.lower() and clip in scatter.lower()
    assert colours["SigLIP"].lower() not in curve.lower()
    many = cell_colours([f"cell{i}" for i in range(12)])
    assert len(set(many.values())) == 12


def test_step_axes_get_whole_number_ticks_only() -> None:
    figure = curve_chart([Series("run", [1, 2], [0.5, 0.4])], xlabel="step", ylabel="loss", integer_x=True)
    figure.canvas.draw()
    ticks = [t for t in figure.axes[0].get_xticks() if 1 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_legends_sit_outside_the_data() -> None:
    figure = curve_chart([Series("a very long cell label", [0, 1], [0, 1])], xlabel="x", ylabel="y")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]  (an Agg canvas)
    legend = figure.legends[0].get_window_extent(renderer)
    axes = figure.axes[0].get_window_extent(renderer)
    assert legend.x0 >= axes.x1 - 1  # to the right of the plotting area, not over the data


def test_a_heat_map_writes_its_values() -> None:
    figure = heatmap_chart([[3, 1], [0, 4]], row_labels=["a", "b"], column_labels=["a", "b"], xlabel="predicted",
                           ylabel="true")
    assert [t.get_text() for t in figure.axes[0].texts] == ["3", "1", "0", "4"]
