"""The report's metrics table: a row per prompt and cell (a cell pools its seeds, see
core/replicates.py), a column per varied setting (named by its field; the seed is not one), n
(the outputs averaged), and per metric the mean with its 95% interval (clustered by content image).
The page shows it, and `--figures` writes it as CSV, LaTeX and Markdown (`figures.tables`).
"""

from __future__ import annotations

from collections import defaultdict

from clipstyler_opt.figures.tables import Table, Value
from clipstyler_opt.report.charts import PREFIX, estimate
from clipstyler_opt.report.labels import cell_labels, setting_label
from clipstyler_opt.report.load import Cell, ResultFolder, RunOutput

__all__ = ["METRICS_TABLE", "by_prompt_and_cell", "metrics_table", "varied_settings"]

METRICS_TABLE = f"{PREFIX}metrics"


def varied_settings(results: ResultFolder) -> list[str]:
    """The settings the cells vary, in the order they first appear."""
    return list(dict.fromkeys(key for cell in results.pooled_cells for key, _ in cell.values))


def by_prompt_and_cell(results: ResultFolder) -> dict[tuple[str, Cell], list[RunOutput]]:
    """The outputs per (prompt, cell), prompts in their order, cells in the folder's order."""
    grouped: dict[tuple[str, Cell], list[RunOutput]] = defaultdict(list)
    order = {cell: index for index, cell in enumerate(results.pooled_cells)}
    for output in sorted(results.outputs, key=lambda o: (results.prompts.index(o.prompt), order[o.cell.pooled()])):
        grouped[(output.prompt, output.cell.pooled())].append(output)
    return dict(grouped)


def metrics_table(results: ResultFolder) -> Table | None:
    """The table of `eval.json`'s metrics (None without one).

    Example (a sweep over lambda_content)::

        table = metrics_table(load_results(Path("out")))
        table.columns  # ['prompt', 'cell', 'lambda_content', 'n', 'clip_score', ...]
    """
    evaluation = results.evaluation
    if evaluation is None:
        return None
    labels, settings = cell_labels(results.pooled_cells), varied_settings(results)
    rows: list[list[Value]] = []
    for (prompt, cell), outputs in by_prompt_and_cell(results).items():
        row: list[Value] = [prompt, labels[cell], *(setting_label(cell, key) for key in settings), len(outputs)]
        row += [estimate((evaluation.value(o, metric), o.content) for o in outputs) for metric in evaluation.metrics]
        rows.append(row)
    return Table(["prompt", "cell", *settings, "n", *evaluation.metrics], rows,
                 caption="Mean [95% interval, clustered by content image] over the outputs of each prompt "
                         "and cell; n outputs.",
                 numeric=evaluation.metrics)
