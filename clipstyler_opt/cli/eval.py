"""`clipopt eval OUTPUT...`: objective metrics of outputs, scored by a backbone that did not optimise them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from clipstyler_opt.cli.options import verbosity, verbosity_options
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.core.files import ReadSet, refuse_one_file_twice
from clipstyler_opt.core.naming import printable
from clipstyler_opt.core.styles import StyleImage

if TYPE_CHECKING:
    from clipstyler_opt.evaluate import EvalOptions, EvalReport, EvalRow
    from clipstyler_opt.evaluate.targets import EvalTarget

__all__ = ["eval_command"]

log = logging.getLogger("clipstyler_opt")

# Shown in --help, which loads nothing heavy (the evaluation and report packages load torch); a test
# checks each against its source: DEFAULT_SCORERS, report.load.EVAL_NAME, PatchProtocol's defaults,
# the protocol names of evaluate.protocols.
DEFAULT_SCORERS = ("ViT-B-16/openai", "ViT-B-32-quickgelu/openai")
EVAL_NAME = "eval.json"
PATCH_CROPS, PATCH_CROP_SIZE = 64, 128
PATCH_PROTOCOLS = ("train", "paper")
SSIM_PROTOCOLS = ("default", "wang")


def _protocol(names: tuple[str, ...]) -> Any:
    """A click callback: the value must be one of `names`; otherwise a one-line error, exit 2."""
    def check(ctx: click.Context, param: click.Parameter, value: str) -> str:
        if value not in names:
            raise ConfigError(f"--{param.name.replace('_', '-') if param.name else ''}: unknown protocol "
                              f"{value!r} (known: {', '.join(names)})")
        return value

    return check


def _help(field: str) -> str:
    return str(StyleConfig.field_meta(field)["help"])


def _inputs(targets: list[EvalTarget], options: EvalOptions) -> list[Path | None]:
    """Every file eval reads; none of them may be written over: weights (the scorer's file=
    included), model configs, each output, its sidecar, content and style images, and each
    result folder's manifest."""
    from clipstyler_opt.batch.manifest import MANIFEST_NAME
    from clipstyler_opt.evaluate.scorer import labelled_scorers
    from clipstyler_opt.run.outputs import sidecar_path

    scorers = [spec.file for _, spec in labelled_scorers(options.scorers)] if options.scorers else []
    files: list[Path | None] = [options.vgg_checkpoint, options.lpips_checkpoint, *options.clip_model_config,
                                *(Path(file) for file in scorers if file), options.dino_checkpoint,
                                options.fid_inception_checkpoint, options.art_inception_checkpoint,
                                *options.reference_images]
    for target in targets:
        files += [target.image, sidecar_path(target.image), target.content,
                  *(image.path for image in target.style_images)]
    files += [root / MANIFEST_NAME for root in dict.fromkeys(t.root for t in targets if t.root is not None)]
    return files


def _destinations(targets: list[EvalTarget], json_path: Path | None) -> dict[Path, Path | None]:
    """JSON file -> the result folder whose rows it holds (None: all rows)."""
    if json_path is not None:
        return {json_path: None}
    roots = dict.fromkeys(t.root for t in targets if t.root is not None)
    return {root / EVAL_NAME: root for root in roots}


def _rows_of(report: EvalReport, root: Path | None) -> list[EvalRow]:
    return report.rows if root is None else [row for row in report.rows if row.root == root]


@click.command("eval")
@click.argument("outputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--content", type=click.Path(path_type=Path, dir_okay=False),
              help="Content image to compare with [default: the one in each output's metadata].")
@click.option("--prompt", help="Style prompt to score against [default: each output's recorded prompt].")
@click.option("--source-text", help="Source text of the direction [default: the recorded one, else 'a Photo'].")
@click.option("--style-image", "style_images", multiple=True, metavar="FILE[:W]",
              help="Style image for gram_distance; repeatable [default: the style images that guided the output].")
@click.option("--scorer", "scorers", multiple=True, metavar="[LABEL=]SPEC",
              help="Scoring backbone, a --backbone SPEC (e.g. MODEL:file=PATH), optionally named LABEL=SPEC; "
                   "repeat to score with several (the first fills the plain metric columns) "
                   f"[default: {DEFAULT_SCORERS[0]}, or {DEFAULT_SCORERS[1]} for outputs that "
                   f"{DEFAULT_SCORERS[0]} optimised].")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              help=f"Write the results as JSON here [default for a result folder: DIR/{EVAL_NAME}].")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write one row per output as CSV here.")
@click.option("--patch-protocol", default=PATCH_PROTOCOLS[0], show_default=True, metavar="|".join(PATCH_PROTOCOLS),
              callback=_protocol(PATCH_PROTOCOLS),
              help="patch_clip_score's crops: 'train' (--patch-crops of --patch-size px, CLIPstyler's training "
                   "setting) or 'paper' (64 crops of 64-224 px from the output resized to 512x512, as CLIPstyler's "
                   "Table 2).")
@click.option("--patch-crops", type=click.IntRange(1, 1024), default=PATCH_CROPS, show_default=True,
              help="Random crops for patch_clip_score.")
@click.option("--patch-size", type=click.IntRange(8, 4096),
              help=f"Crop side for the train protocol (clipped to the image's short side) "
                   f"[default: {PATCH_CROP_SIZE}].")
@click.option("--ssim-protocol", default=SSIM_PROTOCOLS[0], show_default=True, metavar="|".join(SSIM_PROTOCOLS),
              callback=_protocol(SSIM_PROTOCOLS),
              help="ssim's convention: 'default' (RGB mean, borders reflected, full size) or 'wang' (Wang et al.'s "
                   "reference: luminance, downsampled by round(min(H, W)/256), no borders).")
