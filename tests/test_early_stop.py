"""--early-stop: the rule on synthetic loss curves, and what a run records when it stops."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from clipstyler_opt import Progress, StyleConfig, Stylizer
from clipstyler_opt.core.errors import ConfigError
from clipstyler_opt.method.early_stop import EarlyStopper

BETA, PATIENCE, THRESHOLD = 0.9, 20, 1e-3  # the documented defaults


def first_stop(losses: list[float], patience: int = PATIENCE, threshold: float = THRESHOLD) -> int | None:
    """The 1-based position at which the stopper first says stop, or None."""
    stopper = EarlyStopper(patience, threshold)
    return next((t for t, loss in enumerate(losses, 1) if stopper.update(loss)), None)


def test_the_defaults_are_the_documented_rule() -> None:
    config = StyleConfig()
    assert (config.early_stop, config.early_stop_patience, config.early_stop_threshold) == (False, PATIENCE, THRESHOLD)
    assert EarlyStopper(PATIENCE, THRESHOLD).describe() == {"beta": BETA, "patience": PATIENCE,
                                                             "threshold": THRESHOLD, "min_steps": 2 * PATIENCE}


def test_a_flat_loss_stops_at_the_minimum_number_of_steps() -> None:
    # Nothing improves, so the first step at which the rule may speak (2K) stops the run.
    assert first_stop([5.0] * 100) == 2 * PATIENCE


def test_a_plateau_stops_where_the_closed_form_says() -> None:
    # L = 2 for t <= 10, then 1. The average is 2 up to t = 10, then m_t = 1 + β^(t-10). With
    # n = t - K - 10, the relative improvement is β^n (1 - β^K) / (1 + β^n), below ε once
    # β^n < ε / (1 - β^K - ε): n = 65 (β^64 ≈ 0.00118 is not yet below 0.00114), so t = 95.
    bound = THRESHOLD / (1 - BETA**PATIENCE - THRESHOLD)
    n = math.floor(math.log(bound) / math.log(BETA)) + 1
    expected = n + PATIENCE + 10
    assert expected == 95
    assert first_stop([2.0] * 10 + [1.0] * 200) == expected


def test_a_steadily_falling_loss_never_stops() -> None:
    # 0.5% a step is ~9.5% over 20 steps; even 0.01% a step is ~0.2% over 20, above ε = 0.1%.
    assert first_stop([100 * 0.995**t for t in range(1000)]) is None
    assert first_stop([100 * 0.9999**t for t in range(1000)]) is None
    # 0.002% a step is 0.04% over 20 steps: that counts as stopped improving.
    assert first_stop([100 * 0.99998**t for t in range(1000)]) is not None


def test_noise_on_a_falling_loss_does_not_stop_it() -> None:
    # 5% noise per step (the random crops make the patch loss jumpy) on a 0.5%-a-step fall.
    rng = random.Random(0)
    losses = [100 * 0.995**t * (1 + 0.05 * rng.gauss(0, 1)) for t in range(400)]
    assert first_stop(losses) is None


def test_a_loss_that_rises_counts_as_not_improving() -> None:
    assert first_stop([1.0 + 0.01 * t for t in range(100)]) == 2 * PATIENCE


def test_non_finite_losses_are_ignored() -> None:
    losses = [5.0] * 10 + [math.nan, math.inf] + [5.0] * 100
    assert first_stop(losses) == 2 * PATIENCE + 2  # the two skipped steps do not count


def test_bad_early_stop_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="early-stop-patience must be at least 1"):
        StyleConfig(early_stop_patience=0)
    with pytest.raises(ConfigError, match="early-stop-threshold"):
        StyleConfig(early_stop_threshold=-0.1)
    with pytest.raises(ConfigError, match="early-stop-threshold"):
        StyleConfig(early_stop_threshold=math.nan)


# --- in a run ---
# A learning rate of 1e-9 leaves the image as it starts, and without the patch term (whose random
# crops make it jump) the total loss is flat: the run must stop at step 2K.

def flat_config(tiny_config: StyleConfig, **changes: object) -> StyleConfig:
    return tiny_config.replace(lr=1e-9, lambda_patch=0.0, steps=10, **changes)


def test_a_run_stops_early_and_records_where(tiny_config: StyleConfig, photo: Path) -> None:
    events: list[Progress] = []
    config = flat_config(tiny_config, early_stop=True, early_stop_patience=2)
    result = Stylizer(config).stylize(photo, "starry night", progress=events.append)
    assert len(result.history) == 4
    assert result.metadata["early_stopped_at"] == 4
    assert result.metadata["early_stop"] == {"beta": BETA, "patience": 2, "threshold": THRESHOLD, "min_steps": 4}
    assert [e.step for e in events] == [1, 2, 3, 4]
    assert [e.total for e in events] == [10, 10, 10, 4]  # the last event says where the run ends
    # Stopping changes nothing before it: the same steps as a run without early stopping.
    full = Stylizer(flat_config(tiny_config)).stylize(photo, "starry night")
    assert len(full.history) == 10 and full.metadata["early_stopped_at"] is None
    assert result.history == full.history[:4]


def test_early_stop_off_or_never_triggered_gives_the_same_run(tiny_config: StyleConfig, photo: Path) -> None:
    off = Stylizer(tiny_config).stylize(photo, "starry night")
    # patience 10: the rule could speak at step 20 at the earliest, after this 3-step run ends.
    armed = Stylizer(tiny_config.replace(early_stop=True, early_stop_patience=10)).stylize(photo, "starry night")
    assert off.history == armed.history and off.losses == armed.losses
    assert off.metadata["early_stop"] is None and off.metadata["early_stopped_at"] is None
    assert armed.metadata["early_stopped_at"] is None


def test_early_stop_changes_the_settings_hash(tiny_config: StyleConfig) -> None:
    assert tiny_config.settings_hash("p") != tiny_config.replace(early_stop=True).settings_hash("p")
