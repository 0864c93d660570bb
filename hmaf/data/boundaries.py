"""Word boundaries of an HMM alignment moved onto the signal at 1 ms resolution (ours).

pocketsphinx places boundaries on its 10 ms frame grid where its acoustic model, trained
without boundary labels, switches phones. Three rules then move them to what the waveform
shows (measured on the alignment benchmark and on held-out Flite speech,
benchmarks/README.md):

- **a word that follows silence** (the first word, or one after a pause), unless it
  begins with a stop or affricate: its onset goes to where its sound begins, the first
  1 ms step within [onset - :data:`ONSET_BACK_S`, onset + :data:`ONSET_FORWARD_S`] at
  which the power of a 5 ms window comes within :data:`ONSET_DB` of the word's loudest.
  The HMM switches from silence too early (by 10-25 ms in median, depending on the voice):
  a 25.6 ms analysis window that only begins to cover the word already scores as speech.
  A stop is left where the HMM put it: its closure is silent and belongs to the word, so
  the energy rises only at the burst.
- **a pause the HMM gave to a word**: a word beginning with a vowel, nasal or approximant
  whose span opens (within :data:`PAUSE_LATE_S`) with at least :data:`PAUSE_S` below that
  30 dB line starts where the sound begins after it; the previous word keeps its end.
  Festival's phrase breaks before "and" were placed 150-230 ms early this way. Weak
  fricatives ("th", "f") open that quietly, so words beginning with one are left to the
  next rule.
- **a boundary between two words with no pause** moves to the largest spectral change
  within :data:`CHANGE_WINDOW_S` of it, weighted by a Gaussian of width
  :data:`CHANGE_SIGMA_S` around the HMM's boundary: the distance between 64-band log-mel
  spectra (10 ms windows) 5 and 10 ms either side, averaged. It never moves past the
  middle of either word.

Word ends before a pause are left as they are.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hmaf.data.features import N_FFT, SAMPLE_RATE, mel_basis

HOP = 16  # 1 ms
CHANGE_WIN = 160  # 10 ms spectra for the spectral change
CHANGE_LAGS = (5, 10)  # hops either side compared
CHANGE_WINDOW_S = 0.015  # farthest a boundary between words moves
CHANGE_SIGMA_S = 0.015  # width of the weight around the HMM's boundary
ENERGY_WIN = 80  # 5 ms power windows for onsets
ONSET_DB = 30.0  # a word's sound: power within this of the word's loudest
ONSET_BACK_S = 0.05  # onsets after silence are searched this far before the HMM's ...
ONSET_FORWARD_S = 0.06  # ... and this far after it
PAUSE_S = 0.05  # the shortest quiet opening taken for a pause
PAUSE_LATE_S = 0.02  # the pause may begin this late (the previous word decaying)
MIN_WORD_S = 0.03  # a word moved past its own pause keeps at least this much
# CMU phones that begin with a (silent) closure.
CLOSURE_PHONES = frozenset("P B T D K G CH JH".split())
FRICATIVE_PHONES = frozenset("F V TH DH S Z SH ZH HH".split())
_HANN = np.hanning(CHANGE_WIN).astype(np.float32)


def _frames(samples: np.ndarray, width: int, first: int = 0, count: int | None = None) -> np.ndarray:
    """``[count, width]`` windows every :data:`HOP` samples, from window ``first`` on
    (window k starts at sample k * HOP); zeros past the end."""
    total = max(1, 1 + (samples.size - width) // HOP) if count is None else first + count
    need = (total - 1) * HOP + width
    if samples.size < need:
        samples = np.pad(samples, (0, need - samples.size))
    return np.lib.stride_tricks.sliding_window_view(samples, width)[first * HOP:need - width + 1:HOP]


def spectral_change(samples: np.ndarray, low_s: float, high_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(times ``[T]`` seconds, change ``[T]``) every 1 ms from ``low_s`` to ``high_s``: the
    mean Euclidean distance between the 64-band log-mel spectra (10 ms windows)
    :data:`CHANGE_LAGS` ms before and after each time."""
    lag = max(CHANGE_LAGS)
    first = max(0, int(np.floor((low_s * SAMPLE_RATE - CHANGE_WIN / 2) / HOP)) - lag)
    count = max(0, int(np.ceil((high_s * SAMPLE_RATE - CHANGE_WIN / 2) / HOP)) + lag + 1 - first)
    frames = _frames(samples, CHANGE_WIN, first, count) * _HANN
    power = np.abs(np.fft.rfft(frames, N_FFT)) ** 2
    # einsum, not a BLAS product: OpenBLAS threads spin after a call and doubled the CPU
    # time of whole alignments (measured)
    logmel = 10 * np.log10(np.einsum("tf,mf->tm", power, mel_basis()) + 1e-12)
    change = np.zeros(count)
    for k in CHANGE_LAGS:
        change[k:count - k] += np.linalg.norm(logmel[2 * k:] - logmel[:-2 * k], axis=1)
    times = ((first + np.arange(count)) * HOP + CHANGE_WIN / 2) / SAMPLE_RATE
    inside = slice(lag, count - lag)  # the times with both lags inside the frames computed
    return times[inside], change[inside] / len(CHANGE_LAGS)


