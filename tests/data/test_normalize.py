"""Per-speaker band statistics (hmaf.data.normalize) and prepare-time augmented copies."""

import json

import numpy as np
import pytest
import soundfile

from hmaf.data import normalize, records
from hmaf.data.writer import prepare
from hmaf.prepare import main as prepare_main

SR = 16000


def _voice(seconds: float, pitch: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * pitch * k * t + k) / k for k in range(1, 12))
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.1 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + noise).astype(np.float32)


@pytest.fixture(scope="module")
def augmented_corpus(tmp_path_factory):
    """3 speakers x 2 utterances with given word timings (no aligner) and a silent one, prepared with
    2 augmentations."""
    folder = tmp_path_factory.mktemp("aug_corpus")
    (folder / "wav").mkdir()
    lines = []
    for s, pitch in enumerate((110.0, 160.0, 220.0)):
        for u in range(2):
            soundfile.write(folder / "wav" / f"s{s}_{u}.wav", _voice(1.2 + 0.3 * u, pitch, 10 * s + u), SR)
            lines.append({"audio": f"wav/s{s}_{u}.wav", "transcript": "good morning", "id": f"s{s}/{u}",
                          "label": ["pos", "neg"][u], "speaker": f"s{s}",
                          "word_timings": [["good", 0.1, 0.5], ["morning", 0.6, 1.1]]})
    soundfile.write(folder / "wav" / "silent.wav", np.zeros(SR, np.float32), SR)  # rejected: no copies
    lines.append({"audio": "wav/silent.wav", "transcript": "hush", "id": "s0/silent", "label": "pos",
                  "speaker": "s0"})
    (folder / "manifest.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = folder / "prepared"
    info = prepare(folder / "manifest.jsonl", out, **PREPARE)
    return out, info


PREPARE = dict(embeddings="train:dim=8", num_shards=2, num_workers=1, progress=False,
               augment="gain:db=-6-6,speed:1.1+noise:babble:snr=10-20")


def _examples(out):
    info = json.loads((out / "dataset.json").read_text())
    for shard in info["shards"]:
        import tensorflow as tf

        for serialized in tf.data.TFRecordDataset(str(out / "records" / shard)):
            yield records.decode_example(serialized.numpy())


def test_prepare_writes_augmented_copies_with_the_originals_fields(augmented_corpus):
    out, info = augmented_corpus
    assert info["num_examples"] == 18 and info["reject_reasons"] == {"silent_audio": 1}
    assert info["augment"] == "gain:db=-6-6,speed:1.1+noise:babble:snr=10-20"
    examples = {ex["utt_id"]: ex for ex in _examples(out)}
    assert set(examples) == {f"s{s}/{u}{suffix}" for s in range(3) for u in range(2)
                             for suffix in ("", "~gain", "~speed-1.1+noise-babble")}
    for utt_id, ex in examples.items():
        original = examples[utt_id.split("~")[0]]
        assert (ex["speaker"], ex["group"], ex["label_name"], ex["transcript"]) == (
            original["speaker"], original["group"], original["label_name"], original["transcript"])
        if utt_id == original["utt_id"]:
            assert ex["augment"] == ""
        elif utt_id.endswith("~gain"):
            assert ex["augment"].startswith("gain:db=")
            np.testing.assert_array_equal(ex["word_start"], original["word_start"])
        else:
            assert ex["augment"].startswith("speed:1.1+noise:babble:snr=") and "sources=" in ex["augment"]
            np.testing.assert_allclose(ex["word_start"], original["word_start"] / 1.1, rtol=1e-6)


def test_a_fresh_prepare_gives_the_same_bytes(augmented_corpus):
    out, info = augmented_corpus
    again = prepare(out.parent / "manifest.jsonl", out.parent / "again", **PREPARE)
    assert again["cached_utterances"] == 0 and again["content_hash"] == info["content_hash"]
    assert (out.parent / "again" / "speaker_stats.json").read_bytes() == (out / "speaker_stats.json").read_bytes()
    rerun = prepare(out.parent / "manifest.jsonl", out.parent / "again", **PREPARE)
    assert rerun["cached_utterances"] == 18 and rerun["content_hash"] == info["content_hash"]


def test_speaker_stats_equal_numpy_over_original_frames_only(augmented_corpus):
    out, _ = augmented_corpus
    frames: dict[str, list[np.ndarray]] = {}
    for ex in _examples(out):
        if not ex["augment"]:
            frames.setdefault(ex["speaker"], []).extend(ex["frames"])
    written = json.loads((out / "speaker_stats.json").read_text())
    loaded = normalize.load_speaker_stats(out)
    assert sorted(written) == sorted(loaded) == ["s0", "s1", "s2"]
    for speaker, parts in frames.items():
        stacked = np.concatenate(parts).astype(np.float64)
        assert written[speaker]["frames"] == stacked.shape[0]
        np.testing.assert_allclose(loaded[speaker][0], stacked.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(loaded[speaker][1], stacked.std(0), rtol=1e-4, atol=1e-5)
    # Different voices, different statistics (the point of normalising per speaker).
    assert np.abs(loaded["s0"][0] - loaded["s2"][0]).max() > 0.5


def test_speaker_stats_skip_augmented_examples_and_merge_exactly():
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(i, 1 + i, size=(n, 64)) for i, n in enumerate((5, 300, 7)))
    stats = normalize.speaker_stats([("x", "", a), ("x", "gain:db=3", c * 100), ("x", "", b), ("y", "", c)])
    both = np.concatenate([a, b])
    np.testing.assert_allclose(stats["x"]["mean"], both.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["x"]["std"], both.std(0), rtol=1e-6)
    assert stats["x"]["frames"] == 305 and stats["y"]["frames"] == 7
    mean, std = normalize.utterance_stats([c[:3], c[3:]])
    np.testing.assert_allclose(mean, c.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, c.std(0), rtol=1e-6)


def test_profiles_load_from_a_profile_file_or_speaker_stats(augmented_corpus, tmp_path):
    out, _ = augmented_corpus
    assert normalize.main([str(out), "--speaker", "s1", "--profile", str(tmp_path / "s1.json")]) == 0
    mean, std = normalize.load_profile(tmp_path / "s1.json")
    expected = normalize.load_speaker_stats(out)["s1"]
    np.testing.assert_array_equal(mean, expected[0])
    np.testing.assert_array_equal(std, expected[1])
    np.testing.assert_array_equal(normalize.load_profile(out / "speaker_stats.json", "s1")[0], expected[0])
    with pytest.raises(ValueError, match="holds 3 speakers"):
        normalize.load_profile(out / "speaker_stats.json")
    (tmp_path / "bad.json").write_text(json.dumps({"mean": [0.0] * 3, "std": [1.0] * 3}))
    with pytest.raises(ValueError, match=r"bad.json: mean and std must hold the same number of floats, one of \(64, 67\)"):
        normalize.load_profile(tmp_path / "bad.json")


def test_prepare_cli_rejects_a_bad_augment_spec_naming_the_item(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": "x.wav", "label": "a", "speaker": "s"}) + "\n")
    code = prepare_main(["--manifest", str(manifest), "--out", str(tmp_path / "out"), "--augment", "gain,noise:red",
                         "--no_progress"])
    assert code == 1 and "item 2 'noise:red': unknown noise type" in capsys.readouterr().err
