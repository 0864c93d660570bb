import pickle
import time

import librosa
import numpy as np
import pytest
import soundfile

from hmaf.data import features
from hmaf.data.audio import load_audio
from hmaf.data.utterance import REASONS, PreprocessError, preprocess_utterance
from speech_synth import say

TEXT = "I really did not expect to see you here today"


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("utt")
    say(TEXT, folder / "speech.wav", voice="en+m2")
    mono16 = load_audio(folder / "speech.wav")
    soundfile.write(folder / "mono16k.wav", mono16, 16000, subtype="FLOAT")
    up = librosa.resample(mono16, orig_sr=16000, target_sr=48000)
    soundfile.write(folder / "stereo48k.wav", np.stack([up, up], axis=1), 48000, subtype="FLOAT")
    return folder


def test_utterance_fields(wavs):
    utt = preprocess_utterance(wavs / "speech.wav", TEXT + "!")
    words = ["i", "really", "did", "not", "expect", "to", "see", "you", "here", "today"]
    assert utt.words == words
    assert utt.transcript == TEXT + "!" and utt.transcript_auto is False
    assert len(utt.frames) == len(utt.word_start) == len(utt.word_end) == len(words)
    assert all(f.dtype == np.float32 and f.ndim == 2 and f.shape[1] == features.FRAME_DIM and 1 <= len(f) <= 100 for f in utt.frames)
    assert utt.long_words == 0
    assert utt.audio_seconds == pytest.approx(load_audio(wavs / "speech.wav").size / 16000)
    assert set(utt.timing) == {"decode_s", "asr_s", "align_s", "features_s"}
    assert utt.timing["align_s"] > 0 and utt.timing["asr_s"] == 0
    # frames are exactly the utterance's MFSC and prosody columns cut at the aligned boundaries
    direct = features.frame_features(load_audio(wavs / "speech.wav"))
    expected, _ = features.word_frames(direct, utt.word_start, utt.word_end, 100)
    for got, want in zip(utt.frames, expected):
        np.testing.assert_array_equal(got, want)


def test_stereo_48k_equals_mono_16k_path(wavs):
    mono = preprocess_utterance(wavs / "mono16k.wav", TEXT)
    stereo = preprocess_utterance(wavs / "stereo48k.wav", TEXT)
    assert stereo.words == mono.words
    np.testing.assert_allclose(stereo.word_start, mono.word_start, atol=0.021)
    np.testing.assert_allclose(stereo.word_end, mono.word_end, atol=0.021)
    same = [i for i in range(len(mono.words)) if mono.frames[i].shape == stereo.frames[i].shape]
    assert len(same) >= len(mono.words) - 2
    diffs = [np.median(np.abs(mono.frames[i] - stereo.frames[i])) for i in same]
    assert max(diffs) < 0.05, diffs  # log-mel units; resampling round trip only


def test_long_words_are_counted_and_capped(wavs):
    for rule in ("subsample", "truncate"):
        utt = preprocess_utterance(wavs / "speech.wav", TEXT, l_max=12, long_word_rule=rule)
        assert utt.long_words > 0
        assert all(1 <= len(f) <= 12 for f in utt.frames)


def test_given_word_timings_skip_alignment(wavs):
    utt = preprocess_utterance(wavs / "speech.wav", None,
                               word_timings=[["Hello,", 0.1, 0.4], ["--", 0.4, 0.5], ["don't-care", 0.5, 0.9]])
    assert utt.words == ["hello", "don't", "care"]
    np.testing.assert_allclose(utt.word_start, [0.1, 0.5, 0.7])
    np.testing.assert_allclose(utt.word_end, [0.4, 0.7, 0.9])
    assert [len(f) for f in utt.frames] == [30, 20, 20]
    assert utt.timing["align_s"] == 0 and utt.transcript == "hello don't care" and not utt.transcript_auto
    with pytest.raises(PreprocessError) as info:
        preprocess_utterance(wavs / "speech.wav", None, word_timings=[["a", 0.5, 0.2]])
    assert info.value.reason == "bad_word_timings"


def test_non_ascii_transcript(wavs):
    text = "Café au lait, s'il vous plaît — naïve Zoë!"
    say(text, wavs / "french.wav", voice="en+m2")
    utt = preprocess_utterance(wavs / "french.wav", text)
    assert utt.words == ["café", "au", "lait", "s'il", "vous", "plaît", "naïve", "zoë"]
    assert all(len(f) >= 1 for f in utt.frames)
    with pytest.raises(PreprocessError, match="alignment_mismatch"):  # these words on other speech
        preprocess_utterance(wavs / "speech.wav", text)


def test_automatic_transcript(wavs):
    utt = preprocess_utterance(wavs / "speech.wav", None)
    assert utt.transcript_auto is True
    assert utt.transcript and utt.words
    assert utt.timing["asr_s"] > 0


def test_two_minute_file(tmp_path):
    sentence = "the committee discussed the budget for the coming year and agreed on most points. "
    samples = say(sentence * 30, tmp_path / "long.wav", speed=170)
    seconds = samples.size / 22050
    assert 110 < seconds < 150
    start = time.perf_counter()
    utt = preprocess_utterance(tmp_path / "long.wav", sentence * 30)
    elapsed = time.perf_counter() - start
    print(f"\n{seconds:.0f} s utterance preprocessed in {elapsed:.1f} s ({utt.timing})")
    assert len(utt.words) == 14 * 30
    assert utt.audio_seconds == pytest.approx(seconds, abs=0.01)
    assert np.all(np.diff(utt.word_start) >= 0) and utt.word_end[-1] <= utt.audio_seconds + 1e-6
    # the aligner keeps pace over two minutes: the repeated sentence starts every ~seconds/26
    sentence_starts = utt.word_start[::14]
    np.testing.assert_allclose(np.diff(sentence_starts), seconds / 30, rtol=0.15)


@pytest.mark.parametrize("transcript, reason", [("", "empty_transcript"), ("   ", "empty_transcript"),
                                                 ("?! ... --", "no_words")])
def test_bad_transcripts(wavs, transcript, reason):
    with pytest.raises(PreprocessError) as info:
        preprocess_utterance(wavs / "speech.wav", transcript)
    assert info.value.reason == reason
    assert str(wavs / "speech.wav") in str(info.value)


def test_bad_audio(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"this is not audio at all" * 10)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    nan = tmp_path / "nan.wav"
    values = np.full(16000, 0.1, np.float32)
    values[100] = np.nan
    soundfile.write(nan, values, 16000, subtype="FLOAT")
    cases = [(corrupt, "unreadable_audio"), (tmp_path / "missing.wav", "unreadable_audio"),
             (silent, "silent_audio"), (nan, "non_finite")]
    for path, reason in cases:
        with pytest.raises(PreprocessError) as info:
            preprocess_utterance(path, "hello world")
        assert info.value.reason == reason in REASONS, info.value
        assert info.value.path == str(path)


def test_preprocess_error_pickles():
    error = pickle.loads(pickle.dumps(PreprocessError("/a.wav", "silent_audio", "quiet")))
    assert (error.path, error.reason, error.detail) == ("/a.wav", "silent_audio", "quiet")
