"""What a run reports: progress events while it runs, and the finished `Result`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from clipstyler_opt.core.config import StyleConfig

__all__ = ["FrameCallback", "Progress", "ProgressCallback", "Result", "RunInterrupted"]


@dataclass(frozen=True)
class Progress:
    """Sent to the progress callback after every step."""

    step: int  # 1-based
    total: int
    losses: dict[str, float]
    elapsed: float  # seconds since the optimisation started
    lr: float = 0.0  # learning rate used for this step
    skipped: bool = False  # True when this step's loss or gradient was non-finite and the update was skipped


ProgressCallback = Callable[[Progress], None]
FrameCallback = Callable[[int, Image.Image], None]


@dataclass
class Result:
    """A finished (or interrupted) run, built once with everything, its record included.

    `metadata` is the provenance record (`run.record.provenance`) that `save` writes into the
    image and its sidecar.

    Example:
        >>> result = Result(image=Image.new("RGB", (8, 8)), prompt="oil", seed=0, device="cpu",
        ...                 precision="fp32", losses={"total": 1.0}, history=[{"total": 1.0}],
        ...                 timings={"total_s": 0.5}, config=StyleConfig(), metadata={"seed": 0})
        >>> result.metadata["seed"], result.image.size
        (0, (8, 8))
    """

    image: Image.Image
    prompt: str
    seed: int
    device: str
    precision: str
    losses: dict[str, float]  # final loss terms, evaluated on the saved image
    history: list[dict[str, float]]  # per-step loss terms
    timings: dict[str, float]
    config: StyleConfig
    skipped_steps: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # full provenance, as embedded in saved files

    def save(self, path: Any, *, sidecar: bool = True) -> list[str]:
        from clipstyler_opt.run.images import save_image

        return save_image(self.image, path, self.metadata, sidecar=sidecar, portable=self.config.portable_metadata)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM turned into KeyboardInterrupt) during an optimisation or its render.
    `result` holds the image after the last finished step, with `metadata["interrupted_at_step"]`;
    when the --output-size render was stopped, the optimised image at the working size, with
    `metadata["render_interrupted"]`; or None when no step had finished."""

    def __init__(self, result: Result | None) -> None:
        super().__init__()
        self.result = result
