"""CorpusSource: splits, resumable training stream, evaluation passes, errors."""

import itertools
import json
import os
import shutil

import numpy as np
import pytest

from hmaf.batch import validate
from hmaf.data.fake_corpus import LABELS
from hmaf.data.source import CorpusError, CorpusSource, DatasetInfo


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_info_and_embeddings(tiny_corpus):
    data_dir, _ = tiny_corpus
    source = CorpusSource(data_dir)
    info = source.info
    assert info.label_names == LABELS and info.num_classes == 3 and info.l_max == 30
    assert info.vocab_size == len(source.vocab) and info.embedding_dim == 6
    matrix = source.embeddings()
    assert matrix.shape == (info.vocab_size, 6) and np.all(matrix[0] == 0)
    assert DatasetInfo.load(data_dir) == info


def test_fold_splits_are_speaker_independent_and_complete(tiny_corpus):
    data_dir, examples = tiny_corpus
    tested = []
    for fold in range(3):
        source = CorpusSource(data_dir, fold=fold, num_folds=3, batch_size=4)
        ids = {split: source.utt_ids(split) for split in ("train", "validation", "test")}
        assert {s: len(v) for s, v in ids.items()} == source.split_sizes
        speakers = {s: {u.split("-")[0] for u in v} for s, v in ids.items()}
        assert not speakers["train"] & speakers["test"] and not speakers["validation"] & speakers["test"]
        assert sorted(sum(ids.values(), [])) == sorted(examples)
        tested += ids["test"]
        # An evaluation pass holds every example of the split exactly once.
        passed = [u.decode() for b in source.eval_batches("test") for u in b["utt_id"]]
        assert sorted(passed) == sorted(ids["test"])
    assert sorted(tested) == sorted(examples)


def test_manifest_mode_uses_the_split_field(tiny_corpus):
    data_dir, examples = tiny_corpus
    source = CorpusSource(data_dir, split_mode="manifest", batch_size=4)
    want = {"train": "train", "validation": "dev", "test": "test"}
    for split, raw in want.items():
        assert sorted(source.utt_ids(split)) == sorted(u for u, ex in examples.items() if ex["split"] == raw)
        assert source.split_sizes[split] == len(source.utt_ids(split))
    batch = next(source.train_batches())
    validate(batch)
    assert all(examples[u.decode()]["split"] == "train" for u in batch["utt_id"])


def test_train_batches_resume_exactly(tiny_corpus):
    data_dir, _ = tiny_corpus
    source = CorpusSource(data_dir, batch_size=6, seed=3, window_batches=2)
    uninterrupted = list(itertools.islice(source.train_batches(), 14))
    resumed = list(itertools.islice(CorpusSource(data_dir, batch_size=6, seed=3, window_batches=2)
                                    .train_batches(start_step=9), 5))
    assert all(_same(a, b) for a, b in zip(uninterrupted[9:], resumed))
    assert not _same(uninterrupted[0], uninterrupted[1])
    train_speakers = set(source.fold.train)
    for batch in uninterrupted:
        validate(batch)
        assert np.all(np.bincount(batch["label"], minlength=3) == 2)
        assert {u.decode().split("-")[0] for u in batch["utt_id"]} <= train_speakers


def test_bad_arguments_and_broken_corpora(tiny_corpus, tmp_path):
    data_dir, _ = tiny_corpus
    with pytest.raises(ValueError, match="fold must be in"):
        CorpusSource(data_dir, fold=5, num_folds=5)
    with pytest.raises(ValueError, match="6 groups .* cannot make 7"):
        CorpusSource(data_dir, num_folds=7)
    with pytest.raises(ValueError, match="split must be one of"):
        CorpusSource(data_dir).eval_batches("dev")
    with pytest.raises(ValueError, match="split_mode"):
        CorpusSource(data_dir, split_mode="random")
    with pytest.raises(CorpusError, match="dataset.json not found"):
        CorpusSource(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(data_dir, broken)
    os.remove(broken / "records" / json.loads((broken / "dataset.json").read_text())["shards"][1])
    with pytest.raises(CorpusError, match="missing"):
        CorpusSource(broken)
    meta = json.loads((broken / "dataset.json").read_text())
    del meta["label_names"]
    (broken / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(CorpusError, match="label_names"):
        CorpusSource(broken)


def test_wrong_embedding_shape_names_the_file(tiny_corpus, tmp_path):
    data_dir, _ = tiny_corpus
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    np.save(copy / "embeddings.npy", np.zeros((3, 6), np.float32))
    with pytest.raises(CorpusError, match="embeddings.npy holds"):
        CorpusSource(copy).embeddings()
