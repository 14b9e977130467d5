"""tqdm adapters for the engine's progress events (the engine itself knows nothing of bars)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clipstyler_opt.run.results import Progress

__all__ = ["StepBar", "job_label", "loss_summary"]


def loss_summary(losses: Mapping[str, float]) -> str:
    """The total loss and every registered loss term (method/objective/registry.py), each in its
    declared format; a term missing from `losses` is left out.

    Example:
        >>> loss_summary({"total": 12.5, "patch": 0.41234, "dir": 0.8, "content": 0.0123, "tv": 150.5})
        'loss 12.5 patch 0.412 dir 0.800 content 0.0123 tv 150'
    """
    from clipstyler_opt.method.objective.registry import registered_terms  # torch: only once a run has begun

    return " ".join([f"loss {losses['total']:.4g}",
                     *(term.shown(losses[term.name]) for term in registered_terms() if term.name in losses)])


def job_label(relative: str, prompt: str, cell: str | None, limit: int = 40) -> str:
    """A batch or sweep job's label for its progress bar, at most `limit` characters, or the
    length of the cell id and a little more: the input and prompt are shortened, never the cell
    id, the one thing that tells a sweep's jobs apart.

    Example:
        >>> job_label("holiday/beach.png", "starry night by Vincent van Gogh", None)
        'holiday/beach.png | starry night by Vin…'
        >>> job_label("holiday/beach.png", "starry night", "lambda_content=50,contrast=true")
        'holiday/bea… | lambda_content=50,contrast=true'
    """
    head = f"{relative} | {prompt}"
    if cell is None:
        return _shortened(head, limit)
    room = max(limit - len(cell) - 3, 12)
    return f"{_shortened(head, room)} | {cell}"


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class StepBar:
    """Per-image bar: steps, loss terms and ETA."""

    def __init__(self, total: int, desc: str, *, disable: bool, position: int = 0, leave: bool = True) -> None:
        from tqdm.auto import tqdm  # imported when a bar is shown, not by --help

        self.bar = tqdm(total=total, desc=desc, unit="step", disable=disable, position=position, leave=leave,
                        dynamic_ncols=True)

    def __call__(self, event: Progress) -> None:
        if event.total != self.bar.total:  # an early stop ends the run sooner
            self.bar.total = event.total
        self.bar.update(event.step - self.bar.n)
        self.bar.set_postfix_str(loss_summary(event.losses) + (" (skipped)" if event.skipped else ""),
                                 refresh=False)

    def close(self) -> None:
        self.bar.close()
