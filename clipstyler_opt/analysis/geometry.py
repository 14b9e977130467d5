"""The geometry of a joint embedding space: the modality gap and the cone of each modality.

With n(v) = v/‖v‖ (embeddings are normalised first):

- gap = ‖mean_i n(image_i) − mean_j n(text_j)‖, the distance between the two modalities' centres
  (Liang et al., "Mind the Gap", NeurIPS 2022, report it for CLIP);
- cone = the mean cosine over all pairs of distinct embeddings of one modality: near 0 for
  directions spread over the sphere, near 1 when they crowd into a narrow cone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cone", "modality_gap", "normalise"]


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (rows of zeros are refused: they have no direction)."""
    data = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(data, axis=-1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("an embedding of length 0 has no direction")
    return data / norms


def cone(vectors: np.ndarray) -> float | None:
    """Mean pairwise cosine of distinct rows; None with fewer than two rows.

    Example:
        >>> cone(np.array([[1.0, 0.0], [0.0, 1.0]])), cone(np.array([[1.0, 0.0], [2.0, 0.0]]))
        (0.0, 1.0)
    """
    unit = normalise(vectors)
    n = len(unit)
    if n < 2:
        return None
    gram = unit @ unit.T
    return float((gram.sum() - np.trace(gram)) / (n * (n - 1)))


def modality_gap(images: np.ndarray, texts: np.ndarray) -> dict[str, Any]:
    """The gap between the centres of the normalised image and text embeddings, and both cones.

    Example:
        >>> result = modality_gap(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
        >>> round(result["gap"], 6), result["n_images"], result["n_texts"]
        (1.414214, 1, 1)
    """
    image_unit, text_unit = normalise(images), normalise(texts)
    gap = float(np.linalg.norm(image_unit.mean(axis=0) - text_unit.mean(axis=0)))
    return {"gap": gap, "image_cone": cone(image_unit), "text_cone": cone(text_unit),
            "n_images": len(image_unit), "n_texts": len(text_unit)}
