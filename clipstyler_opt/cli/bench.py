"""`clipopt bench`: median step time per variant (backbones x precisions x presets x compile modes),
against a CLIPstyler-style loop; `--json` has what a comparison across machines needs."""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from clipstyler_opt.cli.options import verbosity
from clipstyler_opt.core.config import COMPILE_MODES, PRECISIONS, StyleConfig
from clipstyler_opt.core.errors import OutputError
from clipstyler_opt.core.presets import DEFAULT_PRESET, PRESET_NAMES
from clipstyler_opt.core.styles import FUSION_MODES, StyleSpec

if TYPE_CHECKING:
    from clipstyler_opt.tools.bench import BenchRow, BenchVariant
    from clipstyler_opt.tools.startup import StartupRow

__all__ = ["bench"]

_DEFAULTS = StyleConfig()
_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "astronaut.png"
# The default prompt, shown in --help, which loads nothing heavy (tools.bench loads torch); a test
# checks it is clipstyler_opt.tools.bench.PROMPT.
PROMPT = "starry night by Vincent van Gogh"


def _published() -> dict[str, Any]:
    """As CLIPstyler's authors report it: the figure a GPU measurement here is compared with."""
    from clipstyler_opt.tools.bench import PAPER_STEPS

    return {"method": "CLIPstyler (Kwon & Ye, CVPR 2022)", "seconds_per_image": 40,
            "gpu": "NVIDIA GeForce RTX 2080 Ti", "steps": PAPER_STEPS, "size": 512,
            "note": "approximate, as reported by the authors; compare est_s_per_200_steps of a CUDA run"}


def _variants(backbones: tuple[str, ...], precisions: list[str], presets: list[str], modes: list[str],
              bf16_weights: bool, base: StyleConfig, prompts: tuple[str, ...] = (), fusions: tuple[str, ...] = (),
              ) -> list[BenchVariant]:
    from clipstyler_opt.method.precision import resolve_runtime
    from clipstyler_opt.tools.bench import BenchVariant

    variants = []
    for backbone, precision, preset, mode, prompt, fusion in itertools.product(
            backbones or ("",), precisions, presets, modes, prompts or (PROMPT,), fusions or (base.fusion,)):
        members = tuple(part for part in backbone.split("+") if part)
        changes: dict[str, Any] = dict(precision=precision, preset=preset, compile=mode, fusion=fusion)
        config = base.replace(**changes, backbone=members) if members else base.replace(**changes)
        StyleSpec.parse(prompt)  # a bad prompt fails before anything is built
        label = "+".join(str(s) for s in config.backbone_specs())
        if prompts or fusions:
            label += f" | {prompt}" + (f" | fusion {fusion}" if fusions else "")
        variants.append(BenchVariant(label, config, prompt))
        if bf16_weights and resolve_runtime(config.device, precision).precision == "bf16":
            variants.append(BenchVariant(label, config.replace(bf16_weights=True), prompt))
    return variants


def _check_json_target(path: Path, image: Path, configs: list[StyleConfig]) -> None:
    """Before any work: the JSON file may not replace an input, and its folder must take files."""
    from clipstyler_opt.run.outputs import refuse_overwriting_inputs

    refuse_overwriting_inputs(path, [image, *(f for c in configs for f in c.files_read())])
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise OutputError(f"{path}: cannot write there ({folder} is not a writable folder)")


def _row_record(row: BenchRow, baseline: BenchRow | None) -> dict[str, Any]:
    from clipstyler_opt.tools.bench import PAPER_STEPS

    return {"variant": row.variant, "preset": row.preset, "preset_applied": row.preset_applied,
            "precision": row.precision, "compile": row.compile,
            "bf16_weights": row.bf16_weights, "median_s": row.median_s, "step_times": row.step_times,
            "setup_s": row.setup_s, "setup_times": row.setup_times, "first_step_s": row.first_step_times,
            "steps_per_image": row.steps_per_image,
            "est_s_per_200_steps": row.seconds_per_image(PAPER_STEPS),
            "est_s_per_image": row.seconds_per_image(row.steps_per_image),
            "x_reference": row.median_s / baseline.median_s if baseline else None,
            "peak_memory_mb": row.peak_memory_mb, "peak_growth_mb": row.peak_growth_mb, "notes": row.notes}


