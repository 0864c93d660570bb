"""Frame packing: the frame-level BiGRU runs over real frames only.

In the padded layout the frame-level BiGRU runs ``B * N`` sequences of ``L`` steps,
although only about half of those frames are real (ragged words, padded words).
Packing flattens the ``B * N`` words, drops the empty ones, and places the words
end to end in ``rows`` rows of ``row_len`` frames, longest first, each into the
first row with room (first-fit decreasing). A row of short words costs the same
as one long word, so the scan still has ``row_len`` steps but far fewer rows.

The packing is computed on the host with numpy and travels with the batch as
extra integer/bool arrays (:data:`PACK_KEYS`); the model gathers the frames into
rows, resets the GRU state at each word's boundaries, and gathers the outputs back
into ``[B, N, L]`` (see :class:`hmaf.models.encoders.AudioAttention`). Parameters
are the same as in the padded layout, and so are the results, up to float rounding.

Shapes are static for jit when ``rows`` is fixed: pick it once per batch shape
with :func:`rows_for` (or let :func:`pack_batch` size each batch to the next
multiple of ``row_multiple``, at the price of a recompilation per new size).
"""

from __future__ import annotations

import logging
import math
from typing import Mapping

import numpy as np

PACK_KEYS = ("pack_src", "pack_mask", "pack_start", "pack_end", "unpack_index")

log = logging.getLogger(__name__)


