"""The report's sections as HTML: the metrics table (in its own scrolling box), the figures of
`charts` (trade-off plots, loss curves) as images, and what is missing and how to get it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from clipstyler_opt.figures.tables import Estimate, Table, Value
from clipstyler_opt.report.charts import NamedFigure
from clipstyler_opt.report.evaluation import Evaluation, ScorerInfo
from clipstyler_opt.report.labels import cell_labels
from clipstyler_opt.report.load import ResultFolder
from clipstyler_opt.report.markup import escape, format_number

__all__ = ["figures_html", "loss_section", "metrics_section", "table_html", "tradeoff_section"]

_ARROWS = {"higher": " ↑", "lower": " ↓"}
Source = Callable[[NamedFigure], str]  # a figure -> its <img src>


def _value_html(value: Value) -> str:
    if isinstance(value, Estimate):
        interval = ("" if value.low is None or value.high is None else
                    f' <span class="ci">[{format_number(value.low, 3)}, {format_number(value.high, 3)}]</span>')
        return f'<td class="num">{format_number(value.mean)}{interval}</td>'
    if value is None:
        return '<td class="num">unavailable</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{escape(value)}</td>"


def table_html(table: Table, headers: Sequence[str] | None = None, css: str = "metrics") -> str:
    """A `figures.tables.Table` as an HTML table in a box that scrolls sideways on its own.

    Example:
        >>> html = table_html(Table(["cell", "ssim"], [["a<b", Estimate(0.5, 0.4, 0.6, 2)]]))
        >>> "<td>a&lt;b</td>" in html, '<span class="ci">[0.4, 0.6]</span>' in html
        (True, True)
    """
    head = "".join(f"<th>{escape(h)}</th>" for h in (headers or table.columns))
    body = "".join("<tr>" + "".join(_value_html(v) for v in row) + "</tr>" for row in table.rows)
    return (f'<div class="scroll table-box"><table class="{css}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def metrics_section(results: ResultFolder, table: Table | None) -> str:
    """The metrics table, or how to make `eval.json`."""
    if results.evaluation is None or table is None:
        return ('<p class="missing">No metrics yet: run <code>clipopt eval '
                f'{escape(results.root.name)}</code> to write <code>eval.json</code>, then rebuild this report.</p>')
    evaluation = results.evaluation
    headers = [name + _ARROWS.get(evaluation.directions.get(name, ""), "") for name in table.columns]
    labels = cell_labels(results.cells)
    every = Table(["output", "prompt", "cell", *evaluation.metrics],
                  [[o.relative, o.prompt, labels[o.cell], *(_single(evaluation.value(o, metric))
                                                             for metric in evaluation.metrics)]
                   for o in results.outputs])
    return ('<p>Mean and 95% interval over the outputs of each prompt and cell (n outputs; the interval is '
            'a t-interval clustered by content image, as <code>eval</code> computes it; '
            '↑ higher is better, ↓ lower is better; "unavailable": the metric could not be computed).</p>'
            + _scorers_html(evaluation)
            + table_html(table, headers)
            + '<details><summary>Every output</summary>'
            + table_html(every, ["output", "prompt", "cell", *headers[len(headers) - len(evaluation.metrics):]])
            + "</details>")


def _scorers_html(evaluation: Evaluation) -> str:
    """Which scorer the style metrics come from, and what the METRIC[PART] and METRIC@LABEL columns are."""
    if not evaluation.scorers:
        return ""
    first, *others = evaluation.scorers

    def named(scorer: ScorerInfo) -> str:
        own = f" (it optimised {scorer.optimised_outputs} of the outputs)" if scorer.optimised_outputs else ""
        return f"<b>{escape(scorer.label)}</b>{escape(own)}"

    text = f"Style metrics scored by {named(first)}"
    if any("[" in metric for metric in evaluation.metrics):
        text += "; <code>METRIC[PART]</code>: the same scorer against one part of the prompt"
    if others:
        text += ("; <code>METRIC@LABEL</code>: scored by " + ", ".join(named(s) for s in others))
    return f"<p>{text}.</p>"


def _single(value: float | None) -> Estimate | None:
    return None if value is None else Estimate(value, None, None, 1)


def figures_html(figures: Sequence[NamedFigure], source: Source, *, wide: bool = False) -> str:
    """Figures as images with their captions (click to enlarge); `wide` gives each a whole row.

    Example:
        >>> from matplotlib.figure import Figure
        >>> figures_html([NamedFigure("report-x", "A chart.", Figure())], lambda f: f"figures/{f.name}.svg")[:60]
        '<div class="charts"><figure class="chart" id="report-x"><img'
    """
    return f'<div class="charts{" wide" if wide else ""}">' + "".join(
        f'<figure class="chart" id="{escape(f.name)}"><img class="chart" src="{escape(source(f))}" '
        f'alt="{escape(f.name)}" data-zoom><figcaption>{escape(f.caption)}</figcaption></figure>'
        for f in figures) + "</div>"


def tradeoff_section(results: ResultFolder, figures: Sequence[NamedFigure], missing: Sequence[str],
                     source: Source) -> str:
    """The trade-off plots, or why there are none."""
    if results.evaluation is None:
        return '<p class="missing">The trade-off plot needs <code>eval.json</code> (see Metrics).</p>'
    notes = "".join(f'<p class="missing">{escape(line)}</p>' for line in missing)
    return notes + figures_html(figures, source)


def loss_section(results: ResultFolder, figures: Sequence[NamedFigure], source: Source) -> str:
    """The loss curves, or why there are none."""
    if not figures:
        return ('<p class="missing">No per-step loss history in the sidecars (outputs written before '
                'histories were recorded); rerun with <code>--overwrite</code> to get curves.</p>')
    return figures_html(figures, source, wide=True)