def _print_table(rows: list[BenchRow], baseline: BenchRow | None) -> None:
    width = max(len(r.variant) for r in rows) + 2
    click.echo(f"{'variant':<{width}}{'preset':<9}{'precision':<11}{'compile':<17}{'median s/step':>14}"
               f"{'x reference':>13}{'setup s':>9}{'s/image':>10}{'peak MB (+run)':>17}")
    for row in rows:
        ratio = f"{row.median_s / baseline.median_s:.2f}x" if baseline else "-"
        setup = f"{row.setup_s:.2f}" if row.setup_s is not None else "-"
        peak = f"{row.peak_memory_mb:.0f} (+{row.peak_growth_mb:.0f})" if row.peak_memory_mb is not None else "n/a"
        precision = row.precision + ("+w" if row.bf16_weights else "")
        click.echo(f"{row.variant:<{width}}{row.preset:<9}{precision:<11}{row.compile:<17}{row.median_s:>14.3f}"
                   f"{ratio:>13}{setup:>9}{row.seconds_per_image(row.steps_per_image):>10.1f}{peak:>17}")


def _print_startup(rows: list[StartupRow], variant: BenchVariant) -> None:
    click.echo(f"\nstart-up of a fresh process to its first step ({variant.label}, {variant.config.precision}), "
               "seconds:")
    click.echo(f"{'prompt':<10}{'imports':>9}{'weights':>9}{'text':>8}{'other setup':>13}{'to first step':>15}")
    for row in rows:
        click.echo(f"{row.prompt:<10}{row.imports_s:>9.2f}{row.weights_s:>9.2f}{row.text_s:>8.3f}"
                   f"{row.other_setup_s:>13.2f}{row.to_first_step_s:>15.2f}")


@click.command()
@click.option("--image", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=_EXAMPLE if _EXAMPLE.exists() else None, help="Content image (default: examples/astronaut.png).")
@click.option("--backbone", "backbones", multiple=True, metavar="SPEC[+SPEC...]",
              help="Backbone of a variant (as `run --backbone`; join ensemble members with '+'); repeat to "
                   "compare. Models without a local file get random-init weights of their architecture.")
@click.option("--clip-model-config", "model_configs", multiple=True, metavar="FILE",
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="JSON architecture file to register with open_clip (as `run --clip-model-config`); repeatable.")
@click.option("--prompt", "prompts", multiple=True, metavar="TEXT",
              help=f"Style prompt of a variant (a multi-style spec works); repeat to compare (default: {PROMPT!r}).")
@click.option("--fusion", "fusions", multiple=True, type=click.Choice(FUSION_MODES),
              help="Fusion mode of a variant; repeat to compare (default: directions).")
@click.option("--precision", "precisions", multiple=True, type=click.Choice([p for p in PRECISIONS if p != "auto"]),
              help="Precision to measure; repeat to compare (default: fp32 and the device's auto choice).")
@click.option("--preset", "presets", multiple=True, type=click.Choice(PRESET_NAMES),
              help="Preset to measure; repeat to compare (default: default).")
@click.option("--compile", "modes", multiple=True, type=click.Choice(COMPILE_MODES),
              help="torch.compile mode to measure; repeat to compare (default: off). The warm-up step pays "
                   "for compiling (first_step_s in the JSON).")
@click.option("--bf16-weights", is_flag=True, help="Also measure each bf16 variant with its frozen weights in bf16.")
@click.option("--steps", default=3, show_default=True, help="Timed steps per variant and round (after 1 warm-up).")
@click.option("--rounds", default=1, show_default=True, help="Rounds; variants are interleaved within each.")
@click.option("--reference/--no-reference", default=True, show_default=True,
              help="Also time a CLIPstyler-style loop (per-crop Python loop, two CLIP passes, unfrozen CLIP) on "
                   "the first variant's first backbone.")
@click.option("--startup/--no-startup", default=True, show_default=True,
              help="Also time a fresh process to its first step (imports, weights, text, other setup) for a "
                   "first and a repeated prompt, with the first variant's settings and an empty text cache.")
@click.option("--size", default=_DEFAULTS.size, show_default=True)
@click.option("--crops", default=_DEFAULTS.crops, show_default=True, help="Crops per step (a preset may change it "
                                                                          "unless given).")
