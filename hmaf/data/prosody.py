"""Prosody columns beside the log-mel bands: pitch, voicing and energy per 10 ms frame.

Ours, not the paper's (its frames are the 64 log-mel bands alone, §3.1). A 64-band mel
spectrum blurs the harmonics that carry pitch, and pitch, its range and loudness are
what an emotional delivery changes first; an explicit pitch track transfers across
voices and synthesis engines where the spectral envelope does not (measured in
docs/experiments.md, "Prosody columns"). The model reads these columns only with
``config.model.prosody`` (:func:`hmaf.models.encoders.input_frames`).

Pitch: YIN (de Cheveigné & Kawahara 2002, steps 1-5) on the log-mel frame grid, i.e.
frame t is centred on sample ``160 t`` of the zero-padded signal and T = 1 + samples // 160,
so there are as many rows as :func:`hmaf.data.features.mfsc` gives (the grid and the column
names are that module's).

- window: ``FRAME_LENGTH`` = 1024 samples (64 ms) from ``160 t - W // 2``; integration
  length W = 1024 - ceil(16000 / F0_MIN) = 757 samples, so the integration window (the first
  W samples, which the energy and the difference function sum over) is centred on sample
  ``160 t`` as the log-mel frame is; the lags reach up to ceil(16000 / F0_MIN) samples past it;
- difference function ``d(tau) = sum_{j<W} (x_j - x_{j+tau})^2`` for tau <= 16000 / F0_MIN,
  computed as ``r_0(0) + r_tau(0) - 2 r(tau)`` with the cross-correlation by FFT;
- cumulative mean normalised difference ``d'(tau) = d(tau) tau / sum_{1<=k<=tau} d(k)``;
- the period: the first local minimum of d' below ``THRESHOLD`` for
  16000 / F0_MAX <= tau < 16000 / F0_MIN, else the global minimum there, refined by a
  parabola through its neighbours;
- aperiodicity: d' at that minimum (0 for a pure periodic signal, about 1 for noise).

Columns (:data:`COLUMNS`), float32:

- ``log_f0``: natural log of F0 in Hz on voiced frames (aperiodicity below
  ``VOICED_APERIODICITY`` and mean square above ``ENERGY_FLOOR``), linearly interpolated
  across unvoiced frames and held flat before the first and after the last voiced frame
  (a continuous contour, so that a per-speaker mean and standard deviation describe the
  voice); ``log(FALLBACK_F0)`` throughout an utterance with fewer than two voiced frames;
- ``voicing``: ``1 - clip(aperiodicity, 0, 1)``, 0 on frames below the energy floor;
- ``log_energy``: ``log(mean square + 1e-10)`` over the integration window.
"""

from __future__ import annotations

import numpy as np

from hmaf.data.features import HOP_LENGTH, SAMPLE_RATE  # the log-mel frame grid
from hmaf.data.features import PROSODY_COLUMNS as COLUMNS

FRAME_LENGTH = 1024  # 64 ms: two periods of the lowest pitch fit in the window
F0_MIN = 60.0  # Hz: below a low male voice
F0_MAX = 500.0  # Hz: above a high female voice or child
THRESHOLD = 0.15  # YIN's absolute threshold (its paper: 0.1-0.15)
VOICED_APERIODICITY = 0.2
ENERGY_FLOOR = 1e-7  # mean square: -70 dBFS, hmaf.data.utterance's silence level
FALLBACK_F0 = 150.0  # Hz, for an utterance without two voiced frames


