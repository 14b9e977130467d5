"""Early stopping: end a run once its total loss has stopped improving.

The rule, with β = 0.9, K = patience and ε = threshold:

    m_1 = L_1,   m_t = β·m_{t-1} + (1 − β)·L_t            (exponential moving average)
    stop at step t when t ≥ 2K and (m_{t-K} − m_t) / |m_{t-K}| < ε

The average absorbs the step-to-step noise of the random crops (it shrinks independent noise to
~23% of its size), comparing it K steps apart tests the trend rather than one step's luck, and
2K steps leave the average time to forget its start. Only finite losses count: a step the run
skipped for a non-finite loss neither advances nor resets the rule.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["EMA_BETA", "EarlyStopper"]

EMA_BETA = 0.9


class EarlyStopper:
    """Feed it each step's total loss; `update` returns True when the run should end now.

    Example:
        >>> stopper = EarlyStopper(patience=2, threshold=1e-3)
        >>> [stopper.update(1.0) for _ in range(4)]
        [False, False, False, True]
    """

    def __init__(self, patience: int, threshold: float, beta: float = EMA_BETA) -> None:
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        self.patience, self.threshold, self.beta = patience, threshold, beta
        self.min_steps = 2 * patience
        self.steps = 0  # finite losses seen
        self.average: float | None = None
        self._history: deque[float] = deque(maxlen=patience + 1)  # m_{t-K} .. m_t

    def update(self, loss: float) -> bool:
        if not math.isfinite(loss):
            return False
        self.steps += 1
        self.average = loss if self.average is None else self.beta * self.average + (1.0 - self.beta) * loss
        self._history.append(self.average)
        if self.steps < self.min_steps:
            return False
        return self.relative_improvement() < self.threshold

    def relative_improvement(self) -> float:
        """(m_{t-K} − m_t) / |m_{t-K}| (an absolute difference when m_{t-K} is 0); inf before K+1 steps."""
        if len(self._history) <= self.patience:
            return math.inf
        before, now = self._history[0], self._history[-1]
        return (before - now) / abs(before) if before != 0 else before - now

    def describe(self) -> dict[str, float | int]:
        return {"beta": self.beta, "patience": self.patience, "threshold": self.threshold,
                "min_steps": self.min_steps}
