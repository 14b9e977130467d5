"""The metric names, their column order and which direction is better; `MetricUnavailable`."""

from __future__ import annotations

__all__ = ["DIRECTIONS", "METRICS", "STYLE_TEXT_METRICS", "MetricUnavailable"]

STYLE_TEXT_METRICS = ("clip_score", "directional_similarity", "patch_clip_score")
METRICS = (*STYLE_TEXT_METRICS, "ssim", "vgg_content_distance", "lpips", "edge_correlation", "gram_distance")
DIRECTIONS: dict[str, str] = {
    "clip_score": "higher",
    "directional_similarity": "higher",
    "patch_clip_score": "higher",
    "ssim": "higher",
    "vgg_content_distance": "lower",
    "lpips": "lower",
    "edge_correlation": "higher",
    "gram_distance": "lower",
}


class MetricUnavailable(Exception):
    """A metric cannot be computed for this output; the message says why (it is recorded, never dropped)."""
