"""`report.html`: the image grid, metrics, trade-off plots and loss curves of one result folder."""

from __future__ import annotations

from pathlib import Path

from clipstyler_opt.core.files import ReadSet, write_bytes
from clipstyler_opt.report.images import image_source
from clipstyler_opt.report.load import Cell, ResultFolder, RunOutput, load_results
from clipstyler_opt.report.markup import escape, fill_template, format_number, read_template
from clipstyler_opt.report.sections import loss_section, metrics_section, tradeoff_section

__all__ = ["REPORT_NAME", "render_report", "write_report"]

REPORT_NAME = "report.html"


class _Sources:
    """<img src> values, computed once per file."""

    def __init__(self, page_folder: Path, embed: bool) -> None:
        self.page_folder, self.embed = page_folder, embed
        self._cache: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        if path not in self._cache:
            self._cache[path] = image_source(path, self.page_folder, embed=self.embed)
        return self._cache[path]


def _figure(src: str, alt: str, caption: str) -> str:
    return (f'<figure><img src="{escape(src)}" alt="{escape(alt)}" decoding="async">'
            f"<figcaption>{caption}</figcaption></figure>")


def _output_figure(output: RunOutput, sources: _Sources) -> str:
    total = output.losses.get("total")
    parts = ([f"seed {output.seed}"] if output.seed is not None else []) + \
        ([f"loss {format_number(total)}"] if total is not None else [])
    caption = " · ".join(parts)
    return _figure(sources(output.image), f"{output.prompt} — {output.cell.label}", caption)


def _content_cell(content: Path, sources: _Sources) -> str:
    if content.is_file():
        return f'<td class="content">{_figure(sources(content), content.name, escape(content.name))}</td>'
    return (f'<td class="content missing">content image not found:<br><code>{escape(content)}</code></td>')


def _cell_header(cell: Cell) -> str:
    """The cell's settings one per line, under its name when that says something else."""
    lines = [escape(part) for part in cell.label.split(", ")]
    return "<br>".join(([f"<b>{escape(cell.id)}</b>"] if cell.id != cell.label else []) + lines)


def _grid(results: ResultFolder, sources: _Sources) -> str:
    sections = []
    groups = results.groups()
    for prompt in results.prompts:
        cells = [c for c in results.cells if any(o.prompt == prompt and o.cell == c for o in results.outputs)]
        head = "".join(f'<th scope="col">{_cell_header(c)}</th>' for c in cells)
        rows = []
        for (content, group_prompt), outputs in groups.items():
            if group_prompt != prompt:
                continue
            tds = []
            for cell in cells:
                in_cell = [o for o in outputs if o.cell == cell]
                tds.append("<td>" + ("".join(_output_figure(o, sources) for o in in_cell) or "—") + "</td>")
            rows.append(f"<tr>{_content_cell(content, sources)}{''.join(tds)}</tr>")
        sections.append(f'<h3 class="prompt">{escape(prompt)}</h3><div class="scroll"><table class="grid">'
                        f'<thead><tr><th scope="col">content</th>{head}</tr></thead>'
                        f'<tbody>{"".join(rows)}</tbody></table></div>')
    return "".join(sections)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _overview(results: ResultFolder) -> str:
    varied = sorted({key for cell in results.cells for key, _ in cell.values})
    contents = len({o.content for o in results.outputs})
    lines = [f"{_count(len(results.outputs), 'output')} of {_count(contents, 'content image')}, "
             f"{_count(len(results.prompts), 'prompt')} and {_count(len(results.cells), 'cell')}.",
             "Varied settings: " + (", ".join(f"<code>{escape(k)}</code>" for k in varied) or "none") + "."]
    notes = "".join(f"<li>{escape(note)}</li>" for note in results.notes)
    return "".join(f"<p>{line}</p>" for line in lines) + (f'<ul class="notes">{notes}</ul>' if notes else "")


def render_report(results: ResultFolder, page_folder: Path, *, embed: bool = False) -> str:
    """The whole page as one string; images relative to `page_folder`, or embedded."""
    sources = _Sources(page_folder, embed)
    body = (f"<h1>{escape(results.root.resolve().name)}</h1>{_overview(results)}"
            f'<h2 id="grid">Images</h2>{_grid(results, sources)}'
            f'<h2 id="metrics">Metrics</h2>{metrics_section(results)}'
            f'<h2 id="tradeoff">Content against style</h2>{tradeoff_section(results)}'
            f'<h2 id="losses">Loss curves</h2>{loss_section(results)}')
    return fill_template(read_template("report.html"), {
        "TITLE": escape(f"clipstyler_opt report: {results.root.resolve().name}"),
        "STYLE": read_template("report.css"),
        "BODY": body,
    })


def write_report(root: Path, output: Path | None = None, *, embed: bool = False) -> Path:
    """Write the report of the result folder `root` (default `root/report.html`) atomically."""
    results = load_results(Path(root))
    target = Path(output) if output is not None else Path(root) / REPORT_NAME
    reads = ReadSet(results.input_files())
    reads.refuse(target)  # before any image is read
    page = render_report(results, target.resolve().parent, embed=embed)
    return write_bytes(target, page.encode("utf-8"), reads=reads)
