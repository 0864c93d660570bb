"""Checks shared by the tests of the festival and Flite engines: signal measures and
what word emphasis must do to the emphasised word (and only to it)."""

from typing import Callable

import numpy as np
import pytest

from hmaf.corpora import tts


def db(x: np.ndarray) -> float:
    """Mean power in dB (full scale 1)."""
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12))


def span(syn, word) -> np.ndarray:
    """The samples of one timed word of a synthesis."""
    return syn.audio[int(word.start * syn.sample_rate):int(word.end * syn.sample_rate)]


def check_emphasis(engine, voice: str, f0: Callable[[np.ndarray], float]) -> None:
    """An emphasised word (+50 % pitch, 70 % rate, +60 % volume) is at least 25 % longer,
    20 % higher (``f0``: the median F0 of a stretch) and 2 dB louder than without it;
    every other word keeps its length."""
    plain = engine.synthesize(["my brother", "fixed", "the car today."], voice)
    emph = engine.synthesize(["my brother", tts.Segment("fixed", prosody=tts.Prosody(
        pitch="+50%", rate="70%", volume="+60%")), "the car today."], voice)
    a, b = plain.words[2], emph.words[2]
    assert a.word == b.word == "fixed"
    assert (b.end - b.start) > 1.25 * (a.end - a.start)
    assert f0(span(emph, b)) > 1.2 * f0(span(plain, a))
    assert db(span(emph, b)) > db(span(plain, a)) + 2.0
    for p, e in zip(plain.words[:2] + plain.words[3:], emph.words[:2] + emph.words[3:]):
        assert (e.end - e.start) == pytest.approx(p.end - p.start, rel=0.15, abs=0.02)
