"""Forced word alignment with aeneas (aeneas-ng), the paper's aligner: samples + words -> times.

aeneas aligns by synthesizing the words with eSpeak-NG, computing MFCCs of the real and
the synthetic speech, and warping one onto the other with Sakoe-Chiba band DTW (the
method of the paper, section 3.1). Each word is one text fragment, so every word gets
its own interval.

The steps are the ones of ``aeneas.executetask.ExecuteTask`` for a single-level task,
driven here directly so that:

- the real audio goes in as samples already decoded by :mod:`hmaf.data.audio`, with no
  temporary wav, ffprobe or ffmpeg run (those subprocesses were ~70 % of the stock
  task's time);
- synthesis always runs aeneas's eSpeak-NG C extension (``aeneas.cew.cew``) in a fresh
  child of ``sys.executable`` under a timeout, as ``cew_subprocess_enabled=True`` does. A
  second in-process eSpeak synthesis can hang in a long-running process, and the stock
  wrapper silently falls back to in-process synthesis and then to the espeak command
  line, whose timings are wrong; here any failure is an :class:`AlignmentError` instead.
  The child is started isolated (``-I -S``, only aeneas's folder on its path) and imports
  only the C extension: that halves the per-utterance start-up (~30 ms instead of ~65 ms)
  against ``python -m aeneas.cewsubprocess``, whose input and output formats it keeps;
- every temporary file lives in a private temporary folder that is always removed.

Leading and trailing silence is trimmed before aligning (frames more than ``trim_db``
below the loudest, as ``librosa.effects.trim``); without it aeneas, which has no head/tail
detection by default, stretches the first word over the leading silence and the last over
the trailing one (a 300 ms lead-in gave the first word a 300 ms onset error).

Settings: ``mfcc_window_length=0.030``, ``mfcc_window_shift=0.010`` (the default 40 ms
shift would put every boundary on a 40 ms grid), default aeneas boundary adjustment
("auto", no change), no head/tail detection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Sequence

import numpy as np

import aeneas
from aeneas.adjustboundaryalgorithm import AdjustBoundaryAlgorithm
from aeneas.audiofile import AudioFile
from aeneas.audiofilemfcc import AudioFileMFCC
from aeneas.dtw import DTWAligner
from aeneas.exacttiming import TimeValue
from aeneas.runtimeconfiguration import RuntimeConfiguration
from aeneas.syncmap.fragment import SyncMapFragment
from aeneas.task import TaskConfiguration
from aeneas.textfile import TextFile
from aeneas.ttswrappers.espeakttswrapper import ESPEAKTTSWrapper

from hmaf.data.align import AlignmentError, speech_span

SAMPLE_RATE = 16000
MFCC_WINDOW_LENGTH = 0.030
MFCC_WINDOW_SHIFT = 0.010
_AENEAS_PATH = os.path.dirname(os.path.dirname(os.path.abspath(aeneas.__file__)))
# argv: folder holding aeneas, words file ("voice text" lines), output wav, output data file
# (sample rate, fragment count, then "begin end" per fragment, as aeneas.cewsubprocess).
# On Linux the child asks to be killed with its parent (a killed worker leaves no orphan).
_SYNTH_CHILD = """
import sys
if sys.platform.startswith("linux"):
    import ctypes, signal
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)
sys.path.insert(0, sys.argv[1])
from aeneas.cew import cew
with open(sys.argv[2], encoding="utf-8") as f:
    fragments = [tuple(line.rstrip("\\n").split(" ", 1)) for line in f]
rate, count, intervals = cew.synthesize_multiple(sys.argv[3], 0.0, 0, fragments)
with open(sys.argv[4], "w", encoding="utf-8") as f:
    f.write("%d\\n%d\\n" % (rate, count) + "".join("%.3f %.3f\\n" % (a, b) for a, b in intervals))
