"""Paired comparisons: Bradley–Terry strengths and the groups of items compared with each other."""

from __future__ import annotations

import numpy as np

__all__ = ["bradley_terry", "bradley_terry_many", "connected_components", "resampled_strengths"]


def bradley_terry(wins: np.ndarray, *, prior: float = 0.5, tolerance: float = 1e-10,
                  max_iterations: int = 10_000) -> np.ndarray:
    """Bradley–Terry strengths p (summing to 1; P(i beats j) = p_i / (p_i + p_j)) from a matrix
    `wins[i, j]` = times i was preferred to j (a tie counts 0.5 to each side).

    Fitted by Hunter's (2004) MM algorithm: p_i ← W_i / Σ_j N_ij / (p_i + p_j), with W_i the wins
    of i and N_ij the comparisons of i and j. Zero handling: `prior` wins are added to each side
    of every pair that was compared at least once, so a cell that never won (or never lost) gets
    a finite strength instead of 0 (or everything else 0). Items never compared get NaN.
    Strengths of items in different connected groups of comparisons are not comparable.

    Raises ValueError rather than return a fit that is not one: with `prior=0`, when an item
    of a group never beat (or never lost to) the rest of its group, no finite strengths exist
    (Hunter's condition: each group's "beat" graph must be strongly connected); and when the
    iteration has not converged to `tolerance` after `max_iterations`.

    Example:
        >>> bradley_terry(np.array([[0, 3], [1, 0]]), prior=0).round(3)
        array([0.75, 0.25])
        >>> bradley_terry(np.array([[0, 3], [0, 0]]), prior=0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Bradley-Terry with prior 0 has no finite fit: ... use a prior > 0
    """
    wins = np.asarray(wins, dtype=float)
    if wins.ndim != 2 or wins.shape[0] != wins.shape[1] or (wins < 0).any():
        raise ValueError("wins must be a square matrix of non-negative counts")
    wins = wins.copy()
    np.fill_diagonal(wins, 0.0)
    compared = (wins + wins.T) > 0
    if prior <= 0 and not _every_group_strongly_connected(wins > 0, compared):
        raise ValueError(f"Bradley-Terry with prior {prior:g} has no finite fit: in a group of items compared with "
                         "each other, some never beat (or never lost to) the others; use a prior > 0")
    wins = wins + prior * compared
    games = wins + wins.T
    total_wins = wins.sum(axis=1)
    active = games.sum(axis=1) > 0
    strength = np.where(active, 1.0, np.nan)
    if not active.any():
        return strength
    sub_games, sub_wins = games[np.ix_(active, active)], total_wins[active]
    p = np.full(int(active.sum()), 1.0 / active.sum())
    for _ in range(max_iterations):
        denominator = (sub_games / (p[:, None] + p[None, :])).sum(axis=1)
        updated = sub_wins / denominator
        updated /= updated.sum()
        if np.abs(updated - p).max() < tolerance:
            p = updated
            break
        p = updated
    else:
        raise ValueError(f"Bradley-Terry did not converge to {tolerance:g} in {max_iterations} iterations")
    strength[active] = p
    return strength


