"""The batch contract: the one seam between the data pipeline and the models.

Every model in :mod:`hmaf.models` takes a padded batch, a plain ``dict`` of arrays:

=============  =======  ================  =============================================
key            dtype    shape             meaning
=============  =======  ================  =============================================
``word_ids``   int32    ``[B, N]``        vocabulary ids; 0 is padding, 1 is unknown
``word_mask``  bool     ``[B, N]``        True for real words
``frames``     float32  ``[B, N, L, M]``  per-word frames: 64 log-mel (MFSC) bands,
                                          then the 3 prosody columns (M = 67, or M = 64
                                          from a corpus prepared before them)
``frame_mask`` bool     ``[B, N, L]``     True for real frames; every real word has >= 1
``label``      int32    ``[B]``           class index
=============  =======  ================  =============================================

Optional keys (:data:`OPTIONAL_KEYS`): ``band_mean`` and ``band_std``, float32
``[B, M]``, the speaker's statistics of every frame column for ``audio_norm="speaker"`` (both
or neither; ``band_std`` > 0). Without them that norm uses each utterance's own.
``word_marks``, int32 ``[B, N]``: the punctuation mark after each word in the
transcript, an id of :data:`MARK_NAMES` (0 none, also at padding), for models with
``punctuation=True`` (:func:`hmaf.data.text.punctuated_words` computes them).

Padding is invisible to the models: padded words and frames change no output.
This module imports numpy only, so both the TensorFlow data side and the JAX model
side can use it.
"""

from __future__ import annotations

from typing import Mapping, TypedDict

import numpy as np

from hmaf.data.features import FRAME_DIM, FRAME_DIMS, N_MELS  # numpy only

PAD_ID = 0
UNK_ID = 1

KEYS = ("word_ids", "word_mask", "frames", "frame_mask", "label")
BAND_KEYS = ("band_mean", "band_std")
OPTIONAL_KEYS = (*BAND_KEYS, "word_marks")
# Punctuation mark classes of ``word_marks`` (id = index; rules in hmaf.data.text).
MARK_NAMES = ("none", "comma", "stop", "question", "exclamation", "ellipsis")
NUM_MARKS = len(MARK_NAMES)


class Batch(TypedDict):
    word_ids: np.ndarray
    word_mask: np.ndarray
    frames: np.ndarray
    frame_mask: np.ndarray
    label: np.ndarray


class BatchError(ValueError):
    """A batch that breaks the contract; the message names the key and the problem."""


_DTYPE_KINDS = {
    "word_ids": ("i", "int32"),
    "word_mask": ("b", "bool"),
    "frames": ("f", "float32"),
    "frame_mask": ("b", "bool"),
    "label": ("i", "int32"),
}


def validate(batch: Mapping[str, object], *, check_values: bool = True) -> None:
    """Raises :class:`BatchError` unless ``batch`` follows the contract.

    Args:
      batch: mapping with at least the keys of :data:`KEYS` (extra keys are allowed,
        e.g. ``utt_id``). Arrays may be numpy or jax arrays.
      check_values: also check the masks against each other and against padding
        (costs a device-to-host copy for jax arrays).
    """
    missing = [k for k in KEYS if k not in batch]
    if missing:
        raise BatchError(f"batch is missing keys {missing}; it has {sorted(batch)}")
    shapes = {k: tuple(np.shape(batch[k])) for k in KEYS}
    for key, (kind, name) in _DTYPE_KINDS.items():
        dtype = np.dtype(getattr(batch[key], "dtype", None) or np.asarray(batch[key]).dtype)
        if dtype.kind != kind or (name != "bool" and dtype != np.dtype(name)):
            raise BatchError(f"batch['{key}'] has dtype {dtype}, expected {name}")
    if len(shapes["word_ids"]) != 2:
        raise BatchError(f"batch['word_ids'] has shape {shapes['word_ids']}, expected [B, N]")
    b, n = shapes["word_ids"]
    if shapes["word_mask"] != (b, n):
        raise BatchError(f"batch['word_mask'] has shape {shapes['word_mask']}, expected {(b, n)}")
    if len(shapes["frames"]) != 4 or shapes["frames"][:2] != (b, n) or shapes["frames"][3] not in FRAME_DIMS:
        raise BatchError(
            f"batch['frames'] has shape {shapes['frames']}, expected [B={b}, N={n}, L, M] with M one of {FRAME_DIMS}")
    m = shapes["frames"][3]
    l = shapes["frames"][2]
    if shapes["frame_mask"] != (b, n, l):
        raise BatchError(f"batch['frame_mask'] has shape {shapes['frame_mask']}, expected {(b, n, l)}")
    if shapes["label"] != (b,):
        raise BatchError(f"batch['label'] has shape {shapes['label']}, expected {(b,)}")
    present = [k for k in BAND_KEYS if k in batch]
    if present and len(present) != len(BAND_KEYS):
        raise BatchError(f"batch has {present} but needs both of {list(BAND_KEYS)}")
    for key in present:
        dtype = np.dtype(getattr(batch[key], "dtype", None) or np.asarray(batch[key]).dtype)
        if dtype != np.float32 or tuple(np.shape(batch[key])) != (b, m):
            raise BatchError(f"batch['{key}'] has dtype {dtype} and shape {np.shape(batch[key])}, "
                             f"expected float32 {(b, m)} (the frames' width; a speaker profile made "
                             "before the prosody columns has 64)")
    if "word_marks" in batch:
        dtype = np.dtype(getattr(batch["word_marks"], "dtype", None) or np.asarray(batch["word_marks"]).dtype)
        if dtype != np.int32 or tuple(np.shape(batch["word_marks"])) != (b, n):
            raise BatchError(f"batch['word_marks'] has dtype {dtype} and shape {np.shape(batch['word_marks'])}, "
                             f"expected int32 {(b, n)}")
    if not check_values:
        return
    word_mask = np.asarray(batch["word_mask"])
    frame_mask = np.asarray(batch["frame_mask"])
    word_ids = np.asarray(batch["word_ids"])
    if np.any(frame_mask & ~word_mask[..., None]):
        raise BatchError("batch['frame_mask'] marks frames of padded words as real")
    if np.any(word_mask & ~frame_mask.any(-1)):
        raise BatchError("a real word has no real frame (every word needs at least one)")
    if np.any(word_ids[~word_mask] != PAD_ID):
        raise BatchError(f"padded words must have word_ids == {PAD_ID}")
    if np.any(~word_mask.any(-1)):
        raise BatchError("an utterance in the batch has no real word")
    if not np.all(np.isfinite(np.asarray(batch["frames"]))):
        raise BatchError("batch['frames'] holds NaN or inf")
    if "word_marks" in batch:
        marks = np.asarray(batch["word_marks"])
        if np.any((marks < 0) | (marks >= NUM_MARKS)) or np.any(marks[~word_mask] != 0):
            raise BatchError(f"batch['word_marks'] must lie in [0, {NUM_MARKS}) and be 0 at padding")
    if present and not (np.all(np.isfinite(np.asarray(batch["band_mean"])))
                        and np.all(np.asarray(batch["band_std"]) > 0)):
        raise BatchError("batch['band_mean'] must be finite and batch['band_std'] positive")
