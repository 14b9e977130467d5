"""Inter-rater agreement: Krippendorff's α for nominal answers, with any number of raters per
unit and missing answers.

Each unit (a question about one pair) holds the answers of the raters who answered it; units
with fewer than two answers are not pairable and count for nothing. With o_ck the coincidences
(Σ over units of the ordered pairs of different raters' answers c, k, each weighted 1/(m_u − 1)),
n_c = Σ_k o_ck and n = Σ_c n_c:

    α = 1 − (n − 1) · Σ_{c≠k} o_ck / Σ_{c≠k} n_c·n_k

α = 1 is perfect agreement, 0 is what chance gives, and below 0 is systematic disagreement.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence

__all__ = ["krippendorff_alpha"]


def krippendorff_alpha(units: Iterable[Sequence[Hashable]]) -> float | None:
    """Krippendorff's α (nominal) of `units`, each the answers given to one unit; None when it is
    undefined (fewer than two pairable answers, or a single answer value throughout).

    Example:
        >>> krippendorff_alpha([["a", "a"], ["b", "b"], ["a", "a"]])
        1.0
        >>> round(krippendorff_alpha([["a", "b"], ["b", "a"], ["a", "b"], ["b", "a"]]), 3)
        -0.75
    """
    coincidences: defaultdict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for unit in units:
        values = list(unit)
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, nc in counts.items():
            for k, nk in counts.items():
                pairs = nc * (nk - 1) if c == k else nc * nk
                coincidences[(c, k)] += pairs / (m - 1)
    totals: defaultdict[Hashable, float] = defaultdict(float)
    for (c, _), weight in coincidences.items():
        totals[c] += weight
    n = sum(totals.values())
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if n < 2 or expected == 0:
        return None
    observed = sum(weight for (c, k), weight in coincidences.items() if c != k)
    return 1.0 - (n - 1) * observed / expected
