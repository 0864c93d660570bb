"""Speech synthesis with espeak-ng and the engine's own, exact word timings.

Text is given as :class:`Segment` s (plain text, optionally with word-level SSML
``<prosody>`` or ``<emphasis>``) plus an optional utterance-level :class:`Prosody`; it is
sent as SSML to libespeak-ng (through ctypes, in :mod:`hmaf.corpora.espeak_server`),
which returns the audio and its event stream. Word timings come from those events:

* the library emits a *word* event ("start of word", with the word's text position and
  sample index) followed by one *phoneme* event per phoneme (sample where it starts);
  phoneme names starting with ``_`` are pauses;
* a word's **start** is its word event (which includes e.g. the silent closure of a
  word-initial stop; the phoneme event of /g/ marks its burst), or, when a pause comes
  between the word event and the word's first phoneme, that phoneme's start;
* a word's **end** is the first of: the next word's word event, a pause phoneme after
  the word's own phonemes, an end-of-clause event, the end of the audio. So words
  joined without a pause share a boundary, and a pause (after a comma, at the end) is
  never counted in the word.

A transcript word is a whitespace-separated token containing a letter or digit, with
leading/trailing punctuation removed (``"hell,"`` -> ``hell``). When espeak speaks one
token as several words (``"42"`` -> forty two), the token spans all of them.

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
EVENT_PHONEME = 7
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


@dataclasses.dataclass(frozen=True)
class Prosody:
    """SSML ``<prosody>`` attributes, as espeak-ng understands them.

    Values are SSML strings: ``pitch="+30%"`` (base pitch), ``range="+50%"`` (pitch
    range), ``rate="120%"`` (speed), ``volume="+40%"``. None leaves one unchanged.
    """
    pitch: str | None = None
    range: str | None = None
    rate: str | None = None
    volume: str | None = None

    def attributes(self) -> str:
        items = [(k, v) for k, v in dataclasses.asdict(self).items() if v is not None]
        return "".join(f" {k}={quoteattr(str(v))}" for k, v in items)

    def is_plain(self) -> bool:
        return not self.attributes()


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
    engine emitted no word event for (rare: then ``words`` lacks them).
    """
    audio: np.ndarray
    sample_rate: int
    transcript: str
    words: list[WordTiming]
    untimed: list[str]
    ssml: str
    voice: str

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def write_wav(self, path: str | os.PathLike) -> None:
        """Writes 16-bit PCM WAV atomically (temp file in the same folder, then rename)."""
        import soundfile as sf

        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            sf.write(tmp, self.audio, self.sample_rate, subtype="PCM_16", format="WAV")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def clean_text(text: str) -> str:
    """NFC text without SSML-special characters, typographic quotes/dashes made ASCII."""
    text = unicodedata.normalize("NFC", text)
    for old, new in _TEXT_REPLACEMENTS.items():
        text = text.replace(old, new)
    return " ".join(text.split())


def transcript_words(text: str) -> list[str]:
    """The words of a transcript as this module times them (see the module docstring)."""
    return [_EDGE_PUNCT.sub("", t) for t in text.split() if _WORD_CHAR.search(t)]


def build_ssml(segments: Sequence[Segment | str], utterance: Prosody | None = None
               ) -> tuple[str, str, list[tuple[str, int, int]]]:
    """SSML for the segments.

    Returns (ssml, transcript, tokens) where tokens are (word, start, end) character
    spans of each transcript word inside ``ssml`` (for mapping engine events back).
    """
    parts = ["<speak>"]
    if utterance is not None and not utterance.is_plain():
        parts.append(f"<prosody{utterance.attributes()}>")
    length = sum(map(len, parts))
    tokens: list[tuple[str, int, int]] = []
    texts: list[str] = []
    for seg in segments:
        seg = Segment(seg) if isinstance(seg, str) else seg
        text = clean_text(seg.text)
        if not text:
            continue
        if seg.emphasis is not None and seg.emphasis not in EMPHASIS_LEVELS:
            raise ValueError(f"emphasis must be one of {EMPHASIS_LEVELS}, got {seg.emphasis!r}")
        # Punctuation closing a sentence sticks to the word before it ("great.").
        joiner = " " if texts and text[0] not in ".,!?;:" else ""
        opening, closing = joiner, ""
        if seg.emphasis is not None:
            opening += f'<emphasis level="{seg.emphasis}">'
            closing = "</emphasis>" + closing
        if seg.prosody is not None and not seg.prosody.is_plain():
            opening += f"<prosody{seg.prosody.attributes()}>"
            closing = "</prosody>" + closing
        offset = length + len(opening)
        for match in re.finditer(r"\S+", text):
            if _WORD_CHAR.search(match.group()):
                tokens.append((_EDGE_PUNCT.sub("", match.group()),
                               offset + match.start(), offset + match.end()))
        parts.append(opening + text + closing)
        length += len(parts[-1])
        texts.append(joiner + text)
    if utterance is not None and not utterance.is_plain():
        parts.append("</prosody>")
    parts.append("</speak>")
    return "".join(parts), "".join(texts), tokens


