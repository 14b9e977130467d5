"""`clipopt bench`: median step time per variant (backbones x precisions), against a CLIPstyler-style loop."""

from __future__ import annotations

import json
import platform
import tempfile
from pathlib import Path

import click
from tqdm.auto import tqdm

from ..bench import BenchVariant, random_weights, run_benchmark
from ..config import PRECISIONS, StyleConfig
from ..precision import resolve_runtime
from ..provenance import package_versions
from .options import verbosity

__all__ = ["bench"]

_DEFAULTS = StyleConfig()
_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "astronaut.png"


def _variants(backbones: tuple[str, ...], precisions: list[str], base: StyleConfig) -> list[BenchVariant]:
    variants = []
    for backbone in backbones or ("",):
        members = tuple(part for part in backbone.split("+") if part)
        for precision in precisions:
            config = base.replace(backbone=members, precision=precision) if members else \
                base.replace(precision=precision)
            label = "+".join(str(s) for s in config.backbone_specs())
            variants.append(BenchVariant(label, config))
    return variants


@click.command()
@click.option("--image", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=_EXAMPLE if _EXAMPLE.exists() else None, help="Content image (default: examples/astronaut.png).")
@click.option("--backbone", "backbones", multiple=True, metavar="SPEC[+SPEC...]",
              help="Backbone of a variant (as `run --backbone`; join ensemble members with '+'); repeat to "
                   "compare. Models without a local file get random-init weights of their architecture.")
@click.option("--precision", "precisions", multiple=True, type=click.Choice([p for p in PRECISIONS if p != "auto"]),
              help="Precision to measure; repeat to compare (default: fp32 and the device's auto choice).")
@click.option("--steps", default=3, show_default=True, help="Timed steps per variant and round (after 1 warm-up).")
@click.option("--rounds", default=1, show_default=True, help="Rounds; variants are interleaved within each.")
@click.option("--reference/--no-reference", default=True, show_default=True,
              help="Also time a CLIPstyler-style loop (per-crop Python loop, two CLIP passes, unfrozen CLIP) on "
                   "the first variant's first backbone.")
@click.option("--size", default=_DEFAULTS.size, show_default=True)
@click.option("--crops", default=_DEFAULTS.crops, show_default=True)
@click.option("--crop-size", default=_DEFAULTS.crop_size, show_default=True)
@click.option("--vgg-checkpoint", type=click.Path(path_type=Path), help="Default: random init (same compute).")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), help="Also write results here.")
@click.option("-q", "--quiet", is_flag=True)
def bench(image: Path | None, backbones: tuple[str, ...], precisions: tuple[str, ...], steps: int, rounds: int,
          reference: bool, size: int, crops: int, crop_size: int, vgg_checkpoint: Path | None, device: str,
          json_path: Path | None, quiet: bool) -> None:
    """Measure seconds per optimisation step of the real architectures (random weights unless given)."""
    verbosity(quiet, False)
    if image is None:
        raise click.UsageError("--image is required when examples/ is not present")
    base = StyleConfig(size=size, crops=crops, crop_size=crop_size, device=device, vgg_checkpoint=vgg_checkpoint)
    auto = resolve_runtime(device, "auto").precision
    chosen = list(dict.fromkeys(precisions or ["fp32", auto]))
    variants = _variants(backbones, chosen, base)  # specs are checked here, before anything is written
    with tempfile.TemporaryDirectory(prefix="clipopt-bench-") as folder:
        variants = [BenchVariant(v.label, random_weights(v.config, Path(folder))) for v in variants]
        total = (steps + 1) * rounds * len(variants) + (steps * rounds if reference else 0)
        with tqdm(total=total, desc="bench", unit="step", disable=quiet) as bar:
            rows = run_benchmark(variants, image, steps=steps, rounds=rounds, reference=reference,
                                 on_step=lambda _: bar.update())
    baseline = next((r for r in rows if r.variant == "CLIPstyler-style loop"), None)
    click.echo(f"{size}px long side, {crops} crops of {crop_size}, device {resolve_runtime(device, 'fp32').device}, "
               f"{platform.processor() or platform.machine()}")
    width = max(len(r.variant) for r in rows) + 2
    click.echo(f"{'variant':<{width}}{'precision':<11}{'median s/step':>14}{'steps':>7}{'x reference':>14}")
    for row in rows:
        ratio = f"{row.median_s / baseline.median_s:.2f}x" if baseline else "-"
        click.echo(f"{row.variant:<{width}}{row.precision:<11}{row.median_s:>14.3f}{len(row.step_times):>7}"
                   f"{ratio:>14}")
    if json_path:
        json_path.write_text(json.dumps({
            "settings": {"size": size, "crops": crops, "crop_size": crop_size, "device": device,
                         "image": str(image), "steps": steps, "rounds": rounds},
            "rows": [{"variant": r.variant, "precision": r.precision, "median_s": r.median_s,
                      "step_times": r.step_times, "peak_memory_mb": r.peak_memory_mb} for r in rows],
            "versions": package_versions(),
        }, indent=2))
