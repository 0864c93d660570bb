"""Forced word alignment behind one interface: samples + words -> per-word start, end, confidence.

Aligners (``--aligner`` of ``python -m hmaf.prepare``, ``Predictor(aligner=...)``):

- ``"aeneas"`` (the paper's, :mod:`hmaf.data.align_aeneas`): DTW against eSpeak-NG speech
  of the words. Its boundaries sit where the next word begins, so a pause after a word
  used to be counted in it; here each word's end is pulled back to the end of its speech
  when at least :data:`MIN_PAUSE_S` of silence precedes the next boundary
  (:func:`pull_back_ends`). Confidence: the share of a word's frames that hold speech
  (aeneas has no score of its own).
- ``"pocketsphinx"`` (:mod:`hmaf.data.align_sphinx`): HMM forced alignment with explicit
  silences and espeak-ng pronunciations for out-of-dictionary words. Confidence: the
  acoustic score per frame.
- ``"auto"`` (default): the times of :data:`AUTO_ORDER`'s first aligner, the better by
  measurement (benchmarks/README.md, ``python -m benchmarks.alignment``); when it fails
  on an utterance, or leaves more than 30 % of the speech outside the words
  (:data:`MIN_SPHINX_FIT`), the other one's (``Alignment.fallback`` says why; counted in
  dataset.json). When both align, their disagreement is kept as a check of the
  transcript (``Alignment.disagreement_s``, :mod:`hmaf.data.mismatch`); where
  pocketsphinx explains at least :data:`TRUSTED_FIT` of the speech with the words, that
  check would not count and aeneas does not run (the same times; aeneas then runs on
  12 % of the preprocessing benchmark's utterances instead of 67 % at 0.98, for 4.6
  points fewer swapped transcripts caught, benchmarks/README.md).
  pocketsphinx finding no way at all to say the words in the audio is not a failure to
  fall back from but evidence of a mismatch (:class:`NoPathError`, raised).

A transcript that does not fit the audio is caught after alignment by
:mod:`hmaf.data.mismatch` (speaking rate, fit, squeezed words): reject reason
``alignment_mismatch``.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

ALIGNERS = ("aeneas", "pocketsphinx", "auto")
DEFAULT_ALIGNER = "auto"
# Where pocketsphinx's word boundaries end up (``--boundaries``; aeneas's times are not
# affected): "hmm", the search's own 10 ms frames (round 11's times), or "signal", moved
# onto the signal at 1 ms resolution after a search made with a noise floor in short
# digital silences (hmaf.data.align_sphinx, hmaf.data.boundaries; ours). "signal" measured
# onset median 10.5 -> 8.0 ms, within 20 ms 74 -> 78 % (alignment benchmark, seed 0), and
# FAF on held-out voices 89.3 -> 90.7 % (two seeds, McNemar p = 0.024); but FAF models
# trained on its times call 16 % of the 22 neutral human clips a strong emotion against
# 8 % (p = 0.004; docs/experiments.md "Word times moved onto the signal"): hence "hmm".
BOUNDARIES = ("hmm", "signal")
DEFAULT_BOUNDARIES = "hmm"
AUTO_ORDER = ("pocketsphinx", "aeneas")
# auto keeps aeneas's times when pocketsphinx explains less of the speech than this with
# the words (it then missed words; correct pairs measured >= 0.68, mostly > 0.9).
MIN_SPHINX_FIT = 0.7
# From this fit on pocketsphinx has found every word in the audio: auto does not run
# aeneas to check it, since their disagreement would not count (hmaf.data.mismatch).
# 0.98 until round 11: on the alignment benchmark (438 correct pairs, two seeds) 0.9
# rejects no more correct pairs and catches 278 swapped transcripts instead of 298.
TRUSTED_FIT = 0.9
SAMPLE_RATE = 16000
# Energy-based silence for pulling aeneas's word ends back: frames more than SILENCE_DB
# below the loudest, and at least MIN_PAUSE_S of them before the next word's start.
SILENCE_DB = 40.0
MIN_PAUSE_S = 0.04


class AlignmentError(Exception):
    """The aligner could not time the words (the cause is in the message)."""


class NoPathError(AlignmentError):
    """The words cannot be said in the audio at all (no path through the aligner's grammar)."""


@dataclasses.dataclass
class Alignment:
    """Per-word timing of N words.

    Attributes:
      starts, ends: float64 ``[N]`` seconds, non-decreasing, ``starts <= ends``.
      confidence: float64 ``[N]`` in [0, 1], the aligner's own measure (see the module docstring).
      aligner: the aligner that produced the times ("aeneas" or "pocketsphinx").
      fit: how well the words fit the audio as a whole, in [0, 1], where the aligner
        measures it (pocketsphinx: the share of the speech it explains with words); None
        otherwise.
      fallback: the first aligner's failure when "auto" had to use its second; "" if not.
      disagreement_s: "auto" only: mean absolute difference in seconds between the word
        onsets of its two aligners (each aligner's errors are small on a correct
        transcript and unrelated on a wrong one); None when only one could align or
        pocketsphinx's fit reached :data:`TRUSTED_FIT` (aeneas then does not run).
    """

    starts: np.ndarray
    ends: np.ndarray
    confidence: np.ndarray
    aligner: str
    fit: float | None = None
    fallback: str = ""
    disagreement_s: float | None = None


def frame_db(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Power in dB of 40 ms frames every 10 ms (centred, zero-padded): ``[frames]``."""
    hop = sample_rate // 100
    length = 4 * hop
    padded = np.pad(np.asarray(samples, dtype=np.float32), length // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, length)[::hop]  # [T, length]
    power = np.einsum("tl,tl->t", frames, frames) / length
    return 10 * np.log10(np.maximum(power, 1e-10))


def speech_span(samples: np.ndarray, sample_rate: int, top_db: float) -> tuple[int, int]:
    """[begin, end) samples from the first to the last non-silent frame.

    A frame (:func:`frame_db`) is non-silent when its mean power is within ``top_db`` of the
    loudest frame's. Same result as ``librosa.effects.trim(samples, top_db,
    frame_length=4 * hop, hop_length=hop)[1]``. Returns (0, 0) when no frame qualifies.
    """
    hop = sample_rate // 100
    db = frame_db(samples, sample_rate)
    loud = np.flatnonzero(db > db.max() - top_db)
    if loud.size == 0:
        return 0, 0
    return int(loud[0] * hop), int(min(samples.shape[0], (loud[-1] + 1) * hop))


def speech_frames(samples: np.ndarray, sample_rate: int, top_db: float = SILENCE_DB) -> np.ndarray:
    """bool ``[frames]`` (10 ms, :func:`frame_db`): the frame is within ``top_db`` of the loudest."""
    db = frame_db(samples, sample_rate)
    return db > db.max() - top_db


def pull_back_ends(starts: np.ndarray, ends: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Word ends moved back to the end of speech when a pause follows the word.

    Args:
      starts, ends: ``[N]`` seconds.
      speech: bool ``[frames]`` at 100 frames/s (:func:`speech_frames`).

    Returns:
      New ends ``[N]``: for each word whose span ends in at least MIN_PAUSE_S of silence,
      the end of its last speech frame (never before its start + 10 ms).
    """
    new_ends = ends.copy()
    min_frames = int(round(MIN_PAUSE_S * 100))
    for i, (start, end) in enumerate(zip(starts, ends)):
        first, last = int(round(start * 100)), min(int(round(end * 100)), speech.size)
        voiced = np.flatnonzero(speech[first:last])
        if voiced.size and last - (first + voiced[-1] + 1) >= min_frames:
            new_ends[i] = max((first + voiced[-1] + 1) / 100, start + 0.01)
    return new_ends


def _speech_share(starts: np.ndarray, ends: np.ndarray, speech: np.ndarray) -> np.ndarray:
    share = []
    for start, end in zip(starts, ends):
        first = min(int(start * 100), speech.size - 1)
        last = max(first + 1, min(int(np.ceil(end * 100)), speech.size))
        share.append(float(np.mean(speech[first:last])))
    return np.asarray(share)


def _align_aeneas(samples: np.ndarray, words: Sequence[str], language: str) -> Alignment:
    from hmaf.data.align_aeneas import align_words

    starts, ends = align_words(samples, words, language=language)
    speech = speech_frames(samples, SAMPLE_RATE)
    ends = pull_back_ends(starts, ends, speech)
    return Alignment(starts=starts, ends=ends, confidence=_speech_share(starts, ends, speech), aligner="aeneas")


def _align_one(name: str, samples: np.ndarray, words: Sequence[str], language: str,
               boundaries: str) -> Alignment:
    if name == "aeneas":
        return _align_aeneas(samples, words, language)
    if language != "eng":
        raise AlignmentError(f"pocketsphinx has an English model only, not {language!r}")
    from hmaf.data import align_sphinx

    return align_sphinx.align(samples, list(words), boundaries=boundaries)


def align(samples: np.ndarray, words: Sequence[str], *, aligner: str = DEFAULT_ALIGNER,
          language: str = "eng", boundaries: str = DEFAULT_BOUNDARIES) -> Alignment:
    """Times each word in the speech.

    Args:
      samples: mono float ``[samples]`` at 16 kHz.
      words: the N normalised words (:func:`hmaf.data.text.normalize_words`), spoken order.
      aligner: one of :data:`ALIGNERS`.
      language: ISO 639-3 code; pocketsphinx knows English ("eng") only, so "auto" uses
        aeneas for other languages.
      boundaries: one of :data:`BOUNDARIES`, for pocketsphinx's times.

    Raises:
      NoPathError: pocketsphinx found no way to say the words in the audio (a mismatch).
      AlignmentError: every aligner tried failed; the message names each cause.
      ValueError: an unknown aligner or boundaries setting.
    """
    if aligner not in ALIGNERS:
        raise ValueError(f"aligner must be one of {ALIGNERS}, got {aligner!r}")
    if boundaries not in BOUNDARIES:
        raise ValueError(f"boundaries must be one of {BOUNDARIES}, got {boundaries!r}")
    if not words:
        raise AlignmentError("no words to align")
    order = AUTO_ORDER if aligner == "auto" else (aligner,)
    if aligner == "auto" and language != "eng":
        order = ("aeneas",)
    causes, results = [], []
    for name in order:  # auto: the second aligner checks the first one's times, or replaces them
        if results and results[0].fit is not None and results[0].fit >= TRUSTED_FIT:
            break
        try:
            results.append(_align_one(name, samples, words, language, boundaries))
        except NoPathError:
            raise
        except AlignmentError as e:
            if not results:
                causes.append(f"{name}: {e}")
    if not results:
        raise AlignmentError("; ".join(causes))
    result = results[0]
    if len(results) == 2:
        disagreement = float(np.mean(np.abs(results[0].starts - results[1].starts)))
        if result.fit is not None and result.fit < MIN_SPHINX_FIT:
            causes.append(f"{result.aligner}: explained {result.fit:.0%} of the speech with the words")
            result = dataclasses.replace(results[1], fit=result.fit)
        result.disagreement_s = disagreement
    result.fallback = "; ".join(causes)
    return result
