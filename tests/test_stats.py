"""The shared statistics (clipstyler_opt.stats) against independent computations: scipy where it
has the same quantity, published worked examples, hand formulas, and simulations of coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from clipstyler_opt.stats import (
    binomial_test,
    bootstrap_limits,
    cluster_bootstrap,
    holm,
    jackknife_values,
    krippendorff_alpha,
    mean_interval,
    t_quantile,
)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 10, 29, 200])
def test_t_quantiles_match_scipy(df: int) -> None:
    for probability in (0.6, 0.9, 0.975, 0.995):
        assert t_quantile(probability, df) == pytest.approx(stats.t.ppf(probability, df), rel=1e-9)
        assert t_quantile(1 - probability, df) == pytest.approx(stats.t.ppf(1 - probability, df), rel=1e-9)


def test_the_cluster_robust_interval_by_hand() -> None:
    """Four points in two content images: the interval is the t-interval of the two image means
    (equal sizes), with one degree of freedom, not that of four independent points."""
    result = mean_interval([1.0, 3.0, 5.0, 9.0], ["a", "a", "b", "b"])
    cluster_means = np.array([2.0, 7.0])
    half = stats.t.ppf(0.975, 1) * cluster_means.std(ddof=1) / math.sqrt(2)
    assert (result.mean, result.n, result.clusters) == (4.5, 4, 2)
    assert (result.ci_low, result.ci_high) == pytest.approx((4.5 - half, 4.5 + half))
    alone = mean_interval([1.0, 3.0, 5.0, 9.0])
    ttest = stats.ttest_1samp([1.0, 3.0, 5.0, 9.0], 0.0).confidence_interval(0.95)
    assert (alone.ci_low, alone.ci_high) == pytest.approx((ttest.low, ttest.high))
    single = mean_interval([0.5, 0.7], ["a", "a"])
    assert single.ci_low == single.ci_high == single.mean and "no interval" in single.to_dict()["note"]


@pytest.mark.parametrize("images", [5, 10, 30])
def test_the_interval_covers_its_stated_level(images: int) -> None:
    """Simulated: `images` content images with 3 seeds each; an image's outputs share a random
    effect as large as the noise (intra-class correlation 0.5). Over 4000 studies, the 95%
    interval of the cell mean must contain the true mean 93.5-96.5% of the time (the binomial
    standard error of the coverage is 0.34%). Treating the 3·n outputs as independent covers
    about 80% here."""
    rng = np.random.default_rng(images)
    studies, seeds = 4000, 3
    effects = rng.normal(0.0, 1.0, size=(studies, images, 1))
    values = (effects + rng.normal(0.0, 1.0, size=(studies, images, seeds))).reshape(studies, -1)
    labels = np.repeat(np.arange(images), seeds)
    covered = 0
    for sample in values:
        interval = mean_interval(sample, labels)
        covered += interval.ci_low <= 0.0 <= interval.ci_high
    assert 0.935 <= covered / studies <= 0.965, covered / studies


def test_bca_limits_match_scipy() -> None:
    """BCa of a skewed statistic (the standard deviation of 15 lognormal draws), one point per
    cluster: our limits and scipy's agree up to Monte Carlo error, and differ from the
    percentile limits by more than that."""
    data = np.random.default_rng(3).lognormal(0.0, 1.0, size=15)
    clusters = [[v] for v in data]

    def spread(chosen: list[list[float]]) -> float:
        return float(np.std([c[0] for c in chosen], ddof=1))

    ours = cluster_bootstrap(clusters, spread, resamples=10000, seed=1)
    percentile = cluster_bootstrap(clusters, spread, resamples=10000, seed=1, method="percentile")
    theirs = stats.bootstrap((data,), lambda x, axis: np.std(x, ddof=1, axis=axis), n_resamples=10000,
                             method="BCa", random_state=np.random.default_rng(2)).confidence_interval
    assert ours is not None and percentile is not None
    width = theirs.high - theirs.low
    assert ours.low == pytest.approx(theirs.low, abs=0.04 * width)
    assert ours.high == pytest.approx(theirs.high, abs=0.04 * width)
    assert abs(percentile.high - theirs.high) > 0.1 * width  # the check can tell BCa from percentile


def test_bca_acceleration_uses_the_jackknife_over_clusters() -> None:
    values = np.linspace(-1.0, 1.0, 101)
    jack = jackknife_values([[1.0], [2.0], [4.0]], lambda cs: sum(c[0] for c in cs))[:, 0]
    assert jack.tolist() == [6.0, 5.0, 3.0]
    # no bias and no acceleration (symmetric jackknife): BCa is the percentile interval
    symmetric = bootstrap_limits(values, 0.0, method="bca", jackknife=np.array([-1.0, 0.0, 1.0]))
    assert symmetric == pytest.approx(bootstrap_limits(values, 0.0, method="percentile"))


@pytest.mark.parametrize(("successes", "trials", "p"), [(9, 10, 0.5), (3, 20, 0.5), (10, 20, 0.5), (0, 7, 0.5),
                                                        (7, 12, 0.3), (40, 100, 0.5), (1, 1, 0.5)])
def test_binomial_test_matches_scipy(successes: int, trials: int, p: float) -> None:
    expected = stats.binomtest(successes, trials, p).pvalue
    assert binomial_test(successes, trials, p) == pytest.approx(expected, rel=1e-9)


def test_holm_by_hand_in_any_order() -> None:
    """Sorted p: 0.01 0.02 0.03 0.04 0.05 (m = 5) → 5·0.01, 4·0.02, 3·0.03, then the running
    maximum keeps 0.09 against 2·0.04 and 1·0.05. Given shuffled, each keeps its place."""
    raw = [0.04, 0.01, 0.05, 0.03, 0.02]
    assert holm(raw) == pytest.approx([0.09, 0.05, 0.09, 0.09, 0.08])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_krippendorff_alpha_of_the_published_example() -> None:
    """Krippendorff's worked example (4 observers, 12 units, missing values; nominal α = 0.743)."""
    rows = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
            [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    units = [[v for v in column if v is not None] for column in zip(*rows, strict=True)]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha([["a"], ["b"]]) is None  # nothing pairable
    assert krippendorff_alpha([["a", "a"], ["a", "a"]]) is None  # one value throughout: undefined


def test_stacked_bradley_terry_fits_equal_single_fits() -> None:
    """The bootstrap's batched fit gives each matrix's own fit, also where items were never
    compared (NaN) or a matrix is empty."""
    from clipstyler_opt.stats import bradley_terry, bradley_terry_many

    rng = np.random.default_rng(0)
    wins = rng.integers(0, 5, size=(60, 4, 4)).astype(float)
    wins[:10, 3, :] = wins[:10, :, 3] = 0.0
    wins[10] = 0.0
    many = bradley_terry_many(wins)
    single = np.array([bradley_terry(w) for w in wins])
    assert np.array_equal(np.isnan(many), np.isnan(single))
    assert np.allclose(many[~np.isnan(many)], single[~np.isnan(single)], atol=1e-9)
