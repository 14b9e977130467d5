"""Zero-shot style recognition: is an output's own prompt the one it matches best?

For each output, every prompt of the folder is ranked by a similarity (e.g. the directional
similarity cos(ΔI, ΔT_prompt) under a scorer). An output is recognised at k when one of its true
prompts is among the k best; a multi-style prompt's true set holds its parts of the largest weight
(ties count for each tied part). Chance at k is the mean over outputs of
min(1, k·|true set| / number of prompts), the accuracy of a random ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["recognition"]


def recognition(similarity: np.ndarray, truths: Sequence[set[int]], *, ks: Sequence[int] = (1, 5)) -> dict[str, Any]:
    """Top-k accuracy against chance, and the confusion matrix of the best prompt.

    Args:
        similarity: (outputs, prompts) scores, higher meaning more alike.
        truths: per output, the indices of the prompts that count as right.
        ks: the k to report (a k of at least the number of prompts is left out).

    Example:
        >>> result = recognition(np.array([[0.9, 0.1], [0.2, 0.8]]), [{0}, {1}], ks=(1,))
        >>> result["top1"], result["chance_top1"], result["confusion"]
        (1.0, 0.5, [[1, 0], [0, 1]])
    """
    scores = np.asarray(similarity, dtype=np.float64)
    outputs, prompts = scores.shape
    if outputs != len(truths) or outputs == 0:
        raise ValueError("one set of true prompts per output is needed")
    order = np.argsort(-scores, axis=1, kind="stable")
    result: dict[str, Any] = {"n_outputs": outputs, "n_prompts": prompts}
    for k in ks:
        if k >= prompts:
            continue
        hits = [bool(set(order[i, :k].tolist()) & truths[i]) for i in range(outputs)]
        result[f"top{k}"] = float(np.mean(hits))
        result[f"chance_top{k}"] = float(np.mean([min(1.0, k * len(t) / prompts) for t in truths]))
    confusion = np.zeros((prompts, prompts), dtype=int)
    for i, truth in enumerate(truths):
        for t in truth:
            confusion[t, order[i, 0]] += 1
    result["confusion"] = confusion.tolist()
    return result
