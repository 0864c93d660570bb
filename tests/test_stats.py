"""hmaf.analysis.stats against hand-computed cases and a simulation."""

import math

import numpy as np
import pytest

from hmaf.analysis import stats


def test_mcnemar_exact_by_hand():
    # b=10, c=2: p = 2 * P(X <= 2), X ~ Binomial(12, 1/2) = 2 * (1 + 12 + 66) / 4096.
    assert stats.mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert stats.mcnemar_exact(2, 10) == stats.mcnemar_exact(10, 2)
    assert stats.mcnemar_exact(5, 5) == 1.0  # the doubled tail is capped at 1
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(6, 0) == pytest.approx(2 / 64)
    with pytest.raises(ValueError):
        stats.mcnemar_exact(-1, 2)


def test_discordant_counts():
    a = np.array([1, 1, 0, 0, 1], bool)
    b = np.array([1, 0, 1, 0, 0], bool)
    assert stats.discordant(a, b) == (2, 1)
    with pytest.raises(ValueError, match="shape"):
        stats.discordant(a, b[:3])


def test_sign_and_wilcoxon_by_hand():
    # Five runs, all in A's favour: both exact tests give 2 / 2**5.
    assert stats.sign_test([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 32)
    assert stats.wilcoxon_test([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx(2 / 32)
    assert stats.sign_test([0.1, -0.1, 0.0]) == 1.0  # the tie is dropped
    assert stats.wilcoxon_test([0.0, 0.1]) is None


def _simulated_run(rng, n, p_a, p_b):
    """Correlated correctness: both right on a shared easy part, independent otherwise."""
    shared = rng.random(n) < 0.5
    a = np.where(shared, rng.random(n) < p_a, rng.random(n) < p_a)
    b = np.where(shared, a & (rng.random(n) < p_b / p_a), rng.random(n) < p_b)
    return a, b


def test_bootstrap_is_deterministic_and_matches_the_observed_difference():
    rng = np.random.default_rng(1)
    runs = [_simulated_run(rng, 80, 0.8, 0.6) for _ in range(3)]
    first = stats.paired_bootstrap(runs, resamples=2000, seed=7)
    assert first == stats.paired_bootstrap(runs, resamples=2000, seed=7)
    assert first != stats.paired_bootstrap(runs, resamples=2000, seed=8)
    observed = np.mean(np.concatenate([a.astype(int) - b.astype(int) for a, b in runs]))
    assert first["difference"] == pytest.approx(observed)
    assert first["low"] < observed < first["high"] and first["examples"] == 240


def test_bootstrap_agrees_with_index_resampling():
    rng = np.random.default_rng(2)
    a, b = _simulated_run(rng, 150, 0.75, 0.65)
    ours = stats.paired_bootstrap([(a, b)], resamples=4000, seed=0)
    d = a.astype(int) - b.astype(int)
    idx = np.random.default_rng(3).integers(0, len(d), size=(4000, len(d)))
    naive = np.quantile(d[idx].mean(1), [0.025, 0.975])
    assert ours["low"] == pytest.approx(naive[0], abs=0.015)
    assert ours["high"] == pytest.approx(naive[1], abs=0.015)


def test_bootstrap_ci_covers_the_true_difference():
    rng = np.random.default_rng(0)
    true_difference = 0.8 - 0.7
    trials, covered = 300, 0
    for t in range(trials):
        runs = [_simulated_run(rng, 100, 0.8, 0.7) for _ in range(2)]
        ci = stats.paired_bootstrap(runs, resamples=1000, seed=t)
        covered += ci["low"] <= true_difference <= ci["high"]
    assert 0.90 <= covered / trials <= 0.99  # nominal 95 %


def test_compare_pools_runs():
    a0, b0 = np.array([1, 1, 1, 0], bool), np.array([0, 1, 0, 0], bool)
    a1, b1 = np.array([1, 0], bool), np.array([1, 1], bool)
    result = stats.compare({"r0": (a0, b0), "r1": (a1, b1)}, resamples=500)
    assert result["examples"] == 6 and result["runs"] == 2
    assert result["mcnemar"]["b"] == 2 and result["mcnemar"]["c"] == 1
    assert result["accuracy_a"] == pytest.approx(4 / 6) and result["accuracy_b"] == pytest.approx(3 / 6)
    assert result["bootstrap"]["difference"] == pytest.approx(1 / 6)
    assert result["runs_a_better"] == 1 and result["runs_b_better"] == 1
    assert result["sign_test_p"] == 1.0 and not math.isnan(result["wilcoxon_p"])
