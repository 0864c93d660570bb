"""One utterance from audio file (+ transcript) to aligned per-word MFSC frames.

This is the single preprocessing path: corpus preparation (:mod:`hmaf.data.writer`) and
inference on a new recording both call :func:`preprocess_utterance`.

Steps (each timed): decode (:mod:`hmaf.data.audio`), asr when the transcript is missing
(:mod:`hmaf.data.asr`), text normalisation (:mod:`hmaf.data.text`), align
(:mod:`hmaf.data.align`, skipped when word timings are given), augment (prepare-time copies
only, :mod:`hmaf.data.augment`: applied to the waveform AFTER the clean audio is aligned),
features (:mod:`hmaf.data.features`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Sequence

import numpy as np

from hmaf.data import features as features_lib
from hmaf.data.align import DEFAULT_BOUNDARIES
from hmaf.data.audio import SAMPLE_RATE, AudioError, load_audio
from hmaf.data.text import normalize_words

# RMS below -70 dBFS: digital silence or dither, nothing to align.
SILENCE_RMS = 10 ** (-70 / 20)

REASONS = ("unreadable_audio", "empty_transcript", "no_words", "asr_failed", "alignment_failed",
           "alignment_mismatch", "silent_audio", "non_finite", "bad_word_timings", "augment_failed")


class PreprocessError(Exception):
    """A bad example. ``reason`` is a short code from :data:`REASONS`; the message names the file."""

    def __init__(self, path: str | os.PathLike, reason: str, detail: str):
        self.path = os.fspath(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason}: {detail}")

    def __reduce__(self):  # keeps the three fields across process pools
        return (PreprocessError, (self.path, self.reason, self.detail))


@dataclasses.dataclass
class Utterance:
    """A preprocessed utterance of N words.

    Attributes:
      words: the N normalised words.
      frames: N float32 arrays ``[n_i, 67]`` (:func:`hmaf.data.features.frame_features`), 1 <= n_i <= l_max.
      word_start, word_end: float64 ``[N]`` seconds.
      transcript: the transcript as given (or as recognised).
      transcript_auto: True when the transcript came from speech recognition.
      long_words: how many words were longer than l_max frames.
      audio_seconds: duration of the decoded audio.
      timing: seconds spent per step: decode_s, asr_s, align_s, features_s (and augment_s
        for an augmented copy).
      aligner: what timed the words: "aeneas", "pocketsphinx" or "manifest" (given timings).
      align_fallback: why "auto" fell back to its second aligner; "" when it did not.
    """

    words: list[str]
    frames: list[np.ndarray]
    word_start: np.ndarray
    word_end: np.ndarray
    transcript: str
    transcript_auto: bool
    long_words: int
    audio_seconds: float
    timing: dict[str, float]
    aligner: str = ""
    align_fallback: str = ""


def _given_timings(path: str, word_timings: Sequence[Sequence[object]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Normalises given [word, start_s, end_s] triples.

    An entry whose word normalises to several words ("don't-care") splits its interval
    evenly among them; one that normalises to nothing (punctuation) is dropped.
    """
    words: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    for i, entry in enumerate(word_timings):
        try:
            word, start, end = entry
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            raise PreprocessError(path, "bad_word_timings", f"entry {i} is not [word, start_s, end_s]: {entry!r}") from None
        if not (isinstance(word, str) and math.isfinite(start) and math.isfinite(end) and 0 <= start <= end):
            raise PreprocessError(path, "bad_word_timings", f"entry {i} {entry!r} needs a word and 0 <= start <= end")
        tokens = normalize_words(word)
        step = (end - start) / max(len(tokens), 1)
        for k, token in enumerate(tokens):
            words.append(token)
            starts.append(start + k * step)
            ends.append(start + (k + 1) * step)
    if not words:
        raise PreprocessError(path, "no_words", "the word timings hold no words after normalisation")
    if np.any(np.diff(starts) < 0):
        raise PreprocessError(path, "bad_word_timings", "word start times are not in order")
    return words, np.asarray(starts), np.asarray(ends)


