"""Speech synthesis with espeak-ng and the engine's own, exact word timings.

Also home of the types every engine shares (:class:`Prosody`, :class:`Segment`,
:class:`WordTiming`, :class:`Synthesis`, :class:`TTSError`) and of their finishing step
(:func:`frame_speech`); the engine interface over espeak-ng, festival and Flite is
:mod:`hmaf.corpora.engines`.

Text is given as :class:`Segment` s (plain text, optionally with word-level SSML
``<prosody>`` or ``<emphasis>``) plus an optional utterance-level :class:`Prosody`; it is
sent as SSML to libespeak-ng (through ctypes, in :mod:`hmaf.corpora.espeak_server`),
which returns the audio and its event stream. Word timings come from the engine:

* a word's **start** is the sample of its *word* event ("start of word" in
  ``speak_lib.h``; it includes e.g. the silent closure of a word-initial stop);
* a word's **end** is the next word's start when the two follow each other inside a
  clause (no pause between them); when the word ends a clause (an *end* event comes
  first: comma, full stop, end of text), the clause's pause is not counted in the word:
  its end is the last sample of the engine's clean output, before that end event, whose
  magnitude is within ``CLAUSE_END_DB`` (40 dB) of the utterance's peak.

A transcript word is a whitespace-separated token containing a letter or digit, with
leading/trailing punctuation removed (``"hell,"`` -> ``hell``). When espeak speaks one
token as several words (``"42"`` -> forty two), the token spans all of them; when it
fuses tokens into one word ("I am"), the later tokens are reported as ``untimed``.

Synthesis is deterministic: same segments, voice and options -> same samples.
"""

from __future__ import annotations

import atexit
import bisect
import dataclasses
import math
import os
import re
import subprocess
import sys
import threading
import unicodedata
from typing import Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from hmaf.corpora import espeak_server

EVENT_WORD = 1
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
CLAUSE_END_DB = 40.0
EMPHASIS_LEVELS = ("strong", "moderate", "none", "reduced")

# Characters SSML would need as entities: espeak reports text positions in the raw
# markup, so entities would shift every later position. They are spelled out instead.
_TEXT_REPLACEMENTS = {
    "&": " and ", "<": " ", ">": " ", "\u2018": "'", "\u2019": "'", "\u201c": '"',
    "\u201d": '"', "\u2013": " - ", "\u2014": " - ", "\u2026": "...", "\u00a0": " ",
}
_WORD_CHAR = re.compile(r"\w", re.UNICODE)
_EDGE_PUNCT = re.compile(r"^\W+|\W+$", re.UNICODE)


class TTSError(RuntimeError):
    """Synthesis failed (library missing, bad voice, engine error)."""


_SIGNED_PERCENT = re.compile(r"^[+-]\d+(\.\d+)?%$")
_PERCENT = re.compile(r"^\d+(\.\d+)?%$")


@dataclasses.dataclass(frozen=True)
class Prosody:
    """SSML ``<prosody>`` attributes, as percentages (so that they compose).

    ``pitch="+30%"`` (base pitch), ``range="+50%"`` (pitch range) and ``volume="+40%"``
    are signed relative changes; ``rate="120%"`` is a speed multiplier. None leaves one
    unchanged.
    """
    pitch: str | None = None
    range: str | None = None
    rate: str | None = None
    volume: str | None = None

    def __post_init__(self) -> None:
        for name in ("pitch", "range", "volume"):
            value = getattr(self, name)
            if value is not None and not _SIGNED_PERCENT.match(value):
                raise ValueError(f"prosody {name} must be a signed percentage like '+20%', got {value!r}")
        if self.rate is not None and not _PERCENT.match(self.rate):
            raise ValueError(f"prosody rate must be a percentage like '120%', got {self.rate!r}")

    def attributes(self) -> str:
        items = [(k, v) for k, v in dataclasses.asdict(self).items() if v is not None]
        return "".join(f" {k}={quoteattr(str(v))}" for k, v in items)

    def is_plain(self) -> bool:
        return not self.attributes()

    def then(self, inner: "Prosody | None") -> "Prosody":
        """This prosody with ``inner`` applied on top (what nesting ``inner`` would do)."""
        if inner is None:
            return self

        def factor(value: str | None) -> float:
            return 1.0 + float(value[:-1]) / 100.0 if value else 1.0

        def signed(a: str | None, b: str | None) -> str | None:
            return None if a is None and b is None else f"{(factor(a) * factor(b) - 1) * 100:+.0f}%"

        rate = (None if self.rate is None and inner.rate is None else
                f"{float((self.rate or '100%')[:-1]) * float((inner.rate or '100%')[:-1]) / 100:.0f}%")
        return Prosody(pitch=signed(self.pitch, inner.pitch), range=signed(self.range, inner.range),
                       rate=rate, volume=signed(self.volume, inner.volume))


