"""Acoustic features per word: 64-band log-mel spectral coefficients (MFSC, static only),
then the prosody columns of :mod:`hmaf.data.prosody` (ours; a model reads them only with
``config.model.prosody``).

Exact settings (paper section 3.1: 64 filter banks, static coefficients only):

- input: mono float32 at 16 kHz (:mod:`hmaf.data.audio`);
- frames: 25 ms Hann window (400 samples) zero-padded to a 512-point FFT, 10 ms hop
  (160 samples); ``center=True`` with zero padding, so frame t is centred on t * 10 ms
  and a time s falls in frame ``round(s / 0.010)``; T = 1 + samples // 160 frames;
- power spectrogram (|STFT|^2), 64 Slaney-style mel filters (librosa defaults
  ``htk=False, norm="slaney"``) from 0 Hz to 8000 Hz (Nyquist);
- natural log with a floor: ``log(max(mel, 1e-6))``, which bounds digital silence at
  about -13.8 instead of -inf.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

SAMPLE_RATE = 16000
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
HOP_S = HOP_LENGTH / SAMPLE_RATE
N_FFT = 512
N_MELS = 64
FMIN = 0.0
FMAX = SAMPLE_RATE / 2
LOG_FLOOR = 1e-6
LONG_WORD_RULES = ("subsample", "truncate")
PROSODY_COLUMNS = ("log_f0", "voicing", "log_energy")  # after the bands (hmaf.data.prosody)
FRAME_DIM = N_MELS + len(PROSODY_COLUMNS)  # a frame's width in corpora prepared since prosody
FRAME_DIMS = (N_MELS, FRAME_DIM)  # older corpora hold the log-mel bands alone


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


@functools.lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """The 64 triangular mel filters, float32 ``[64, N_FFT // 2 + 1]``.

    Same as ``librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=0, fmax=8000)``
    (Slaney scale and area normalisation), computed here so workers need not import librosa.
    """
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_freqs = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """Periodic Hann window of WIN_LENGTH, zero-padded to N_FFT on both sides (as librosa)."""
    n = np.arange(WIN_LENGTH)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / WIN_LENGTH)
    left = (N_FFT - WIN_LENGTH) // 2
    return np.pad(window, (left, N_FFT - WIN_LENGTH - left)).astype(np.float32)


def mfsc(samples: np.ndarray) -> np.ndarray:
    """Log-mel features of a whole utterance.

    Equal (to float32 rounding) to ``log(max(librosa.feature.melspectrogram(...), 1e-6)).T``
    with the settings above, computed with numpy alone: a worker then skips librosa's
    1-4 s import, and the filterbank product is a BLAS-free einsum (librosa's BLAS call took
    ~25 ms per 4 s utterance on a busy 2-core machine, where OpenBLAS threads fight over
    the cores, against ~1 ms here).

    Args:
      samples: float32 ``[samples]`` at 16 kHz.

    Returns:
      float32 ``[frames, 64]`` with frames = 1 + samples // 160.
    """
    padded = np.pad(np.asarray(samples, dtype=np.float32), N_FFT // 2)  # center=True, zeros
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]  # [T, N_FFT]
    spectrum = np.fft.rfft(frames * _window(), axis=1)  # [T, N_FFT // 2 + 1]
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    mel = np.einsum("tf,mf->tm", power, mel_basis())
    return np.log(np.maximum(mel, LOG_FLOOR)).astype(np.float32)


def frame_features(samples: np.ndarray) -> np.ndarray:
    """The frames a prepared corpus stores: :func:`mfsc` then the prosody columns.

    Args:
      samples: float32 ``[samples]`` at 16 kHz.

    Returns:
      float32 ``[frames, FRAME_DIM]``: columns 0-63 the log-mel bands, 64-66
      ``log_f0, voicing, log_energy`` (:func:`hmaf.data.prosody.prosody`).
    """
    from hmaf.data.prosody import prosody  # it reads this module's frame grid

    return np.concatenate([mfsc(samples), prosody(samples)], axis=1)


def time_to_frame(seconds: np.ndarray | float) -> np.ndarray:
    """Frame index of a time: ``round(seconds / 0.010)`` (half to even), int64."""
    return np.rint(np.asarray(seconds, dtype=np.float64) / HOP_S).astype(np.int64)


def word_frames(features: np.ndarray, starts: Sequence[float], ends: Sequence[float],
                l_max: int, rule: str = "subsample") -> tuple[list[np.ndarray], int]:
    """Cuts an utterance's features into per-word frame sequences.

    Word i covers frames ``[round(start_i / hop), round(end_i / hop))``, clipped to the
    utterance; an empty span (a zero-length word from the aligner, or one at the very
    end) gets the one frame at its start, so every word has at least one frame.
    Words longer than ``l_max`` frames follow ``rule``: "subsample" keeps ``l_max``
    uniformly spaced frames from the first to the last (the whole duration survives,
    at a coarser step); "truncate" keeps the first ``l_max``.

    Args:
      features: float32 ``[frames, M]`` from :func:`frame_features` (or :func:`mfsc`).
      starts, ends: word boundaries in seconds, ``[words]`` each.
      l_max: the most frames a word keeps (>= 1).
      rule: "subsample" or "truncate".

    Returns:
      (per-word float32 arrays ``[n_i, M]`` with 1 <= n_i <= l_max, the number of words
      that were longer than ``l_max``).
    """
    if rule not in LONG_WORD_RULES:
        raise ValueError(f"long_word_rule must be one of {LONG_WORD_RULES}, got {rule!r}")
    if l_max < 1:
        raise ValueError(f"l_max must be >= 1, got {l_max}")
    if len(starts) != len(ends):
        raise ValueError(f"{len(starts)} word starts but {len(ends)} word ends")
    total = features.shape[0]
    if total < 1:
        raise ValueError("the utterance has no feature frames")
    first = np.clip(time_to_frame(starts), 0, total - 1)
    last = np.clip(time_to_frame(ends), 0, total)  # exclusive
    out: list[np.ndarray] = []
    long_words = 0
    for a, b in zip(first.tolist(), last.tolist()):
        b = max(b, a + 1)
        n = b - a
        if n > l_max:
            long_words += 1
            if rule == "subsample":
                index = np.rint(np.linspace(a, b - 1, l_max)).astype(np.int64)
                out.append(features[index])
                continue
            b = a + l_max
        out.append(features[a:b])
    return out, long_words
