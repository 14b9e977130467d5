"""`report.html`: the image grid, metrics, trade-off plots, loss curves and analysis of one result
folder; with `figures=True` every chart and table is also written into `DIR/figures/` (SVG, PDF,
PNG at 300 dpi; CSV, LaTeX, Markdown), and the page shows those very files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipstyler_opt.core.files import ReadSet, write_bytes
from clipstyler_opt.figures.export import check_figures_folder, figure_bytes, save_figure
from clipstyler_opt.figures.tables import save_table
from clipstyler_opt.report.analysis_section import ANALYSIS_NAME, analysis_figures, analysis_section, read_analysis
from clipstyler_opt.report.charts import NamedFigure, colours_of, grid_figures, loss_figures, tradeoff_figures
from clipstyler_opt.report.images import data_uri, image_source, relative_url
from clipstyler_opt.report.labels import cell_labels
from clipstyler_opt.report.load import Cell, ResultFolder, RunOutput, load_results
from clipstyler_opt.report.markup import escape, fill_template, format_number, read_template
from clipstyler_opt.report.sections import loss_section, metrics_section, tradeoff_section
from clipstyler_opt.report.study_file import StudyStrengths, read_study
from clipstyler_opt.report.study_section import set_metrics_section, study_section
from clipstyler_opt.report.tables import METRICS_TABLE, metrics_table

__all__ = ["REPORT_NAME", "render_report", "write_report"]

REPORT_NAME = "report.html"


@dataclass(frozen=True)
class _Charts:
    """Every figure of the page, drawn once (and saved once with --figures)."""

    tradeoff: list[NamedFigure]
    tradeoff_missing: list[str]
    losses: list[NamedFigure]
    analysis: list[NamedFigure]
    summary: dict[str, Any] | None

    @staticmethod
    def draw(results: ResultFolder) -> _Charts:
        tradeoff, missing = tradeoff_figures(results)
        summary = read_analysis(results.root)
        analysis = analysis_figures(summary, results.root / ANALYSIS_NAME) if summary is not None else []
        return _Charts(tradeoff, missing, loss_figures(results), analysis, summary)

    def all(self) -> list[NamedFigure]:
        return [*self.tradeoff, *self.losses]


class _Sources:
    """<img src> values, computed once per file."""

    def __init__(self, page_folder: Path, embed: bool, figure_files: Mapping[str, Path] | None = None) -> None:
        self.page_folder, self.embed = page_folder, embed
        self.figure_files = figure_files or {}
        self._cache: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        if path not in self._cache:
            self._cache[path] = image_source(path, self.page_folder, embed=self.embed)
        return self._cache[path]

    def figure(self, figure: NamedFigure) -> str:
        """The figure's SVG file (relative) when it was written, else the same SVG as a data URI."""
        written = self.figure_files.get(figure.name)
        if written is not None and not self.embed:
            return relative_url(written, self.page_folder)
        return data_uri(figure_bytes(figure.figure, "svg"), "image/svg+xml")


def _figure(src: str, alt: str, caption: str, before: str | None = None) -> str:
    compare = f' data-before="{escape(before)}"' if before else ""
    return (f'<figure><img src="{escape(src)}" alt="{escape(alt)}" decoding="async" data-zoom{compare}>'
            f"<figcaption>{caption}</figcaption></figure>")


def _output_figure(output: RunOutput, label: str, sources: _Sources) -> str:
    total = output.losses.get("total")
    parts = ([f"seed {output.seed}"] if output.seed is not None else []) + \
        ([f"loss {format_number(total)}"] if total is not None else [])
    before = sources(output.content) if output.content.is_file() else None
    return _figure(sources(output.image), f"{output.prompt} — {label}", " · ".join(parts), before)


def _content_cell(content: Path, sources: _Sources) -> str:
    if content.is_file():
        return f'<td class="content">{_figure(sources(content), content.name, escape(content.name))}</td>'
    return f'<td class="content missing">content image not found:<br><code>{escape(content.name)}</code></td>'


def _cell_header(cell: Cell, label: str, colour: str) -> str:
    """The cell's settings one per line, under its name when that says something else, over a bar
    of the cell's colour (the same as in the charts)."""
    lines = [escape(part) for part in label.split(", ")]
    named = [f"<b>{escape(cell.id)}</b>"] if cell.values and cell.id != label else []
    return f'<th scope="col" style="border-top: 5px solid {colour}">' + "<br>".join(named + lines) + "</th>"


def _grid(results: ResultFolder, sources: _Sources) -> str:
    sections = []
    groups = results.groups()
    labels, colours = cell_labels(results.pooled_cells), colours_of(results)
    for prompt in results.prompts:
        cells = [c for c in results.pooled_cells
                 if any(o.prompt == prompt and o.cell.pooled() == c for o in results.outputs)]
        head = "".join(_cell_header(c, labels[c], colours[labels[c]]) for c in cells)
        rows = []
        for (content, group_prompt), outputs in groups.items():
            if group_prompt != prompt:
                continue
            tds = []
            for cell in cells:
                in_cell = [o for o in outputs if o.cell.pooled() == cell]
                tds.append("<td>" + ("".join(_output_figure(o, labels[cell], sources) for o in in_cell) or "—")
                           + "</td>")
            rows.append(f"<tr>{_content_cell(content, sources)}{''.join(tds)}</tr>")
        sections.append(f'<h3 class="prompt">{escape(prompt)}</h3><div class="scroll grid-box"><table class="grid">'
                        f'<thead><tr><th scope="col">content</th>{head}</tr></thead>'
                        f'<tbody>{"".join(rows)}</tbody></table></div>')
    return "".join(sections)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _overview(results: ResultFolder) -> str:
    varied = sorted({key for cell in results.cells for key, _ in cell.values})
    contents = len({o.content for o in results.outputs})
    lines = [f"{_count(len(results.outputs), 'output')} of {_count(contents, 'content image')}, "
             f"{_count(len(results.prompts), 'prompt')} and {_count(len(results.pooled_cells), 'cell')}"
             + (" (each pools its seeds)." if len(results.pooled_cells) < len(results.cells) else "."),
             "Varied settings: " + (", ".join(f"<code>{escape(k)}</code>" for k in varied) or "none") + "."]
    notes = "".join(f"<li>{escape(note)}</li>" for note in results.notes)
    return "".join(f"<p>{line}</p>" for line in lines) + (f'<ul class="notes">{notes}</ul>' if notes else "")


