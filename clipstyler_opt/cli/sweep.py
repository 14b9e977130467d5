"""`clipopt sweep INPUT... -p PROMPT --vary FIELD=V1,V2 -o DIR`: a batch over a grid of settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from clipstyler_opt.cli.batch import batch_options, run_batch_command
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import ClipoptError, ConfigError

if TYPE_CHECKING:
    from clipstyler_opt.batch import SweepCell

__all__ = ["grid_cells", "sweep"]


def grid_cells(varies: tuple[str, ...], base: StyleConfig) -> tuple[SweepCell, ...]:
    """The cells of `--vary` options on top of `base`, each checked before any work: its
    settings, and the extra packages its backbones need (once per set of backbones)."""
    from clipstyler_opt.batch import expand_grid, parse_vary
    from clipstyler_opt.batch.jobs import backbone_key
    from clipstyler_opt.method.ensemble import check_members

    cells = expand_grid(base, [parse_vary(text) for text in varies])
    checked: set[tuple[Any, ...]] = set()
    for cell in cells:
        config = cell.apply(base)
        if backbone_key(config) not in checked and backbone_key(config) != backbone_key(base):
            try:
                check_members(config)
            except ClipoptError as exc:
                raise type(exc)(f"sweep cell {cell.id}: {exc}") from None
            checked.add(backbone_key(config))
    return tuple(cells)


@click.command()
@click.option("--vary", "vary", multiple=True, metavar="FIELD=V1,V2,...",
              help="A setting and its values, e.g. lambda_content=50,150 or backbone=A,B+C (+ joins an ensemble); "
                   "a value holding a comma goes in a JSON list: 'backbone=[\"a,b\",\"c\"]'. A value may carry a "
                   "label, LABEL=VALUE (backbone=CLIP=ViT-B-32-quickgelu/openai), which names its cell. "
                   "mix=0,0.5,1 reweights two-part prompts (1-m, m); weights=0.2/0.3/0.5,... gives one weight per "
                   "part. Repeat for a grid: every combination is one cell.")
@batch_options("DIR/<cell>/<prompt-slug>/<input path below its INPUT>.<format>")
def sweep(vary: tuple[str, ...], **params: Any) -> None:
    """Stylise every image in INPUT with every prompt, once per cell of a grid of settings.

    Each --vary FIELD=V1,V2 names a setting (an option of `clipopt run` that can change the
    image, spelled with - or _) and its values; the grid is every combination. Outputs go to
    DIR/<cell>/<prompt-slug>/..., each sidecar names its cell and values (`sweep`), and a
    job's seed is the same in every cell, so cells differ only in the varied settings; with
    `--vary seed=1,2` each cell's jobs take their seeds from its seed, as `batch --seed` does
    (replicates). `--vary mix=M,...` (two-part prompts: weights 1-m and m) and `--vary
    weights=W1/W2/...,...` (one weight per part) reweight each prompt's parts instead; a part of
    weight 0 is left out of that cell's run, and each sidecar records the prompt it ran
    (`sweep.prompt`). Every cell is checked before any work (a bad value exits 2 naming the cell,
    a prompt whose parts do not fit the weights exits 2 naming the prompt, and two values that
    would share a cell folder exit 2). Resume, --shard, torchrun and --workers-per-device work
    as in `clipopt batch`.
    """
    if not vary:
        raise click.UsageError("nothing to sweep: give --vary FIELD=V1,V2 (repeatable)")
    ctx = click.get_current_context()
    varied = {text.partition("=")[0].strip().replace("-", "_") for text in vary}
    if "seed" in varied and ctx.get_parameter_source("seed") not in (ParameterSource.DEFAULT, None):
        raise ConfigError("--seed and --vary seed=... both set the seed; give one of them")
    run_batch_command(params, lambda base: grid_cells(vary, base))
