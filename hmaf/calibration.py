"""Calibrated probabilities and an unfamiliar-input score (ours; the paper has neither).

* Temperature scaling (Guo et al. 2017): one scalar ``T`` divides the logits; it is
  fitted on the validation split by minimising the negative log-likelihood over
  ``log T``, so it changes confidence but never the predicted class.
* Expected calibration error over 15 equal-width confidence bins, and NLL, before
  and after scaling.
* Energy score (Liu et al. 2020): ``E(x) = -T logsumexp(logits / T)``. An input the
  model knows gets a large logit for some class, hence a low energy; HIGHER energy
  means MORE UNFAMILIAR. The threshold is the ``1 - rate`` quantile of the validation
  energies, so about ``rate`` (5 %) of in-domain inputs are flagged (false alarms).
  The feature-space scores (Mahalanobis distances of the model's representation and of
  the raw input statistics) live in :mod:`hmaf.unfamiliar`; ``calibration.json`` holds
  their record under ``unfamiliar``.

:func:`calibrate` returns the JSON-able record stored per stage as
``<stage dir>/calibration.json``; :func:`apply_calibration` uses it at prediction time
and :func:`calibration_report` measures it on other data.
Numpy and scipy only; deterministic.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy import optimize, special

from hmaf.io import atomic_path

CALIBRATION_FILE = "calibration.json"  # in each stage directory, beside checkpoints/best
ECE_BINS = 15
FALSE_ALARM_RATE = 0.05
_LOG_T_RANGE = (-6.0, 6.0)  # T in [0.0025, 403]: far beyond any useful scaling


def _check(logits: np.ndarray, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    logits = np.asarray(logits, np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape [examples > 0, classes >= 2], got {logits.shape}")
    if not np.all(np.isfinite(logits)):
        raise ValueError("logits hold NaN or inf")
    if labels is None:
        return logits, None
    labels = np.asarray(labels)
    if labels.shape != logits.shape[:1] or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers of shape {logits.shape[:1]}, got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got [{labels.min()}, {labels.max()}]")
    return logits, labels


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities ``[E, C]`` of ``logits / temperature``."""
    return special.softmax(np.asarray(logits, np.float64) / temperature, axis=-1)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean ``-log softmax(logits / T)[label]`` over the examples (nats).

    Args: logits ``[E, C]``; labels ``[E]`` int; temperature > 0.
    """
    logits, labels = _check(logits, labels)
    scaled = logits / temperature
    log_probs = scaled - special.logsumexp(scaled, axis=-1, keepdims=True)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``T`` that minimises the NLL of ``softmax(logits / T)``.

    Brent's method over ``log T`` in [-6, 6] (the NLL is smooth in ``log T``, and
    bounded search cannot diverge on separable data, where the NLL keeps falling as
    T -> 0). Deterministic. Args: logits ``[E, C]``; labels ``[E]``.
    """
    logits, labels = _check(logits, labels)
    result = optimize.minimize_scalar(lambda log_t: negative_log_likelihood(logits, labels, np.exp(log_t)),
                                      bounds=_LOG_T_RANGE, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: ``sum_b |B_b| / E * |accuracy(B_b) - confidence(B_b)|``.

    Each example falls in the equal-width bin ``((b-1)/bins, b/bins]`` of its
    confidence (its largest probability; a confidence of 0 goes to the first bin);
    its prediction is the argmax. Args: probs ``[E, C]``; labels ``[E]``.
    """
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0 or np.any(probs < 0) or not np.all(np.isfinite(probs)):
        raise ValueError(f"probs must be finite non-negative of shape [examples > 0, classes], got {probs.shape}")
    if np.shape(labels) != probs.shape[:1]:
        raise ValueError(f"labels must have shape {probs.shape[:1]}, got {np.shape(labels)}")
    confidence = probs.max(-1)
    correct = probs.argmax(-1) == np.asarray(labels)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``E(x) = -T logsumexp(logits / T)`` ``[E]``: HIGHER = MORE UNFAMILIAR input.

    Args: logits ``[E, C]``; temperature > 0.
    """
    logits, _ = _check(logits)
    return -temperature * special.logsumexp(logits / temperature, axis=-1)


def threshold_for_false_alarm(scores_val: np.ndarray, rate: float = FALSE_ALARM_RATE) -> float:
    """The ``1 - rate`` quantile of the validation scores: about ``rate`` of in-domain
    inputs score above it (``score > threshold`` flags an input as unfamiliar)."""
    scores_val = np.asarray(scores_val, np.float64)
    if scores_val.ndim != 1 or scores_val.size == 0 or not np.all(np.isfinite(scores_val)):
        raise ValueError(f"scores must be a non-empty finite vector, got shape {scores_val.shape}")
    if not 0.0 < rate < 1.0:
        raise ValueError(f"false-alarm rate must lie in (0, 1), got {rate}")
    return float(np.quantile(scores_val, 1.0 - rate))


def calibrate(logits_val: np.ndarray, labels_val: np.ndarray, rate: float = FALSE_ALARM_RATE,
              bins: int = ECE_BINS) -> dict[str, Any]:
    """Fits temperature and unfamiliar-input threshold on validation logits.

    Returns a JSON-able dict: ``temperature``; ``energy_threshold`` (on energies at
    that temperature); ``false_alarm_rate`` (asked) and ``flagged_validation`` (the
    share of validation inputs above the threshold); ``nll_before``/``nll_after``,
    ``ece_before``/``ece_after`` on the validation split; ``examples``, ``ece_bins``.
    """
    logits_val, labels_val = _check(logits_val, labels_val)
    temperature = fit_temperature(logits_val, labels_val)
    energies = energy_score(logits_val, temperature)
    threshold = threshold_for_false_alarm(energies, rate)
    return {
        "temperature": temperature,
        "energy_threshold": threshold,
        "false_alarm_rate": float(rate),
        "flagged_validation": float(np.mean(energies > threshold)),
        "nll_before": negative_log_likelihood(logits_val, labels_val),
        "nll_after": negative_log_likelihood(logits_val, labels_val, temperature),
        "ece_before": expected_calibration_error(softmax(logits_val), labels_val, bins),
        "ece_after": expected_calibration_error(softmax(logits_val, temperature), labels_val, bins),
        "examples": int(len(labels_val)),
        "ece_bins": int(bins),
    }


def calibration_report(logits: np.ndarray, labels: np.ndarray, calibration: Mapping[str, Any],
                       bins: int = ECE_BINS, *, detector=None, features=None) -> dict[str, Any]:
    """What a :func:`calibrate` record does on other data (e.g. the test split):
    ``nll_before``/``nll_after``, ``ece_before``/``ece_after``, ``unfamiliar_rate`` (share
    of inputs flagged), ``examples``. Args: logits ``[E, C]``; labels ``[E]``.

    ``temperature_here`` is the temperature these examples would be fitted to, with
    ``nll_here``/``ece_here`` at it: above the record's, the model is more overconfident on
    this data than on its validation split (measured: new sentences, not a new synthesis
    engine, raise it; docs/experiments.md, "Where the overconfidence comes from"). It is a
    diagnostic of the data, fitted on the very examples it is measured on.

    ``detector``, ``features``: a :class:`hmaf.unfamiliar.UnfamiliarDetector` and the
    :class:`hmaf.unfamiliar.Features` of these examples; then ``unfamiliar_rate`` is its
    chosen score's, ``unfamiliar_score`` names it and ``unfamiliar_rates`` gives every
    score's rate. Without them: the energy score of the record."""
    logits, labels = _check(logits, labels)
    temperature = float(calibration["temperature"])
    report = {
        "nll_before": negative_log_likelihood(logits, labels),
        "nll_after": negative_log_likelihood(logits, labels, temperature),
        "ece_before": expected_calibration_error(softmax(logits), labels, bins),
        "ece_after": expected_calibration_error(softmax(logits, temperature), labels, bins),
        "examples": int(len(labels)),
    }
    here = fit_temperature(logits, labels)
    report.update(temperature_here=here, nll_here=negative_log_likelihood(logits, labels, here),
                  ece_here=expected_calibration_error(softmax(logits, here), labels, bins))
    if detector is None:
        _, _, flags = apply_calibration(logits, calibration)
        return report | {"unfamiliar_rate": float(np.mean(flags)), "unfamiliar_score": "energy"}
    _, flags = detector(features)
    return report | {"unfamiliar_rate": float(np.mean(flags)), "unfamiliar_score": detector.score,
                     "unfamiliar_rates": detector.rates(features)}


def apply_calibration(logits: np.ndarray, calibration: Mapping[str, Any]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated probabilities ``[E, C]``, energy scores ``[E]`` and unfamiliar flags
    ``[E]`` bool for ``logits`` ``[E, C]``, from a :func:`calibrate` record."""
    temperature = float(calibration["temperature"])
    scores = energy_score(logits, temperature)
    return softmax(logits, temperature), scores, scores > float(calibration["energy_threshold"])


def reliability_diagram(probs: np.ndarray, labels: np.ndarray, path: str | os.PathLike,
                        bins: int = ECE_BINS, title: str = "") -> Path:
    """Writes a reliability diagram PNG: accuracy per confidence bin against the
    diagonal, bar width = bin, with the ECE in the legend. Written to a temporary
    file and renamed, so ``path`` is never half-written. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # chosen here, not at import: callers may hold another backend
    import matplotlib.pyplot as plt

    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels)
    ece = expected_calibration_error(probs, labels, bins)
    confidence = probs.max(-1)
    correct = probs.argmax(-1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    edges = np.arange(bins) / bins
    accuracy = np.array([correct[which == b].mean() if np.any(which == b) else 0.0 for b in range(bins)])
    counts = np.bincount(which, minlength=bins)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.bar(edges, accuracy, width=1 / bins, align="edge", edgecolor="black", alpha=0.8,
           label=f"accuracy (ECE {ece:.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    for b in np.flatnonzero(counts):
        ax.text(edges[b] + 0.5 / bins, accuracy[b] + 0.01, str(counts[b]), ha="center", fontsize=6)
    ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence", ylabel="accuracy", title=title or None)
    ax.legend(loc="upper left", fontsize=8)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
