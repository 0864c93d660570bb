"""Vocabulary building, ids and vocab.txt round trip."""

import os

import numpy as np
import pytest

from hmaf.data.vocab import UNK_ID, Vocab, VocabError


def test_build_orders_by_frequency_then_alphabet():
    vocab = Vocab.build([["b", "a", "c"], ["c", "b", "d"], ["c"]])
    assert vocab.words == ["<pad>", "<unk>", "c", "b", "a", "d"]


def test_min_count_and_special_tokens_are_not_counted():
    vocab = Vocab.build([["x", "x", "y", "<unk>", "<pad>"]], min_count=2)
    assert vocab.words == ["<pad>", "<unk>", "x"]


def test_ids_map_unknown_words_to_one():
    vocab = Vocab.build([["hello", "world", "hello"]])
    ids = vocab.ids(["hello", "nope", "world"])
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [2, UNK_ID, 3])
    assert vocab.id("nope") == UNK_ID and "hello" in vocab and len(vocab) == 4


def test_unknown_clitic_words_back_off_to_the_word_before_the_clitic():
    vocab = Vocab.build([["beauty", "we", "john", "should", "it's", "it"]])
    words = ["beauty's", "we're", "we'll", "john'd", "it's", "shouldn't", "o'brien", "nope's", "'s", "<pad>"]
    expected = [vocab.id("beauty"), vocab.id("we"), vocab.id("we"), vocab.id("john"),
                vocab._index["it's"],  # a word the corpus has keeps its own id, not "it"'s
                UNK_ID, UNK_ID, UNK_ID, UNK_ID, UNK_ID]  # n't, a name, unknown head, no head, special
    np.testing.assert_array_equal(vocab.ids(words), expected)
    assert vocab._index["it's"] != vocab.id("it") and vocab.id("beauty") > UNK_ID


def test_save_load_round_trip_and_no_temp_left(tmp_path):
    vocab = Vocab.build([["ça", "va", "très", "bien", "va"]])
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    assert Vocab.load(path).words == vocab.words
    assert path.read_text(encoding="utf-8").split("\n")[:3] == ["<pad>", "<unk>", "va"]
    assert os.listdir(tmp_path) == ["vocab.txt"]


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "vocab.txt"
    bad.write_text("hello\n<unk>\n")
    with pytest.raises(VocabError, match="vocab.txt"):
        Vocab.load(bad)
    bad.write_text("<pad>\n<unk>\na\na\n")
    with pytest.raises(VocabError, match="duplicate"):
        Vocab.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        Vocab.load(tmp_path / "missing.txt")


def test_words_that_cannot_be_one_line_are_refused():
    with pytest.raises(VocabError):
        Vocab(["<pad>", "<unk>", "two\nlines"])