_CONTENTS = (("grid", "Images"), ("metrics", "Metrics"), ("tradeoff", "Content against style"),
             ("losses", "Loss curves"), ("analysis", "Analysis"))


def render_report(results: ResultFolder, page_folder: Path, *, embed: bool = False,
                  charts: _Charts | None = None, figure_files: Mapping[str, Path] | None = None,
                  study: StudyStrengths | None = None) -> str:
    """The whole page as one string; images relative to `page_folder`, or embedded. Figures are
    drawn here unless given; those in `figure_files` (name -> SVG file) are shown from their files.
    With `study` (`read_study`), a "Study" section shows it."""
    charts = charts or _Charts.draw(results)
    sources = _Sources(page_folder, embed, figure_files)
    name = results.root.resolve().name
    labels = {cell.id: label for cells in (results.cells, results.pooled_cells)
              for cell, label in cell_labels(cells).items()}
    contents = _CONTENTS + ((("study", "Study"),) if study is not None else ())
    nav = " · ".join(f'<a href="#{key}">{title}</a>' for key, title in contents)
    sets = set_metrics_section(results.evaluation.set_metrics if results.evaluation else None, labels)
    body = (f'<h1>{escape(name)}</h1><nav class="toc">{nav}</nav>{_overview(results)}'
            f'<h2 id="grid">Images</h2><p class="hint">Click an image to enlarge it and compare it with its '
            f"content image.</p>{_grid(results, sources)}"
            f'<h2 id="metrics">Metrics</h2>{metrics_section(results, metrics_table(results))}{sets}'
            f'<h2 id="tradeoff">Content against style</h2>'
            f"{tradeoff_section(results, charts.tradeoff, charts.tradeoff_missing, sources.figure)}"
            f'<h2 id="losses">Loss curves</h2>{loss_section(results, charts.losses, sources.figure)}'
            f'<h2 id="analysis">Analysis</h2>{analysis_section(charts.summary, charts.analysis, sources.figure)}'
            + (f'<h2 id="study">Study</h2>{study_section(study, labels)}' if study is not None else ""))
    return fill_template(read_template("report.html"), {
        "TITLE": escape(f"clipstyler_opt report: {name}"),
        "STYLE": read_template("report.css"),
        "SCRIPT": read_template("report.js"),
        "BODY": body,
    })


def _save_figures(results: ResultFolder, charts: _Charts, folder: Path, reads: ReadSet,
                  progress: Callable[[str], None]) -> dict[str, Path]:
    """Every chart, grid and table of the report into `folder`; returns figure name -> its SVG."""
    files: dict[str, Path] = {}
    progress(f"drawing the image grids of {len(results.prompts)} prompt(s)")
    figures = [*charts.all(), *grid_figures(results)]
    for number, figure in enumerate(figures, 1):
        progress(f"[{number}/{len(figures)}] {figure.name}.svg|pdf|png")
        files[figure.name] = save_figure(figure.figure, folder, figure.name, reads=reads)[0]
    table = metrics_table(results)
    if table is not None:
        save_table(table, folder, METRICS_TABLE, reads=reads)
    return files


def write_report(root: Path, output: Path | None = None, *, embed: bool = False, figures: bool = False,
                 progress: Callable[[str], None] | None = None, study: Path | None = None) -> Path:
    """Write the report of the result folder `root` (default `root/report.html`) atomically; with
    `figures`, first write every chart and table into `root/figures/`, telling `progress` what is
    being drawn. With `study` (the file of `clipopt study analyze --json` for this folder), the
    page gains a "Study" section.

    Example (a folder written by `clipopt sweep`)::

        write_report(Path("out"), figures=True)  # out/report.html, out/figures/report-*

    Raises:
        ConfigError: not a result folder, a damaged eval.json or analysis.json, a study file that
            is damaged or names a cell the folder does not have, a target that is one of the files
            read, or a `figures` that is a symbolic link (exit 2).
        OutputError: a `figures` that is not a folder (exit 5).
    """
    results = load_results(Path(root))
    target = Path(output) if output is not None else Path(root) / REPORT_NAME
    study_file = read_study(Path(study), results.cell_ids()) if study is not None else None
    reads = ReadSet([*results.input_files(), Path(root) / ANALYSIS_NAME, study])
    reads.refuse(target)  # before any image is read
    folder = check_figures_folder(Path(root)) if figures else None
    # Progress only for --figures, the long work (a plain report takes about a second, and a failed
    # one must print its one-line error alone).
    say = progress if progress is not None and folder is not None else (lambda _message: None)
    say(f"drawing the charts of {len(results.outputs)} outputs")
    charts = _Charts.draw(results)
    files = _save_figures(results, charts, folder, reads, say) if folder is not None else None
    page = render_report(results, target.resolve().parent, embed=embed, charts=charts, figure_files=files,
                         study=study_file)
    return write_bytes(target, page.encode("utf-8"), reads=reads)
