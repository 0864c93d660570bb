import librosa
import numpy as np
import pytest

from hmaf.data import features


@pytest.fixture(scope="module")
def signal():
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)


def test_mfsc_equals_direct_librosa_call(signal):
    out = features.mfsc(signal)
    mel = librosa.feature.melspectrogram(y=signal, sr=16000, n_fft=512, win_length=400, hop_length=160,
                                         window="hann", center=True, pad_mode="constant", power=2.0,
                                         n_mels=64, fmin=0.0, fmax=8000.0)
    expected = np.log(np.maximum(mel, 1e-6)).T
    assert out.shape == (1 + signal.size // 160, 64) == expected.shape
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_mel_basis_equals_librosa():
    expected = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=0.0, fmax=8000.0)
    np.testing.assert_allclose(features.mel_basis(), expected, rtol=1e-5, atol=1e-7)


def test_mfsc_of_silence_is_the_floor():
    out = features.mfsc(np.zeros(1600, np.float32))
    assert out.shape == (11, 64)
    np.testing.assert_allclose(out, np.log(1e-6))


def test_word_frames_spans_and_minimum_one_frame():
    feats = np.arange(80 * 64, dtype=np.float32).reshape(80, 64)
    frames, long_words = features.word_frames(
        feats, starts=[0.0, 0.10, 0.10, 0.494, 0.70], ends=[0.10, 0.10, 0.25, 0.70, 2.0], l_max=100)
    assert long_words == 0
    # zero-length word -> the one frame at its start; a span past the end is clipped
    assert [len(f) for f in frames] == [10, 1, 15, 21, 10]
    np.testing.assert_array_equal(frames[0], feats[0:10])
    np.testing.assert_array_equal(frames[1], feats[10:11])
    np.testing.assert_array_equal(frames[3], feats[49:70])  # round(0.494 / 0.01) = 49
    np.testing.assert_array_equal(frames[4], feats[70:80])
    starting_at_end, _ = features.word_frames(feats, [0.8, 5.0], [0.8, 6.0], l_max=100)
    assert [len(f) for f in starting_at_end] == [1, 1]
    np.testing.assert_array_equal(starting_at_end[1], feats[79:80])


def test_time_to_frame_rounds():
    np.testing.assert_array_equal(features.time_to_frame([0.0, 0.004, 0.006, 0.0149, 1.23]), [0, 0, 1, 1, 123])


def test_long_words_subsample_keeps_whole_duration():
    feats = np.arange(400, dtype=np.float32)[:, None].repeat(64, 1)
    frames, long_words = features.word_frames(feats, [0.5, 3.0], [3.0, 3.05], l_max=10, rule="subsample")
    assert long_words == 1
    assert frames[0].shape == (10, 64)
    kept = frames[0][:, 0]
    assert kept[0] == 50 and kept[-1] == 299  # first and last frame of the word survive
    assert np.all(np.diff(kept) > 0)
    np.testing.assert_allclose(np.diff(kept), 249 / 9, atol=1)  # uniform spacing
    assert frames[1].shape == (5, 64)


def test_long_words_truncate_keeps_first_frames():
    feats = np.arange(400, dtype=np.float32)[:, None].repeat(64, 1)
    frames, long_words = features.word_frames(feats, [0.5], [3.0], l_max=10, rule="truncate")
    assert long_words == 1
    np.testing.assert_array_equal(frames[0][:, 0], np.arange(50, 60))


def test_word_frames_rejects_bad_arguments():
    feats = np.zeros((10, 64), np.float32)
    with pytest.raises(ValueError, match="long_word_rule"):
        features.word_frames(feats, [0.0], [0.1], l_max=5, rule="crop")
    with pytest.raises(ValueError, match="l_max"):
        features.word_frames(feats, [0.0], [0.1], l_max=0)
    with pytest.raises(ValueError, match="starts"):
        features.word_frames(feats, [0.0, 0.1], [0.1], l_max=5)
