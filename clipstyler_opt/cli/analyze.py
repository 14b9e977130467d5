"""`clipopt analyze DIR`: how texts and images correlate in each scorer's embedding space."""

from __future__ import annotations

from pathlib import Path

import click

from clipstyler_opt.cli.options import verbosity, verbosity_options
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.naming import printable

__all__ = ["analyze"]


def _help(field: str) -> str:
    return str(StyleConfig.field_meta(field)["help"])


@click.command("analyze")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--scorer", "scorers", multiple=True, metavar="SPEC",
              help="Backbone to analyse with, a --backbone SPEC (e.g. MODEL:file=PATH); repeat to compare "
                   "backbones [default: the one clipopt eval would choose].")
@click.option("--study", "study_path", type=click.Path(path_type=Path, dir_okay=False), metavar="STUDY.json",
              help="The JSON of clipopt study analyze --json for this folder: compare the people's "
                   "Bradley-Terry strengths with every metric (probe 6).")
@click.option("--no-figures", is_flag=True, help="Write analysis.json only.")
@click.option("--clip-model-config", multiple=True, type=click.Path(path_type=Path), metavar="FILE",
              help=_help("clip_model_config"))
@click.option("--cache-dir", type=click.Path(path_type=Path), help=_help("cache_dir"))
@click.option("--offline", is_flag=True, help=_help("offline"))
@click.option("--device", default="auto", show_default=True, help=_help("device"))
@verbosity_options
def analyze(folder: Path, scorers: tuple[str, ...], study_path: Path | None, no_figures: bool,
            clip_model_config: tuple[Path, ...], cache_dir: Path | None, offline: bool, device: str,
            quiet: bool, verbose: bool) -> None:
    """Analyse a result FOLDER (from batch or sweep): the modality gap, response curves along
    every numeric setting the sweep varied (linear or power law), text-side against image-side
    similarity, zero-shot style recognition, agreement between scorers and, with --study, which
    metric predicts the people.

    Writes FOLDER/analysis.json and FOLDER/figures/ (SVG, PDF, PNG). Image embeddings are cached
    in FOLDER/.clipopt-embeddings, so a second run encodes nothing.
    """
    level = verbosity(quiet, verbose)
    from clipstyler_opt.analysis.folder import ANALYSIS_NAME, analyze_folder, check_destinations, folder_reads
    from clipstyler_opt.analysis.humans import read_study
    from clipstyler_opt.analysis.plots import FIGURES_FOLDER, analysis_figures
    from clipstyler_opt.analysis.scorers import load_scorers, scorer_specs
    from clipstyler_opt.core.backbone_spec import LoadContext, offline_requested
    from clipstyler_opt.method.precision import resolve_device
    from clipstyler_opt.report.load import load_results

    results = load_results(folder)  # a folder without a manifest fails here, before any weights load
    check_destinations(folder, figures=not no_figures)
    study = read_study(study_path, results.cell_ids()) if study_path is not None else None
    specs = scorer_specs(scorers, results)
    context = LoadContext(cache_dir, offline_requested(offline), tuple(clip_model_config))
    loaded, optimised = load_scorers(specs, context, resolve_device(device), results)

    def say(message: str) -> None:
        if level:
            click.echo(printable(message), err=True)

    if results.notes:
        say(f"note: {len(results.notes)} output(s) of the manifest were left out (missing or unreadable; the "
            f"reasons are in {ANALYSIS_NAME}'s notes)")
    for name, count in optimised.items():
        if count:
            say(f"note: {name} also optimised {count} of the outputs: it may score them too kindly")
    analysis = analyze_folder(folder, loaded, progress=say, optimised=optimised, study=study)
    reads = folder_reads(results, study)
    written = [] if no_figures else analysis_figures(analysis.summary, folder / FIGURES_FOLDER, reads)
    if level:
        for name, scorer in analysis.summary["scorers"].items():
            probes = scorer["probes"]
            gap = probes["modality_gap"].get("gap")
            recognised = probes["recognition"].get("top1")
            click.echo(printable(f"{name}: modality gap {gap:.3f}" if gap is not None else f"{name}: no gap")
                       + (f", top-1 recognition {recognised:.2f} (chance {probes['recognition']['chance_top1']:.2f})"
                          if recognised is not None else ""))
        click.echo(printable(f"wrote {folder / ANALYSIS_NAME}"))
        if written:
            click.echo(printable(f"wrote {len(written)} figure files in {folder / FIGURES_FOLDER}"))