def yin(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame-wise YIN pitch on the log-mel frame grid (settings in the module docstring).

    Args:
      samples: float ``[samples]`` at 16 kHz.

    Returns:
      f0 Hz ``[T]``, aperiodicity ``[T]`` (d' at the chosen period) and the mean square
      over the integration window ``[T]``, float64, T = 1 + samples // 160.
    """
    x = np.asarray(samples, dtype=np.float64)
    max_lag = int(np.ceil(SAMPLE_RATE / F0_MIN))
    min_lag = int(np.floor(SAMPLE_RATE / F0_MAX))
    width = FRAME_LENGTH - max_lag  # W
    t = 1 + x.size // HOP_LENGTH
    # Row t's frame starts W // 2 samples before sample 160 t, so its integration window
    # (the first W samples) is centred on the log-mel frame's centre; the lags reach on
    # past it by up to max_lag samples.
    padded = np.zeros((t - 1) * HOP_LENGTH + FRAME_LENGTH)
    padded[width // 2: width // 2 + x.size] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, FRAME_LENGTH)[::HOP_LENGTH]  # [T, F]
    # Circular correlation of the frame with its first W samples is linear for lags
    # tau <= max_lag, since j + tau < W + max_lag = FRAME_LENGTH never wraps.
    n_fft = FRAME_LENGTH
    head = np.fft.rfft(frames[:, :width], n_fft)
    whole = np.fft.rfft(frames, n_fft)
    r = np.fft.irfft(np.conj(head) * whole, n_fft)[:, : max_lag + 1]  # r(tau), [T, max_lag + 1]
    energy = np.cumsum(np.pad(frames * frames, ((0, 0), (1, 0))), axis=1)  # prefix sums [T, F + 1]
    lags = np.arange(max_lag + 1)
    r0 = energy[:, width] - energy[:, 0]  # r_0(0)
    r_tau = energy[:, lags + width] - energy[:, lags]  # r_tau(0)
    d = np.maximum(r0[:, None] + r_tau - 2.0 * r, 0.0)  # rounding can go below 0
    d[:, 0] = 0.0
    running = np.cumsum(d[:, 1:], axis=1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = np.where(running > 0, d[:, 1:] * lags[1:] / np.maximum(running, 1e-300), 1.0)

    band = cmnd[:, min_lag:max_lag]  # the admissible periods
    local_min = np.zeros(band.shape, bool)
    local_min[:, 1:-1] = (band[:, 1:-1] <= band[:, :-2]) & (band[:, 1:-1] <= band[:, 2:])
    candidate = local_min & (band < THRESHOLD)
    tau = min_lag + np.where(candidate.any(1), candidate.argmax(1), band.argmin(1))
    rows = np.arange(t)
    left, mid, right = cmnd[rows, tau - 1], cmnd[rows, tau], cmnd[rows, tau + 1]
    curvature = left - 2.0 * mid + right
    safe = np.where(curvature > 1e-12, curvature, 1.0)
    shift = np.where(curvature > 1e-12, np.clip(0.5 * (left - right) / safe, -1.0, 1.0), 0.0)
    mean_square = r0 / width
    aperiodicity = np.where(mean_square > ENERGY_FLOOR, mid, 1.0)
    return SAMPLE_RATE / (tau + shift), aperiodicity, mean_square


def prosody(samples: np.ndarray) -> np.ndarray:
    """The prosody columns of an utterance (:data:`COLUMNS`, see the module docstring).

    Args:
      samples: float ``[samples]`` at 16 kHz.

    Returns:
      float32 ``[T, 3]``, T = 1 + samples // 160 (the rows of ``mfsc(samples)``).
    """
    f0, aperiodicity, mean_square = yin(samples)
    voiced = (aperiodicity < VOICED_APERIODICITY) & (mean_square > ENERGY_FLOOR)
    index = np.flatnonzero(voiced)
    if index.size >= 2:
        log_f0 = np.interp(np.arange(f0.size), index, np.log(f0[index]))
    else:
        log_f0 = np.full(f0.size, np.log(FALLBACK_F0))
    voicing = 1.0 - np.clip(aperiodicity, 0.0, 1.0)
    log_energy = np.log(mean_square + 1e-10)
    return np.stack([log_f0, voicing, log_energy], axis=1).astype(np.float32)
