"""Word boundaries moved onto the signal (hmaf.data.boundaries), on signals whose true
boundaries are known to the sample."""

import numpy as np
import pytest

from hmaf.data import boundaries

SR = 16000


def _vowel(seconds: float, f0: float = 140.0) -> np.ndarray:
    """A sustained vowel: harmonics of ``f0`` under one formant near 700 Hz."""
    t = np.arange(int(round(seconds * SR))) / SR
    x = sum(np.exp(-(((k * f0) - 700.0) / 600.0) ** 2) * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 30))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _hiss(seconds: float) -> np.ndarray:
    """A fricative: noise above 3 kHz."""
    noise = np.random.default_rng(0).normal(size=int(round(seconds * SR)))
    spectrum = np.fft.rfft(noise)
    spectrum[np.fft.rfftfreq(noise.size, 1 / SR) < 3000] = 0
    x = np.fft.irfft(spectrum, noise.size)
    return (0.1 * x / np.abs(x).max()).astype(np.float32)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SR)), np.float32)


# The rules resolve a boundary to their shortest window: 5 ms power windows for onsets,
# spectra 5-10 ms either side for changes (a flat-topped peak 10 ms wide at an abrupt change).
TOLERANCE_S = 0.005


@pytest.mark.parametrize("hmm_start", [0.26, 0.29, 0.32])
def test_a_sonorant_after_silence_starts_where_its_sound_does(hmm_start):
    x = np.concatenate([_silence(0.3), _vowel(0.3)])  # the sound begins at 0.300 s
    starts, ends = boundaries.refine(x, np.array([hmm_start]), np.array([0.6]), ["AA"])
    assert abs(starts[0] - 0.3) <= TOLERANCE_S, starts
    assert ends[0] == 0.6  # an end before silence stays


def test_a_stop_after_silence_keeps_the_hmm_onset():
    """A stop's closure is silent and part of the word: the sound begins only at the burst."""
    x = np.concatenate([_silence(0.3), _vowel(0.3)])
    starts, _ = boundaries.refine(x, np.array([0.26]), np.array([0.6]), ["B"])
    assert starts[0] == 0.26


@pytest.mark.parametrize("hmm_boundary", [0.29, 0.31])
def test_a_boundary_between_words_moves_to_the_spectral_change(hmm_boundary):
    x = np.concatenate([_vowel(0.3), _hiss(0.3)])  # vowel -> fricative at 0.300 s
    starts, ends = boundaries.refine(x, np.array([0.0, hmm_boundary]), np.array([hmm_boundary, 0.6]), ["AA", "S"])
    assert abs(starts[1] - 0.3) <= TOLERANCE_S, starts
    assert ends[0] == starts[1]  # the words still meet
    assert starts[0] == 0.0 and ends[1] == 0.6


def test_a_pause_given_to_a_sonorant_word_is_taken_out():
    """The HMM let the second word begin where the first ends, 200 ms of silence early."""
    x = np.concatenate([_vowel(0.3), _silence(0.2), _vowel(0.3, f0=180.0)])
    starts, ends = boundaries.refine(x, np.array([0.0, 0.3]), np.array([0.3, 0.8]), ["AA", "AE"])
    assert abs(starts[1] - 0.5) <= TOLERANCE_S, starts
    assert ends[0] == 0.3  # the first word still ends where its sound does


def test_a_quiet_opening_of_a_fricative_word_is_not_taken_for_a_pause():
    """Weak fricatives ("th", "f") open 30 dB and more below a word's loudest; such a word
    keeps its boundary within the spectral-change window."""
    x = np.concatenate([_vowel(0.3), _silence(0.2), _vowel(0.3, f0=180.0)])
    starts, ends = boundaries.refine(x, np.array([0.0, 0.3]), np.array([0.3, 0.8]), ["AA", "TH"])
    assert abs(starts[1] - 0.3) <= boundaries.CHANGE_WINDOW_S and ends[0] == starts[1]


def test_refined_boundaries_keep_their_order():
    rng = np.random.default_rng(1)
    for trial in range(20):
        x = np.concatenate([rng.choice([_vowel, _hiss, _silence])(float(rng.uniform(0.05, 0.3))) for _ in range(8)])
        cuts = np.sort(rng.uniform(0, x.size / SR, 12))
        starts, ends = cuts[0::2].copy(), cuts[1::2].copy()
        ends[:-1] = np.where(rng.random(5) < 0.5, starts[1:], ends[:-1])  # some words meet, some have pauses
        phones = list(rng.choice(["AA", "S", "B", "N", "TH"], 6))
        new_starts, new_ends = boundaries.refine(x, starts, ends, phones)
        assert np.all(new_starts <= new_ends), trial
        assert np.all(new_ends[:-1] <= new_starts[1:] + 1e-12), trial
        paused = ends[:-1] < starts[1:]
        assert np.array_equal(new_ends[:-1][paused], ends[:-1][paused]), trial  # ends before pauses stay
        moved = np.abs(new_starts - starts)
        met = np.concatenate([[False], ~paused])
        assert np.all(moved[met & ~np.isin(phones, ["AA", "N"])] <= boundaries.CHANGE_WINDOW_S + 1e-9), trial