def word_spans(events: Sequence[tuple[int, int, int, int, str]],
               tokens: Sequence[tuple[str, int, int]],
               num_samples: int) -> list[tuple[int, int] | None]:
    """(start, end) sample spans of each token from the engine's event stream.

    events: (type, 1-based text position, length, sample, phoneme name) in engine order.
    tokens: (word, start, end) character spans, sorted. Returns None for a token that no
    word event points into. Boundaries are defined in the module docstring.
    """
    starts = [t[1] for t in tokens]
    onset: list[int | None] = [None] * len(tokens)
    offset: list[int | None] = [None] * len(tokens)
    current: int | None = None  # token being spoken (after its word event, before its end)
    spoken = False  # whether ``current`` has had a non-pause phoneme yet
    leading_pause = False  # a pause came between ``current``'s word event and its sound

    def close(sample: int) -> None:
        nonlocal current
        if current is not None:
            offset[current] = sample
            current = None

    for kind, position, _, sample, name in events:
        if kind == EVENT_WORD:
            i = bisect.bisect_right(starts, position - 1) - 1
            token = i if i >= 0 and position - 1 < tokens[i][2] else None
            if token is not None and token == current:
                continue  # one token spoken as several words ("42"): still the same word
            close(sample)
            current, spoken, leading_pause = token, False, False
            if token is not None and onset[token] is None:
                onset[token] = sample
        elif kind == EVENT_PHONEME and name:
            if current is None:
                continue
            if name.startswith("_"):  # a pause: ends a spoken word, or delays the onset
                if spoken:
                    close(sample)
                else:
                    leading_pause = True
            else:
                if leading_pause and not spoken:
                    onset[current] = sample
                spoken = True
                offset[current] = None
        elif kind in (EVENT_END, EVENT_MSG_TERMINATED):
            close(sample)
    close(num_samples)
    return [None if a is None else (a, max(a, b if b is not None else num_samples))
            for a, b in zip(onset, offset)]


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
    ssml, transcript, tokens = build_ssml(segments, utterance)
    if not tokens:
        raise TTSError(f"nothing to say in {transcript!r}")
    engine = engine or default_engine()
    reply = engine.request(ssml, voice)
    native = int(reply["sample_rate"])
    pcm = np.frombuffer(reply["audio"], dtype="<i2").astype(np.float32) / 32768.0
    if pcm.size == 0:
        raise TTSError(f"espeak-ng produced no audio for {transcript!r} (voice {voice!r})")
    spans = word_spans(reply["events"], tokens, len(pcm))
    rate = sample_rate or native
    audio = _resample(pcm, native, rate)
    lead, trail = int(round(lead_s * rate)), int(round(trail_s * rate))
    audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(trail, np.float32)])
    if noise_dbfs is not None:
        rng = np.random.default_rng(seed)
        audio = audio + rng.normal(0.0, 10.0 ** (noise_dbfs / 20.0), audio.shape).astype(np.float32)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    words, untimed = [], []
    for (word, _, _), span in zip(tokens, spans):
        if span is None:
            untimed.append(word)
        else:
            words.append(WordTiming(word, lead / rate + span[0] / native,
                                    lead / rate + span[1] / native))
    return Synthesis(audio=audio, sample_rate=rate, transcript=transcript, words=words,
                     untimed=untimed, ssml=ssml, voice=voice)
