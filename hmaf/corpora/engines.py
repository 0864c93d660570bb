"""One interface over the synthesis engines: espeak-ng, festival and Flite.

An engine turns text + delivery + emphasis into 16 kHz mono float speech and the true
start/end of every transcript word:

    engine.synthesize(segments, voice, *, utterance, sample_rate, lead_s, trail_s,
                      noise_dbfs, seed) -> hmaf.corpora.tts.Synthesis

* ``segments``: plain text or :class:`~hmaf.corpora.tts.Segment` s; a segment's own
  ``prosody`` (pitch, rate, volume) is the emphasis of its words;
* ``utterance``: the utterance delivery, a :class:`~hmaf.corpora.tts.Prosody` (pitch
  mean %, pitch range %, rate %, volume %), the same percentages for every engine (what
  each engine does with them: the engine's module docstring and docs/corpora.md);
* the result's ``words`` are the engine's own timings (no aligner involved).

espeak-ng and festival are long-running processes (espeak server, ``festival --pipe``),
Flite runs in-process (one synthesis at a time): open one engine per worker thread with
:func:`open_engine` and close it when done. A speaker is one voice of
one engine; its group name is ``"<engine>:<voice>"`` (:func:`group_of`).
"""

from __future__ import annotations

from typing import Protocol, Sequence

from hmaf.corpora import festival, flite, tts

ENGINES = ("espeak", "festival", "flite")


class Engine(Protocol):
    name: str

    def synthesize(self, segments: str | Sequence[tts.Segment | str], voice: str, *,
                   utterance: tts.Prosody | None = None, sample_rate: int | None = 16000,
                   lead_s: float = 0.0, trail_s: float = 0.0, noise_dbfs: float | None = None,
                   seed: int = 0) -> tts.Synthesis: ...

    def close(self) -> None: ...


class EspeakEngine:
    """espeak-ng behind the common interface (one espeak server process)."""

    name = "espeak"

    def __init__(self) -> None:
        self._server = tts.Engine()

    def synthesize(self, segments: str | Sequence[tts.Segment | str], voice: str = "en", *,
                   utterance: tts.Prosody | None = None, sample_rate: int | None = 16000,
                   lead_s: float = 0.0, trail_s: float = 0.0, noise_dbfs: float | None = None,
                   seed: int = 0) -> tts.Synthesis:
        return tts.synthesize(segments, voice, utterance=utterance, sample_rate=sample_rate,
                              lead_s=lead_s, trail_s=trail_s, noise_dbfs=noise_dbfs, seed=seed,
                              engine=self._server)

    def close(self) -> None:
        self._server.close()


def open_engine(name: str) -> Engine:
    """A new engine of ``name`` (its process starts on first use)."""
    if name == "espeak":
        return EspeakEngine()
    if name == "festival":
        return festival.FestivalEngine()
    if name == "flite":
        return flite.FliteEngine()
    raise ValueError(f"unknown synthesis engine {name!r} (engines: {', '.join(ENGINES)})")


def parse_engines(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"espeak,festival"`` -> ("espeak", "festival"); ValueError for an unknown name."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise ValueError("--engines needs at least one engine")
    for name in names:
        if name not in ENGINES:
            raise ValueError(f"unknown synthesis engine {name!r} (engines: {', '.join(ENGINES)})")
    return tuple(dict.fromkeys(names))


def group_of(engine: str, voice: str) -> str:
    """The speaker/group name of one voice of one engine, e.g. ``festival:kal+p1``."""
    return f"{engine}:{voice}"


class EnginePool:
    """Engines of one worker thread, opened on first use, closed together."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}

    def get(self, name: str) -> Engine:
        if name not in self._engines:
            self._engines[name] = open_engine(name)
        return self._engines[name]

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
