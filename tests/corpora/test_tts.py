"""Tests of hmaf.corpora.tts: espeak-ng synthesis and its word timings."""

import numpy as np
import pytest

from hmaf.corpora import tts


@pytest.fixture(scope="module")
def engine():
    with tts.Engine() as e:
        yield e


def test_word_events_time_every_word(engine):
    text = "the quick brown fox jumps over the lazy dog"
    syn = tts.synthesize(text, "en+m2", engine=engine)
    assert [w.word for w in syn.words] == text.split()
    assert not syn.untimed and not syn.stray
    starts = np.array([w.start for w in syn.words])
    ends = np.array([w.end for w in syn.words])
    assert np.all(ends > starts) and np.all(starts[1:] >= ends[:-1])
    assert ends[-1] <= syn.duration
    assert syn.sample_rate == 16000 and syn.audio.dtype == np.float32


def test_deterministic_whatever_came_before(engine):
    segs = ["what the hell,", tts.Segment("great", prosody=tts.Prosody(pitch="+60%", rate="70%"))]
    a = tts.synthesize(segs, "en+f3", engine=engine)
    tts.synthesize("something else entirely, spoken in between", "en+m3", engine=engine)
    b = tts.synthesize(segs, "en+f3", engine=engine)
    assert np.array_equal(a.audio, b.audio) and a.words == b.words


def test_clause_pause_is_not_part_of_the_word(engine):
    syn = tts.synthesize("what the hell, this is great.", "en", engine=engine)
    hell, this = syn.words[2], syn.words[3]
    assert this.start - hell.end > 0.05  # the comma's pause lies between the two words
    assert syn.words[0].end == syn.words[1].start  # no pause: shared boundary


def test_lead_silence_shifts_timings(engine):
    a = tts.synthesize("hello there", "en", engine=engine)
    b = tts.synthesize("hello there", "en", lead_s=0.25, engine=engine)
    assert b.words[0].start == pytest.approx(a.words[0].start + 0.25, abs=1e-3)


def test_numbers_and_fused_words(engine):
    syn = tts.synthesize("we saw 42 dogs", "en", engine=engine)
    assert [w.word for w in syn.words] == ["we", "saw", "42", "dogs"]  # "forty two": one token
    fused = tts.synthesize("I am so awake", "en", engine=engine)
    assert fused.untimed == ["am"]  # espeak-ng speaks "I am" as one word


def test_final_punctuation_after_markup_is_not_read_aloud(engine):
    segs = ["he seems", tts.Segment("devastated", prosody=tts.Prosody(pitch="+50%")), "."]
    syn = tts.synthesize(segs, "en", utterance=tts.Prosody(rate="90%"), engine=engine)
    assert syn.transcript == "he seems devastated."
    assert not syn.stray and len(syn.words) == 3


def test_layout_fallback_recovers_dropped_text(engine):
    # espeak-ng 1.51 speaks only "dinner" of the flat form of this text.
    utt = tts.Prosody(pitch="+10%", range="-14%", rate="100%", volume="-9%")
    emph = tts.Prosody(pitch="+48%", rate="69%", volume="+75%")
    segs = ["Apparently my brother locked the", tts.Segment("lamp", prosody=emph), "before dinner."]
    ssml, _, _ = tts.build_ssml(segs, utt, layout="flat")
    dropped = engine.request(ssml, "en")
    assert sum(e[0] == tts.EVENT_WORD for e in dropped["events"]) < 3
    syn = tts.synthesize(segs, "en", utterance=utt, engine=engine)
    assert len(syn.words) == 8 and not syn.untimed


def test_build_ssml_token_spans_point_at_words():
    segs = ["What the hell,", tts.Segment("great", emphasis="strong"), ". Fine & dandy"]
    ssml, transcript, tokens = tts.build_ssml(segs, tts.Prosody(pitch="+10%"))
    assert transcript == "What the hell, great. Fine and dandy"
    assert [t[0] for t in tokens] == ["What", "the", "hell", "great", "Fine", "and", "dandy"]
    for word, a, b in tokens:
        assert ssml[a:b].strip(",.") == word


def test_prosody_composition_and_validation():
    combined = tts.Prosody(pitch="+10%", rate="120%").then(tts.Prosody(pitch="+50%", rate="50%", volume="-20%"))
    assert combined == tts.Prosody(pitch="+65%", rate="60%", volume="-20%")
    with pytest.raises(ValueError):
        tts.Prosody(pitch="high")


def test_word_spans_from_events():
    tokens = [("a", 0, 1), ("b", 2, 3), ("c", 4, 5)]
    pcm = np.zeros(1000, np.float32)
    pcm[100:400] = 0.5  # a, b spoken; silence (a pause) 400..600; c from 600
    pcm[600:900] = 0.5
    events = [(1, 1, 1, 100, ""), (1, 3, 1, 250, ""), (5, 4, 0, 600, ""),
              (1, 5, 1, 600, ""), (1, 3, 0, 950, ""), (5, 6, 0, 1000, "")]
    assert tts.word_spans(events, tokens, pcm) == [(100, 250), (250, 400), (600, 900)]


def test_unknown_voice_is_an_error(engine):
    with pytest.raises(tts.TTSError, match="variant"):
        tts.synthesize("hello", "en+nonexistentvariant", engine=engine)
