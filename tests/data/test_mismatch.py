"""Transcripts that cannot be what was said are rejected as alignment_mismatch; correct ones pass."""

import numpy as np
import pytest

from hmaf.data.align import Alignment
from hmaf.data.mismatch import TRUSTED_FIT, WORDS_PER_S, find_mismatch, measures
from hmaf.data.utterance import PreprocessError, preprocess_utterance

PAIRS = [
    ("the weather was lovely and we walked along the beach for hours", "en+f3"),
    ("please send the report to my office before noon tomorrow", "en+m3"),
    ("I can't believe you did that again", "en-us"),
]


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    from hmaf.corpora.tts import synthesize

    folder = tmp_path_factory.mktemp("mismatch")
    paths = []
    for i, (text, voice) in enumerate(PAIRS):
        synth = synthesize(text, voice, sample_rate=16000, lead_s=0.2, trail_s=0.2)
        synth.write_wav(folder / f"u{i}.wav")
        paths.append(folder / f"u{i}.wav")
    return paths


@pytest.mark.parametrize("aligner", ["auto", "aeneas"])
def test_correct_pairs_pass(wavs, aligner):
    for path, (text, _) in zip(wavs, PAIRS):
        utt = preprocess_utterance(path, text, aligner=aligner)
        assert utt.aligner == ("pocketsphinx" if aligner == "auto" else "aeneas")


@pytest.mark.parametrize("aligner", ["auto", "pocketsphinx", "aeneas"])
def test_a_long_transcript_on_a_short_clip_is_rejected(wavs, aligner):
    long_text = " ".join([PAIRS[0][0]] * 8)  # 96 words on a 4-second clip
    with pytest.raises(PreprocessError) as e:
        preprocess_utterance(wavs[2], long_text, aligner=aligner)
    assert e.value.reason == "alignment_mismatch" and str(wavs[2]) in str(e.value)


def test_the_transcript_of_another_utterance_is_rejected(wavs):
    for i, j in ((0, 1), (1, 0), (2, 0)):
        with pytest.raises(PreprocessError) as e:
            preprocess_utterance(wavs[i], PAIRS[j][0])
        assert e.value.reason == "alignment_mismatch" and str(wavs[i]) in str(e.value), (i, j)


def test_measures_name_themselves():
    samples = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)  # 2 s of "speech"
    words = ["w"] * 6
    ok = Alignment(starts=np.arange(6) * 0.3, ends=np.arange(6) * 0.3 + 0.25, confidence=np.ones(6),
                   aligner="pocketsphinx", fit=0.95)
    assert find_mismatch(samples, words, ok) is None
    assert "speaking rate 30.0 words" in find_mismatch(samples, ["w"] * 60, ok)
    ok.fit = 0.3
    assert "misfit 1.40 above 1.3 (pocketsphinx explains 30% of the speech" in find_mismatch(
        samples, words, ok)
    ok.fit, ok.disagreement_s = 0.8, 0.3
    assert "misfit 1.40" in find_mismatch(samples, words, ok) and "300 ms apart" in find_mismatch(samples, words, ok)
    assert "speaking rate" not in str(find_mismatch(samples, ["w"] * 8, ok))  # 4 words/s


def test_disagreement_does_not_count_where_pocketsphinx_explains_the_speech():
    """At fit >= TRUSTED_FIT pocketsphinx found every word; aeneas alone was lost (MELD-TTS)."""
    samples = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    words = ["w"] * 6
    alignment = Alignment(starts=np.arange(6) * 0.3, ends=np.arange(6) * 0.3 + 0.25, confidence=np.ones(6),
                          aligner="pocketsphinx", fit=TRUSTED_FIT, disagreement_s=0.5)
    assert find_mismatch(samples, words, alignment) is None
    assert measures(samples, words, alignment)["disagreement_s"] == 0.5  # still reported
    alignment.fit = TRUSTED_FIT - 0.01  # just below: the disagreement counts again
    reason = find_mismatch(samples, words, alignment)
    assert reason is not None and "500 ms apart" in reason


def test_speaking_rate_limits():
    """8.5 words/s passes (MELD-TTS's fast espeak-ng reached 8.2); 10 is out of range."""
    samples = np.zeros(48000, np.float32)
    samples[:32000] = np.random.default_rng(1).normal(0, 0.1, 32000)  # 2 s of speech, then silence
    alignment = Alignment(starts=np.zeros(1), ends=np.full(1, 0.4), confidence=np.ones(1), aligner="aeneas")
    assert measures(samples, ["w"] * 17, alignment)["words_per_s"] == pytest.approx(8.5, rel=0.02)
    assert find_mismatch(samples, ["w"] * 17, alignment) is None
    assert "speaking rate 9.9 words" in find_mismatch(samples, ["w"] * 20, alignment)


def test_squeezed_words_are_rejected():
    samples = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    words = ["w"] * 6
    squeezed = Alignment(starts=np.arange(6) * 0.3, ends=np.arange(6) * 0.3 + 0.01, confidence=np.ones(6),
                         aligner="aeneas")
    assert "squeezed" in find_mismatch(samples, words, squeezed)
