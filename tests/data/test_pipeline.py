"""tf.data pipeline: batch contract, padding, bucketing, balancing, determinism."""

import itertools
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from hmaf.batch import validate
from hmaf.data import pipeline
from hmaf.data.fake_corpus import OOV_WORD
from hmaf.data.vocab import UNK_ID, Vocab


def _files_and_words(tiny_corpus):
    data_dir, _ = tiny_corpus
    files = sorted(str(p) for p in pathlib.Path(data_dir, "records").iterdir())
    return files, Vocab.load(f"{data_dir}/vocab.txt")


def _take(ds, n):
    return list(itertools.islice(ds.as_numpy_iterator(), n))


@pytest.mark.parametrize("bucket", [True, False])
def test_eval_batches_follow_the_contract_and_hold_the_records(tiny_corpus, bucket):
    _, examples = tiny_corpus
    files, vocab = _files_and_words(tiny_corpus)
    batches = list(pipeline.eval_dataset(files, vocab.words, batch_size=5, bucket=bucket).as_numpy_iterator())
    seen = []
    for batch in batches:
        validate(batch)
        assert batch["word_ids"].dtype == np.int32 and batch["label"].dtype == np.int32
        assert batch["frames"].dtype == np.float32 and batch["frame_mask"].dtype == bool
        b, n, l, _ = batch["frames"].shape
        assert n % 8 == 0 and l % 16 == 0
        # Rounded up, never beyond: the longest utterance / word needs the last block.
        assert n - batch["word_mask"].sum(1).max() < 8
        assert l - batch["frame_mask"].sum(2).max() < 16
        assert np.all(batch["frames"][~batch["frame_mask"]] == 0)
        for i, utt in enumerate(batch["utt_id"]):
            ex = examples[utt.decode()]
            seen.append(utt.decode())
            num_words = len(ex["words"])
            assert batch["word_mask"][i].sum() == num_words
            assert batch["label"][i] == ex["label"]
            np.testing.assert_array_equal(batch["word_ids"][i, :num_words], vocab.ids(ex["words"]))
            for j, word_frames in enumerate(ex["frames"]):
                assert batch["frame_mask"][i, j].sum() == len(word_frames)
                np.testing.assert_array_equal(batch["frames"][i, j, :len(word_frames)], word_frames)
    assert sorted(seen) == sorted(examples)  # every example exactly once


def test_unknown_words_map_to_one(tiny_corpus):
    files, vocab = _files_and_words(tiny_corpus)
    assert OOV_WORD not in vocab
    table = pipeline.lookup_table(vocab.words)
    ids = table.lookup(tf.constant([OOV_WORD, vocab.words[2], "<pad>", "<unk>"])).numpy()
    np.testing.assert_array_equal(ids, [UNK_ID, 2, UNK_ID, UNK_ID])
    batch = next(pipeline.eval_dataset(files, vocab.words, batch_size=64, bucket=False).as_numpy_iterator())
    assert (batch["word_ids"] == UNK_ID).sum() == 6  # the first utterance of each speaker has one


def test_selection_keeps_only_named_groups(tiny_corpus):
    files, vocab = _files_and_words(tiny_corpus)
    selection = pipeline.Selection("group", ("s1", "s4"))
    ids = [u.decode() for b in pipeline.eval_dataset(files, vocab.words, batch_size=4, selection=selection)
           .as_numpy_iterator() for u in b["utt_id"]]
    assert sorted(ids) == sorted(f"s{s}-{k}" for s in (1, 4) for k in range(9))
    index = pipeline.scan(files)
    assert sorted(index.utt_id[index.mask(selection)]) == sorted(ids)


@pytest.mark.parametrize("bucket", [True, False])
@pytest.mark.parametrize("batch_size", [6, 8])
def test_balanced_training_batches_hold_equal_class_counts(tiny_corpus, bucket, batch_size):
    files, vocab = _files_and_words(tiny_corpus)
    selection = pipeline.Selection("group", ("s0", "s1", "s2", "s3"))
    ds = pipeline.train_dataset(files, vocab.words, batch_size=batch_size, num_classes=3,
                                selection=selection, bucket=bucket, window_batches=2, seed=5)
    batches = _take(ds, 12)
    totals = np.zeros(3, int)
    for batch in batches:
        validate(batch)
        assert batch["label"].shape == (batch_size,)
        counts = np.bincount(batch["label"], minlength=3)
        assert counts.min() == batch_size // 3 and counts.max() == -(-batch_size // 3)
        totals += counts
        assert all(u.decode().split("-")[0] in selection.values for u in batch["utt_id"])
    assert totals.min() == totals.max()  # over 3 batches the extra places rotate