@click.option("--crop-size", default=_DEFAULTS.crop_size, show_default=True)
@click.option("--vgg-checkpoint", type=click.Path(path_type=Path), help="Default: random init (same compute).")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the results, the machine and versions here, with the published CLIPstyler "
                   "timing to compare with.")
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def bench(ctx: click.Context, image: Path | None, backbones: tuple[str, ...], model_configs: tuple[Path, ...],
          prompts: tuple[str, ...], fusions: tuple[str, ...],
          precisions: tuple[str, ...], presets: tuple[str, ...], modes: tuple[str, ...], bf16_weights: bool,
          steps: int, rounds: int, reference: bool, startup: bool, size: int, crops: int, crop_size: int,
          vgg_checkpoint: Path | None, device: str, json_path: Path | None, quiet: bool) -> None:
    """Measure seconds per optimisation step of the real architectures (random weights unless given)."""
    from tqdm.auto import tqdm

    from clipstyler_opt.method.precision import resolve_runtime
    from clipstyler_opt.run.outputs import write_atomic
    from clipstyler_opt.run.record import package_versions
    from clipstyler_opt.tools.bench import REFERENCE_LABEL, BenchVariant, check_reference, random_weights, run_benchmark
    from clipstyler_opt.tools.startup import STARTUP_FIELDS, measure_startup

    verbosity(quiet, False)
    if image is None:
        raise click.UsageError("--image is required when examples/ is not present")
    if steps < 1 or rounds < 1:
        raise click.UsageError("--steps and --rounds must be at least 1")
    given = {name for name in ("size", "crops", "crop_size")
             if ctx.get_parameter_source(name) != ParameterSource.DEFAULT}
    base = StyleConfig(size=size, crops=crops, crop_size=crop_size, device=device, vgg_checkpoint=vgg_checkpoint,
                       clip_model_config=model_configs, explicit_fields=given)
    auto = resolve_runtime(device, "auto").precision
    chosen = list(dict.fromkeys(precisions or ["fp32", auto]))
    variants = _variants(backbones, chosen, list(dict.fromkeys(presets or [DEFAULT_PRESET])),
                         list(dict.fromkeys(modes or ["off"])), bf16_weights, base,
                         tuple(dict.fromkeys(prompts)), tuple(dict.fromkeys(fusions)))  # specs are checked here
    if json_path:
        _check_json_target(json_path, image, [v.config for v in variants])
    if reference:
        check_reference(variants[0].config)
    from clipstyler_opt.core.files import scratch_folder

    with scratch_folder("clipopt-bench-") as folder:
        variants = [BenchVariant(v.label, random_weights(v.config, folder), v.prompt) for v in variants]
        total = (steps + 1) * rounds * len(variants) + (steps * rounds if reference else 0)
        with tqdm(total=total, desc="bench", unit="step", disable=quiet) as bar:
            rows = run_benchmark(variants, image, steps=steps, rounds=rounds, reference=reference,
                                 on_step=lambda _: bar.update())
        first = variants[0]
        startup_rows = (measure_startup({name: getattr(first.config, name) for name in STARTUP_FIELDS}, image,
                                        first.prompt) if startup else [])
    baseline = next((r for r in rows if r.variant == REFERENCE_LABEL), None)
    from clipstyler_opt.tools.machine import machine_record

    machine = machine_record(device)
    click.echo(f"{size}px long side, {crops} crops of {crop_size} (unless a preset changes them), device "
               f"{machine['device']} ({machine['device_name']}), torch {machine['torch']}")
    _print_table(rows, baseline)
    if startup_rows:
        _print_startup(startup_rows, variants[0])
    if json_path:
        record = {"settings": {"size": size, "crops": crops, "crop_size": crop_size, "device": device,
                               "image": str(image), "steps": steps, "rounds": rounds},
                  "machine": machine, "published": _published(),
                  "rows": [_row_record(row, baseline) for row in rows],
                  "startup": [{**asdict(row), "to_first_step_s": row.to_first_step_s} for row in startup_rows],
                  "versions": package_versions()}
        text = json.dumps(record, indent=2, allow_nan=False, default=str)
        write_atomic(json_path, lambda fh: fh.write(text.encode("utf-8")))
