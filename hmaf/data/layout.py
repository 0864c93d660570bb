"""How a corpus's examples become batches of fixed shapes (numpy only).

One :class:`BatchLayout` per corpus and config decides, for training, evaluation and
inference alike, the padding of the word and frame axes, the power-of-two split of
partial batches and the static row count of frame packing per batch shape. The same
config on the same corpus therefore gives the same batch shapes everywhere, and a
jitted step compiles once per shape (``hmaf.data.source.from_config`` builds it).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from hmaf.models.packing import pack_batch, rows_for

# The trainer saves the layout beside the checkpoints (``W/corpus/layout.json``) so
# that inference shapes its batches as training did.
LAYOUT_FILE = "layout.json"


@dataclasses.dataclass(frozen=True)
class BatchLayout:
    """Batch shapes of one corpus.

    Attributes:
      batch_size: examples per full batch.
      pad_words_to, pad_frames_to: N and L are rounded up to these multiples (with
        ``pad_frames_to`` = the corpus's l_max every batch has L = l_max).
      pack: add the frame-packing arrays (:mod:`hmaf.models.packing`).
      row_multiple: packed row counts are multiples of this.
      mean_frames: real frames per real word over the corpus; mean_words: words per
        utterance; utterance_std: standard deviation of real frames per utterance.
        They size the static packed row count of each batch shape.
    """

    batch_size: int
    pad_words_to: int = 8
    pad_frames_to: int = 16
    pack: bool = False
    row_multiple: int = 8
    mean_frames: float = 1.0
    mean_words: float = 1.0
    utterance_std: float = 0.0

    def to_dict(self) -> dict[str, float | int | bool]:
        return dataclasses.asdict(self)

    def rows(self, batch_size: int, max_words: int, row_len: int) -> int:
        """The packed row count of batches of shape ``[batch_size, max_words, row_len]``.

        A batch padded to N words holds at least one utterance of more than
        ``N - pad_words_to`` words, so the expected words per utterance are taken as at
        least that (never more than N); ``rows_for`` adds its margin.
        """
        words = min(float(max_words), max(self.mean_words, float(max_words - self.pad_words_to)))
        return rows_for(batch_size, max_words, row_len, mean_frames=self.mean_frames, mean_words=words,
                        row_multiple=self.row_multiple, utterance_std=self.utterance_std)

    def finish(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batch as the step takes it: packed (static rows for its shape) when ``pack``.

        A batch whose words need more rows than planned gets the next multiple of
        ``row_multiple`` (a pure function of the batch, so runs stay deterministic).
        """
        if not self.pack:
            return dict(batch)
        b, n, l = np.shape(batch["frame_mask"])
        return pack_batch(batch, rows=self.rows(b, n, l), row_multiple=self.row_multiple)

    def split_tail(self, batches: Iterable[Mapping[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        """Cuts batches smaller than ``batch_size`` into power-of-two pieces (7 -> 4 + 2 + 1)
        so that a jitted step meets the batch sizes {B, ..., 4, 2, 1} only."""
        for batch in batches:
            size = len(batch["label"])
            if size == self.batch_size:
                yield dict(batch)
                continue
            start = 0
            while start < size:
                piece = 1 << ((size - start).bit_length() - 1)
                yield {k: v[start:start + piece] for k, v in batch.items()}
                start += piece

    def utterance_batch(self, word_ids: Sequence[np.ndarray], frames: Sequence[Sequence[np.ndarray]],
                        word_marks: Sequence[Sequence[int]] | None = None) -> dict[str, np.ndarray]:
        """A padded batch (see :mod:`hmaf.batch`) of preprocessed utterances, with the
        padding of the corpus pipeline (and packing when ``pack``).

        Args:
          word_ids: per utterance int32 ``[N_u]``.
          frames: per utterance N_u arrays ``[n_i, M]``, one width M for all.
          word_marks: per utterance N_u punctuation mark ids, or None.

        Returns ``word_ids`` ``[B, N]``, ``word_mask`` ``[B, N]``, ``frames``
        ``[B, N, L, M]``, ``frame_mask`` ``[B, N, L]``, ``label`` zeros ``[B]`` and,
        given ``word_marks``, ``word_marks`` int32 ``[B, N]`` (0 at padding).
        """
        b = len(word_ids)
        n = _round_up(max(len(ids) for ids in word_ids), self.pad_words_to)
        l = _round_up(max(len(f) for fs in frames for f in fs), self.pad_frames_to)
        batch = {"word_ids": np.zeros((b, n), np.int32), "word_mask": np.zeros((b, n), bool),
                 "frames": np.zeros((b, n, l, _frame_width(frames)), np.float32), "frame_mask": np.zeros((b, n, l), bool),
                 "label": np.zeros((b,), np.int32)}
        for u, (ids, word_frames) in enumerate(zip(word_ids, frames)):
            batch["word_ids"][u, :len(ids)] = ids
            batch["word_mask"][u, :len(ids)] = True
            for i, f in enumerate(word_frames):
                batch["frames"][u, i, :len(f)] = f
                batch["frame_mask"][u, i, :len(f)] = True
        if word_marks is not None:
            batch["word_marks"] = np.zeros((b, n), np.int32)
            for u, marks in enumerate(word_marks):
                batch["word_marks"][u, :len(marks)] = marks
        return self.finish(batch)


def _frame_width(frames: Sequence[Sequence[np.ndarray]]) -> int:
    """The one column count of all utterances' word frames; ValueError if they differ."""
    widths = {np.shape(f)[-1] for fs in frames for f in fs}
    if len(widths) != 1:
        raise ValueError(f"word frames must share one width (64, or 67 with the prosody columns), got {sorted(widths)}")
    return widths.pop()


def _round_up(x: int, multiple: int) -> int:
    return -(-x // max(multiple, 1)) * max(multiple, 1)
