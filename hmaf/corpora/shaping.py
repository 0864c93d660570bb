"""Delivery shaping shared by the festival and Flite engines (hmaf.corpora.festival, .flite).

Both engines take the same inputs as espeak-ng's SSML (:class:`hmaf.corpora.tts.Prosody`
percentages) and shape parts of the delivery outside the synthesizer, the same way:

* :func:`tokens_of`: the transcript as whitespace tokens, each with the word-level emphasis
  factors (pitch, duration, gain) of its segment;
* :func:`token_spans`: the engine's words mapped back onto the tokens ("42" -> forty two
  spans both words);
* :func:`level`, then ``x (1 + volume%)``, :func:`word_gain` and :func:`soft_limit`: every
  utterance is brought to one active-speech level (:data:`REFERENCE_DBFS`, espeak-ng's
  typical level, so that loudness means the same for every engine), scaled by its volume,
  emphasised words get their gain, and peaks are bent rather than clipped;
* :func:`psola`: pitch mean/range and word emphasis by Praat's PSOLA, for voices whose own
  F0 model does not take them (festival's HTS voice, Flite's ``rms``);
* :func:`parse_voice`: a voice name with an optional persona (``kal+p1``), the further
  speakers both engines make of one voice.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from typing import Mapping, Sequence

import numpy as np

from hmaf.corpora import tts

SAMPLE_RATE = 16000
# Default emphasis of an SSML-style level (pitch %, rate %, volume %), for Segment.emphasis.
EMPHASIS_LEVELS = {"strong": (40.0, 75.0, 50.0), "moderate": (20.0, 88.0, 25.0),
                   "none": (0.0, 100.0, 0.0), "reduced": (-10.0, 110.0, -20.0)}
REFERENCE_DBFS = -19.0  # active-speech RMS every utterance is brought to before its gain (espeak-ng level)
RAMP_S = 0.01
LIMIT_KNEE = 0.8  # above this magnitude the waveform is compressed (soft_limit)
MIN_F0 = 40.0
_PRAAT_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class VoiceSpec:
    """One speaker of an engine: a voice, its kind, and a persona's pitch and rate."""

    name: str  # e.g. "kal+p1"
    base: str  # the engine's voice, e.g. "kal"
    kind: str  # the voice's kind in the engine's VOICES table ("diphone", "hts", ...)
    pitch_factor: float
    rate_factor: float


def parse_voice(engine: str, voice: str, voices: Mapping[str, tuple[str, str]],
                personas: Mapping[str, tuple[float, float]]) -> VoiceSpec:
    """``base`` or ``base+persona`` against an engine's ``voices`` (``base -> (engine's
    own name, kind)``) and ``personas`` (``name -> (pitch factor, rate factor)``); an
    unknown voice or persona raises :class:`hmaf.corpora.tts.TTSError` naming ``engine``."""
    base, _, persona = voice.partition("+")
    if base not in voices:
        raise tts.TTSError(f"unknown {engine} voice {voice!r} (voices: {sorted(voices)}, "
                           f"optionally +{'|+'.join(personas)})")
    if persona and persona not in personas:
        raise tts.TTSError(f"unknown {engine} persona {persona!r} in {voice!r} "
                           f"(personas: {sorted(personas)})")
    pitch, rate = personas[persona] if persona else (1.0, 1.0)
    return VoiceSpec(voice, base, voices[base][1], pitch, rate)


def percent_factor(value: str | None) -> float:
    return 1.0 + float(value[:-1]) / 100.0 if value else 1.0


def rate_factor(value: str | None) -> float:
    return float(value[:-1]) / 100.0 if value else 1.0



@dataclasses.dataclass(frozen=True)
class Token:
    text: str
    pitch: float  # factor
    duration: float  # factor (> 1: slower)
    gain: float  # factor


def tokens_of(segments: str | Sequence[tts.Segment | str]) -> tuple[str, list[Token]]:
    """(transcript, whitespace tokens with their word-level emphasis factors) of a text or
    its segments; a transcript without a word raises :class:`hmaf.corpora.tts.TTSError`."""
    if isinstance(segments, str):
        segments = [tts.Segment(segments)]
    words, tokens = [], []
    for seg in segments:
        seg = tts.Segment(seg) if isinstance(seg, str) else seg
        text = tts.clean_text(seg.text)
        if not text:
            continue
        pitch, duration, gain = 1.0, 1.0, 1.0
        if seg.emphasis is not None:
            if seg.emphasis not in EMPHASIS_LEVELS:
                raise ValueError(f"emphasis must be one of {tuple(EMPHASIS_LEVELS)}, got {seg.emphasis!r}")
            p, r, v = EMPHASIS_LEVELS[seg.emphasis]
            pitch, duration, gain = 1 + p / 100, 100 / r, 1 + v / 100
        if seg.prosody is not None:
            pitch *= percent_factor(seg.prosody.pitch)
            duration /= rate_factor(seg.prosody.rate)
            gain *= percent_factor(seg.prosody.volume)
        # Leading punctuation of a segment belongs to the previous word (", but"): glue it
        # on, as espeak's builder does, so the token split matches festival's.
        lead = re.match(r"[^\w\s]+(?=\s|$)", text)
        if lead and tokens:
            last = tokens[-1]
            tokens[-1] = dataclasses.replace(last, text=last.text + lead.group())
            words[-1] += lead.group()
            text = text[lead.end():].strip()
            if not text:
                continue
        for t in text.split():
            tokens.append(Token(t, pitch, duration, gain))
        words.append(text)
    transcript = " ".join(words)
    if not tts.transcript_words(transcript):
        raise tts.TTSError(f"nothing to say in {transcript!r}")
    return transcript, tokens



