"""`clipopt bench`: median step time per precision (and against a CLIPstyler-style loop)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import click
from tqdm.auto import tqdm

from ..bench import run_benchmark, temporary_checkpoints
from ..config import PRECISIONS, StyleConfig
from ..precision import resolve_runtime
from ..provenance import package_versions
from .options import verbosity

__all__ = ["bench"]

_DEFAULTS = StyleConfig()
_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "astronaut.png"


@click.command()
@click.option("--image", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=_EXAMPLE if _EXAMPLE.exists() else None, help="Content image (default: examples/astronaut.png).")
@click.option("--precision", "precisions", multiple=True, type=click.Choice([p for p in PRECISIONS if p != "auto"]),
              help="Precision to measure; repeat to compare (default: fp32 and the device's auto choice).")
@click.option("--steps", default=3, show_default=True, help="Timed steps per variant and round (after 1 warm-up).")
@click.option("--rounds", default=1, show_default=True, help="Rounds; variants are interleaved within each.")
@click.option("--reference/--no-reference", default=True, show_default=True,
              help="Also time a CLIPstyler-style loop (per-crop Python loop, two CLIP passes, unfrozen CLIP).")
@click.option("--size", default=_DEFAULTS.size, show_default=True)
@click.option("--crops", default=_DEFAULTS.crops, show_default=True)
@click.option("--crop-size", default=_DEFAULTS.crop_size, show_default=True)
@click.option("--clip-model", default=_DEFAULTS.clip_model, show_default=True)
@click.option("--clip-checkpoint", type=click.Path(path_type=Path), help="Default: random init (same compute).")
@click.option("--vgg-checkpoint", type=click.Path(path_type=Path), help="Default: random init (same compute).")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), help="Also write results here.")
@click.option("-q", "--quiet", is_flag=True)
def bench(image: Path | None, precisions: tuple[str, ...], steps: int, rounds: int, reference: bool, size: int,
          crops: int, crop_size: int, clip_model: str, clip_checkpoint: Path | None, vgg_checkpoint: Path | None,
          device: str, json_path: Path | None, quiet: bool) -> None:
    """Measure seconds per optimisation step of the real architectures (random weights unless given)."""
    verbosity(quiet, False)
    if image is None:
        raise click.UsageError("--image is required when examples/ is not present")
    config = StyleConfig(size=size, crops=crops, crop_size=crop_size, clip_model=clip_model, device=device,
                         clip_checkpoint=clip_checkpoint, vgg_checkpoint=vgg_checkpoint)
    auto = resolve_runtime(device, "auto").precision
    chosen = list(dict.fromkeys(precisions or ["fp32", auto]))
    config, tmp = temporary_checkpoints(config)
    try:
        per_variant = steps * rounds
        total = per_variant * (len(chosen) + (1 if reference else 0)) + rounds * len(chosen)
        with tqdm(total=total, desc="bench", unit="step", disable=quiet) as bar:
            rows = run_benchmark(config, image, chosen, steps=steps, rounds=rounds, reference=reference,
                                 on_step=lambda _: bar.update())
    finally:
        if tmp is not None:
            tmp.cleanup()
    baseline = next((r for r in rows if r.variant != "clipstyler_opt"), None)
    click.echo(f"{config.clip_model} + VGG19, {size}px long side, {crops} crops of {crop_size}, "
               f"device {resolve_runtime(device, 'fp32').device}, {platform.processor() or platform.machine()}")
    click.echo(f"{'variant':<24}{'precision':<11}{'median s/step':>14}{'steps':>7}{'vs reference':>14}")
    for row in rows:
        ratio = f"{baseline.median_s / row.median_s:.2f}x" if baseline else "-"
        click.echo(f"{row.variant:<24}{row.precision:<11}{row.median_s:>14.3f}{len(row.step_times):>7}{ratio:>14}")
    if json_path:
        json_path.write_text(json.dumps({
            "settings": {"size": size, "crops": crops, "crop_size": crop_size, "clip_model": clip_model,
                         "device": device, "image": str(image), "steps": steps, "rounds": rounds},
            "rows": [{"variant": r.variant, "precision": r.precision, "median_s": r.median_s,
                      "step_times": r.step_times, "peak_memory_mb": r.peak_memory_mb} for r in rows],
            "versions": package_versions(),
        }, indent=2))
