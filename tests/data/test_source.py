"""CorpusSource: splits, resumable training stream, evaluation passes, errors."""

import itertools
import json
import os
import shutil

import numpy as np
import pytest

from hmaf.batch import FRAME_DIM, validate
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


def _config(data_dir, **overrides):
    from configs import default

    config = default.get_config()
    config.data.dir = str(data_dir)
    config.batch_size = 4
    config.update(overrides)
    return config


def _with_augmented_copies(data_dir, out_dir):
    """A copy of the corpus plus, for every record, a copy ``X~noise`` tagged
    ``augment="noise:white"`` in an extra shard (the record format of INTERFACES.md)."""
    import tensorflow as tf

    shutil.copytree(data_dir, out_dir)
    meta = json.loads((out_dir / "dataset.json").read_text())
    files = [str(out_dir / "records" / name) for name in meta["shards"]]
    name = "augmented-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(out_dir / "records" / name)) as writer:
        for serialized in tf.data.TFRecordDataset(files).as_numpy_iterator():
            example = tf.train.Example.FromString(serialized)
            features = example.features.feature
            utt = features["utt_id"].bytes_list.value[0].decode()
            features["utt_id"].bytes_list.value[:] = [f"{utt}~noise".encode()]
            features["augment"].bytes_list.value[:] = [b"noise:white"]
            writer.write(example.SerializeToString())
    meta["shards"].append(name)
    (out_dir / "dataset.json").write_text(json.dumps(meta))
    return out_dir


def test_split_ids_and_augmented_copies_only_in_train(tiny_corpus, tmp_path):
    from hmaf.data.source import from_config

    data_dir, examples = tiny_corpus
    corpus = _with_augmented_copies(data_dir, tmp_path / "aug")
    ids = sorted(examples)
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"train": ids[:30], "validation": ids[30:42], "test": ids[42:]}))
    config = _config(corpus, batch_size=3)
    config.data.update(split_mode="ids", split_file=str(split_file))
    source = from_config(config)
    assert source.index.augment.tolist().count("noise:white") == len(ids)
    assert source.split_sizes == {"train": 60, "validation": 12, "test": len(ids) - 42}
    assert sorted(source.utt_ids("train")) == sorted(ids[:30] + [f"{u}~noise" for u in ids[:30]])
    for split, expected in (("validation", ids[30:42]), ("test", ids[42:]), ("all", ids)):
        seen = [u.decode() for b in source.eval_batches(split) for u in b["utt_id"]]
        assert sorted(seen) == sorted(expected), split  # originals only, each once
    trained = {u.decode() for b in itertools.islice(source.train_batches(), 40) for u in b["utt_id"]}
    assert any("~" in u for u in trained) and {u.split("~")[0] for u in trained} <= set(ids[:30])
    config.data.augmented = False
    plain = from_config(config)
    assert plain.num_train_examples == 30
    trained = {u.decode() for b in itertools.islice(plain.train_batches(), 40) for u in b["utt_id"]}
    assert trained and not any("~" in u for u in trained)


def test_split_file_errors_name_the_file(tiny_corpus, tmp_path):
    from hmaf.data.source import from_config

    data_dir, _ = tiny_corpus
    config = _config(data_dir)
    config.data.update(split_mode="ids", split_file=str(tmp_path / "nope.json"))
    with pytest.raises(CorpusError, match="nope.json not found"):
        from_config(config)
    bad = tmp_path / "bad.json"
    for payload, message in (({"train": ["a"], "validation": []}, "needs a list of ids for \\['test'\\]"),
                             ({"train": ["a"], "validation": ["a"], "test": []}, "in both train and validation"),
                             ({"train": ["a~x"], "validation": [], "test": []}, "augmented copy")):
        bad.write_text(json.dumps(payload))
        config.data.split_file = str(bad)
        with pytest.raises(CorpusError, match=message):
            from_config(config)


