"""Paired significance tests between two models evaluated on the same test examples.

Three views of "is model A better than model B", from per-example correctness:

* :func:`mcnemar_exact`: the exact McNemar test on the discordant pairs (A right and B
  wrong: ``b``; A wrong and B right: ``c``). Under the null both kinds are equally
  likely, so ``b ~ Binomial(b + c, 1/2)``; the two-sided p-value doubles the smaller tail.
* :func:`paired_bootstrap`: a percentile confidence interval of the accuracy difference
  (A - B), resampling examples with replacement within each run (stratified by run,
  so every resample keeps each run's size).
* :func:`sign_test` and :func:`wilcoxon_test`: over runs (folds x seeds), on the per-run
  accuracy differences; these treat a run, not an example, as the unit.

This module imports numpy and scipy only.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats


def discordant(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int]:
    """``(b, c)``: examples only A got right, and examples only B got right.

    Args:
      correct_a, correct_b: bool ``[examples]``, the same examples in the same order.
    """
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"paired results differ in shape: {correct_a.shape} vs {correct_b.shape}")
    return int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when b = c = 0)."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * scipy_stats.binom.cdf(min(b, c), n, 0.5)))


def paired_bootstrap(runs: Sequence[tuple[np.ndarray, np.ndarray]], *, resamples: int = 10_000,
                     seed: int = 0, confidence: float = 0.95) -> dict:
    """Percentile CI of the pooled accuracy difference A - B, resampling within runs.

    Only the per-example difference ``d = correct_a - correct_b`` in {-1, 0, 1} matters,
    so resampling the ``n`` examples of a run with replacement is drawing the counts of
    +1, 0 and -1 from a multinomial with that run's proportions: exact, and O(resamples)
    per run whatever its size.

    Args:
      runs: one ``(correct_a, correct_b)`` pair of bool ``[examples of the run]`` per run.
      resamples: bootstrap resamples.
      seed: seeds the resampling (same inputs and seed, same interval).
      confidence: the interval's coverage.

    Returns:
      ``{"difference", "low", "high", "confidence", "resamples", "examples"}``;
      the difference is over all examples of all runs (accuracy points as fractions).
    """
    if not runs:
        raise ValueError("paired_bootstrap needs at least one run")
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples, np.float64)
    examples = 0
    observed = 0
    for correct_a, correct_b in runs:
        b, c = discordant(correct_a, correct_b)
        n = len(np.asarray(correct_a))
        if n == 0:
            continue
        counts = rng.multinomial(n, [b / n, c / n, (n - b - c) / n], size=resamples)
        total += counts[:, 0] - counts[:, 1]
        observed += b - c
        examples += n
    if examples == 0:
        raise ValueError("paired_bootstrap: every run is empty")
    diffs = total / examples
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    return {"difference": observed / examples, "low": float(low), "high": float(high),
            "confidence": confidence, "resamples": resamples, "examples": examples}


def sign_test(differences: Sequence[float]) -> float:
    """Two-sided exact sign test of per-run differences (ties dropped; 1.0 if none left)."""
    d = np.asarray(differences, np.float64)
    positive, negative = int(np.sum(d > 0)), int(np.sum(d < 0))
    return mcnemar_exact(positive, negative)  # the same binomial test on the signs


def wilcoxon_test(differences: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of per-run differences; None when fewer
    than 2 runs differ (no test possible). With n runs it cannot go below 2 / 2**n."""
    d = np.asarray(differences, np.float64)
    d = d[d != 0]
    if len(d) < 2:
        return None
    return float(scipy_stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def compare(runs: Mapping[str, tuple[np.ndarray, np.ndarray]], *, resamples: int = 10_000,
            seed: int = 0) -> dict:
    """Everything the report says about A against B over ``{run name: (correct_a,
    correct_b)}``: accuracies, the difference with its bootstrap CI, McNemar over all
    examples (pooled discordant counts) and the sign / Wilcoxon tests over runs."""
    names = sorted(runs)
    pairs = [tuple(np.asarray(x, bool) for x in runs[name]) for name in names]
    per_run = {}
    for name, (a, b) in zip(names, pairs):
        discord = discordant(a, b)
        per_run[name] = {"examples": len(a), "accuracy_a": float(a.mean()) if len(a) else float("nan"),
                         "accuracy_b": float(b.mean()) if len(b) else float("nan"),
                         "b": discord[0], "c": discord[1]}
    b_total = sum(r["b"] for r in per_run.values())
    c_total = sum(r["c"] for r in per_run.values())
    all_a = np.concatenate([a for a, _ in pairs])
    all_b = np.concatenate([b for _, b in pairs])
    differences = [r["accuracy_a"] - r["accuracy_b"] for r in per_run.values() if r["examples"]]
    return {
        "runs": len(names), "examples": int(len(all_a)),
        "accuracy_a": float(all_a.mean()), "accuracy_b": float(all_b.mean()),
        "bootstrap": paired_bootstrap(pairs, resamples=resamples, seed=seed),
        "mcnemar": {"b": b_total, "c": c_total, "p": mcnemar_exact(b_total, c_total)},
        "sign_test_p": sign_test(differences),
        "wilcoxon_p": wilcoxon_test(differences),
        "runs_a_better": int(sum(d > 0 for d in differences)),
        "runs_b_better": int(sum(d < 0 for d in differences)),
        "per_run": per_run,
    }