def test_training_stream_is_deterministic_for_a_seed(tiny_corpus):
    files, vocab = _files_and_words(tiny_corpus)
    make = lambda seed, balanced: _take(pipeline.train_dataset(
        files, vocab.words, batch_size=4, num_classes=3, seed=seed, balanced=balanced), 15)
    for balanced in (True, False):
        a, b, c = make(1, balanced), make(1, balanced), make(2, balanced)
        assert all(np.array_equal(x["frames"], y["frames"]) and np.array_equal(x["utt_id"], y["utt_id"])
                   for x, y in zip(a, b))
        assert any(not np.array_equal(x["utt_id"], y["utt_id"]) for x, y in zip(a, c))


def test_unbalanced_stream_covers_the_selection(tiny_corpus):
    files, vocab = _files_and_words(tiny_corpus)
    selection = pipeline.Selection("split", ("train",))
    batches = _take(pipeline.train_dataset(files, vocab.words, batch_size=4, num_classes=3,
                                           selection=selection, balanced=False, shuffle_buffer=64), 30)
    seen = {u.decode() for b in batches for u in b["utt_id"]}
    index = pipeline.scan(files)
    assert seen == set(index.utt_id[index.mask(selection)])


def test_bucketing_reduces_padding(tiny_corpus):
    files, vocab = _files_and_words(tiny_corpus)
    share = {}
    for bucket in (True, False):
        ds = pipeline.train_dataset(files, vocab.words, batch_size=6, num_classes=3, bucket=bucket, seed=0)
        share[bucket] = pipeline.padding_stats(_take(ds, 40))["real_frame_share"]
    assert share[True] > share[False]


def test_padding_stats_counts_real_and_computed_frames():
    frame_mask = np.zeros((2, 8, 16), bool)
    frame_mask[0, 0, :4] = True
    frame_mask[1, :2, :1] = True
    word_mask = frame_mask.any(-1)
    stats = pipeline.padding_stats([{"frame_mask": frame_mask, "word_mask": word_mask}] * 2)
    assert stats["real_frame_share"] == pytest.approx(6 / 256)
    assert stats["real_word_share"] == pytest.approx(3 / 16)
    assert (stats["num_batches"], stats["num_examples"], stats["num_shapes"]) == (2, 4, 1)


def test_missing_class_or_empty_selection_is_refused(tiny_corpus):
    files, vocab = _files_and_words(tiny_corpus)
    with pytest.raises(ValueError, match="no training examples"):
        pipeline.train_dataset(files, vocab.words, batch_size=4, num_classes=3,
                               selection=pipeline.Selection("group", ("nobody",)))
    with pytest.raises(ValueError, match=r"class\(es\) \[3\]"):
        pipeline.train_dataset(files, vocab.words, batch_size=4, num_classes=4)
    with pytest.raises(FileNotFoundError, match="nothere.tfrecord"):
        pipeline.read_serialized(["nothere.tfrecord"])


def test_labels_beyond_num_classes_are_refused(tiny_corpus):
    files, vocab = _files_and_words(tiny_corpus)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        pipeline.train_dataset(files, vocab.words, batch_size=4, num_classes=2, balanced=False)


@pytest.mark.parametrize("bucket, balanced", [(True, True), (False, True), (True, False)])
def test_start_step_equals_the_tail_of_the_stream(tiny_corpus, bucket, balanced):
    files, vocab = _files_and_words(tiny_corpus)
    make = lambda start: pipeline.train_dataset(files, vocab.words, batch_size=4, num_classes=3, seed=2,
                                                bucket=bucket, balanced=balanced, window_batches=3,
                                                start_step=start)
    full = _take(make(0), 11)
    for start in (3, 7):  # a window boundary and inside a window
        tail = _take(make(start), 11 - start)
        assert all(a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
                   for a, b in zip(full[start:], tail))
    with pytest.raises(ValueError, match="start_step"):
        make(-1)


def test_tensorflow_lookup_backs_off_clitics_as_the_vocabulary_does():
    vocab = Vocab.build([["beauty", "we", "it's", "it", "should"]])
    words = ["beauty's", "we're", "it's", "shouldn't", "nope's", "'s", "beauty", "<pad>", "x'm"]
    ids = pipeline.lookup_ids(pipeline.lookup_table(vocab.words), tf.constant(words)).numpy()
    np.testing.assert_array_equal(ids, vocab.ids(words))
    assert ids[0] == vocab.id("beauty") > UNK_ID and ids[3] == UNK_ID