@dataclasses.dataclass(frozen=True)
class Segment:
    """A piece of text, delivered with optional word-level prosody and/or emphasis."""
    text: str
    prosody: Prosody | None = None
    emphasis: str | None = None  # one of EMPHASIS_LEVELS


@dataclasses.dataclass(frozen=True)
class WordTiming:
    word: str
    start: float  # seconds from the start of the written audio
    end: float


@dataclasses.dataclass
class Synthesis:
    """One synthesised utterance.

    audio: float32 ``[samples]`` in [-1, 1] at ``sample_rate``.
    words: the timed transcript words in order; ``untimed`` lists transcript words the
    engine emitted no word event for (rare: then ``words`` lacks them); ``stray`` the
    markup text of word events outside every transcript word (the engine spoke something
    that is not in the transcript, e.g. punctuation read aloud).
    """
    audio: np.ndarray
    sample_rate: int
    transcript: str
    words: list[WordTiming]
    untimed: list[str]
    stray: list[str]
    ssml: str
    voice: str

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def write_wav(self, path: str | os.PathLike) -> None:
        """Writes 16-bit PCM WAV atomically (temp file in the same folder, then rename)."""
        import soundfile as sf

        from hmaf.io import atomic_path

        with atomic_path(path) as tmp:
            sf.write(tmp, self.audio, self.sample_rate, subtype="PCM_16", format="WAV")


def clean_text(text: str) -> str:
    """NFC text without SSML-special characters, typographic quotes/dashes made ASCII."""
    text = unicodedata.normalize("NFC", text)
    for old, new in _TEXT_REPLACEMENTS.items():
        text = text.replace(old, new)
    return " ".join(text.split())


def transcript_words(text: str) -> list[str]:
    """The words of a transcript as this module times them (see the module docstring)."""
    return [_EDGE_PUNCT.sub("", t) for t in text.split() if _WORD_CHAR.search(t)]


LAYOUTS = ("nested", "flat")


def build_ssml(segments: Sequence[Segment | str], utterance: Prosody | None = None,
               layout: str = "nested") -> tuple[str, str, list[tuple[str, int, int]]]:
    """SSML for the segments.

    Returns (ssml, transcript, tokens) where tokens are (word, start, end) character
    spans of each transcript word inside ``ssml`` (for mapping engine events back).

    layout "nested" wraps the text in one element with the utterance prosody; "flat"
    composes the utterance prosody into each segment's own element instead
    (:meth:`Prosody.then`). espeak-ng 1.51 drops text from some SSML shapes (measured:
    three sibling 4-attribute elements lost all but the last word), and
    :func:`synthesize` tries the other layout when one fails. Shapes always avoided:
    * punctuation that ends the whole text, standing after a closing tag, is read aloud
      ("dot"): it goes inside the last segment's element;
    * punctuation inside an element followed by more text stretches the element over that
      text: a segment's leading punctuation therefore stays outside, between elements.
    """
    pieces: list[list[str]] = []  # [opening, text, closing, punctuation after it]
    items = [Segment(seg) if isinstance(seg, str) else seg for seg in segments]
    for k, seg in enumerate(items):
        text = clean_text(seg.text)
        lead = re.match(r"[^\w\s]+", text)
        if lead and pieces:
            rest = text[lead.end():].strip()
            if not rest and all(not _WORD_CHAR.search(clean_text(x.text)) for x in items[k + 1:]):
                pieces[-1][1] += pieces[-1][3] + lead.group()  # the text's final punctuation
                pieces[-1][3] = ""
            else:
                pieces[-1][3] += lead.group()
            text = rest
        if not text:
            continue
        if seg.emphasis is not None and seg.emphasis not in EMPHASIS_LEVELS:
            raise ValueError(f"emphasis must be one of {EMPHASIS_LEVELS}, got {seg.emphasis!r}")
        prosody = (utterance.then(seg.prosody) if utterance is not None and layout == "flat"
                   else seg.prosody)
        opening, closing = "", ""
        if seg.emphasis is not None:
            opening += f'<emphasis level="{seg.emphasis}">'
            closing = "</emphasis>" + closing
        if prosody is not None and not prosody.is_plain():
            opening += f"<prosody{prosody.attributes()}>"
            closing = "</prosody>" + closing
        pieces.append([opening, text, closing, ""])
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    head = "<speak>"
    if layout == "nested" and utterance is not None and not utterance.is_plain():
        head += f"<prosody{utterance.attributes()}>"
    parts, length, tokens, words = [head], len(head), [], []
    for i, (opening, text, closing, after) in enumerate(pieces):
        offset = length + (1 if i else 0) + len(opening)
        for match in re.finditer(r"\S+", text):
            if _WORD_CHAR.search(match.group()):
                tokens.append((_EDGE_PUNCT.sub("", match.group()),
                               offset + match.start(), offset + match.end()))
        parts.append((" " if i else "") + opening + text + closing + after)
        length += len(parts[-1])
        words.append(text + after)
    if layout == "nested" and utterance is not None and not utterance.is_plain():
        parts.append("</prosody>")
    parts.append("</speak>")
    return "".join(parts), " ".join(words), tokens


