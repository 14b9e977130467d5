"""`clipopt study make|analyze`: a self-contained A/B study page, and the analysis of its answers."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["study"]


@click.group()
def study() -> None:
    """Subjective A/B comparison of the cells of a result folder."""


@study.command()
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The study page to write (one HTML file to send to participants).")
@click.option("--pairs", type=click.IntRange(min=1), default=30, show_default=True,
              help="Pairs of outputs to compare (each asked a style and a content question).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the pairs, their order and sides.")
@click.option("--repeat-fraction", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Share of pairs asked again with the sides swapped (at least one when above 0).")
@click.option("--attention-checks", type=click.IntRange(min=0),
              help="Output-against-grey attention checks [default: a tenth of the pairs, at least 2].")
@click.option("--image-size", type=click.IntRange(min=64, max=4096), default=512, show_default=True,
              help="Long side of the embedded JPEG images.")
@click.option("--cant-decide", is_flag=True,
              help="Offer a \"can't decide\" answer (analysed as a tie; on an attention check, a failure).")
def make(folder: Path, output: Path, pairs: int, seed: int, repeat_fraction: float, attention_checks: int | None,
         image_size: int, cant_decide: bool) -> None:
    """Write a study page comparing outputs of FOLDER's cells (two-alternative forced choice)."""
    from clipstyler_opt.report import write_study

    plan = write_study(folder, output, pairs=pairs, seed=seed, repeat_fraction=repeat_fraction,
                       attention_checks=attention_checks, max_side=image_size, cant_decide=cant_decide)
    for note in plan.notes:
        click.echo(f"note: {note}", err=True)
    repeats = sum(t.is_repeat for t in plan.trials)
    checks = sum(t.is_attention_check for t in plan.trials)
    click.echo(f"wrote {output}: study {plan.study_id}, {len(plan.trials)} questions "
               f"({repeats} repeated, {checks} attention checks)")


@study.command()
@click.argument("answers", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the results as JSON here.")
@click.option("--max-attention-failures", type=click.IntRange(min=0), default=0, show_default=True,
              help="Exclude participants who fail more attention checks than this (a tie counts as a failure).")
@click.option("--min-ms", type=click.FloatRange(min=0), default=500, show_default=True,
              help="Flag answers given faster than this many milliseconds.")
@click.option("--exclude-fast", is_flag=True, help="Leave the answers flagged by --min-ms out of the statistics.")
def analyze(answers: tuple[Path, ...], json_path: Path | None, max_attention_failures: int, min_ms: float,
            exclude_fast: bool) -> None:
    """Preference rates (Wilson 95% CIs), Bradley-Terry strengths (95% CIs by a bootstrap over
    participants), a binomial test of each pair of cells against 50% (Holm-corrected),
    Krippendorff's alpha and repeat agreement, from the CSV files a study page saved."""
    from clipstyler_opt.core.files import ReadSet, write_bytes
    from clipstyler_opt.report import analyze_answers, format_analysis

    reads = ReadSet(answers)
    if json_path is not None:
        reads.refuse(json_path)
    result = analyze_answers(list(answers), max_attention_failures=max_attention_failures, min_ms=min_ms,
                             exclude_fast=exclude_fast)
    click.echo(format_analysis(result))
    if json_path is not None:
        text = json.dumps(result.to_dict(), indent=2, ensure_ascii=False)
        write_bytes(json_path, text.encode("utf-8"), reads=reads)
