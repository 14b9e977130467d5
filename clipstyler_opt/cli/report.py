"""`clipopt report DIR`: one HTML page with the images, metrics, charts and analysis of a result
folder; `--figures` also writes every chart and table for papers into DIR/figures/."""

from __future__ import annotations

from pathlib import Path

import click

from clipstyler_opt.cli.options import verbosity, verbosity_options
from clipstyler_opt.core.naming import printable

# The page's default name, shown in --help, which loads nothing heavy (the report package loads torch);
# a test checks it is clipstyler_opt.report.REPORT_NAME.
REPORT_NAME = "report.html"

__all__ = ["report"]


@click.command()
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help=f"Where to write the page [default: FOLDER/{REPORT_NAME}].")
@click.option("--embed", is_flag=True,
              help="Put the images inside the page (data URIs) instead of referring to them by relative path.")
@click.option("--figures", "figures", is_flag=True,
              help="Also write every chart (SVG, PDF, PNG at 300 dpi), the image grids and the metrics table "
                   "(CSV, LaTeX, Markdown) into FOLDER/figures/ as report-*; the page shows those files.")
@click.option("--study", "study", type=click.Path(path_type=Path, dir_okay=False), metavar="STUDY.json",
              help="The JSON of clipopt study analyze --json for this folder: add a Study section (win rates, "
                   "Bradley-Terry strengths with intervals, pair tests with Holm's correction, agreement).")
@verbosity_options
def report(folder: Path, output: Path | None, embed: bool, figures: bool, study: Path | None, quiet: bool,
           verbose: bool) -> None:
    """Write an HTML report of a result folder (from `clipopt batch` or `clipopt sweep`): the image grid,
    the metrics of `eval.json` with intervals, a content-against-style trade-off plot, the loss curves
    the analysis of `clipopt analyze` (analysis.json) and, with --study, the study's statistics."""
    from clipstyler_opt.report import write_report

    level = verbosity(quiet, verbose)

    def say(message: str) -> None:
        if level:
            click.echo(printable(message), err=True)

    path = write_report(folder, output, embed=embed, figures=figures, progress=say, study=study)
    click.echo(f"wrote {path}")
    if figures:
        click.echo(f"wrote the figures and tables in {folder / 'figures'}")