def test_speaker_statistics_attach_by_speaker(tiny_corpus, tmp_path):
    from hmaf.data.source import from_config

    data_dir, examples = tiny_corpus
    corpus = tmp_path / "stats"
    shutil.copytree(data_dir, corpus)
    speakers = sorted({ex["speaker"] for ex in examples.values()})
    stats = {s: {"mean": [float(i)] * FRAME_DIM, "std": [1.0 + i] * FRAME_DIM, "frames": 10}
             for i, s in enumerate(speakers)}
    (corpus / "speaker_stats.json").write_text(json.dumps(stats))
    config = _config(corpus)
    config.model.audio_norm = "speaker"
    source = from_config(config)
    for batch in itertools.chain(itertools.islice(source.train_batches(), 3), source.eval_batches("test")):
        for speaker, mean, std in zip(batch["speaker"], batch["band_mean"], batch["band_std"]):
            i = speakers.index(speaker.decode())
            assert mean.shape == (FRAME_DIM,) and np.all(mean == i) and np.all(std == 1.0 + i)
    del stats[speakers[0]]
    (corpus / "speaker_stats.json").write_text(json.dumps(stats))
    with pytest.raises(CorpusError, match="speaker_stats.json has no statistics for speaker"):
        for _ in from_config(config).eval_batches("all"):
            pass


def test_from_config_packs_with_one_row_count_per_shape_and_splits_tails(tiny_corpus):
    from hmaf.data.source import from_config

    data_dir, examples = tiny_corpus
    config = _config(data_dir, batch_size=8, pack_frames=True)
    source = from_config(config)
    rows_by_shape = {}
    sizes = []
    for batch in itertools.chain(source.eval_batches("all"), itertools.islice(source.train_batches(), 10)):
        shape = batch["frame_mask"].shape
        rows_by_shape.setdefault(shape, set()).add(batch["pack_src"].shape[0])
        assert batch["pack_mask"].sum() == batch["frame_mask"].sum()
        assert shape[2] == source.info.l_max and shape[1] % 16 == 0
        sizes.append(shape[0])
    assert all(len(rows) == 1 for rows in rows_by_shape.values()), rows_by_shape
    assert set(sizes) <= {8, 4, 2, 1} and sum(s for s in sizes[:-10]) == len(examples)


def test_experiment_source_is_the_seam_and_its_padding_is_saved(tiny_corpus):
    """hmaf.experiment builds its fold source through from_config, with its padding
    options written into the training config (which the checkpoint saves)."""
    import ml_collections

    from hmaf.data.source import from_config
    from hmaf.experiment import make_source

    data_dir, _ = tiny_corpus
    config = _config(data_dir)
    options = ml_collections.ConfigDict(dict(bucket=False, pad_words_to=24, pad_frames_to=32))
    source = make_source(config, options)
    assert (config.data.pad_words_to, config.data.pad_frames_to) == (24, 32)
    assert source.layout == from_config(config).layout
    assert {b["frame_mask"].shape[1:] for b in source.eval_batches("validation")} == {(24, 32)}


def test_a_prosody_model_on_a_corpus_from_before_the_prosody_columns_is_refused_early(tiny_corpus, tmp_path):
    from hmaf.data.source import from_config

    data_dir, _ = tiny_corpus
    corpus = tmp_path / "old"
    shutil.copytree(data_dir, corpus)
    meta = json.loads((corpus / "dataset.json").read_text())
    del meta["frame_dim"]  # as dataset.json was written before the prosody columns
    (corpus / "dataset.json").write_text(json.dumps(meta))
    config = _config(corpus)
    config.model.audio_norm = "utterance"
    assert config.model.prosody  # the default
    with pytest.raises(CorpusError, match=r"old holds 64 columns per frame.*re-run python -m hmaf.prepare"):
        from_config(config)
    config.model.prosody = False
    assert from_config(config).info.frame_dim == 64