def first_fit_decreasing(lengths: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Places items of integer ``lengths`` ``[W]`` into rows of ``capacity``.

    Longest first, each into the first row with room; ties keep the input order,
    so the placement is deterministic. Returns ``row [W]``, ``offset [W]`` (start
    inside the row) and the number of rows used (rows ``0 .. used-1``).
    """
    lengths = np.asarray(lengths, np.int64)
    if lengths.size and (lengths.max() > capacity or lengths.min() < 1):
        raise ValueError(f"item lengths must lie in [1, {capacity}], got [{lengths.min()}, {lengths.max()}]")
    remaining = np.full(lengths.size + 1, capacity, np.int64)
    row = np.zeros(lengths.size, np.int64)
    offset = np.zeros(lengths.size, np.int64)
    used = 0
    for i in np.argsort(-lengths, kind="stable"):
        r = int(np.argmax(remaining[:used + 1] >= lengths[i]))  # row `used` is still empty
        row[i], offset[i] = r, capacity - remaining[r]
        remaining[r] -= lengths[i]
        used = max(used, r + 1)
    return row, offset, used


def rows_for(batch_size: int, max_words: int, row_len: int, *, mean_frames: float,
             mean_words: float | None = None, margin: float = 1.15, row_multiple: int = 8,
             utterance_std: float = 0.0, spread: float = 2.0) -> int:
    """A static row count for batches of ``batch_size`` utterances.

    ``mean_frames`` is the mean number of real frames per real word and
    ``mean_words`` the mean number of words per utterance (default ``max_words``);
    ``utterance_std`` the standard deviation of real frames per utterance: the plan
    covers a batch total ``spread`` standard deviations above its mean (the sum of
    ``batch_size`` utterances varies by ``sqrt(batch_size) * utterance_std``).
    ``margin`` covers the room first-fit leaves unused. Never more rows than words
    (the padded layout's cost).
    """
    words = batch_size * (max_words if mean_words is None else mean_words)
    frames = words * mean_frames + spread * math.sqrt(batch_size) * utterance_std
    rows = math.ceil(margin * frames / row_len)
    return min(_round_up(rows, row_multiple), batch_size * max_words)


def pack_batch(batch: Mapping[str, np.ndarray], *, rows: int | None = None, row_len: int | None = None,
               row_multiple: int = 8) -> dict[str, np.ndarray]:
    """Adds the packing arrays to a numpy batch (see :mod:`hmaf.batch`).

    Args:
      batch: needs ``frame_mask`` ``[B, N, L]`` with real frames first in every word.
      rows: number of packed rows (static shape). If the words need more, the
        packing grows to the next multiple of ``row_multiple`` and logs a warning
        (the jitted step then compiles once more for the new shape). None: as
        many as this batch needs, rounded up to ``row_multiple``.
      row_len: frames per row (default ``L``); at least the longest word.

    Returns a new dict: the batch plus
      ``pack_src`` int32 ``[P, R]``: flat index into ``frames.reshape(B*N*L, M)``
        of the frame at each packed position (0 where the position is empty),
      ``pack_mask`` bool ``[P, R]``: a real frame sits there,
      ``pack_start`` / ``pack_end`` bool ``[P, R]``: a word's first / last frame,
      ``unpack_index`` int32 ``[B, N, L]``: flat index into ``P * R`` of each real
        frame's packed position (0 at padding, which the frame mask hides).
    """
    frame_mask = np.asarray(batch["frame_mask"], bool)
    b, n, l = frame_mask.shape
    row_len = l if row_len is None else row_len
    num_frames = frame_mask.sum(-1)  # [B, N]
    if not np.array_equal(frame_mask, np.arange(l) < num_frames[..., None]):
        raise ValueError("frame_mask must mark each word's real frames first (padding at the end)")
    if num_frames.max(initial=0) > row_len:
        raise ValueError(f"row_len={row_len} is shorter than the longest word ({num_frames.max()} frames)")
    words = np.flatnonzero(num_frames.ravel())  # flat b * N + n of real words
    lengths = num_frames.ravel()[words]
    row, offset, used = first_fit_decreasing(lengths, row_len)
    needed = _round_up(max(used, 1), row_multiple)
    if rows is None:
        rows = needed
    elif used > rows:
        log.warning("packing needs %d rows but %d were planned; using %d (one more compilation)",
                    used, rows, needed)
        rows = needed

    word_of_frame = np.repeat(np.arange(words.size), lengths)  # [F] real frames
    first = np.cumsum(lengths) - lengths
    within = np.arange(lengths.sum()) - first[word_of_frame]
    dest = (row * row_len + offset)[word_of_frame] + within  # packed flat position
    src = words[word_of_frame] * l + within  # padded flat position
    pack_src = np.zeros(rows * row_len, np.int32)
    pack_src[dest] = src
    pack_mask = np.zeros(rows * row_len, bool)
    pack_mask[dest] = True
    pack_start = np.zeros(rows * row_len, bool)
    pack_start[row * row_len + offset] = True
    pack_end = np.zeros(rows * row_len, bool)
    pack_end[row * row_len + offset + lengths - 1] = True
    unpack_index = np.zeros(b * n * l, np.int32)
    unpack_index[src] = dest
    shape = (rows, row_len)
    return {**batch, "pack_src": pack_src.reshape(shape), "pack_mask": pack_mask.reshape(shape),
            "pack_start": pack_start.reshape(shape), "pack_end": pack_end.reshape(shape),
            "unpack_index": unpack_index.reshape(b, n, l)}


def packed_inputs(batch: Mapping[str, object]) -> dict[str, object] | None:
    """The packing arrays of a batch, or None for a padded batch; raises on a partial set."""
    present = [k for k in PACK_KEYS if k in batch]
    if not present:
        return None
    if len(present) != len(PACK_KEYS):
        raise ValueError(f"batch has packing keys {present} but lacks {sorted(set(PACK_KEYS) - set(present))}")
    return {k: batch[k] for k in PACK_KEYS}


def real_frame_share(batch: Mapping[str, np.ndarray]) -> float:
    """Real frames over the frames the frame-level BiGRU computes: ``P * R`` when the
    batch is packed, ``B * N * L`` when it is padded."""
    real = int(np.asarray(batch["frame_mask"]).sum())
    computed = np.size(batch["pack_mask"]) if "pack_mask" in batch else np.size(batch["frame_mask"])
    return real / computed


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple
