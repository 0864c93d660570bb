"""Waveform augmentation (hmaf.data.augment): each step measured on a known signal."""

import dataclasses

import numpy as np
import pytest
import soundfile
from scipy.signal import welch

from hmaf.data import augment as aug
from hmaf.data.features import N_MELS
from hmaf.data.manifest import ManifestRow
from hmaf.data.utterance import PreprocessError, preprocess_utterance

SR = 16000
SPEC = ("noise:white:snr=5-20,noise:pink:snr=5-20,reverb:rt60=0.2-0.8,telephone,gain:db=-6-6,"
        "speed:0.9,speed:1.1")


def _voice(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A speech-like test signal: a 150 Hz harmonic tone, amplitude-modulated at 4 Hz."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 150 * k * t + k) / k for k in range(1, 20))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed)
    return (0.1 * tone * envelope).astype(np.float32)


def _snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))


def _resolved(text: str, utt_id: str = "a/001", pool=()) -> str:
    (item,) = aug.parse_augment(text)
    return aug.resolve(item, 0, utt_id, pool)


# ---------------------------------------------------------------------------- spec language

def test_spec_parses_into_one_named_copy_per_item_and_xn_copies():
    items = aug.parse_augment(SPEC + ",reverb+noise:babble:snr=10-20x2")
    names = [name for item in items for name in item.names()]
    assert names == ["noise-white", "noise-pink", "reverb", "telephone", "gain", "speed-0.9", "speed-1.1",
                     "reverb+noise-babble-1", "reverb+noise-babble-2"]
    assert items[4].steps[0].value("db") == (-6.0, 6.0)
    assert aug.parse_augment("gain")[0].steps[0].value("db") == aug.DEFAULT_RANGES["gain"]["db"]


@pytest.mark.parametrize("spec, message", [
    ("gain,noise:brown", "item 2 'noise:brown': unknown noise type 'brown'"),
    ("echo", "item 1 'echo': unknown augmentation 'echo'"),
    ("noise:white:snr=20-5", "high end below its low end"),
    ("noise:white:snr=loud", "not a number or a range"),
    ("reverb:snr=5", "'snr=5' is not a parameter of reverb"),
    ("speed:1.0", "must be in (0.5, 2] and not 1"),
    ("speed", "speed needs a factor"),
    ("gain,,telephone", "item 2 '': empty item"),
    ("gain:db=1,gain:db=2", "item 2 'gain:db=2': makes copy 'gain' like item 1"),
])
def test_bad_specs_are_refused_naming_the_item(spec, message):
    with pytest.raises(aug.AugmentSpecError) as info:
        aug.parse_augment(spec)
    assert message in str(info.value)


def test_resolve_draws_inside_the_range_deterministically_and_parses_back():
    (item,) = aug.parse_augment("noise:white:snr=5-20x3")
    specs = [aug.resolve(item, k, "a/001") for k in range(3)]
    assert specs == [aug.resolve(item, k, "a/001") for k in range(3)]
    assert len(set(specs)) == 3 and aug.resolve(item, 0, "a/002") != specs[0]
    for spec in specs:
        (step,) = aug.parse_augment(spec)[0].steps
        low, high = step.value("snr")
        assert low == high and 5 <= low <= 20 and step.seed is not None
        assert aug.format_step(step) == spec
        assert aug.resolve(aug.parse_augment(spec)[0], 0, "other/id") == spec  # resolving is idempotent


# ---------------------------------------------------------------------------- signals

@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
def test_noise_is_added_at_the_drawn_snr(kind, tmp_path):
    clean = _voice()
    pool = []
    for i in range(3):
        soundfile.write(tmp_path / f"other{i}.wav", _voice(1.3 + i, seed=i + 1), SR)
        pool.append(f"other{i}.wav")
    spec = _resolved(f"noise:{kind}:snr=0-20", pool=pool)
    noisy, scale = aug.apply_augment(clean, spec, str(tmp_path))
    drawn = aug.parse_augment(spec)[0].steps[0].value("snr")[0]
    assert scale == 1.0 and noisy.shape == clean.shape
    assert abs(_snr(clean, noisy) - drawn) < 0.5


def test_pink_noise_falls_3_db_per_octave():
    noise = aug.pink_noise(SR * 16, np.random.default_rng(1))
    freqs, power = welch(noise, fs=SR, nperseg=8192)
    band = (freqs >= 100) & (freqs <= 4000)
    slope = np.polyfit(np.log2(freqs[band]), 10 * np.log10(power[band]), 1)[0]
    assert -3.3 < slope < -2.7
    freqs, power = welch(aug.white_noise(SR * 16, np.random.default_rng(1)), fs=SR, nperseg=8192)
    assert abs(np.polyfit(np.log2(freqs[band]), 10 * np.log10(power[band]), 1)[0]) < 0.3


def test_telephone_keeps_300_to_3400_hz_only():
    white = (0.1 * np.random.default_rng(0).standard_normal(SR * 4)).astype(np.float32)
    out, _ = aug.apply_augment(white, "telephone")
    freqs, power = welch(out, fs=SR, nperseg=2048)
    assert out.shape == white.shape
    assert power[freqs < 250].sum() / power.sum() < 0.01
    assert power[freqs > 3600].sum() / power.sum() < 0.01
    assert power[(freqs > 500) & (freqs < 3000)].sum() / power.sum() > 0.7


def test_reverb_tail_decays_60_db_in_the_drawn_rt60():
    click = np.zeros(SR * 2, np.float32)
    click[1600] = 1.0
    spec = _resolved("reverb:rt60=0.3-0.7")
    rt60 = aug.parse_augment(spec)[0].steps[0].value("rt60")[0]
    out, _ = aug.apply_augment(click, spec)
    tail = out[1600:].astype(np.float64)
    # Schroeder backward integration; fit -5..-25 dB and extrapolate to -60 dB (T20 method).
    energy = np.cumsum(tail[::-1] ** 2)[::-1]
    decay_db = 10 * np.log10(energy / energy[0])
    t = np.arange(tail.size) / SR
    fit = (decay_db < -5) & (decay_db > -25)
    measured = -60 / np.polyfit(t[fit], decay_db[fit], 1)[0]
    assert abs(measured - rt60) < 0.1 * rt60
    # nothing before the direct path (FFT rounding aside): words do not move
    assert np.max(np.abs(out[:1600])) < 1e-9 * np.max(np.abs(out))


def test_gain_changes_rms_by_the_drawn_db():
    clean = _voice()
    spec = _resolved("gain:db=-6-6")
    db = aug.parse_augment(spec)[0].steps[0].value("db")[0]
    out, _ = aug.apply_augment(clean, spec)
    assert abs(20 * np.log10(aug.rms(out) / aug.rms(clean)) - db) < 0.01


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_length_pitch_and_time_scale(factor):
    t = np.arange(SR * 2) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out, scale = aug.apply_augment(tone, f"speed:{factor}")
    assert abs(out.size - tone.size / factor) <= 1
    assert scale == pytest.approx(1 / factor)
    spectrum = np.abs(np.fft.rfft(out[2000:-2000]))
    peak = np.fft.rfftfreq(out.size - 4000, 1 / SR)[np.argmax(spectrum)]
    assert abs(peak - 440 * factor) < 2


def test_augmentation_is_deterministic_and_seeded_per_copy():
    clean = _voice()
    spec = _resolved("reverb+noise:pink:snr=5-20")
    a, _ = aug.apply_augment(clean, spec)
    b, _ = aug.apply_augment(clean, spec)
    assert a.tobytes() == b.tobytes()
    c, _ = aug.apply_augment(clean, _resolved("reverb+noise:pink:snr=5-20", utt_id="a/002"))
    assert not np.array_equal(a, c)


def test_unresolved_specs_are_refused():
    with pytest.raises(aug.AugmentError, match="not resolved"):
        aug.apply_augment(_voice(), "noise:white:snr=5-20")


# ---------------------------------------------------------------------------- copies

def _row(i: int, speaker: str, split: str = "", folder: str = "/data/wav") -> ManifestRow:
    return ManifestRow(line=i + 1, id=f"{speaker}/{i:03d}", audio=f"{folder}/{speaker}/{i}.wav",
                       transcript="hello there", label="pos", speaker=speaker, group=f"g-{speaker}",
                       split=split, word_timings=None)


def test_expand_rows_makes_named_copies_with_the_originals_fields():
    rows = [_row(0, "s0"), _row(1, "s1", "train"), _row(2, "s2", "test"), _row(3, "s0")]
    copies = aug.expand_rows(rows, "gain,noise:babble:snr=10-20:voices=2x2")
    assert [c.id for c in copies[:3]] == ["s0/000~gain", "s0/000~noise-babble-1", "s0/000~noise-babble-2"]
    assert len(copies) == 9  # the test-split row gets none
    for copy in copies:
        original = next(r for r in rows if r.id == copy.id.split("~")[0])
        assert dataclasses.replace(copy, id=original.id, augment="") == original
        step = aug.parse_augment(copy.augment)[0].steps[0]
        for source in step.sources:
            # other speakers only, never the test split, paths relative to the copy's folder
            assert source.startswith("../") and f"/{copy.speaker}/" not in source and "s2" not in source
    assert aug.expand_rows(rows, "gain") == aug.expand_rows(rows, "gain")


def test_copies_reuse_the_originals_clean_timings_and_skip_failed_rows():
    rows = [_row(0, "s0"), _row(1, "s1"), _row(2, "s2")]
    clean = (("hello", 0.1, 0.4), ("there", 0.5, 0.9))
    copies = aug.expand_rows(rows, "noise:babble:snr=10", timings=[clean, None, clean])
    assert [c.id for c in copies] == ["s0/000~noise-babble", "s2/002~noise-babble"]
    assert all(c.word_timings == clean for c in copies)
    for copy in copies:  # the failed row is no babble source either
        assert all("/s1/" not in source for source in aug.parse_augment(copy.augment)[0].steps[0].sources)


def test_babble_with_one_speaker_is_refused():
    with pytest.raises(aug.AugmentSpecError, match="only one"):
        aug.expand_rows([_row(0, "s0"), _row(1, "s0")], "noise:babble")


def test_preprocess_aligns_clean_audio_then_augments_and_scales_timings(tmp_path):
    soundfile.write(tmp_path / "u.wav", _voice(2.0), SR)
    timings = [["hello", 0.2, 0.8], ["there", 1.0, 1.6]]
    clean = preprocess_utterance(tmp_path / "u.wav", "hello there", word_timings=timings)
    fast = preprocess_utterance(tmp_path / "u.wav", "hello there", word_timings=timings, augment="speed:1.1")
    np.testing.assert_allclose(fast.word_start, [0.2 / 1.1, 1.0 / 1.1])
    np.testing.assert_allclose(fast.word_end, [0.8 / 1.1, 1.6 / 1.1])
    assert fast.audio_seconds == pytest.approx(2.0 / 1.1, abs=1e-3) and fast.timing["augment_s"] > 0
    loud = preprocess_utterance(tmp_path / "u.wav", "hello there", word_timings=timings, augment="gain:db=6")
    # +6 dB power gain is a constant log-mel shift of ln(10**0.6) in every band
    # in every band above the log floor (the test voice has nothing above ~3 kHz)
    bands, loud_bands = clean.frames[0][:, :N_MELS], loud.frames[0][:, :N_MELS]
    above_floor = bands > np.log(1e-6) + 3
    assert above_floor.sum() > 1000
    np.testing.assert_allclose((loud_bands - bands)[above_floor], np.log(10 ** 0.6), atol=1e-3)
    # and of the prosody columns: log energy moves by the same, pitch and voicing not at all
    log_f0, voicing, log_energy = (clean.frames[0][:, N_MELS + i] for i in range(3))
    np.testing.assert_allclose(loud.frames[0][:, N_MELS + 2] - log_energy, np.log(10 ** 0.6), atol=1e-3)
    np.testing.assert_allclose(loud.frames[0][:, N_MELS], log_f0, atol=1e-5)
    np.testing.assert_allclose(loud.frames[0][:, N_MELS + 1], voicing, atol=1e-5)
    with pytest.raises(PreprocessError) as info:
        preprocess_utterance(tmp_path / "u.wav", "hello there", word_timings=timings,
                             augment="noise:babble:snr=10:seed=1:sources=missing.wav")
    assert info.value.reason == "augment_failed" and "missing.wav" in str(info.value)
