"""The random corpus writer used by the tests and the input-pipeline benchmark."""

import json

import numpy as np
import pytest

from hmaf.data.fake_corpus import OOV_WORD, write_fake_corpus
from hmaf.data.source import CorpusSource


def test_speech_lengths_corpus_loads_and_respects_caps(tmp_path):
    examples = write_fake_corpus(tmp_path, num_speakers=5, per_speaker=6, lengths="speech",
                                 max_words=40, max_frames=100, seed=1)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["num_examples"] == 30 and meta["l_max"] == 100 and sum(meta["groups"].values()) == 30
    num_words = [len(ex["words"]) for ex in examples.values()]
    num_frames = [len(f) for ex in examples.values() for f in ex["frames"]]
    assert 1 <= min(num_words) and max(num_words) <= 40 and 1 <= min(num_frames) and max(num_frames) <= 100
    assert 10 < np.mean(num_frames) < 40  # about 24 frames (240 ms) per word
    source = CorpusSource(tmp_path, num_folds=5)
    assert sorted(source.utt_ids("train") + source.utt_ids("validation") + source.utt_ids("test")) == sorted(examples)
    assert OOV_WORD not in source.vocab and examples["s0-0"]["words"][0] == OOV_WORD


def test_same_seed_same_corpus(tmp_path):
    a = write_fake_corpus(tmp_path / "a", num_speakers=2, per_speaker=2, seed=3)
    b = write_fake_corpus(tmp_path / "b", num_speakers=2, per_speaker=2, seed=3)
    assert all(np.array_equal(x, y) for u in a for x, y in zip(a[u]["frames"], b[u]["frames"]))
    assert (tmp_path / "a" / "vocab.txt").read_text() == (tmp_path / "b" / "vocab.txt").read_text()
    with pytest.raises(ValueError, match="lengths"):
        write_fake_corpus(tmp_path / "c", lengths="long")
