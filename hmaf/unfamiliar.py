"""Unfamiliar-input detection: is an utterance unlike the data the model was trained on?
(Ours; the paper has no such score.)

Four scores, HIGHER = MORE UNFAMILIAR, each with a threshold at the ``1 - rate``
quantile of the VALIDATION split's scores (validation holds speakers the model never
trained on), so about ``rate`` (5 %) of in-domain inputs are flagged:

* ``energy``: ``-T logsumexp(logits / T)`` of the calibrated logits (Liu et al. 2020,
  "Energy-based Out-of-distribution Detection"). Output-based: measured to miss another
  synthesis engine's speech once the audio is normalised per speaker.
* ``mahalanobis``: squared Mahalanobis distance of the model's utterance representation
  (the decision layer's pooled, batch-normalised features before the final dense layer,
  :data:`hmaf.eval_step` ``representation``) to the nearest of class-conditional Gaussians
  with one shared covariance fitted on the TRAIN split (Lee et al. 2018, "A Simple
  Unified Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks").
* ``input``: squared Mahalanobis distance of the utterance's RAW log-mel statistics
  (:func:`input_statistics`: cepstral envelopes of the band means and stds, loudness
  spread, speaking rate, envelope of the spectral flux within words; before any
  normalisation, independent of the model) to one
  Gaussian fitted on the train split: sees an engine, channel or recording change even
  when speaker normalisation hides it from the model.
* ``combined``: the larger of the ``mahalanobis`` and ``input`` scores, each first put on
  a common scale (``log`` score standardised by its validation mean and std), with the
  threshold again at the validation ``1 - rate`` quantile: an input is flagged when
  either score is far out, and the combined false-alarm rate on validation is ``rate``.

Covariances are shrunk towards a scaled identity with the Ledoit-Wolf (2004) estimate
("A well-conditioned estimator for large-dimensional covariance matrices") after each
feature is standardised on the train split, so a train split with fewer examples than
dimensions still gives a finite, well-conditioned precision matrix.

:class:`UnfamiliarDetector` fits all four (so an evaluation can report every one) and
flags with the one ``config.unfamiliar_score`` names; its JSON part goes into the stage's
``calibration.json`` (key ``unfamiliar``) and its arrays into ``unfamiliar.npz`` beside it.
Numpy only; deterministic.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy import fft

from hmaf.calibration import energy_score
from hmaf.data.features import N_MELS
from hmaf.io import atomic_open

SCORES = ("energy", "mahalanobis", "input", "combined")
DEFAULT_SCORE = "input"  # chosen by measurement across engines (docs/models.md)
COMBINED_PARTS = ("mahalanobis", "input")
UNFAMILIAR_FILE = "unfamiliar.npz"  # in each stage directory, beside calibration.json
CEPSTRA = 13  # DCT coefficients kept of each band profile, as MFCCs keep
HOP_S = 0.010  # frame hop of the prepared corpora (hmaf.data.features), for the speaking rate
_SCALE_FLOOR = 1e-6  # a constant feature must not divide by zero when standardised


@dataclasses.dataclass
class Features:
    """What the scores need of E examples: ``logits`` ``[E, C]``; ``representation``
    ``[E, D]`` (the eval step's, None when not computed); ``input_stats`` ``[E, S]``
    (:func:`input_statistics`, None when not computed)."""

    logits: np.ndarray
    representation: np.ndarray | None = None
    input_stats: np.ndarray | None = None


def input_statistics(frames: np.ndarray, frame_mask: np.ndarray, word_mask: np.ndarray,
                     hop_s: float = HOP_S, coefficients: int = CEPSTRA) -> np.ndarray:
    """Per-utterance statistics of the RAW log-mel frames (before any normalisation).

    Over each utterance's real frames: the spectral envelope of the band means (level
    and timbre) and of the band standard deviations (dynamics), each as the first
    ``coefficients`` (13, as MFCCs keep) of its orthonormal DCT-II over the mel bands;
    the standard deviation over frames of the frame energy (mean over bands: the
    loudness contour); the speaking rate ``log(words / seconds of its words'
    frames)``; and, last, the envelope (same DCT) of the spectral flux: each band's mean
    absolute change from one frame to the next within a word (pairs across a word
    boundary never count). The cepstral smoothing drops the fine harmonic structure of
    the band profiles, which follows each voice's pitch: on the embedded corpus the 64
    raw band means and stds flagged a new voice of a known engine as often as another
    engine (docs/models.md). The flux tells how smoothly the spectrum moves, which is
    the synthesis method's (formant, diphone, statistical parametric) or a recording's
    rather than a voice's: with it the threshold set on validation voices flagged fewer
    new voices and more of another engine and of human speech (docs/models.md). A
    detector fitted before the flux was added uses the leading statistics, whose layout
    is unchanged (:meth:`UnfamiliarDetector.scores`). Padded words and frames never enter.
    Only the 64 log-mel bands count: prosody columns after them (:mod:`hmaf.data.prosody`)
    are left out, so the statistics, and a fitted detector, do not depend on them.

    Args: frames ``[B, N, L, M]`` (M >= 64); frame_mask ``[B, N, L]``; word_mask ``[B, N]``.
    Returns: float64 ``[B, 3 coefficients + 2]``.
    """
    frames = np.asarray(frames, np.float64)[..., :N_MELS]
    mask = np.asarray(frame_mask, bool)
    b, m = frames.shape[0], frames.shape[-1]
    weight = mask.reshape(b, -1, 1).astype(np.float64)  # [B, T, 1]
    x = np.where(mask[..., None], frames, 0.0).reshape(b, -1, m)  # [B, T, M]
    count = np.maximum(weight.sum(1), 1.0)  # [B, 1]
    mean = x.sum(1) / count  # [B, M]
    std = np.sqrt((weight * (x - mean[:, None]) ** 2).sum(1) / count)
    energy = x.mean(-1, keepdims=True)  # [B, T, 1]
    energy_mean = (weight * energy).sum(1) / count
    energy_std = np.sqrt((weight * (energy - energy_mean[:, None]) ** 2).sum(1) / count)  # [B, 1]
    words = np.maximum(np.asarray(word_mask, bool).sum(-1, keepdims=True), 1)  # [B, 1]
    rate = np.log(words / (count * hop_s))
    pairs = mask[..., 1:] & mask[..., :-1]  # [B, N, L - 1]: consecutive frames of one word
    change = np.where(pairs[..., None], np.abs(np.diff(frames, axis=2)), 0.0).reshape(b, -1, m)
    flux = change.sum(1) / np.maximum(pairs.reshape(b, -1).sum(1, keepdims=True), 1)  # [B, M]
    envelope = lambda v: fft.dct(v, type=2, norm="ortho", axis=-1)[:, :coefficients]  # noqa: E731
    return np.concatenate([envelope(mean), envelope(std), energy_std, rate, envelope(flux)], axis=-1)


def ledoit_wolf(centered: np.ndarray) -> tuple[np.ndarray, float]:
    """Shrunk covariance ``(1 - s) S + s mu I`` of rows already centred, ``S = X^T X / E``,
    ``mu = trace(S) / D``, with the shrinkage ``s`` in [0, 1] of Ledoit and Wolf (2004):
    ``s = min(b2, d2) / d2``, ``d2 = ||S - mu I||_F^2``, ``b2 = sum_i ||x_i x_i^T - S||_F^2 / E^2``.

    Args: centered ``[E, D]``. Returns ``([D, D], s)``.
    """
    x = np.asarray(centered, np.float64)
    e, d = x.shape
    cov = x.T @ x / e
    mu = max(float(np.trace(cov)) / d, 1e-6)  # no spread at all (one example per class): a tiny sphere
    d2 = float(np.sum((cov - mu * np.eye(d)) ** 2))
    # sum_i ||x_i x_i^T - S||^2 = sum_i ||x_i||^4 - E ||S||^2 (the cross terms sum to E ||S||^2)
    b2 = (float(np.sum(np.sum(x * x, 1) ** 2)) - e * float(np.sum(cov * cov))) / e ** 2
    shrinkage = 1.0 if d2 <= 0 else min(max(b2, 0.0), d2) / d2
    return (1.0 - shrinkage) * cov + shrinkage * mu * np.eye(d), shrinkage


@dataclasses.dataclass
class Gaussians:
    """Class-conditional Gaussians with one shared covariance, on standardised features.

    ``center``, ``scale`` ``[D]`` standardise a feature vector; ``means`` ``[K, D]`` (K = 1
    for a single Gaussian) and ``precision`` ``[D, D]`` live in the standardised space."""

    center: np.ndarray
    scale: np.ndarray
    means: np.ndarray
    precision: np.ndarray
    shrinkage: float

    @classmethod
    def fit(cls, x: np.ndarray, labels: np.ndarray | None = None) -> "Gaussians":
        """Fits on ``x`` ``[E, D]`` (``labels`` ``[E]``: one Gaussian per class present,
        shared covariance of the within-class deviations; None: one Gaussian)."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or len(x) < 2 or not np.all(np.isfinite(x)):
            raise ValueError(f"features must be finite of shape [examples >= 2, dims], got {x.shape}")
        center = x.mean(0)
        scale = np.maximum(x.std(0), _SCALE_FLOOR)
        z = (x - center) / scale
        groups = np.zeros(len(x), np.int64) if labels is None else np.asarray(labels)
        if groups.shape != (len(x),):
            raise ValueError(f"labels must have shape [{len(x)}], got {groups.shape}")
        classes = np.unique(groups)
        means = np.stack([z[groups == c].mean(0) for c in classes])
        deviations = z - means[np.searchsorted(classes, groups)]
        cov, shrinkage = ledoit_wolf(deviations)
        # eigh of a symmetric matrix: a deterministic, stable inverse
        values, vectors = np.linalg.eigh(cov)
        precision = (vectors / np.maximum(values, 1e-12 * max(values.max(), 1e-12))) @ vectors.T
        return cls(center, scale, means, precision, float(shrinkage))

    def distance(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance ``[E]`` of ``x`` ``[E, D]`` to the nearest mean."""
        z = (np.asarray(x, np.float64) - self.center) / self.scale
        diff = z[:, None, :] - self.means[None]  # [E, K, D]
        return np.einsum("ekd,df,ekf->ek", diff, self.precision, diff).min(1)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}_center": self.center, f"{prefix}_scale": self.scale, f"{prefix}_means": self.means,
                f"{prefix}_precision": self.precision.astype(np.float32)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str, shrinkage: float) -> "Gaussians":
        return cls(*(np.asarray(arrays[f"{prefix}_{k}"], np.float64) for k in ("center", "scale", "means",
                                                                                 "precision")), shrinkage)


def _quantile_threshold(scores: np.ndarray, rate: float) -> float:
    return float(np.quantile(np.asarray(scores, np.float64), 1.0 - rate))


class UnfamiliarDetector:
    """Scores and flags unfamiliar inputs (see the module docstring).

    Args:
      score: which score flags (one of :data:`SCORES`).
      temperature: the stage's calibration temperature (energy score).
      thresholds: ``{score: threshold}`` of every fitted score.
      representation, inputs: fitted :class:`Gaussians` (None when not fitted: an old
        stage, or features the data lacked).
      scale: ``{part: (mean, std)}`` of the log scores of :data:`COMBINED_PARTS` on
        validation (the combined score's common scale).
      info: JSON-able facts of the fit (rates on validation, sizes, shrinkage).
    """

    def __init__(self, score: str, temperature: float, thresholds: Mapping[str, float], *,
                 representation: Gaussians | None = None, inputs: Gaussians | None = None,
                 scale: Mapping[str, tuple[float, float]] | None = None, info: Mapping[str, Any] | None = None):
        if score not in SCORES:
            raise ValueError(f"unfamiliar score {score!r}; choose one of {SCORES}")
        if score not in thresholds:
            raise ValueError(f"unfamiliar score {score!r} was not fitted (fitted: {sorted(thresholds)})")
        self.score, self.temperature = score, float(temperature)
        self.thresholds = {k: float(v) for k, v in thresholds.items()}
        self.representation, self.inputs = representation, inputs
        self.scale = {k: (float(m), float(s)) for k, (m, s) in (scale or {}).items()}
        self.info = dict(info or {})

    @property
    def available(self) -> tuple[str, ...]:
        """The scores this detector can compute, in :data:`SCORES` order."""
        return tuple(k for k in SCORES if k in self.thresholds)

    @classmethod
    def fit(cls, train: Features, train_labels: np.ndarray, validation: Features, *, temperature: float,
            score: str = DEFAULT_SCORE, rate: float = 0.05) -> "UnfamiliarDetector":
        """Gaussians on ``train`` (class-conditional for the representation), thresholds and
        the combined scale on ``validation``; every score whose features both splits have."""
        if not 0.0 < rate < 1.0:
            raise ValueError(f"false-alarm rate must lie in (0, 1), got {rate}")
        if score not in SCORES:
            raise ValueError(f"unfamiliar score {score!r}; choose one of {SCORES}")
        fitted: dict[str, Gaussians] = {}
        if train.representation is not None and validation.representation is not None:
            fitted["mahalanobis"] = Gaussians.fit(train.representation, train_labels)
        if train.input_stats is not None and validation.input_stats is not None:
            fitted["input"] = Gaussians.fit(train.input_stats)
        detector = cls("energy", temperature, {"energy": 0.0}, representation=fitted.get("mahalanobis"), inputs=fitted.get("input"))
        raw = detector._part_scores(validation)
        scale = {}
        for part in COMBINED_PARTS:
            if part in raw:
                logs = np.log(raw[part])
                scale[part] = (float(logs.mean()), float(max(logs.std(), _SCALE_FLOOR)))
        detector.scale = scale
        if len(scale) == len(COMBINED_PARTS):
            raw["combined"] = detector._combined(raw)
        detector.thresholds = {k: _quantile_threshold(v, rate) for k, v in raw.items()}
        if score not in detector.thresholds:
            raise ValueError(f"unfamiliar score {score!r} needs features the data lacks (fitted: "
                             f"{sorted(detector.thresholds)})")
        detector.score = score
        detector.info = {
            "false_alarm_rate": float(rate),
            "flagged_validation": {k: float(np.mean(v > detector.thresholds[k])) for k, v in raw.items()},
            "train_examples": int(len(train_labels)), "validation_examples": int(len(validation.logits)),
            "shrinkage": {k: g.shrinkage for k, g in fitted.items()},
            "dims": {k: int(g.center.shape[0]) for k, g in fitted.items()}}
        return detector

    def _part_scores(self, features: Features) -> dict[str, np.ndarray]:
        out = {"energy": energy_score(features.logits, self.temperature)}
        if self.representation is not None and features.representation is not None:
            out["mahalanobis"] = self.representation.distance(features.representation)
        if self.inputs is not None and features.input_stats is not None:
            # a detector fitted on fewer statistics (before the flux envelope was appended)
            # reads the leading ones, whose layout is unchanged
            out["input"] = self.inputs.distance(features.input_stats[:, :self.inputs.center.shape[0]])
        return out

    def _combined(self, parts: Mapping[str, np.ndarray]) -> np.ndarray:
        # squared distances are > 0: a shrunk covariance is positive definite
        return np.max([(np.log(np.maximum(parts[p], 1e-300)) - self.scale[p][0]) / self.scale[p][1]
                       for p in COMBINED_PARTS], axis=0)

    def scores(self, features: Features) -> dict[str, np.ndarray]:
        """``{score: [E]}`` for every fitted score the features allow."""
        out = self._part_scores(features)
        if all(p in out for p in COMBINED_PARTS) and "combined" in self.thresholds:
            out["combined"] = self._combined(out)
        return {k: v for k, v in out.items() if k in self.thresholds}

    def flags(self, features: Features) -> dict[str, np.ndarray]:
        """``{score: [E] bool}``: above that score's threshold."""
        return {k: v > self.thresholds[k] for k, v in self.scores(features).items()}

    def __call__(self, features: Features) -> tuple[np.ndarray, np.ndarray]:
        """The chosen score ``[E]`` and flag ``[E]`` bool.

        Raises: ValueError naming the missing features (e.g. a caller without the
        representation for ``mahalanobis``)."""
        scores = self.scores(features)
        if self.score not in scores:
            raise ValueError(f"the {self.score!r} unfamiliar score needs features that were not given "
                             f"(representation: {features.representation is not None}, input statistics: "
                             f"{features.input_stats is not None})")
        return scores[self.score], scores[self.score] > self.thresholds[self.score]

    def rates(self, features: Features) -> dict[str, float]:
        """``{score: share of the examples flagged}`` for every score the features allow."""
        return {k: float(np.mean(v)) for k, v in self.flags(features).items()}

    # --- storage -------------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """The JSON part (``calibration.json["unfamiliar"]``)."""
        return {"score": self.score, "thresholds": dict(self.thresholds),
                "scale": {k: list(v) for k, v in self.scale.items()}, "file": UNFAMILIAR_FILE, **self.info}

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.representation is not None:
            out.update(self.representation.arrays("mahalanobis"))
        if self.inputs is not None:
            out.update(self.inputs.arrays("input"))
        return out

    def save(self, stage_dir: str | os.PathLike) -> Path:
        """Writes the arrays to ``stage_dir/unfamiliar.npz`` atomically; returns the path."""
        path = Path(stage_dir) / UNFAMILIAR_FILE
        with atomic_open(path, "wb") as f:
            np.savez(f, **self.arrays())
        return path

    @classmethod
    def from_energy(cls, calibration: Mapping[str, Any]) -> "UnfamiliarDetector":
        """The energy score alone, from a :func:`hmaf.calibration.calibrate` record's
        ``temperature`` and ``energy_threshold``."""
        return cls("energy", float(calibration["temperature"]), {"energy": float(calibration["energy_threshold"])})

    @classmethod
    def load(cls, calibration: Mapping[str, Any], stage_dir: str | os.PathLike,
             score: str | None = None) -> "UnfamiliarDetector":
        """The detector of a stage's ``calibration.json`` record (``score``: flag with
        another fitted score than the stored choice). A record written before the
        feature-space scores existed has no ``unfamiliar`` entry: energy only, with its
        ``energy_threshold``; a missing ``unfamiliar.npz`` likewise falls back to energy,
        with a warning naming the file."""
        temperature = float(calibration["temperature"])
        entry = calibration.get("unfamiliar")
        if not entry:
            if score not in (None, "energy"):
                raise ValueError(f"unfamiliar score {score!r} is not available for this stage, whose calibration "
                                 f"predates the feature-space scores (available: energy)")
            return cls.from_energy(calibration)
        path = Path(stage_dir) / entry.get("file", UNFAMILIAR_FILE)
        thresholds = dict(entry["thresholds"])
        gaussians: dict[str, Gaussians] = {}
        if any(k in thresholds for k in COMBINED_PARTS):
            if path.exists():
                with np.load(path) as arrays:
                    for part in COMBINED_PARTS:
                        if f"{part}_precision" in arrays:
                            gaussians[part] = Gaussians.from_arrays(arrays, part,
                                                                    entry.get("shrinkage", {}).get(part, float("nan")))
            else:
                logging.warning("%s is missing: the unfamiliar-input flag falls back to the energy score", path)
        thresholds = {k: v for k, v in thresholds.items()
                      if k == "energy" or k in gaussians or (k == "combined" and len(gaussians) == 2)}
        chosen = score or entry["score"]
        if chosen not in thresholds:
            if score is not None:
                raise ValueError(f"unfamiliar score {score!r} is not available for this stage "
                                 f"(available: {sorted(thresholds)})")
            chosen = "energy"
        info = {k: v for k, v in entry.items() if k not in ("score", "thresholds", "scale", "file")}
        return cls(chosen, temperature, thresholds, representation=gaussians.get("mahalanobis"),
                   inputs=gaussians.get("input"), scale={k: tuple(v) for k, v in entry.get("scale", {}).items()},
                   info=info)
