"""Tables for papers: one table written as CSV (for analysis), LaTeX (booktabs, for a thesis) and
Markdown (for notes and READMEs).

A column is either text (settings, labels) or an estimate: a mean with its interval and n.
CSV spreads an estimate over four columns (`NAME`, `NAME_low`, `NAME_high`, `NAME_n`) so that a
spreadsheet reads numbers; LaTeX and Markdown write "mean [low, high]". Text cells that a
spreadsheet would run as a formula get a leading quote in the CSV (see `evaluate.table`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipstyler_opt.core.files import ReadSet, write_bytes
from clipstyler_opt.core.naming import slugify
from clipstyler_opt.evaluate.table import neutral_text

__all__ = ["TABLE_FORMATS", "Estimate", "Table", "Value", "csv_table", "latex_table", "markdown_table", "save_table"]

TABLE_FORMATS = ("csv", "tex", "md")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


@dataclass(frozen=True)
class Estimate:
    """A mean with its interval (None when it has none) over n values."""

    mean: float
    low: float | None
    high: float | None
    n: int


Value = str | int | Estimate | None


@dataclass(frozen=True)
class Table:
    """Named columns and rows of values; `estimates` names the columns that hold `Estimate`s."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Value]]
    caption: str = ""
    digits: int = 3
    numeric: Sequence[str] | None = None  # the estimate columns; default: those holding an Estimate

    @property
    def estimates(self) -> list[str]:
        if self.numeric is not None:
            return list(self.numeric)
        return [name for i, name in enumerate(self.columns) if any(isinstance(row[i], Estimate) for row in self.rows)]


def _number(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.{digits}f}"


def _shown(value: Value, digits: int) -> str:
    """A cell as LaTeX and Markdown show it: an estimate as "mean [low, high]", nothing as "–"."""
    if value is None:
        return "–"
    if isinstance(value, Estimate):
        if value.low is None or value.high is None:
            return _number(value.mean, digits)
        return f"{_number(value.mean, digits)} [{_number(value.low, digits)}, {_number(value.high, digits)}]"
    return str(value)


def csv_table(table: Table) -> str:
    """The table as CSV: an estimate column NAME becomes NAME, NAME_low, NAME_high, NAME_n.

    Example:
        >>> print(csv_table(Table(["cell", "ssim"], [["=a", Estimate(0.5, 0.4, 0.6, 2)], ["b", None]])), end="")
        cell,ssim,ssim_low,ssim_high,ssim_n
        '=a,0.5,0.4,0.6,2
        b,,,,
    """
    estimates = set(table.estimates)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = [[name, f"{name}_low", f"{name}_high", f"{name}_n"] if name in estimates else [name]
              for name in table.columns]
    writer.writerow([part for parts in header for part in parts])
    for row in table.rows:
        cells: list[str] = []
        for name, value in zip(table.columns, row, strict=True):
            if name in estimates:
                parts = (value.mean, value.low, value.high, value.n) if isinstance(value, Estimate) else (None,) * 4
                cells += ["" if v is None else repr(v) for v in parts]
            else:
                cells.append("" if value is None else neutral_text(str(value)))
        writer.writerow(cells)
    return buffer.getvalue()


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text.replace("\n", " "))


def latex_table(table: Table) -> str:
    """The table as a LaTeX fragment (needs `\\usepackage{booktabs}`): a `table` float with a
    `tabular`, `\\toprule`, `\\midrule` and `\\bottomrule`; estimates right-aligned as
    "mean [low, high]"; every special character escaped.

    Example:
        >>> print(latex_table(Table(["cell", "ssim"], [["a_1", Estimate(0.5, 0.4, 0.6, 2)]])), end="")
        \\begin{table}[htbp]
        \\centering
        \\begin{tabular}{lr}
        \\toprule
        cell & ssim \\\\
        \\midrule
        a\\_1 & 0.500 [0.400, 0.600] \\\\
        \\bottomrule
        \\end{tabular}
        \\end{table}
    """
    estimates = set(table.estimates)
    align = "".join("r" if name in estimates or name == "n" else "l" for name in table.columns)
    lines = [r"\begin{table}[htbp]", r"\centering", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(_latex(name) for name in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex(_shown(value, table.digits)) for value in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.caption:
        lines.append(rf"\caption{{{_latex(table.caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _markdown(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    """The table as a Markdown (GitHub) table, estimates as "mean [low, high]".

    Example:
        >>> print(markdown_table(Table(["cell", "ssim"], [["a|b", Estimate(0.5, None, None, 1)]])), end="")
        | cell | ssim |
        |---|---:|
        | a\\|b | 0.500 |
    """
    estimates = set(table.estimates)
    lines = ["| " + " | ".join(_markdown(name) for name in table.columns) + " |",
             "|" + "|".join("---:" if name in estimates or name == "n" else "---" for name in table.columns) + "|"]
    lines += ["| " + " | ".join(_markdown(_shown(value, table.digits)) for value in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", _markdown(table.caption)]
    return "\n".join(lines) + "\n"


def save_table(table: Table, folder: Path, name: str, *, reads: ReadSet | None = None) -> list[Path]:
    """Write `folder/<name>.csv`, `.tex` and `.md` atomically; a target among `reads` is refused
    before anything is written. Returns the paths written.

    Example:
        >>> import tempfile
        >>> paths = save_table(Table(["cell", "n"], [["a", 2]]), Path(tempfile.mkdtemp()), "Report metrics")
        >>> [p.name for p in paths]
        ['report-metrics.csv', 'report-metrics.tex', 'report-metrics.md']
    """
    folder.mkdir(parents=True, exist_ok=True)
    stem = slugify(name, max_length=120) or "table"
    texts = {"csv": csv_table(table), "tex": latex_table(table), "md": markdown_table(table)}
    targets = [folder / f"{stem}.{fmt}" for fmt in TABLE_FORMATS]
    if reads is not None:
        reads.refuse(*targets)
    return [write_bytes(path, texts[path.suffix[1:]].encode("utf-8", "surrogateescape")) for path in targets]
