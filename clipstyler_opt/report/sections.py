"""The report's metric sections: the metrics tables, the trade-off plots and the loss curves."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from clipstyler_opt.report.load import Cell, Evaluation, ResultFolder, RunOutput
from clipstyler_opt.report.markup import escape, format_number
from clipstyler_opt.report.svg import LabelledPoint, Series, line_chart, scatter_chart

__all__ = [
    "CONTENT_METRICS",
    "STYLE_METRICS",
    "loss_section",
    "mean_or_none",
    "metrics_section",
    "tradeoff_section",
]

CONTENT_METRICS = ("ssim", "vgg_content_distance")  # first available is the trade-off plot's x axis
STYLE_METRICS = ("directional_similarity", "clip_score")  # first available is its y axis
_ARROWS = {"higher": " ↑", "lower": " ↓"}


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """Mean of the finite values; None when there are none."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def _number_cell(value: float | None) -> str:
    return f'<td class="num">{format_number(value)}</td>'


def _header(evaluation: Evaluation, metric: str) -> str:
    return f"<th>{escape(metric)}{_ARROWS.get(evaluation.directions.get(metric, ''), '')}</th>"


def _by_prompt_and_cell(results: ResultFolder) -> dict[tuple[str, Cell], list[RunOutput]]:
    grouped: dict[tuple[str, Cell], list[RunOutput]] = defaultdict(list)
    order = {cell: index for index, cell in enumerate(results.cells)}
    for output in sorted(results.outputs, key=lambda o: (results.prompts.index(o.prompt), order[o.cell])):
        grouped[(output.prompt, output.cell)].append(output)
    return dict(grouped)


def metrics_section(results: ResultFolder) -> str:
    evaluation = results.evaluation
    if evaluation is None:
        return ('<p class="missing">No metrics yet: run <code>clipopt eval '
                f'{escape(results.root)}</code> to write <code>eval.json</code>, then rebuild this report.</p>')
    metrics = evaluation.metrics
    head = "".join(_header(evaluation, m) for m in metrics)
    summary = []
    for (prompt, cell), outputs in _by_prompt_and_cell(results).items():
        means = [mean_or_none(evaluation.value(o, m) for o in outputs) for m in metrics]
        summary.append(f'<tr><td class="prompt">{escape(prompt)}</td><td>{escape(cell.label)}</td>'
                       f'<td class="num">{len(outputs)}</td>' + "".join(_number_cell(v) for v in means) + "</tr>")
    detail = []
    for output in results.outputs:
        values = [evaluation.value(output, m) for m in metrics]
        detail.append(f'<tr><td>{escape(output.relative)}</td><td class="prompt">{escape(output.prompt)}</td>'
                      f"<td>{escape(output.cell.label)}</td>"
                      + "".join(_number_cell(v) for v in values) + "</tr>")
    return ('<p>Means over the content images of each prompt and cell (↑ higher is better, ↓ lower is better; '
            '"unavailable": the metric could not be computed).</p>'
            f'<table class="metrics"><thead><tr><th>prompt</th><th>cell</th><th>images</th>{head}</tr></thead>'
            f'<tbody>{"".join(summary)}</tbody></table>'
            '<details><summary>Every output</summary>'
            f'<table class="metrics"><thead><tr><th>output</th><th>prompt</th><th>cell</th>{head}</tr></thead>'
            f'<tbody>{"".join(detail)}</tbody></table></details>')


def _first_available(evaluation: Evaluation, names: Sequence[str], outputs: Sequence[RunOutput]) -> str | None:
    return next((m for m in names if any(evaluation.value(o, m) is not None for o in outputs)), None)


def _axis_label(evaluation: Evaluation, metric: str) -> str:
    direction = evaluation.directions.get(metric)
    return f"{metric} ({direction} is better)" if direction else metric


def tradeoff_section(results: ResultFolder) -> str:
    evaluation = results.evaluation
    if evaluation is None:
        return '<p class="missing">The trade-off plot needs <code>eval.json</code> (see Metrics).</p>'
    charts = []
    for prompt in results.prompts:
        outputs = [o for o in results.outputs if o.prompt == prompt]
        x_metric = _first_available(evaluation, CONTENT_METRICS, outputs)
        y_metric = _first_available(evaluation, STYLE_METRICS, outputs)
        if x_metric is None or y_metric is None:
            charts.append(f'<p class="missing">{escape(prompt)}: no content and style metric to plot.</p>')
            continue
        points = []
        for cell in results.cells:
            in_cell = [o for o in outputs if o.cell == cell]
            x = mean_or_none(evaluation.value(o, x_metric) for o in in_cell)
            y = mean_or_none(evaluation.value(o, y_metric) for o in in_cell)
            if x is not None and y is not None:
                points.append(LabelledPoint(x, y, cell.label))
        if not points:
            charts.append(f'<p class="missing">{escape(prompt)}: no cell has both metrics.</p>')
            continue
        chart = scatter_chart(points, title=prompt, x_label=_axis_label(evaluation, x_metric),
                              y_label=_axis_label(evaluation, y_metric))
        charts.append(f'<figure class="chart">{chart}<figcaption>One point per cell: the mean over this '
                      "prompt's content images.</figcaption></figure>")
    return "".join(charts)


def _series_name(output: RunOutput, siblings: Sequence[RunOutput]) -> str:
    same_cell = [o for o in siblings if o.cell == output.cell]
    return output.cell.label if len(same_cell) == 1 else f"{output.cell.label} (seed {output.seed})"


def loss_section(results: ResultFolder) -> str:
    if not any(o.history for o in results.outputs):
        return ('<p class="missing">No per-step loss history in the sidecars (outputs written before '
                'histories were recorded); rerun with <code>--overwrite</code> to get curves.</p>')
    blocks: list[str] = []
    for (content, prompt), outputs in results.groups().items():
        with_history = [o for o in outputs if o.history]
        if not with_history:
            continue
        names = list(dict.fromkeys(n for o in with_history for step in o.history for n in step))
        names.sort(key=lambda n: n != "total")
        charts = []
        for name in names:
            series = [Series(_series_name(o, with_history),
                             [(float(i + 1), step[name]) for i, step in enumerate(o.history) if name in step])
                      for o in with_history]
            if any(math.isfinite(y) for s in series for _, y in s.points):
                charts.append(line_chart(series, title=name, x_label="step", y_label=name))
        opened = " open" if not blocks else ""  # the first group is shown; the rest open on a click
        blocks.append(f'<details class="losses"{opened}><summary>{escape(content.name)} · {escape(prompt)}</summary>'
                      f'<div class="charts">{"".join(charts)}</div></details>')
    return "".join(blocks)
