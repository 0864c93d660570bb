"""Acoustic features: 64-band log-mel spectral coefficients (MFSC, static only) per word.

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


@functools.lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    """The 64 mel filters, float32 ``[64, N_FFT // 2 + 1]``."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)


def mfsc(samples: np.ndarray) -> np.ndarray:
    """Log-mel features of a whole utterance.

    Equal (to float32 rounding) to ``log(max(librosa.feature.melspectrogram(...), 1e-6)).T``
    with the settings above. The filterbank product is a plain (BLAS-free) einsum: librosa's
    BLAS call took ~25 ms per 4 s utterance on a busy 2-core machine, where OpenBLAS threads
    fight over the cores, against ~1 ms here.

    Args:
      samples: float32 ``[samples]`` at 16 kHz.

    Returns:
      float32 ``[frames, 64]`` with frames = 1 + samples // 160.
    """
    import librosa  # deferred: ~1 s import, only needed where features are computed

    stft = librosa.stft(np.asarray(samples, dtype=np.float32), n_fft=N_FFT, hop_length=HOP_LENGTH,
                        win_length=WIN_LENGTH, window="hann", center=True, pad_mode="constant")
    power = stft.real ** 2 + stft.imag ** 2  # [freqs, frames]
    mel = np.einsum("mf,ft->mt", _mel_basis(), power)
    return np.log(np.maximum(mel, LOG_FLOOR)).T.astype(np.float32)


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
      features: float32 ``[frames, 64]`` from :func:`mfsc`.
      starts, ends: word boundaries in seconds, ``[words]`` each.
      l_max: the most frames a word keeps (>= 1).
      rule: "subsample" or "truncate".

    Returns:
      (per-word float32 arrays ``[n_i, 64]`` with 1 <= n_i <= l_max, the number of words
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