def bradley_terry_many(wins: np.ndarray, *, prior: float = 0.5, tolerance: float = 1e-10,
                       max_iterations: int = 10_000) -> np.ndarray:
    """`bradley_terry` of each matrix of a stack `wins[r]` (shape (R, k, k)) at once, for the
    resamples of a bootstrap: the same prior, start, updates and stopping rule per matrix, so each
    row equals `bradley_terry(wins[r], prior=prior)`. Needs `prior` > 0 (every fit then exists).

    Example:
        >>> bradley_terry_many(np.array([[[0, 7], [3, 0]], [[0, 0], [0, 0]]]), prior=0.5).round(4)
        array([[0.6818, 0.3182],
               [   nan,    nan]])
    """
    wins = np.array(wins, dtype=float)
    if wins.ndim != 3 or wins.shape[1] != wins.shape[2] or (wins < 0).any():
        raise ValueError("wins must be a stack of square matrices of non-negative counts")
    if prior <= 0:
        raise ValueError("bradley_terry_many needs a prior > 0; use bradley_terry for prior 0")
    diagonal = np.arange(wins.shape[1])
    wins[:, diagonal, diagonal] = 0.0
    compared = (wins + wins.transpose(0, 2, 1)) > 0
    wins = wins + prior * compared
    games = wins + wins.transpose(0, 2, 1)
    total_wins = wins.sum(axis=2)
    active = games.sum(axis=2) > 0
    counts = active.sum(axis=1, keepdims=True)
    p = np.where(active, 1.0 / np.maximum(counts, 1), 0.0)
    running = active.any(axis=1)
    for _ in range(max_iterations):
        if not running.any():
            break
        rows = np.flatnonzero(running)
        q = p[rows]
        pair_sums = q[:, :, None] + q[:, None, :]
        ratio = np.divide(games[rows], pair_sums, out=np.zeros_like(pair_sums), where=games[rows] > 0)
        denominator = ratio.sum(axis=2)
        updated = np.divide(total_wins[rows], denominator, out=np.zeros_like(denominator), where=active[rows])
        updated /= updated.sum(axis=1, keepdims=True)
        converged = np.abs(updated - q).max(axis=1) < tolerance
        p[rows] = updated
        running[rows[converged]] = False
    else:
        if running.any():
            raise ValueError(f"Bradley-Terry did not converge to {tolerance:g} in {max_iterations} iterations")
    return np.where(active, p, np.nan)


def resampled_strengths(cluster_wins: np.ndarray, *, resamples: int = 2000, seed: int = 0,
                        prior: float = 0.5) -> np.ndarray:
    """Bradley–Terry strengths of `resamples` bootstrap resamples of whole clusters (e.g.
    participants), shape (resamples, k): `cluster_wins[g]` is cluster g's own wins matrix, and a
    resample's matrix is the sum of the matrices of the clusters drawn (with replacement).

    Example:
        >>> one = np.array([[0, 1], [0, 0]]); other = np.array([[0, 0], [1, 0]])
        >>> values = resampled_strengths(np.stack([one, other]), resamples=500)
        >>> sorted(set(values[:, 0].round(3).tolist()))  # drew (one, one), (one, other) or (other, other)
        [0.167, 0.5, 0.833]
    """
    stack = np.asarray(cluster_wins, dtype=float)
    groups = stack.shape[0]
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, groups, size=(resamples, groups))
    counts = np.zeros((resamples, groups))
    np.add.at(counts, (np.arange(resamples)[:, None], drawn), 1.0)
    summed = (counts @ stack.reshape(groups, -1)).reshape(resamples, *stack.shape[1:])
    return bradley_terry_many(summed, prior=prior)


def _reachable(edges: np.ndarray) -> np.ndarray:
    """reach[i, j]: j can be reached from i along `edges` (i reaches itself)."""
    reach = edges | np.eye(len(edges), dtype=bool)
    while True:
        wider = reach | ((reach.astype(np.int64) @ reach.astype(np.int64)) > 0)
        if (wider == reach).all():
            return reach
        reach = wider


def _every_group_strongly_connected(beat: np.ndarray, compared: np.ndarray) -> bool:
    """Within every group linked by comparisons, can each item be reached from every other along
    "i beat j" edges? (Only then do finite maximum-likelihood strengths exist.)"""
    reach = _reachable(beat)
    return all(reach[np.ix_(group, group)].all() for group in connected_components(compared))


def connected_components(compared: np.ndarray) -> list[list[int]]:
    """Groups of items linked by comparisons (`compared[i, j]` true when i and j met)."""
    compared = np.asarray(compared, dtype=bool)
    linked = compared | compared.T
    unseen, groups = set(range(len(linked))), []
    while unseen:
        stack, group = [min(unseen)], []
        unseen.discard(stack[0])
        while stack:
            item = stack.pop()
            group.append(item)
            for other in np.flatnonzero(linked[item]):
                if int(other) in unseen:
                    unseen.discard(int(other))
                    stack.append(int(other))
        groups.append(sorted(group))
    return groups
