"""The report's "Analysis" section, from `DIR/analysis.json` (written by `clipopt analyze`): a
table per scorer of the probes' headline numbers, and the analysis figures, drawn by the same
code as `clipopt analyze` draws them (`analysis.plots.analysis_charts`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files import describe_os_error, read_regular
from clipstyler_opt.figures.tables import Estimate, Table
from clipstyler_opt.report.charts import NamedFigure
from clipstyler_opt.report.markup import escape
from clipstyler_opt.report.sections import Source, figures_html, table_html

__all__ = ["ANALYSIS_NAME", "analysis_figures", "analysis_section", "read_analysis"]

ANALYSIS_NAME = "analysis.json"  # what clipopt analyze writes (analysis.folder.ANALYSIS_NAME)
_MAX_BYTES = 64 << 20


def read_analysis(root: Path) -> dict[str, Any] | None:
    """`root/analysis.json` through the file gate, or None when there is none.

    Example:
        >>> import tempfile
        >>> read_analysis(Path(tempfile.mkdtemp())) is None
        True

    Raises:
        ConfigError: the file is there but is not a readable analysis (one line, exit 2).
    """
    path = root / ANALYSIS_NAME
    if not path.exists() and not path.is_symlink():
        return None
    try:
        data = json.loads(read_regular(path, _MAX_BYTES).decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({describe_os_error(exc)})") from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: not a readable {ANALYSIS_NAME} ({type(exc).__name__}); "
                          "rewrite it with clipopt analyze") from None
    if not isinstance(data, dict) or not isinstance(data.get("scorers"), dict):
        raise ConfigError(f"{path}: not a readable {ANALYSIS_NAME} (no scorers); rewrite it with clipopt analyze")
    return data


def analysis_figures(summary: Mapping[str, Any], path: Path) -> list[NamedFigure]:
    """The figures of `clipopt analyze`, drawn from the summary (a damaged one is a one-line error).

    Example:
        >>> analysis_figures({"scorers": {}}, Path("analysis.json"))
        []
    """
    from clipstyler_opt.analysis.plots import analysis_charts

    try:
        charts = analysis_charts(summary)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ConfigError(f"{path}: not a readable {ANALYSIS_NAME} ({type(exc).__name__}: {exc}); "
                          "rewrite it with clipopt analyze") from None
    return [NamedFigure(name, name.replace("-", " "), figure) for name, figure in charts]


def _interval(entry: Any) -> Estimate | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("estimate"), (int, float)):
        return None
    low, high = entry.get("ci_low"), entry.get("ci_high")
    return Estimate(float(entry["estimate"]), low, high, int(entry.get("n_clusters", 0)))


def _number(entry: Any, key: str) -> Estimate | None:
    value = entry.get(key) if isinstance(entry, dict) else None
    return Estimate(float(value), None, None, 1) if isinstance(value, (int, float)) else None


def _scorer_table(summary: Mapping[str, Any]) -> Table:
    rows = []
    for name, scorer in summary["scorers"].items():
        probes = scorer.get("probes", {}) if isinstance(scorer, dict) else {}
        gap, recognition = probes.get("modality_gap", {}), probes.get("recognition", {})
        rows.append([str(name), _number(gap, "gap"), _number(gap, "image_cone"), _number(gap, "text_cone"),
                     _number(recognition, "top1"), _number(recognition, "chance_top1"), _number(recognition, "top5"),
                     _interval((probes.get("text_vs_image") or {}).get("spearman_rho"))])
    return Table(["scorer", "modality gap", "image cone", "text cone", "top-1", "chance top-1", "top-5",
                  "Spearman ρ text vs image"], rows)


def _skipped(summary: Mapping[str, Any]) -> list[str]:
    lines = []
    for name, scorer in summary["scorers"].items():
        for probe, entry in (scorer.get("probes") or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("skipped"), str):
                lines.append(f"{name}: {probe.replace('_', ' ')} skipped: {entry['skipped']}")
    return lines


def analysis_section(summary: Mapping[str, Any] | None, figures: list[NamedFigure], source: Source) -> str:
    """The section: headline numbers per scorer, what was skipped and why, and the figures.

    Example:
        >>> html = analysis_section({"scorers": {"CLIP": {"probes": {"modality_gap": {"gap": 0.5}}}}}, [], str)
        >>> "<td>CLIP</td>" in html
        True
    """
    if summary is None:
        return ('<p class="missing">No analysis yet: run <code>clipopt analyze DIR</code> to write '
                '<code>analysis.json</code>, then rebuild this report.</p>')
    skipped = "".join(f"<li>{escape(line)}</li>" for line in _skipped(summary))
    return ('<p>How texts and images correlate in each scorer\'s embedding space (see the README\'s '
            '"Analysis" section for the definitions). Intervals are 95% bootstrap intervals over content '
            'images.</p>' + table_html(_scorer_table(summary), css="analysis")
            + (f'<ul class="notes">{skipped}</ul>' if skipped else "") + figures_html(figures, source))
