import shutil
import subprocess

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile

from hmaf.data.audio import AudioError, load_audio
from speech_synth import say


def _aligned_correlation(decoded: np.ndarray, reference: np.ndarray) -> float:
    """Correlation of ``decoded`` with ``reference`` at the best lag (lossy codecs add delay)."""
    xcorr = scipy.signal.correlate(decoded, reference, mode="full", method="fft")
    lag = int(np.argmax(xcorr)) - (reference.size - 1)
    a, b = (decoded[lag:], reference) if lag >= 0 else (decoded, reference[-lag:])
    n = min(a.size, b.size)
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


@pytest.fixture(scope="module")
def speech16k(tmp_path_factory):
    """(path of a 16 kHz mono int16 wav of speech, its float samples)."""
    folder = tmp_path_factory.mktemp("audio")
    samples = say("the audio loader reads any file", folder / "raw.wav")
    samples16 = librosa.resample(samples, orig_sr=22050, target_sr=16000).astype(np.float32)
    path = folder / "mono16k.wav"
    soundfile.write(path, samples16, 16000, subtype="PCM_16")
    return path, soundfile.read(path, dtype="float32")[0]


def test_mono_16k_wav_is_read_unchanged(speech16k):
    path, expected = speech16k
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    np.testing.assert_array_equal(out, expected)


def test_stereo_48k_matches_mono_16k(speech16k, tmp_path):
    path, mono = speech16k
    up = librosa.resample(mono, orig_sr=16000, target_sr=48000)
    stereo = np.stack([up * 0.8, up * 1.2], axis=1)  # channel mean = up
    soundfile.write(tmp_path / "stereo48k.flac", stereo, 48000, subtype="PCM_24")
    out = load_audio(tmp_path / "stereo48k.flac")
    assert abs(out.size - mono.size) <= 1
    n = min(out.size, mono.size)
    err = np.sqrt(np.mean((out[:n] - mono[:n]) ** 2)) / np.sqrt(np.mean(mono ** 2))
    assert err < 0.01, f"relative RMS error {err:.4f}"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is a declared system dependency")
def test_ffmpeg_fallback_for_formats_soundfile_cannot_read(speech16k, tmp_path):
    path, mono = speech16k
    m4a = tmp_path / "speech.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-c:a", "aac", "-b:a", "128k", str(m4a)],
                   check=True)
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.read(m4a)
    out = load_audio(m4a)
    assert abs(out.size - mono.size) < 0.05 * 16000  # AAC may add priming samples
    assert _aligned_correlation(out, mono) > 0.95


def test_resampling_equals_librosa_soxr_hq(speech16k):
    from hmaf.data.audio import resample

    _, mono = speech16k
    for rate in (8000, 22050, 44100):
        expected = librosa.resample(mono, orig_sr=16000, target_sr=rate, res_type="soxr_hq")
        out = resample(mono, 16000, rate)
        assert out.dtype == np.float32 and out.shape == expected.shape
        np.testing.assert_allclose(out, expected, atol=1e-6)


def test_mp3_is_read(speech16k, tmp_path):
    path, mono = speech16k
    mp3 = tmp_path / "speech.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ar", "44100", str(mp3)], check=True)
    out = load_audio(mp3)
    assert abs(out.size - mono.size) < 0.1 * 16000  # mp3 frames pad the ends
    assert _aligned_correlation(out, mono) > 0.95


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="nope.wav: missing") as info:
        load_audio(tmp_path / "nope.wav")
    assert info.value.reason == "missing"


def test_corrupt_file(tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + bytes(range(256)))
    with pytest.raises(AudioError, match="corrupt.wav: unreadable") as info:
        load_audio(bad)
    assert info.value.reason == "unreadable"


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: empty") as info:
        load_audio(empty)
    assert info.value.reason == "empty"