def preprocess_utterance(audio_path: str | os.PathLike, transcript: str | None, *, l_max: int = 100,
                         long_word_rule: str = "subsample",
                         word_timings: Sequence[Sequence[object]] | None = None,
                         language: str = "eng", aligner: str = "auto", augment: str = "",
                         boundaries: str = DEFAULT_BOUNDARIES) -> Utterance:
    """Decodes, (transcribes,) aligns and featurizes one utterance.

    Args:
      audio_path: any audio file :func:`hmaf.data.audio.load_audio` reads.
      transcript: what is said. None asks pocketsphinx for one (marked automatic); an
        empty string is a bad example. Ignored for the words when ``word_timings`` is
        given (then it is only stored; None becomes the given words joined).
      l_max: the most frames kept per word.
      long_word_rule: "subsample" or "truncate" (see :func:`hmaf.data.features.word_frames`).
      word_timings: optional [word, start_s, end_s] triples; alignment (and the mismatch
        check) is skipped.
      language: ISO 639-3 language code for alignment.
      aligner: "aeneas", "pocketsphinx" or "auto" (:mod:`hmaf.data.align`).
      boundaries: "hmm" or "signal", where pocketsphinx's word boundaries end up
        (:data:`hmaf.data.align.BOUNDARIES`).
      augment: a resolved augmentation spec (:func:`hmaf.data.augment.resolve`), "" for none.
        The words are aligned on the clean audio (or taken from ``word_timings``), then the
        waveform is augmented, the timings scaled (speed) and the features computed from the
        augmented waveform. Babble source paths are relative to ``audio_path``'s folder.

    Returns:
      The :class:`Utterance`.

    Raises:
      PreprocessError: (path, reason, detail) for a bad example.
    """
    from hmaf.data.align import ALIGNERS, BOUNDARIES, AlignmentError, NoPathError, align
    from hmaf.data.mismatch import find_mismatch

    path = os.fspath(audio_path)
    timing = {"decode_s": 0.0, "asr_s": 0.0, "align_s": 0.0, "features_s": 0.0}
    if long_word_rule not in features_lib.LONG_WORD_RULES:
        raise ValueError(f"long_word_rule must be one of {features_lib.LONG_WORD_RULES}, got {long_word_rule!r}")
    if aligner not in ALIGNERS:
        raise ValueError(f"aligner must be one of {ALIGNERS}, got {aligner!r}")
    if boundaries not in BOUNDARIES:
        raise ValueError(f"boundaries must be one of {BOUNDARIES}, got {boundaries!r}")
    if transcript is not None and not transcript.strip():
        raise PreprocessError(path, "empty_transcript", "the transcript is an empty string")

    t0 = time.perf_counter()
    try:
        samples = load_audio(path)
    except AudioError as e:
        raise PreprocessError(path, "unreadable_audio", f"{e.reason}: {e.detail}") from None
    timing["decode_s"] = time.perf_counter() - t0
    audio_seconds = samples.size / SAMPLE_RATE
    if not np.all(np.isfinite(samples)):
        raise PreprocessError(path, "non_finite", "the audio holds NaN or inf samples")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms < SILENCE_RMS:
        raise PreprocessError(path, "silent_audio", f"RMS {rms:.2e} is below {SILENCE_RMS:.2e} (-70 dBFS)")

    transcript_auto = False
    used, fallback = "manifest", ""
    if word_timings is not None:
        words, starts, ends = _given_timings(path, word_timings)
        if transcript is None:
            transcript = " ".join(words)
    else:
        if transcript is None:
            from hmaf.data.asr import ASRError, transcribe  # deferred: pocketsphinx model load

            t0 = time.perf_counter()
            try:
                transcript = transcribe(samples)
            except ASRError as e:
                raise PreprocessError(path, "asr_failed", str(e)) from None
            timing["asr_s"] = time.perf_counter() - t0
            transcript_auto = True
        words = normalize_words(transcript)
        if not words:
            raise PreprocessError(path, "no_words", f"no words after normalising {transcript[:80]!r}")
        t0 = time.perf_counter()
        try:
            alignment = align(samples, words, aligner=aligner, language=language, boundaries=boundaries)
        except NoPathError as e:  # the words cannot be said in this audio
            raise PreprocessError(path, "alignment_failed" if transcript_auto else "alignment_mismatch",
                                  str(e)) from None
        except AlignmentError as e:
            raise PreprocessError(path, "alignment_failed", str(e)) from None
        # An automatic transcript is what the recogniser heard in this very audio: no check.
        problem = None if transcript_auto else find_mismatch(samples, words, alignment)
        if problem is not None:
            raise PreprocessError(path, "alignment_mismatch", problem)
        starts, ends, used, fallback = alignment.starts, alignment.ends, alignment.aligner, alignment.fallback
        timing["align_s"] = time.perf_counter() - t0

    if augment:
        from hmaf.data.augment import AugmentError, AugmentSpecError, apply_augment

        t0 = time.perf_counter()
        try:
            samples, time_scale = apply_augment(samples, augment, os.path.dirname(path))
        except (AugmentError, AugmentSpecError) as e:
            raise PreprocessError(path, "augment_failed", f"{augment!r}: {e}") from None
        starts, ends = starts * time_scale, ends * time_scale
        audio_seconds = samples.size / SAMPLE_RATE
        timing["augment_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    frame_features = features_lib.frame_features(samples)
    if not np.all(np.isfinite(frame_features)):
        raise PreprocessError(path, "non_finite", "the log-mel or prosody features hold NaN or inf")
    frames, long_words = features_lib.word_frames(frame_features, starts, ends, l_max, long_word_rule)
    timing["features_s"] = time.perf_counter() - t0
    return Utterance(words=words, frames=frames, word_start=starts, word_end=ends, transcript=transcript,
                     transcript_auto=transcript_auto, long_words=long_words, audio_seconds=audio_seconds,
                     timing=timing, aligner=used, align_fallback=fallback)
