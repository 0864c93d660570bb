"""Word onsets refined below an HMM aligner's 10 ms frame grid, from the signal itself.

pocketsphinx (:mod:`hmaf.data.align_sphinx`) places every boundary on its 10 ms frame
grid, and its three-state phone models settle a boundary anywhere within a frame or two
of the acoustic change. Two refinements move an onset to where the signal changes, in a
small window around the aligner's boundary, so they hold for any speech:

- **stop closures** (:func:`closure_onset`): a stop or affricate (P B T D K G CH JH)
  begins with a closure, a stretch of near-silence before its burst. Phonetic convention
  (TIMIT, Buckeye) counts the closure in the stop, so the word begins where the closure
  begins; the aligner's silence model, allowed between words, often takes the closure
  and starts the word at the burst (measured: ~50 ms late). When a silence segment of at
  most :data:`MAX_CLOSURE_S` (voiceless closures run ~50-130 ms) precedes a
  stop-initial word, the word starts at the sharpest energy drop in that silence
  (the end of the previous sound). A longer silence is a pause and stays one.
- **spectral change** (:func:`spectral_change_onsets`): every other onset moves to the
  point of largest spectral change (distance between the mean log-mel spectra of the
  :data:`CONTEXT_S` before and after) within :data:`SEARCH_S` of the aligner's
  boundary, and never past its neighbours.

Both work on the samples at 1-2 ms resolution; times in seconds.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from hmaf.data.features import N_FFT, mel_basis

SAMPLE_RATE = 16000
STOPS = frozenset("P B T D K G CH JH".split())  # CMU phones that begin with a closure
MAX_CLOSURE_S = 0.12
ENERGY_HOP = 16  # 1 ms
ENERGY_WIN = 80  # 5 ms
DROP_SPAN_S = 0.005  # energy compared over this much either side of a candidate point
CLOSURE_LOOKBACK_S = 0.03  # the aligner's silence may start a little after the drop
SPECTRUM_HOP = 32  # 2 ms
SPECTRUM_WIN = 256  # 16 ms
SEARCH_S = 0.015
CONTEXT_S = 0.01


def energy_db(samples: np.ndarray) -> np.ndarray:
    """Power in dB of 5 ms frames every 1 ms, frame k centred on sample k * 16: ``[frames]``."""
    padded = np.pad(np.asarray(samples, dtype=np.float32), ENERGY_WIN // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, ENERGY_WIN)[::ENERGY_HOP]
    power = np.einsum("tl,tl->t", frames, frames) / ENERGY_WIN
    return 10 * np.log10(np.maximum(power, 1e-10))


def closure_onset(db: np.ndarray, silence_start: float, word_start: float) -> float:
    """Where a stop's closure begins: the sharpest energy drop before its burst.

    Args:
      db: :func:`energy_db` of the utterance ``[frames]``.
      silence_start, word_start: the aligner's silence segment before the word (seconds).

    Returns:
      The time (seconds) in ``[silence_start - CLOSURE_LOOKBACK_S, word_start)`` where the
      mean energy of the next :data:`DROP_SPAN_S` falls furthest below that of the previous
      one; ``word_start`` when the span is empty.
    """
    span = int(round(DROP_SPAN_S * SAMPLE_RATE / ENERGY_HOP))
    lo = max(span, int(round((silence_start - CLOSURE_LOOKBACK_S) * SAMPLE_RATE / ENERGY_HOP)))
    hi = min(db.size - span, int(round(word_start * SAMPLE_RATE / ENERGY_HOP)))
    if hi <= lo:
        return word_start
    sums = np.concatenate([[0.0], np.cumsum(db, dtype=np.float64)])
    points = np.arange(lo, hi)
    drop = (sums[points + span] - sums[points]) - (sums[points] - sums[points - span])  # [candidates]
    return float(points[np.argmin(drop)] * ENERGY_HOP / SAMPLE_RATE)


@functools.lru_cache(maxsize=1)
def _window() -> np.ndarray:
    n = np.arange(SPECTRUM_WIN)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / SPECTRUM_WIN)
    left = (N_FFT - SPECTRUM_WIN) // 2
    return np.pad(window, (left, N_FFT - SPECTRUM_WIN - left)).astype(np.float32)


def fine_log_mel(samples: np.ndarray) -> np.ndarray:
    """64-band log-mel of 16 ms frames every 2 ms, frame k centred on sample k * 32: ``[frames, 64]``."""
    padded = np.pad(np.asarray(samples, dtype=np.float32), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::SPECTRUM_HOP]  # [T, N_FFT]
    spectrum = np.fft.rfft(frames * _window(), axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    return np.log(np.maximum(np.einsum("tf,mf->tm", power, mel_basis()), 1e-8))


def spectral_change_onsets(mel: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                           keep: Sequence[bool]) -> np.ndarray:
    """Onsets moved to the largest spectral change within :data:`SEARCH_S`.

    Args:
      mel: :func:`fine_log_mel` of the utterance ``[frames, 64]``.
      starts, ends: ``[N]`` seconds, the aligner's words.
      keep: ``[N]``: True for onsets to leave where they are (already refined).

    Returns:
      New starts ``[N]``, each after the (new) previous start and before its word's end by
      at least :data:`CONTEXT_S`, or unchanged where there is no room.
    """
    hop_s = SPECTRUM_HOP / SAMPLE_RATE
    ctx = int(round(CONTEXT_S / hop_s))
    reach = int(round(SEARCH_S / hop_s))
    sums = np.concatenate([np.zeros((1, mel.shape[1])), np.cumsum(mel, axis=0, dtype=np.float64)])
    out = np.asarray(starts, dtype=np.float64).copy()
    for j, start in enumerate(out):
        if keep[j]:
            continue
        centre = int(round(start / hop_s))
        lo, hi = max(ctx, centre - reach), min(mel.shape[0] - ctx, centre + reach + 1)
        if j > 0:
            lo = max(lo, int(round(out[j - 1] / hop_s)) + ctx)
        hi = min(hi, int(round(ends[j] / hop_s)) - ctx + 1)
        if hi <= lo:
            continue
        points = np.arange(lo, hi)
        before = (sums[points] - sums[points - ctx]) / ctx  # [candidates, 64]
        after = (sums[points + ctx] - sums[points]) / ctx
        change = np.sqrt(np.mean((after - before) ** 2, axis=1))
        out[j] = points[np.argmax(change)] * hop_s
    return out


def refine_onsets(samples: np.ndarray, starts: np.ndarray, ends: np.ndarray, first_phones: Sequence[str],
                  silence_before: Sequence[tuple[float, float] | None]) -> tuple[np.ndarray, np.ndarray]:
    """Both refinements; word ends that met the next word's onset follow it.

    Args:
      samples: mono float ``[samples]`` at 16 kHz.
      starts, ends: ``[N]`` seconds from the aligner.
      first_phones: ``[N]`` the CMU phone each word's chosen pronunciation begins with.
      silence_before: ``[N]`` the aligner's (start, end) of a silence segment right before
        the word, or None.

    Returns:
      (starts, ends), ``[N]`` each, non-decreasing with ``starts <= ends``.
    """
    starts = np.asarray(starts, dtype=np.float64).copy()
    ends = np.asarray(ends, dtype=np.float64).copy()
    old = starts.copy()
    closure = [False] * len(starts)
    db = None
    for j, silence in enumerate(silence_before):
        if j == 0 or silence is None or first_phones[j] not in STOPS or silence[1] - silence[0] > MAX_CLOSURE_S + 1e-9:
            continue
        db = energy_db(samples) if db is None else db
        starts[j] = max(closure_onset(db, silence[0], starts[j]), starts[j - 1] + 0.01)
        closure[j] = True
    starts = spectral_change_onsets(fine_log_mel(samples), starts, ends, closure)
    for j in range(1, len(starts)):
        if abs(ends[j - 1] - old[j]) < 1e-9 or ends[j - 1] > starts[j]:
            ends[j - 1] = max(starts[j], starts[j - 1] + 0.001)
    ends = np.maximum(ends, starts)
    return starts, ends
