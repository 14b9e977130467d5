"""tqdm adapters for the engine's progress events (the engine itself knows nothing of bars)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clipstyler_opt.run.results import Progress

__all__ = ["StepBar"]


class StepBar:
    """Per-image bar: steps, loss terms and ETA."""

    def __init__(self, total: int, desc: str, *, disable: bool, position: int = 0, leave: bool = True) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="step", disable=disable, position=position, leave=leave,
                        dynamic_ncols=True)

    def __call__(self, event: Progress) -> None:
        if event.total != self.bar.total:  # an early stop ends the run sooner
            self.bar.total = event.total
        self.bar.update(event.step - self.bar.n)
        losses = event.losses
        self.bar.set_postfix_str(
            f"loss {losses['total']:.4g} patch {losses['patch']:.3f} dir {losses['dir']:.3f} "
            f"content {losses['content']:.3g} tv {losses['tv']:.3g}" + (" (skipped)" if event.skipped else ""),
            refresh=False,
        )

    def close(self) -> None:
        self.bar.close()