def _power_db(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(times ``[T]``, power in dB ``[T]``) of 5 ms windows every 1 ms, at the window centres."""
    frames = _frames(samples, ENERGY_WIN)
    power = 10 * np.log10(np.einsum("tl,tl->t", frames, frames) / ENERGY_WIN + 1e-12)
    return (np.arange(len(power)) * HOP + ENERGY_WIN / 2) / SAMPLE_RATE, power


def _after_pause(times: np.ndarray, loud: np.ndarray, start: float, end: float) -> float | None:
    """Where the sound begins after a pause at a word's start, or None: a run of at least
    :data:`PAUSE_S` without ``loud`` power that begins within :data:`PAUSE_LATE_S` of
    ``start`` (the previous word may still be decaying) and ends before ``end`` -
    :data:`MIN_WORD_S`."""
    span = np.flatnonzero((times >= start) & (times <= end - MIN_WORD_S))
    quiet = ~loud[span]
    if span.size == 0 or not quiet.any():
        return None
    first = int(np.argmax(quiet))
    if times[span[first]] > start + PAUSE_LATE_S:
        return None
    after = np.flatnonzero(~quiet[first:])
    if after.size == 0 or times[span[first + after[0]]] - times[span[first]] < PAUSE_S:
        return None
    return float(times[span[first + after[0]]] - ENERGY_WIN / 2 / SAMPLE_RATE)


def refine(samples: np.ndarray, starts: np.ndarray, ends: np.ndarray,
           first_phones: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Moves the boundaries of N aligned words onto the signal (see the module docstring).

    Args:
      samples: mono float ``[samples]`` at 16 kHz.
      starts, ends: ``[N]`` seconds, non-decreasing, ``starts <= ends``; word i follows a
        pause when ``starts[i] > ends[i - 1]``.
      first_phones: the CMU phone each word begins with, as aligned.

    Returns:
      (starts, ends), new ``[N]`` arrays with the same ordering guarantees.
    """
    samples = np.asarray(samples, dtype=np.float32)
    starts, ends = np.array(starts, dtype=np.float64), np.array(ends, dtype=np.float64)
    old_starts, old_ends = starts.copy(), ends.copy()
    power_t, power = _power_db(samples)
    for i, boundary in enumerate(old_starts):
        middle = (old_starts[i] + old_ends[i]) / 2
        word = (power_t >= old_starts[i]) & (power_t <= old_ends[i])
        loud = power >= power[word].max() - ONSET_DB if word.any() else None
        # only a sonorant's opening is never quiet: weak fricatives ("th", "f") sit 30 dB
        # and more below the word's loudest for 50 ms and longer (measured)
        sonorant = first_phones[i] not in CLOSURE_PHONES | FRICATIVE_PHONES
        sound_from = _after_pause(power_t, loud, boundary, old_ends[i]) if sonorant and word.any() else None
        if i > 0 and old_ends[i - 1] >= boundary and sound_from is None:
            # between two words: the spectral change
            low = max(boundary - CHANGE_WINDOW_S, (old_starts[i - 1] + old_ends[i - 1]) / 2)
            high = min(boundary + CHANGE_WINDOW_S, middle)
            change_t, change = spectral_change(samples, low, high)
            near = np.flatnonzero((change_t >= low) & (change_t <= high))
            if near.size:
                weight = np.exp(-0.5 * ((change_t[near] - boundary) / CHANGE_SIGMA_S) ** 2)
                starts[i] = ends[i - 1] = change_t[near[np.argmax(change[near] * weight)]]
        elif sound_from is not None:  # a pause the HMM gave to the word: the sound after it
            starts[i] = sound_from
        elif first_phones[i] not in CLOSURE_PHONES and word.any():  # after silence: where the sound begins
            low = max(boundary - ONSET_BACK_S, old_ends[i - 1] if i > 0 else 0.0)
            near = np.flatnonzero((power_t >= low) & (power_t <= min(boundary + ONSET_FORWARD_S, middle)))
            near = near[loud[near]]
            if near.size:
                starts[i] = max(low, power_t[near[0]] - ENERGY_WIN / 2 / SAMPLE_RATE)
    return starts, ends
