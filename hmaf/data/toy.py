"""Random batches in the batch contract, made in memory with numpy.

Used by the model tests and the benchmarks (ragged lengths as in real data), and by
:class:`ToySource`, a learnable in-memory corpus for the training tests.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from hmaf.batch import FRAME_DIM, NUM_MARKS, Batch
from hmaf.data.layout import BatchLayout


def random_batch(rng: np.random.Generator, batch_size: int, max_words: int, max_frames: int, *,
                 vocab_size: int = 50, num_classes: int = 4, frame_dim: int = FRAME_DIM,
                 min_words: int | None = None, min_frames: int | None = None) -> Batch:
    """A padded batch with ragged lengths.

    Words per utterance are uniform in ``[min_words, max_words]`` (default
    ``max_words // 2``) and frames per word uniform in ``[min_frames, max_frames]``
    (default ``max_frames // 4``), the benchmark protocol of issue 5.

    Returns arrays ``word_ids [B, N]``, ``word_mask [B, N]``, ``frames [B, N, L, M]``,
    ``frame_mask [B, N, L]``, ``label [B]``.
    """
    min_words = max(1, max_words // 2) if min_words is None else min_words
    min_frames = max(1, max_frames // 4) if min_frames is None else min_frames
    n_words = rng.integers(min_words, max_words + 1, size=batch_size)
    word_mask = np.arange(max_words)[None] < n_words[:, None]
    n_frames = rng.integers(min_frames, max_frames + 1, size=(batch_size, max_words)) * word_mask
    frame_mask = np.arange(max_frames)[None, None] < n_frames[..., None]
    frames = rng.normal(size=(batch_size, max_words, max_frames, frame_dim)).astype(np.float32)
    frames *= frame_mask[..., None]
    word_ids = np.where(word_mask, rng.integers(2, vocab_size, size=word_mask.shape), 0)
    return Batch(word_ids=word_ids.astype(np.int32), word_mask=word_mask, frames=frames,
                 frame_mask=frame_mask, label=rng.integers(0, num_classes, batch_size).astype(np.int32))


class ToySource:
    """A small learnable corpus made in memory, with the interface of
    :class:`hmaf.data.source.CorpusSource` (used by the training tests).

    Each class has keywords in the text and a louder band of mel energies on one
    word in the audio, so text-only, audio-only and fusion models can all learn it.
    ``word_marks``: batches also hold random punctuation marks ``word_marks`` ``[B, N]``
    (0 at padding; drawn after everything else, so the other arrays stay the same).
    """

    def __init__(self, *, num_classes: int = 3, vocab_size: int = 30, embed_dim: int = 8, max_words: int = 8,
                 max_frames: int = 6, split_sizes: tuple[int, int, int] = (48, 24, 24), batch_size: int = 8,
                 seed: int = 0, pack: bool = False, row_multiple: int = 8, word_marks: bool = False):
        self.num_classes, self.vocab_size, self.embed_dim = num_classes, vocab_size, embed_dim
        self.max_words, self.max_frames, self.batch_size, self.seed = max_words, max_frames, batch_size, seed
        self.word_marks = word_marks
        self.label_names = [f"class{i}" for i in range(num_classes)]
        self.info = {"label_names": self.label_names, "num_classes": num_classes, "vocab_size": vocab_size,
                     "embedding_dim": embed_dim, "l_max": max_frames, "name": "toy"}
        self._splits = {name: self._examples(np.random.default_rng([seed, i]), size)
                        for i, (name, size) in enumerate(zip(("train", "validation", "test"), split_sizes))}
        words = np.concatenate([b["word_mask"].sum(1) for b in self._splits.values()])
        frames = np.concatenate([b["frame_mask"].sum((1, 2)) for b in self._splits.values()])
        # One padded shape [B, max_words, max_frames]: whole batches are never padded further.
        self.layout = BatchLayout(batch_size=batch_size, pad_words_to=max_words, pad_frames_to=max_frames,
                                  pack=pack, row_multiple=row_multiple,
                                  mean_frames=float(frames.sum() / words.sum()), mean_words=float(words.mean()),
                                  utterance_std=float(frames.std()))

    def embeddings(self) -> np.ndarray:
        return np.random.default_rng(self.seed).normal(size=(self.vocab_size, self.embed_dim)).astype(np.float32)

    def _examples(self, rng: np.random.Generator, size: int) -> Batch:
        labels = np.arange(size) % self.num_classes
        batch = random_batch(rng, size, self.max_words, self.max_frames, vocab_size=self.vocab_size,
                             num_classes=self.num_classes, min_words=2, min_frames=2)
        batch["label"] = labels.astype(np.int32)
        key_pos = rng.integers(0, 2, size)  # a real word: every utterance has >= 2
        batch["word_ids"][np.arange(size), key_pos] = 2 + labels  # the class's keyword
        band = (np.arange(batch["frames"].shape[-1]) // 8 == labels[:, None])  # [size, M]
        batch["frames"][np.arange(size), key_pos] += 3.0 * band[:, None, :]
        batch["frames"] *= batch["frame_mask"][..., None]
        if self.word_marks:
            marks = rng.integers(0, NUM_MARKS, batch["word_ids"].shape)  # after every other draw
            batch["word_marks"] = np.where(batch["word_mask"], marks, 0).astype(np.int32)
        return batch

    @property
    def split_sizes(self) -> dict[str, int]:
        return {name: len(b["label"]) for name, b in self._splits.items()}

    @property
    def num_train_examples(self) -> int:
        return self.split_sizes["train"]

    def train_batches(self, start_step: int = 0) -> Iterator[Batch]:
        """Infinite class-balanced batches; batch ``s`` depends only on (seed, s)."""
        train = self._splits["train"]
        by_class = [np.flatnonzero(train["label"] == c) for c in range(self.num_classes)]
        step = start_step
        while True:
            rng = np.random.default_rng([self.seed, 1000, step])
            idx = np.concatenate([rng.choice(by_class[c], self.batch_size // self.num_classes + 1)
                                  for c in range(self.num_classes)])[: self.batch_size]
            yield self.layout.finish({k: v[idx] for k, v in train.items()})
            step += 1

    def eval_batches(self, split: str) -> Iterator[Batch]:
        """One pass over ``split`` (or "all"); partial batches cut into powers of two."""
        names = list(self._splits) if split == "all" else [split]
        for name in names:
            data = self._splits[name]
            batches = ({k: v[start:start + self.batch_size] for k, v in data.items()}
                       for start in range(0, len(data["label"]), self.batch_size))
            yield from map(self.layout.finish, self.layout.split_tail(batches))
