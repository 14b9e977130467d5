"""The statistics behind `clipopt analyze`, on data whose answer is known by construction, and
against scipy (an independent implementation) where scipy has the same quantity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from clipstyler_opt.analysis.fits import CurveFit, Skipped, fit_linear, fit_power, response_curve
from clipstyler_opt.analysis.geometry import cone, modality_gap
from clipstyler_opt.analysis.ranks import kendall_tau_b, spearman_rho
from clipstyler_opt.analysis.recognition import recognition
from clipstyler_opt.stats.bootstrap import cluster_bootstrap

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


def test_a_linear_response_gives_r2_one_and_gamma_one() -> None:
    images = [[(x, 0.1 * i + 0.4 * x) for x in LEVELS] for i in range(4)]  # parallel lines per image
    pooled = [p for image in images for p in image]
    line = fit_linear(pooled)
    reference = stats.linregress([x for x, _ in pooled], [y for _, y in pooled])
    assert isinstance(line, CurveFit)
    assert line.b == pytest.approx(reference.slope) and line.a == pytest.approx(reference.intercept)
    exact = [(x, 0.2 + 0.4 * x) for x in LEVELS]
    assert fit_linear(exact).r2 == pytest.approx(1.0)  # type: ignore[union-attr]
    power = fit_power(exact)
    assert isinstance(power, CurveFit)
    assert power.gamma == pytest.approx(1.0, abs=1e-3) and power.r2 == pytest.approx(1.0)


def test_the_power_law_matches_scipy_curve_fit() -> None:
    rng = np.random.default_rng(3)
    x = np.repeat(np.asarray(LEVELS), 6)
    y = 0.3 + 0.9 * x**0.45 + rng.normal(0, 0.02, x.size)
    fit = fit_power(list(zip(x, y, strict=True)))
    assert isinstance(fit, CurveFit)
    (a, b, gamma), _ = optimize.curve_fit(lambda v, a, b, g: a + b * np.power(v, g), x, y, p0=(0.0, 1.0, 1.0),
                                          bounds=([-10, -10, 0.02], [10, 10, 20]))
    assert fit.gamma == pytest.approx(gamma, rel=1e-3)
    assert fit.a == pytest.approx(a, abs=1e-3) and fit.b == pytest.approx(b, abs=1e-3)
    rss = float(np.sum((y - (a + b * x**gamma)) ** 2))
    assert fit.rss <= rss * (1 + 1e-6)


def test_a_saturating_response_gives_gamma_below_one_with_an_interval_excluding_one() -> None:
    rng = np.random.default_rng(0)
    images = [[(x, 1.0 - np.exp(-4.0 * x) + rng.normal(0, 0.01)) for x in LEVELS] for _ in range(8)]
    summary = response_curve(images)
    assert summary["preferred"] == "power"
    assert summary["gamma"]["estimate"] < 1.0
    assert summary["gamma"]["ci_high"] < 1.0
    assert summary["gamma"]["n_clusters"] == 8


def test_with_fewer_than_four_levels_the_power_law_is_skipped_with_its_reason() -> None:
    summary = response_curve([[(x, 2 * x) for x in (0.0, 0.5, 1.0)]])
    assert "needs at least 4" in summary["power"]["skipped"]
    assert summary["preferred"] == "linear" and "gamma" not in summary
    assert isinstance(fit_linear([(1.0, 2.0), (1.0, 3.0)]), Skipped)


def test_aic_prefers_the_line_for_linear_data_with_noise() -> None:
    rng = np.random.default_rng(1)
    images = [[(x, 0.5 * x + rng.normal(0, 0.05)) for x in LEVELS] for _ in range(6)]
    summary = response_curve(images)
    n = summary["n_points"]
    rss = sum((y - (summary["linear"]["a"] + summary["linear"]["b"] * x)) ** 2 for image in images for x, y in image)
    aic_by_hand = n * np.log(rss / n) + 2 * 2 + 2 * 2 * 3 / (n - 2 - 1)
    assert summary["linear"]["aic"] == pytest.approx(aic_by_hand)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_correlations_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, 30).astype(float)  # ties on purpose
    y = x + rng.normal(0, 2, 30)
    assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


def test_identical_scorers_agree_perfectly() -> None:
    scores = [0.3, 0.1, 0.7, 0.2]
    assert kendall_tau_b(scores, scores) == 1.0 and spearman_rho(scores, scores) == 1.0
    assert kendall_tau_b(scores, [1, 1, 1, 1]) is None  # a constant scorer: undefined, not NaN


def test_a_known_offset_between_modalities_is_recovered_as_the_gap() -> None:
    rng = np.random.default_rng(0)
    offset = np.array([0.0, 0.0, 0.0, 1.0])
    images = 3.0 * (np.tile([1.0, 0.0, 0.0, 0.0], (50, 1)) + rng.normal(0, 0.01, (50, 4)))  # any length
    texts = (np.tile([1.0, 0.0, 0.0, 0.0], (40, 1)) + offset) + rng.normal(0, 0.01, (40, 4))
    result = modality_gap(images, texts)
    image_centre = np.array([1.0, 0.0, 0.0, 0.0])
    text_centre = np.array([1.0, 0.0, 0.0, 1.0]) / np.sqrt(2.0)
    assert result["gap"] == pytest.approx(np.linalg.norm(image_centre - text_centre), abs=0.01)
    assert result["image_cone"] == pytest.approx(1.0, abs=0.01)


def test_the_cone_of_spread_directions_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    assert abs(cone(rng.normal(size=(400, 64)))) < 0.01  # type: ignore[arg-type]


def _colour_embeddings(rng: np.random.Generator) -> tuple[np.ndarray, list[set[int]]]:
    """Toy geometry: the outputs' image directions are their prompt's colour plus a little noise."""
    colours = np.eye(6)
    labels = np.repeat(np.arange(6), 5)
    directions = colours[labels] + rng.normal(0, 0.05, (30, 6))
    similarity = (directions / np.linalg.norm(directions, axis=1, keepdims=True)) @ colours.T
    return similarity, [{int(label)} for label in labels]


def test_separable_styles_are_recognised_and_shuffled_labels_fall_to_chance() -> None:
    rng = np.random.default_rng(0)
    similarity, truths = _colour_embeddings(rng)
    result = recognition(similarity, truths)
    assert result["top1"] == 1.0 and result["top5"] == 1.0
    assert result["chance_top1"] == pytest.approx(1 / 6) and result["chance_top5"] == pytest.approx(5 / 6)
    assert np.trace(np.asarray(result["confusion"])) == 30
    shuffled = [recognition(similarity, list(rng.permutation(truths)))["top1"] for _ in range(300)]
    assert np.mean(shuffled) == pytest.approx(1 / 6, abs=0.02)


def test_a_tie_between_the_largest_parts_counts_each_tied_part() -> None:
    similarity = np.array([[0.1, 0.9, 0.2], [0.8, 0.1, 0.3]])
    result = recognition(similarity, [{0, 1}, {2}], ks=(1,))
    assert result["top1"] == 0.5
    assert result["chance_top1"] == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_the_cluster_bootstrap_resamples_whole_clusters() -> None:
    """Clusters of very different sizes: resampling clusters (not points) gives resamples made of the
    big cluster alone (p = 1/27) or of small ones alone (p = 8/27), so the interval reaches each
    side's own mean; resampling points would stay near the pooled mean 2/27."""
    clusters = [[0.0] * 50, [1.0] * 2, [1.0] * 2]
    result = cluster_bootstrap(clusters, lambda cs: float(np.mean([v for c in cs for v in c])), resamples=2000,
                               method="percentile")
    assert result is not None
    assert result.low == pytest.approx(0.0) and result.high == pytest.approx(1.0)
    assert cluster_bootstrap([[1.0]], lambda cs: None) is None


def test_two_clusters_give_no_interval_but_say_why() -> None:
    """Two clusters have three distinct resamples: the limits are null, with the reason."""
    result = cluster_bootstrap([[0.0], [1.0]], lambda cs: float(np.mean([v for c in cs for v in c])))
    assert result is not None and result.estimate == 0.5
    entry = result.to_dict()
    assert entry["ci_low"] is None and entry["ci_high"] is None and "3 or more" in entry["note"]
