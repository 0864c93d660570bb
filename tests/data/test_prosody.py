import numpy as np
import pytest

from hmaf.data import features, prosody

SR = 16000


def harmonic(f0: np.ndarray, amplitude: float = 0.3) -> np.ndarray:
    """A voiced-like signal: 6 harmonics of the instantaneous F0 ``[samples]`` (Hz)."""
    phase = 2 * np.pi * np.cumsum(f0) / SR
    return (amplitude * sum(np.sin(k * phase) / k for k in range(1, 7))).astype(np.float32)


@pytest.mark.parametrize("size", [0, 1, 159, 160, 161, 16000, 16037])
def test_rows_are_the_log_mel_rows(size):
    x = np.random.default_rng(size).normal(0, 0.1, size).astype(np.float32)
    assert prosody.prosody(x).shape == (features.mfsc(x).shape[0], len(prosody.COLUMNS))


def test_pitch_of_a_glide_is_within_one_percent():
    t = np.arange(SR * 2) / SR
    f0 = 100.0 + 150.0 * t  # 100 -> 400 Hz
    f0_hat, aperiodicity, _ = prosody.yin(harmonic(f0))
    inner = slice(10, len(f0_hat) - 10)  # frames whose window lies inside the signal
    truth = 100.0 + 150.0 * np.arange(len(f0_hat)) * 0.010
    np.testing.assert_allclose(f0_hat[inner], truth[inner], rtol=0.01)
    assert np.all(aperiodicity[inner] < 0.05)
    columns = prosody.prosody(harmonic(f0))
    np.testing.assert_allclose(np.exp(columns[inner, 0]), truth[inner], rtol=0.01)
    assert np.all(columns[inner, 1] > 0.95)


