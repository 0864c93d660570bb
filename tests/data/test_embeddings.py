"""Embedding matrices from every spec kind, and errors for bad specs."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from hmaf.data import embeddings
from hmaf.data.embeddings import EmbeddingError, build_matrix

VOCAB = ["<pad>", "<unk>", "the", "Cat", "sat", "qzxv"]
SENTENCES = [["the", "Cat", "sat"], ["the", "qzxv"], ["sat", "the"]]


def _keyed_vectors():
    kv = KeyedVectors(vector_size=4)
    kv.add_vectors(["the", "cat", "sat", "mat"], np.arange(16, dtype=np.float32).reshape(4, 4))
    return kv


def test_glove_text_file(tmp_path):
    path = tmp_path / "vectors.txt"
    _keyed_vectors().save_word2vec_format(str(path), binary=False, write_header=False)
    matrix, info = build_matrix(f"glove:{path}", VOCAB, SENTENCES, seed=0)
    assert matrix.shape == (6, 4) and matrix.dtype == np.float32
    assert np.all(matrix[0] == 0)
    np.testing.assert_array_equal(matrix[2], [0, 1, 2, 3])
    np.testing.assert_array_equal(matrix[3], [4, 5, 6, 7])  # "Cat" found lowercased
    assert info["num_unknown"] == 1 and info["unknown_examples"] == ["qzxv"]
    assert info["unknown_share"] == pytest.approx(1 / 4)
    assert info["unknown_token_share"] == pytest.approx(1 / 7)
    # The unknown word's random vector has the known vectors' scale.
    assert 0.2 < np.std(matrix[5]) / np.std(matrix[2:5]) < 5


def test_pretrained_words_keep_the_file_order_and_only_our_words(tmp_path):
    kv = KeyedVectors(vector_size=2)
    kv.add_vectors(["the", ",", "'s", "cat", "'hi'", "well-known", "don't", "sat"], np.ones((8, 2), np.float32))
    path = tmp_path / "vectors.txt"
    kv.save_word2vec_format(str(path), binary=False, write_header=False)
    assert embeddings.pretrained_words(f"glove:{path}", 3) == ["the", "cat", "don't"]
    assert embeddings.pretrained_words(f"glove:{path}", 10) == ["the", "cat", "don't", "sat"]
    glove = embeddings.pretrained_words("glove6b50", 5)
    assert glove == ["the", "of", "to", "and", "in"]  # GloVe 6B's most frequent, "," and "." left out
    with pytest.raises(EmbeddingError, match="pretrained"):
        embeddings.pretrained_words("train:dim=8", 5)


def test_word2vec_binary_file_and_seeded_unknowns(tmp_path):
    path = tmp_path / "vectors.bin"
    _keyed_vectors().save_word2vec_format(str(path), binary=True)
    a, info = build_matrix(f"word2vec:{path}", VOCAB, SENTENCES, seed=1)
    b, _ = build_matrix(f"word2vec:{path}", VOCAB, SENTENCES, seed=1)
    c, _ = build_matrix(f"word2vec:{path}", VOCAB, SENTENCES, seed=2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[4], [8, 9, 10, 11])
    assert not np.array_equal(a[5], c[5])
    assert info["dim"] == 4 and info["vocab_size"] == 6


def test_train_is_deterministic_and_sized():
    a, info = build_matrix("train:dim=12,epochs=3", VOCAB, SENTENCES, seed=0)
    b, _ = build_matrix("train:dim=12,epochs=3", VOCAB, SENTENCES, seed=0)
    assert a.shape == (6, 12) and info["unknown_share"] == 0.0
    np.testing.assert_array_equal(a, b)
    assert build_matrix("train", VOCAB, SENTENCES, seed=0)[0].shape == (6, 100)


def test_glove6b50_gives_the_package_vector():
    matrix, info = build_matrix("glove6b50", VOCAB, SENTENCES, seed=0)
    vectors, index = embeddings.load_glove6b50()
    assert vectors.shape == (400000, 50)
    np.testing.assert_array_equal(matrix[2], vectors[index["the"]])
    np.testing.assert_array_equal(matrix[3], vectors[index["cat"]])
    # Published GloVe 6B 50d vector of "the" starts 0.418 0.24968 -0.41242.
    np.testing.assert_allclose(matrix[2, :3], [0.418, 0.24968, -0.41242], rtol=1e-5)
    assert info["unknown_examples"] == ["qzxv"]


@pytest.mark.parametrize("spec, error, message", [
    ("fasttext:x.vec", EmbeddingError, "unknown embeddings spec"),
    ("glove6b50:extra", EmbeddingError, "unknown embeddings spec"),
    ("word2vec:", EmbeddingError, "names no file"),
    ("train:dim=0", EmbeddingError, "dim=0"),
    ("train:size=3", EmbeddingError, "size=3"),
    ("glove:/nonexistent/vectors.txt", FileNotFoundError, "/nonexistent/vectors.txt"),
])
def test_bad_specs(spec, error, message):
    with pytest.raises(error, match=message):
        build_matrix(spec, VOCAB, SENTENCES, seed=0)


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.bin"
    path.write_bytes(b"3 4\nthe \x00\x01")
    with pytest.raises(EmbeddingError, match="broken.bin"):
        build_matrix(f"word2vec:{path}", VOCAB, SENTENCES, seed=0)


def test_vocab_must_start_with_special_tokens():
    with pytest.raises(EmbeddingError, match="<pad>"):
        build_matrix("train", ["the", "cat"], SENTENCES, seed=0)


def test_contractions_get_the_mean_of_their_parts(tmp_path):
    # GloVe's tokenizer split "don't" into "do" + "n't"; our transcripts keep it whole.
    kv = KeyedVectors(vector_size=2)
    kv.add_vectors(["do", "n't", "it", "'s", "y", "know", "ca"],
                   np.array([[0, 2], [2, 0], [4, 4], [0, 8], [1, 1], [3, 3], [6, 0]], dtype=np.float32))
    path = tmp_path / "vectors.txt"
    kv.save_word2vec_format(str(path), binary=False, write_header=False)
    vocab = ["<pad>", "<unk>", "Don't", "it's", "y'know", "can't", "rock'n'roll", "it"]
    matrix, info = build_matrix(f"glove:{path}", vocab, [vocab[2:]], seed=0)
    np.testing.assert_array_equal(matrix[2], [1, 1])  # mean of "do" and "n't"
    np.testing.assert_array_equal(matrix[3], [2, 6])  # "it" + "'s"
    np.testing.assert_array_equal(matrix[4], [2, 2])  # "y" + "know" ("'know" is not there)
    np.testing.assert_array_equal(matrix[5], [4, 0])  # "ca" + "n't"
    np.testing.assert_array_equal(matrix[7], [4, 4])
    assert info["num_composed"] == 4 and info["composed_examples"] == ["Don't", "it's", "y'know", "can't"]
    assert info["unknown_examples"] == ["rock'n'roll"]  # a part is missing: a random vector
