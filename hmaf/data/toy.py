"""Random batches in the batch contract, made in memory with numpy.

Used by the model tests and the benchmarks (ragged lengths as in real data), and by
:class:`ToySource`, a learnable in-memory corpus for the training tests.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from hmaf.batch import N_MELS, Batch


def random_batch(rng: np.random.Generator, batch_size: int, max_words: int, max_frames: int, *,
                 vocab_size: int = 50, num_classes: int = 4, n_mels: int = N_MELS,
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
    frames = rng.normal(size=(batch_size, max_words, max_frames, n_mels)).astype(np.float32)
    frames *= frame_mask[..., None]
    word_ids = np.where(word_mask, rng.integers(2, vocab_size, size=word_mask.shape), 0)
    return Batch(word_ids=word_ids.astype(np.int32), word_mask=word_mask, frames=frames,
                 frame_mask=frame_mask, label=rng.integers(0, num_classes, batch_size).astype(np.int32))
