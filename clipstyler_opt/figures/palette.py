"""One colour per cell, the same in every chart: the cells of a folder are given colours once, in
their order, and every chart of that folder looks them up.

The first eight are Okabe & Ito's colour-blind-safe set ("Color Universal Design", 2008); more
cells take evenly spaced colours from viridis, which stays ordered in lightness for every kind of
colour vision.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["OKABE_ITO", "cell_colours"]

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")


def cell_colours(cells: Sequence[str]) -> dict[str, str]:
    """A colour (#RRGGBB) for each distinct cell, in the order the cells are given.

    Example:
        >>> cell_colours(["CLIP", "SigLIP", "CLIP"])
        {'CLIP': '#E69F00', 'SigLIP': '#56B4E9'}
    """
    distinct = list(dict.fromkeys(cells))
    if len(distinct) <= len(OKABE_ITO):
        return dict(zip(distinct, OKABE_ITO, strict=False))
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    viridis = colormaps["viridis"]
    return {cell: to_hex(viridis(i / (len(distinct) - 1))).upper() for i, cell in enumerate(distinct)}