def token_spans(words: Sequence[tuple[int, float, float]], count: int
                 ) -> list[tuple[float, float] | None]:
    """(start, end) seconds of each token: the union of its festival words."""
    spans: list[tuple[float, float] | None] = [None] * count
    for index, start, end in words:
        if 0 <= index < count and end > start:
            old = spans[index]
            spans[index] = (start, end) if old is None else (min(old[0], start), max(old[1], end))
    return spans


def level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """``audio`` scaled so that its active frames (within 40 dB of the loudest) have RMS ``dbfs``."""
    frame = 320
    n = len(audio) // frame
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(audio[:n * frame].reshape(n, frame) ** 2, axis=1))
    active = rms[rms > rms.max() * 0.01]
    level = float(np.sqrt(np.mean(active ** 2))) if active.size else 0.0
    if level <= 0:
        return audio
    return (audio * (10 ** (dbfs / 20) / level)).astype(np.float32)


def word_gain(audio: np.ndarray, spans: Sequence[tuple[float, float] | None],
               tokens: Sequence[Token]) -> np.ndarray:
    """Applies each emphasised token's gain over its span, with :data:`RAMP_S` ramps."""
    envelope = np.ones(len(audio), np.float32)
    ramp = int(RAMP_S * SAMPLE_RATE)
    for span, token in zip(spans, tokens):
        if span is None or token.gain == 1.0:
            continue
        a, b = int(span[0] * SAMPLE_RATE), min(len(audio), int(math.ceil(span[1] * SAMPLE_RATE)))
        shape = np.full(b - a, token.gain, np.float32)
        k = min(ramp, (b - a) // 2)
        if k:
            shape[:k] = np.linspace(1.0, token.gain, k)
            shape[-k:] = np.linspace(token.gain, 1.0, k)
        envelope[a:b] *= shape
    return (audio * envelope).astype(np.float32)


def soft_limit(audio: np.ndarray, knee: float = LIMIT_KNEE) -> np.ndarray:
    """Samples above ``knee`` bend smoothly towards 1 (tanh) instead of clipping: the
    loud deliveries stay loud without the hard-clipping distortion that would mark them."""
    magnitude = np.abs(audio)
    over = magnitude > knee
    if not over.any():
        return audio
    out = audio.copy()
    bent = knee + (1.0 - knee) * np.tanh((magnitude[over] - knee) / (1.0 - knee))
    out[over] = np.sign(audio[over]) * bent
    return out.astype(np.float32)


def psola(audio: np.ndarray, spans: list[tuple[float, float] | None], tokens: Sequence[Token],
           shift: float, spread: float) -> tuple[np.ndarray, list[tuple[float, float] | None]]:
    """Pitch mean/range and word emphasis by Praat's PSOLA; returns audio and moved spans.

    The pitch contour becomes ``mean*shift + (f0-mean)*spread``, times the token's pitch
    factor inside emphasised spans; the duration tier stretches those spans by the token's
    duration factor (linear 5 ms transitions). New word times come from the tier's own
    integral ("Get target duration"), so the timings follow the audio exactly.
    """
    import parselmouth
    from parselmouth.praat import call, run

    with _PRAAT_LOCK:
        # PSOLA draws random pulse positions in unvoiced stretches from Praat's global
        # generator: seed it (under a lock, as threads share it) so the output repeats.
        run("random_initializeWithSeedUnsafelyButPredictably (0)")
        try:
            return _psola_seeded(parselmouth, call, audio, spans, tokens, shift, spread)
        finally:
            run("random_initializeSafelyAndUnpredictably ()")


def _psola_seeded(parselmouth, call, audio: np.ndarray, spans: list[tuple[float, float] | None],
                  tokens: Sequence[Token], shift: float, spread: float
                  ) -> tuple[np.ndarray, list[tuple[float, float] | None]]:
    sound = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=SAMPLE_RATE)
    manipulation = call(sound, "To Manipulation", 0.01, 75, 600)
    pitch = call(manipulation, "Extract pitch tier")
    emphasised = [(span, t) for span, t in zip(spans, tokens)
                  if span is not None and (t.pitch != 1.0 or t.duration != 1.0)]
    if call(pitch, "Get number of points") > 0:
        mean = call(pitch, "Get mean (points)", 0, 0)
        factor = "1"
        for (a, b), t in emphasised:
            factor = f"(if x >= {a:.5f} and x < {b:.5f} then {t.pitch:.5f} else {factor} fi)"
        call(pitch, "Formula", f"max({MIN_F0}, ({mean:.4f}*{shift:.5f} + (self - {mean:.4f})*"
                               f"{spread:.5f}) * {factor})")
        call([pitch, manipulation], "Replace pitch tier")
    total = len(audio) / SAMPLE_RATE
    duration = call("Create DurationTier", "stretch", 0, total)
    call(duration, "Add point", 0, 1.0)
    edge = 0.005
    for (a, b), t in emphasised:
        call(duration, "Add point", max(0.0, a - edge), 1.0)
        call(duration, "Add point", a, t.duration)
        call(duration, "Add point", b, t.duration)
        call(duration, "Add point", min(total, b + edge), 1.0)
    call([duration, manipulation], "Replace duration tier")
    result = call(manipulation, "Get resynthesis (overlap-add)")
    out = np.asarray(result.values[0], np.float32)

    def moved(x: float) -> float:
        return float(call(duration, "Get target duration", 0, x))

    return out, [None if s is None else (moved(s[0]), moved(s[1])) for s in spans]
