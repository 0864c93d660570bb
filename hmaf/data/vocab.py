"""The word vocabulary of a prepared corpus (``vocab.txt``: line i holds the word of id i).

Id 0 is ``<pad>``, id 1 ``<unk>``; the corpus words follow by frequency, most frequent
first, ties in alphabetical order, so the same corpus always gives the same ids.

A word missing from the vocabulary that ends in an English clitic (``'s``, ``'ll``, ``'d``,
``'re``, ``'ve``, ``'m``) takes the id of the word before the clitic when that one is in
the vocabulary: "beauty's" -> "beauty". GloVe's tokenizer split clitics off, so it has no
vector for "beauty's", and a new sentence's possessives would otherwise all be ``<unk>``.
A word the corpus has (its vector the mean of both parts, :mod:`hmaf.data.embeddings`)
keeps its own id, and "n't" never backs off: "shouldn't" -> "should" would flip the
meaning. :data:`CLITIC_PATTERN` is the rule; :func:`hmaf.data.pipeline.lookup_ids` applies
the same in TensorFlow. This module imports numpy only.
"""

from __future__ import annotations

import collections
import os
import re
from typing import Iterable, Sequence

import numpy as np

from hmaf.io import atomic_write_text

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1
# An unknown word ending in one of these clitics backs off to the word before it (RE2 and
# Python syntax alike: the TensorFlow lookup uses the same pattern).
CLITIC_PATTERN = r"'(?:s|ll|d|re|ve|m)$"
_CLITIC = re.compile(CLITIC_PATTERN)


class VocabError(ValueError):
    """A vocabulary file or word list that breaks the format."""


class Vocab:
    """An id <-> word mapping with ``<pad>`` = 0 and ``<unk>`` = 1."""

    def __init__(self, words: Sequence[str]):
        """Args: words: all words in id order, starting with ``<pad>``, ``<unk>``."""
        words = list(words)
        if words[:2] != [PAD, UNK]:
            raise VocabError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {words[:2]}")
        for i, word in enumerate(words):
            # One word per line in vocab.txt: a word with whitespace could not round-trip.
            if not word or word != word.strip() or "\n" in word or "\r" in word:
                raise VocabError(f"vocabulary word {i} ({word!r}) is empty or holds whitespace at its ends or a line break")
        self.words: list[str] = words
        self._index = {word: i for i, word in enumerate(words)}
        if len(self._index) != len(words):
            dupes = sorted(w for w, n in collections.Counter(words).items() if n > 1)
            raise VocabError(f"vocabulary has duplicate words: {dupes[:10]}")

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], *, min_count: int = 1) -> "Vocab":
        """Builds the vocabulary of ``sentences`` (lists of normalised words).

        Words seen fewer than ``min_count`` times are left out (they map to ``<unk>``).
        """
        counts = collections.Counter(w for sentence in sentences for w in sentence)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        """Reads ``vocab.txt``; raises :class:`VocabError` naming the file when it is malformed."""
        try:
            with open(path, encoding="utf-8") as f:
                words = f.read().split("\n")
        except FileNotFoundError:
            raise FileNotFoundError(f"vocabulary file not found: {path}") from None
        if words and words[-1] == "":
            words.pop()
        try:
            return cls(words)
        except VocabError as e:
            raise VocabError(f"{path}: {e}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Writes ``vocab.txt`` atomically (:mod:`hmaf.io`)."""
        atomic_write_text(path, "\n".join(self.words) + "\n")

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index

    def id(self, word: str) -> int:
        """The id of ``word``; an unknown word with a clitic takes the id of the word
        before it (module docstring); otherwise ``UNK_ID``."""
        found = self._index.get(word)
        if found is None:
            found = self._index.get(_CLITIC.sub("", word), UNK_ID)
        # "<pad>" and "<unk>" are never words of a transcript (as in the TensorFlow table)
        return found if found > UNK_ID else UNK_ID

    def ids(self, words: Iterable[str]) -> np.ndarray:
        """Ids of ``words`` (:meth:`id`): int32 ``[len(words)]``."""
        return np.asarray([self.id(w) for w in words], dtype=np.int32)
