"""Tests of hmaf.corpora.festival and the engine interface (hmaf.corpora.engines)."""

import numpy as np
import pytest
from engine_checks import check_emphasis, db, span

from hmaf.corpora import engines, festival, tts

pytestmark = pytest.mark.skipif(
    not festival.available(),
    reason="festival is not installed (tools/setup.sh installs festival festvox-kallpc16k "
           "festvox-kdlpc16k festvox-us-slt-hts)")

TEXT = "the quick brown fox, jumps over the lazy dog."
LEAD = 0.2


@pytest.fixture(scope="module")
def engine():
    with festival.FestivalEngine() as e:
        yield e


def _f0(audio: np.ndarray) -> float:
    import librosa

    f0 = librosa.yin(audio.astype(np.float64), fmin=60, fmax=450, sr=16000, frame_length=640)
    return float(np.median(f0))


@pytest.mark.parametrize("voice", ["kal", "ked", "slt"])
def test_word_timings_match_the_audio(engine, voice):
    syn = engine.synthesize(TEXT, voice, lead_s=LEAD, trail_s=0.1)
    assert [w.word for w in syn.words] == tts.transcript_words(TEXT)
    assert not syn.untimed and syn.sample_rate == 16000 and syn.audio.dtype == np.float32
    starts = np.array([w.start for w in syn.words])
    ends = np.array([w.end for w in syn.words])
    assert np.all(ends > starts) and np.all(starts[1:] >= ends[:-1] - 1e-6)
    assert starts[0] >= LEAD and ends[-1] <= syn.duration
    fox, jumps = syn.words[3], syn.words[4]
    assert jumps.start - fox.end > 0.05  # the comma's pause lies outside both words
    inside = db(np.concatenate([span(syn, w) for w in syn.words]))
    pause = syn.audio[int(fox.end * 16000) + 80:int(jumps.start * 16000) - 80]
    lead = syn.audio[:int(LEAD * 16000)]
    assert inside > db(pause) + 15 and inside > db(lead) + 40


def test_deterministic_whatever_came_before(engine):
    segs = ["what the hell,", tts.Segment("great", prosody=tts.Prosody(pitch="+50%", rate="70%"))]
    delivery = tts.Prosody(pitch="+10%", range="+40%", rate="115%", volume="+20%")
    first = {v: engine.synthesize(segs, v, utterance=delivery) for v in ("kal", "slt")}
    engine.synthesize("something else entirely, in between", "ked+p1",
                      utterance=tts.Prosody(rate="70%", pitch="-20%"))
    for voice in ("slt", "kal"):
        again = engine.synthesize(segs, voice, utterance=delivery)
        assert again.audio.tobytes() == first[voice].audio.tobytes()
        assert again.words == first[voice].words


@pytest.mark.parametrize("voice", ["kal", "slt"])
def test_emphasis_lengthens_raises_and_louder_the_word(engine, voice):
    check_emphasis(engine, voice, _f0)


@pytest.mark.parametrize("voice", ["ked", "slt"])
def test_utterance_delivery(engine, voice):
    base = engine.synthesize(TEXT, voice)
    fast = engine.synthesize(TEXT, voice, utterance=tts.Prosody(rate="140%"))
    high = engine.synthesize(TEXT, voice, utterance=tts.Prosody(pitch="+40%"))
    wide = engine.synthesize(TEXT, voice, utterance=tts.Prosody(range="+150%"))
    loud = engine.synthesize(TEXT, voice, utterance=tts.Prosody(volume="+60%"))
    duration = lambda s: s.words[-1].end - s.words[0].start  # noqa: E731
    assert duration(fast) < 0.85 * duration(base)
    assert _f0(high.audio) > 1.25 * _f0(base.audio)
    assert db(loud.audio) == pytest.approx(db(base.audio) + 20 * np.log10(1.6), abs=0.5)

    def f0_spread(s):
        import librosa

        f0, voiced, _ = librosa.pyin(s.audio.astype(np.float64), fmin=60, fmax=450, sr=16000,
                                     frame_length=640)
        return float(np.std(np.log2(f0[voiced])))
    assert f0_spread(wide) > 1.3 * f0_spread(base)


def test_personas_and_bad_voices(engine):
    base = engine.synthesize("hello there", "kal")
    p1 = engine.synthesize("hello there", "kal+p1")
    assert _f0(p1.audio) > 1.05 * _f0(base.audio)  # p1: pitch x1.12
    with pytest.raises(tts.TTSError, match="unknown festival voice"):
        engine.synthesize("hello", "nobody")
    with pytest.raises(tts.TTSError, match="persona"):
        engine.synthesize("hello", "kal+p99")


def test_numbers_span_their_words(engine):
    syn = engine.synthesize("we saw 42 dogs", "kal")
    assert [w.word for w in syn.words] == ["we", "saw", "42", "dogs"]
    forty_two = syn.words[2]
    assert forty_two.end - forty_two.start > 0.35  # "forty two": two festival words


def test_engine_interface_gives_both_engines_the_same_contract():
    for name, voice in (("espeak", "en+f3"), ("festival", "ked")):
        engine = engines.open_engine(name)
        try:
            syn = engine.synthesize(["what the", tts.Segment("hell", prosody=tts.Prosody(pitch="+40%")),
                                     "is this."], voice, utterance=tts.Prosody(rate="110%"),
                                    lead_s=0.1, noise_dbfs=-80.0, seed=3)
        finally:
            engine.close()
        assert engine.name == name
        assert [w.word for w in syn.words] == ["what", "the", "hell", "is", "this"]
        assert syn.sample_rate == 16000 and syn.words[0].start >= 0.1



def test_an_engine_nobody_closed_leaves_no_process_or_folder():
    import gc
    import os

    engine = festival.FestivalEngine()
    engine.synthesize("hello", "kal")
    proc, tmp = engine._proc, engine._tmp
    assert proc.poll() is None and os.path.isdir(tmp)
    del engine
    gc.collect()
    assert proc.poll() is not None and not os.path.exists(tmp)
    closed = festival.FestivalEngine()
    closed.synthesize("hello", "ked")
    proc = closed._proc
    closed.close()
    closed.close()  # twice is fine
    assert proc.poll() is not None