"""
# eSpeak synthesizes ~600x real time; a child that runs this long is wedged, not busy.
SYNTH_TIMEOUT_S = 120.0


def _runtime_configuration(tmp_dir: str) -> RuntimeConfiguration:
    # The cew_subprocess keys only matter if aeneas ever synthesizes on its own: then it
    # too uses a child process of this interpreter, never in-process eSpeak.
    return RuntimeConfiguration("|".join([
        f"mfcc_window_length={MFCC_WINDOW_LENGTH:.3f}",
        f"mfcc_window_shift={MFCC_WINDOW_SHIFT:.3f}",
        "cew_subprocess_enabled=True",
        f"cew_subprocess_path={sys.executable}",
        f"tmp_path={tmp_dir}",
    ]))


def _audio_file(samples: np.ndarray, sample_rate: int, rconf: RuntimeConfiguration) -> AudioFile:
    """Wraps in-memory mono samples as an aeneas AudioFile (what it would read from a wav)."""
    audio = AudioFile(rconf=rconf)
    audio.audio_format = "pcm16"
    audio.audio_channels = 1
    audio.audio_sample_rate = sample_rate
    audio.add_samples(np.asarray(samples, dtype=np.float64))
    return audio


def _synthesize(words: Sequence[str], voice: str, tmp_dir: str, timeout_s: float) -> tuple[np.ndarray, int, list[float]]:
    """Synthesizes one fragment per word in a child process.

    Returns (samples float64 ``[samples]``, sample rate, start time in seconds of each word
    in the synthetic speech).
    """
    import soundfile

    text_path = os.path.join(tmp_dir, "words.txt")
    wav_path = os.path.join(tmp_dir, "synth.wav")
    data_path = os.path.join(tmp_dir, "synth.txt")
    with open(text_path, "w", encoding="utf-8") as f:
        f.writelines(f"{voice} {word}\n" for word in words)
    cmd = [sys.executable, "-I", "-S", "-c", _SYNTH_CHILD, _AENEAS_PATH, text_path, wav_path, data_path]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False, text=True)
    except subprocess.TimeoutExpired:
        raise AlignmentError(f"speech synthesis did not finish within {timeout_s:.0f} s") from None
    try:
        with open(data_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        count = int(lines[1])
        anchors = [float(line.split(" ")[0]) for line in lines[2:2 + count]]
        samples, rate = soundfile.read(wav_path, dtype="float64")
    except (OSError, ValueError, IndexError, RuntimeError) as e:
        raise AlignmentError(
            f"speech synthesis failed (exit {proc.returncode}): {proc.stdout.strip()} {proc.stderr.strip()} ({e})") from None
    if count != len(words) or samples.ndim != 1 or samples.size == 0:
        raise AlignmentError(f"speech synthesis returned {count} of {len(words)} words, {samples.shape} samples")
    return samples, int(rate), anchors


def align_words(samples: np.ndarray, words: Sequence[str], *, sample_rate: int = SAMPLE_RATE,
                language: str = "eng", trim_db: float | None = 50.0,
                timeout_s: float = SYNTH_TIMEOUT_S) -> tuple[np.ndarray, np.ndarray]:
    """Times each word in the speech.

    Args:
      samples: mono float ``[samples]`` at ``sample_rate``.
      words: the N normalised words, in spoken order (no whitespace inside a word).
      sample_rate: rate of ``samples`` in Hz.
      language: an aeneas language code (ISO 639-3, e.g. "eng"), picks the eSpeak voice.
      trim_db: align only the span between the first and last 10 ms frame within
        ``trim_db`` of the loudest frame (times stay relative to ``samples``); None
        aligns the whole signal.
      timeout_s: limit for the synthesis child process.

    Returns:
      (starts, ends): float64 ``[N]`` seconds, non-decreasing, ``starts <= ends``. A word
      may come back with zero length; :func:`hmaf.data.features.word_frames` gives it a
      frame.

    Raises:
      AlignmentError: with the cause, when the words cannot be timed.
    """
    from hmaf.data.audio import resample

    if not words:
        raise AlignmentError("no words to align")
    if any(not w or w != w.strip() or any(c.isspace() for c in w) for w in words):
        raise AlignmentError("a word is empty or holds whitespace")
    try:
        voice = ESPEAKTTSWrapper.LANGUAGE_TO_VOICE_CODE[language]
    except KeyError:
        raise AlignmentError(f"language {language!r} has no eSpeak voice in aeneas") from None
    samples = np.asarray(samples, dtype=np.float32)
    offset = 0
    if trim_db is not None:
        begin, end = speech_span(samples, sample_rate, trim_db)
        if end - begin >= sample_rate // 25:  # else: (near) silence; align it all and let the caller judge
            samples, offset = samples[begin:end], begin
    with tempfile.TemporaryDirectory(prefix="hmaf-align-") as tmp_dir:
        rconf = _runtime_configuration(tmp_dir)
        synth, synth_rate, anchors = _synthesize(words, voice, tmp_dir, timeout_s)
        try:
            real_mfcc = AudioFileMFCC(audio_file=_audio_file(samples, sample_rate, rconf), rconf=rconf)
            real_mfcc.set_head_middle_tail(TimeValue("0.000"), None, TimeValue("0.000"))
            if synth_rate != sample_rate:
                # The stock task converts the synthetic wav to the real audio's rate (ffmpeg).
                synth = resample(synth, synth_rate, sample_rate)
            synth_mfcc = AudioFileMFCC(audio_file=_audio_file(synth, sample_rate, rconf), rconf=rconf)
            text_file = TextFile(rconf=rconf)
            text_file.read_from_list(list(words))
            text_file.set_language(language)
            synth_anchors = [[TimeValue(f"{a:.3f}"), f.identifier, f.filtered_text]
                             for a, f in zip(anchors, text_file.fragments)]
            boundaries = DTWAligner(real_mfcc, synth_mfcc, rconf=rconf).compute_boundaries(synth_anchors)
            fragments = AdjustBoundaryAlgorithm(rconf=rconf).adjust(
                aba_parameters=TaskConfiguration().aba_parameters(), real_wave_mfcc=real_mfcc,
                boundary_indices=boundaries, text_file=text_file, allow_arbitrary_shift=True)
            spans = [(float(f.begin), float(f.end)) for f in fragments.fragments
                     if f.fragment_type == SyncMapFragment.REGULAR]
        except (ValueError, TypeError, RuntimeError, MemoryError) as e:
            raise AlignmentError(f"aeneas failed: {type(e).__name__}: {e}") from None
    if len(spans) != len(words):
        raise AlignmentError(f"aeneas returned {len(spans)} intervals for {len(words)} words")
    starts, ends = (np.asarray(v, dtype=np.float64) for v in zip(*spans))
    if not (np.all(np.isfinite(starts)) and np.all(ends >= starts) and np.all(np.diff(starts) >= 0)):
        raise AlignmentError("aeneas returned intervals out of order")
    return starts + offset / sample_rate, ends + offset / sample_rate