@click.option("--reference-dir", type=click.Path(path_type=Path),
              help="Folder of reference images (e.g. paintings of the style) for the set-level metrics fid and "
                   "artfid, per cell and overall [default: none, no set-level metrics].")
@click.option("--dino-checkpoint", type=click.Path(path_type=Path),
              help="Local weights of timm's vit_small_patch16_224.dino for dino_content_similarity; skips the cache "
                   "and download.")
@click.option("--fid-inception-checkpoint", type=click.Path(path_type=Path),
              help="Local pytorch-fid Inception weights (pt_inception-2015-12-05-6726825d.pth) for fid; skips the "
                   "cache and download.")
@click.option("--art-inception-checkpoint", type=click.Path(path_type=Path),
              help="Local ArtFID art-trained Inception weights (art_inception.pth) for artfid; skips the cache and "
                   "download.")
@click.option("--clip-model-config", multiple=True, type=click.Path(path_type=Path), metavar="FILE",
              help=_help("clip_model_config"))
@click.option("--vgg-checkpoint", type=click.Path(path_type=Path), help=_help("vgg_checkpoint"))
@click.option("--lpips-checkpoint", type=click.Path(path_type=Path),
              help="Local torchvision AlexNet weights for LPIPS (needs the lpips extra); skips the cache and "
                   "download.")
@click.option("--cache-dir", type=click.Path(path_type=Path), help=_help("cache_dir"))
@click.option("--offline", is_flag=True, help=_help("offline"))
@click.option("--device", default="auto", show_default=True, help=_help("device"))
@verbosity_options
def eval_command(outputs: tuple[Path, ...], content: Path | None, prompt: str | None, source_text: str | None,
                 style_images: tuple[str, ...], scorers: tuple[str, ...], json_path: Path | None,
                 csv_path: Path | None, patch_protocol: str, patch_crops: int, patch_size: int | None,
                 ssim_protocol: str, quiet: bool, verbose: bool, **weights: Any) -> None:
    """Score OUTPUT images (or result folders with a manifest.jsonl) for style and content.

    Style (↑): clip_score, clipscore, directional_similarity, patch_clip_score, with each scorer
    backbone, against the whole prompt and each of its parts. Content: ssim ↑,
    vgg_content_distance ↓, lpips ↓, edge_correlation ↑, dino_content_similarity ↑ against the
    content image; gram_distance ↓, clip_style_similarity ↑ against style images; fid ↓ and
    artfid ↓ of sets against --reference-dir. Content image and prompt come from each output's
    metadata unless given. Prints a table; writes DIR/eval.json for a folder (or --json F).
    """
    from tqdm.auto import tqdm

    from clipstyler_opt.evaluate import (
        EvalOptions,
        Evaluator,
        Overrides,
        PatchProtocol,
        collect_targets,
        evaluate_targets,
    )
    from clipstyler_opt.evaluate.setlevel import format_set_metrics
    from clipstyler_opt.evaluate.table import (
        format_rows,
        format_scorers,
        format_summary,
        format_unavailable,
        write_csv,
        write_json,
    )

    level = verbosity(quiet, verbose)
    if patch_protocol == "paper" and patch_size is not None:
        raise ConfigError("--patch-size applies to the train protocol; the paper protocol's crops are 64-224 px")
    refuse_one_file_twice([("--json", json_path), ("--csv", csv_path)])
    overrides = Overrides(content, prompt, source_text, tuple(StyleImage.parse(text) for text in style_images))
    patch = PatchProtocol(patch_crops, patch_size or PATCH_CROP_SIZE, name=patch_protocol)
    options = EvalOptions(scorers=scorers, patch=patch, ssim_protocol=ssim_protocol,
                          clip_model_config=tuple(weights["clip_model_config"]),
                          vgg_checkpoint=weights["vgg_checkpoint"], lpips_checkpoint=weights["lpips_checkpoint"],
                          cache_dir=weights["cache_dir"], offline=weights["offline"], device=weights["device"],
                          dino_checkpoint=weights["dino_checkpoint"],
                          fid_inception_checkpoint=weights["fid_inception_checkpoint"],
                          art_inception_checkpoint=weights["art_inception_checkpoint"])
    targets, notes = collect_targets(outputs, overrides)  # every input is checked before any weights load
    reference_dir = weights["reference_dir"]
    if reference_dir is not None:
        from dataclasses import replace

        from clipstyler_opt.evaluate.setlevel import reference_images

        options = replace(options, reference_dir=reference_dir,
                          reference_images=tuple(reference_images(reference_dir)))
    destinations = _destinations(targets, json_path)
    reads = ReadSet(_inputs(targets, options))
    reads.refuse(*destinations, *([csv_path] if csv_path else []))
    evaluator = Evaluator.for_targets(options, targets)
    with tqdm(total=len(targets), desc="eval", unit="image", disable=level == 0, leave=False) as bar:
        report = evaluate_targets(targets, evaluator, notes, on_row=lambda row: bar.update(1))
    for path, root in destinations.items():
        write_json(path, report.to_json(_rows_of(report, root)), reads=reads)
    if csv_path is not None:
        write_csv(csv_path, [row.to_dict() for row in report.rows], reads=reads,
                  scorers=[scorer["label"] for scorer in report.scorers])
    if level:
        document = report.to_json()
        lines = [*format_scorers(document["scorers"]), *format_rows(document["rows"]),
                 *format_unavailable(document["rows"]), "",
                 *format_summary(document["summary"], document["rows"], document["summaries"]),
                 *format_set_metrics(document.get("set_metrics"))]
        lines += [f"wrote {path}" for path in [*destinations, *([csv_path] if csv_path else [])]]
        for line in lines:
            click.echo(printable(line))