def word_spans(events: Sequence[tuple[int, int, int, int, str]],
               tokens: Sequence[tuple[str, int, int]],
               pcm: np.ndarray) -> list[tuple[int, int] | None]:
    """(start, end) sample spans of each token from the engine's events and clean audio.

    events: (type, 1-based text position, length, sample, name) in engine order.
    tokens: (word, start, end) character spans, sorted.
    pcm: the engine's output ``[samples]`` (no padding, no noise), for clause ends.
    Returns None for a token that no word event points into. Boundaries are defined in
    the module docstring.
    """
    starts = [t[1] for t in tokens]
    onset: list[int | None] = [None] * len(tokens)
    order: list[int] = []  # tokens in the order they were spoken
    boundary: dict[int, tuple[int, bool]] = {}  # token -> (sample, ends a clause)
    current: int | None = None
    for kind, position, length, sample, _ in events:
        if kind == EVENT_WORD:
            i = bisect.bisect_right(starts, position - 1) - 1
            token = i if i >= 0 and position - 1 < tokens[i][2] else None
            if (token is not None and token == current and token > 0 and onset[token - 1] is None
                    and length > 0 and (len(order) < 2 or order[-2] < token - 1)):
                # espeak-ng's text positions can run a few characters late after a
                # sentence end between SSML elements ("... </prosody>. <prosody>I think"
                # gives "I" the position of "think"): the first of two events pointing
                # at one token then belongs to the untimed token before it.
                order.insert(len(order) - 1, token - 1)
                onset[token - 1], onset[token] = onset[token], sample
                boundary[token - 1] = (sample, False)
                continue
            if token is None or onset[token] is not None:
                continue  # one token spoken as several words ("42"), or a spurious event
            if current is not None and current not in boundary:
                boundary[current] = (sample, False)
            onset[token] = sample
            order.append(token)
            current = token
        elif kind in (EVENT_END, EVENT_MSG_TERMINATED):
            if current is not None and current not in boundary:
                boundary[current] = (sample, True)
    magnitude = np.abs(pcm)
    threshold = float(magnitude.max(initial=0.0)) * 10.0 ** (-CLAUSE_END_DB / 20.0)
    spans: list[tuple[int, int] | None] = [None] * len(tokens)
    for token in order:
        start = onset[token]
        end, clause_end = boundary.get(token, (len(pcm), True))
        end = min(max(end, start), len(pcm))
        if clause_end:
            loud = np.flatnonzero(magnitude[start:end] > threshold)
            if loud.size:
                end = start + int(loud[-1]) + 1
        spans[token] = (start, max(end, start + 1))
    return spans


def stray_word_events(events: Sequence[tuple[int, int, int, int, str]],
                      tokens: Sequence[tuple[str, int, int]], ssml: str) -> list[str]:
    """Text of the word events that point into no transcript word (empty ones ignored)."""
    starts = [t[1] for t in tokens]
    stray = []
    for kind, position, length, _, _ in events:
        if kind == EVENT_WORD and length > 0:
            i = bisect.bisect_right(starts, position - 1) - 1
            if i < 0 or position - 1 >= tokens[i][2]:
                stray.append(ssml[position - 1:position - 1 + length])
    return stray


class Engine:
    """Client of one espeak server process (started lazily, thread-safe, reusable)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.native_rate = 0
        self.version = ""

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, espeak_server.__file__], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, close_fds=True)
        hello = espeak_server.read_frame(self._proc.stdout.fileno())
        if not hello or not hello.get("ok"):
            self.close()
            raise TTSError("espeak-ng could not start: "
                           + (hello or {}).get("error", "server exited"))
        self.native_rate = int(hello["sample_rate"])
        self.version = hello["version"]

    def request(self, ssml: str, voice: str) -> dict:
        """Raw reply of the server (see :mod:`hmaf.corpora.espeak_server`)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            espeak_server.write_frame(self._proc.stdin.fileno(), {"ssml": ssml, "voice": voice})
            reply = espeak_server.read_frame(self._proc.stdout.fileno())
        if reply is None:
            self.close()
            raise TTSError("espeak server exited while synthesising")
        if not reply["ok"]:
            raise TTSError(f"espeak-ng failed on voice {voice!r}: {reply['error']}")
        return reply

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_default_engine: Engine | None = None