def test_difference_function_matches_direct_sums():
    # YIN's steps 2-3 written out: d(tau) = sum_{j<W} (x_j - x_{j+tau})^2 and
    # d'(tau) = d(tau) tau / sum_{k<=tau} d(k), with row t's integration window
    # x_j, j < W, centred on sample 160 t as the log-mel frame t is (W odd: samples
    # 160 t - (W - 1) / 2 ... 160 t + (W - 1) / 2); the module computes d by FFT.
    rng = np.random.default_rng(3)
    x = (harmonic(np.full(SR // 2, 187.0)) + rng.normal(0, 0.05, SR // 2)).astype(np.float32)
    _, aperiodicity, mean_square = prosody.yin(x)
    max_lag = int(np.ceil(SR / prosody.F0_MIN))
    width = prosody.FRAME_LENGTH - max_lag
    assert width % 2 == 1
    x64 = x.astype(np.float64)
    for t in (12, 25):
        start = t * 160 - (width - 1) // 2
        frame = x64[start: start + prosody.FRAME_LENGTH]
        d = np.array([np.sum((frame[:width] - frame[tau: tau + width]) ** 2) for tau in range(max_lag + 1)])
        cmnd = np.ones_like(d)
        cmnd[1:] = d[1:] * np.arange(1, max_lag + 1) / np.cumsum(d[1:])
        period = SR / 187.0
        near = int(round(period))
        tau = near - 1 + int(np.argmin(cmnd[near - 1: near + 2]))
        assert aperiodicity[t] == pytest.approx(cmnd[tau], abs=1e-6)
        assert mean_square[t] == pytest.approx(np.mean(frame[:width] ** 2), rel=1e-9)


def test_noise_is_unvoiced():
    x = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    voicing = prosody.prosody(x)[:, 1]
    assert np.median(voicing) < 0.5
    _, aperiodicity, _ = prosody.yin(x)
    assert np.mean(aperiodicity < prosody.VOICED_APERIODICITY) < 0.05


def test_pitch_is_interpolated_across_a_pause_and_silence_is_unvoiced():
    tone_a = harmonic(np.full(SR // 2, 150.0))
    tone_b = harmonic(np.full(SR // 2, 200.0))
    x = np.concatenate([tone_a, np.zeros(SR // 2, np.float32), tone_b])
    columns = prosody.prosody(x)
    gap = columns[60:90]  # 0.6-0.9 s: silence, the window (±32 ms) off both tones
    assert np.all(gap[:, 1] == 0.0)
    assert np.all(np.diff(gap[:, 0]) > 0)  # a straight line from 150 to 200 Hz
    assert np.exp(gap[0, 0]) > 150 * 0.99 and np.exp(gap[-1, 0]) < 200 * 1.01
    np.testing.assert_allclose(np.exp(columns[10:40, 0]), 150.0, rtol=0.01)
    np.testing.assert_allclose(np.exp(columns[110:140, 0]), 200.0, rtol=0.01)
    assert gap[:, 2].max() < np.log(1e-9) and columns[10:40, 2].min() > np.log(1e-3)


def test_onset_of_voicing_lands_on_the_log_mel_grid():
    x = np.concatenate([np.zeros(SR // 2, np.float32), harmonic(np.full(SR // 2, 220.0))])
    voiced = prosody.prosody(x)[:, 1] > 0.8
    first = int(np.argmax(voiced))
    # the tone starts at frame 50; the 64 ms window reaches it 3.2 frames early at most
    assert 46 <= first <= 51


def test_energy_window_is_centred_on_the_log_mel_frame():
    # A tone that starts (or ends) at sample 8080, half way between frames 50 and 51: a
    # window centred on its frame's centre 160 t holds more tone than silence from row 51
    # on (or up to row 50), so log energy crosses half its maximum between rows 50 and 51
    # both ways. A window centred 8 ms early, as before, crossed a row late on the onset.
    boundary = 8080
    tone = harmonic(np.full(SR, 220.0))
    onset = np.concatenate([np.zeros(boundary, np.float32), tone[boundary:]])
    offset = np.concatenate([tone[:boundary], np.zeros(SR - boundary, np.float32)])
    for x, above in ((onset, lambda t: t >= 51), (offset, lambda t: t <= 50)):
        energy = np.exp(prosody.prosody(x)[:, 2])
        half = energy[10:-10].max() / 2
        rows = np.arange(40, 62)
        assert np.array_equal(energy[rows] > half, above(rows)), np.round(energy[rows] / half, 2)


def test_silence_falls_back_to_a_flat_contour():
    columns = prosody.prosody(np.zeros(SR // 4, np.float32))
    np.testing.assert_allclose(columns[:, 0], np.log(prosody.FALLBACK_F0))
    assert np.all(columns[:, 1] == 0.0)


def test_same_input_same_bytes():
    x = harmonic(np.linspace(120, 180, SR))
    assert prosody.prosody(x).tobytes() == prosody.prosody(x.copy()).tobytes()


def test_pitch_of_speech_agrees_with_praat(tmp_path):
    # An independent pitch tracker (Praat's autocorrelation method, Boersma 1993) on
    # espeak-ng speech: where both call a frame voiced, the two F0s agree.
    import parselmouth  # the test extra installs it
    from speech_synth import say

    from hmaf.data.audio import load_audio

    say("I really did not expect to see you here today, my friend.", tmp_path / "s.wav", voice="en+m3")
    x = load_audio(tmp_path / "s.wav")  # 16 kHz
    f0, aperiodicity, mean_square = prosody.yin(x)
    voiced = (aperiodicity < prosody.VOICED_APERIODICITY) & (mean_square > prosody.ENERGY_FLOOR)
    pitch = parselmouth.Sound(x.astype(np.float64), sampling_frequency=SR).to_pitch(
        time_step=0.01, pitch_floor=prosody.F0_MIN, pitch_ceiling=prosody.F0_MAX)
    praat = np.array([pitch.get_value_at_time(t * 0.01) for t in range(len(f0))])  # NaN: unvoiced
    both = voiced & np.isfinite(praat)
    assert both.sum() >= 50
    relative = np.abs(f0[both] - praat[both]) / praat[both]
    assert np.median(relative) < 0.015 and np.percentile(relative, 90) < 0.05