def default_engine() -> Engine:
    global _default_engine
    if _default_engine is None:
        _default_engine = Engine()
        atexit.register(_default_engine.close)
    return _default_engine


def _resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return audio
    from scipy.signal import resample_poly

    g = math.gcd(rate_in, rate_out)
    return resample_poly(audio, rate_out // g, rate_in // g).astype(np.float32)


def frame_speech(audio: np.ndarray, rate: int, *, lead_s: float, trail_s: float, noise_dbfs: float | None,
                 seed: int) -> tuple[np.ndarray, int]:
    """Every engine's finishing step: ``lead_s``/``trail_s`` seconds of silence around the
    speech ``[samples]``, optional white noise at ``noise_dbfs`` (seeded), clipped to [-1, 1].

    Returns:
      (float32 audio, the lead in samples: word times shift by ``lead / rate``).
    """
    lead, trail = int(round(lead_s * rate)), int(round(trail_s * rate))
    audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(trail, np.float32)])
    if noise_dbfs is not None:
        rng = np.random.default_rng(seed)
        audio = audio + rng.normal(0.0, 10.0 ** (noise_dbfs / 20.0), audio.shape).astype(np.float32)
    return np.clip(audio, -1.0, 1.0).astype(np.float32), lead


def synthesize(segments: str | Sequence[Segment | str], voice: str = "en", *,
               utterance: Prosody | None = None, sample_rate: int | None = 16000,
               lead_s: float = 0.0, trail_s: float = 0.0, noise_dbfs: float | None = None,
               seed: int = 0, engine: Engine | None = None) -> Synthesis:
    """Synthesises segments with espeak-ng and times every transcript word.

    segments: plain text, or Segments (word-level prosody/emphasis) joined by spaces.
    voice: espeak-ng voice, e.g. ``"en"``, ``"en+f3"``, ``"en-us+m2"``.
    sample_rate: output rate (None: the engine's native 22050 Hz).
    lead_s/trail_s: silence added before/after (word times shift by ``lead_s``).
    noise_dbfs: optional white-noise floor (RMS in dB full scale), seeded by ``seed``.
    """
    if isinstance(segments, str):
        segments = [Segment(segments)]
    engine = engine or default_engine()
    best = None
    for layout in LAYOUTS:
        ssml, transcript, tokens = build_ssml(segments, utterance, layout)
        if not tokens:
            raise TTSError(f"nothing to say in {transcript!r}")
        reply = engine.request(ssml, voice)
        native = int(reply["sample_rate"])
        pcm = np.frombuffer(reply["audio"], dtype="<i2").astype(np.float32) / 32768.0
        spans = word_spans(reply["events"], tokens, pcm)
        stray = stray_word_events(reply["events"], tokens, ssml)
        # Words the engine skipped or made up: 0 for a complete rendering. A token fused
        # into its neighbour ("I am") stays untimed in every layout.
        faults = sum(span is None for span in spans) + len(stray)
        if best is None or faults < best[0]:
            best = (faults, ssml, transcript, tokens, native, pcm, spans, stray)
        if faults == 0:
            break
    _, ssml, transcript, tokens, native, pcm, spans, stray = best
    if pcm.size == 0:
        raise TTSError(f"espeak-ng produced no audio for {transcript!r} (voice {voice!r})")
    if spans[0] is None or spans[-1] is None:
        raise TTSError(f"espeak-ng skipped part of {transcript!r} (voice {voice!r}) in every "
                       f"SSML layout")
    rate = sample_rate or native
    audio = _resample(pcm, native, rate)
    audio, lead = frame_speech(audio, rate, lead_s=lead_s, trail_s=trail_s, noise_dbfs=noise_dbfs, seed=seed)
    words, untimed = [], []
    for (word, _, _), span in zip(tokens, spans):
        if span is None:
            untimed.append(word)
        else:
            words.append(WordTiming(word, lead / rate + span[0] / native,
                                    lead / rate + span[1] / native))
    return Synthesis(audio=audio, sample_rate=rate, transcript=transcript, words=words,
                     untimed=untimed, stray=stray, ssml=ssml, voice=voice)
