"""tf.data input pipeline: TFRecord shards -> padded batches of the batch contract.

Each batch is a dict (see :mod:`hmaf.batch`): ``word_ids`` int32 ``[B, N]``,
``word_mask`` bool ``[B, N]``, ``frames`` float32 ``[B, N, L, M]``, ``frame_mask``
bool ``[B, N, L]``, ``label`` int32 ``[B]``, ``utt_id`` and ``speaker`` bytes ``[B]``;
with ``word_marks=True`` also ``word_marks`` int32 ``[B, N]`` (the records' punctuation
mark per word, 0 at padding; ``config.model.punctuation``).

Shapes. N and L are the batch's longest utterance (in words) and longest word (in
frames), rounded up to multiples of ``pad_words_to`` (8) and ``pad_frames_to`` (16), so
a jitted step compiles for a few shapes only. Padding is zeros / False / id 0.

Length grouping, so that padding stays small:

- evaluation: examples are bucketed by their padded shape (``ceil(N / 8)``,
  ``ceil(L / 16)``) with ``group_by_window``; every batch of a bucket has that one shape.
- training: ``window_batches`` consecutive batches of the (shuffled, possibly balanced)
  stream form a window; inside it examples are ordered by length (N, then L) and cut
  into batches, and the batches' order is shuffled (seeded). With class balancing the
  ordering is per class: the k-th shortest example of every class goes to the same
  place, so every batch keeps its exact class counts (see :func:`train_dataset`).

Everything is deterministic for a seed: fixed file order, seeded shuffles,
``deterministic=True`` maps, no order-changing parallelism.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Iterable, Mapping, Sequence

import numpy as np

from hmaf.data import records  # imports TensorFlow with GPUs hidden
from hmaf.data.vocab import CLITIC_PATTERN, UNK_ID

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
# An augmented copy of utterance X has the id "X~<augmentation name>" (INTERFACES.md).
ID_SEPARATOR = "~"
# Header fields beyond records.HEADER_SPEC; absent in older corpora (default "").
_EXTRA_HEADER = {name: tf.io.FixedLenFeature([], tf.string, default_value="") for name in ("speaker", "augment")}

_PADDED_SHAPES = {
    "word_ids": [None],
    "word_mask": [None],
    "frames": [None, None, None],  # M: the records' frame_dim
    "frame_mask": [None, None],
    "label": [],
    "utt_id": [],
    "speaker": [],
}


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which examples to keep: those whose record ``field`` is in ``values``
    (``values=None`` keeps all).

    ``field``: "group", "split", or "id" (the ORIGINAL utterance id: an augmented copy
    ``X~name`` counts as ``X``). Augmented copies (records with a non-empty ``augment``
    field) are kept only with ``augmented=True`` (training, ``data.augmented``); they
    never enter validation or test.
    """

    field: str = "group"
    values: tuple[str, ...] | None = None
    augmented: bool = False

    def __post_init__(self):
        if self.field not in ("group", "split", "id"):
            raise ValueError(f"Selection.field must be 'group', 'split' or 'id', got {self.field!r}")


@dataclasses.dataclass(frozen=True)
class Index:
    """Per-example metadata of a corpus, in record order (numpy arrays of length E)."""

    utt_id: np.ndarray      # str
    group: np.ndarray       # str
    split: np.ndarray       # str
    speaker: np.ndarray     # str
    augment: np.ndarray     # str, "" for original recordings
    label: np.ndarray       # int32
    num_words: np.ndarray   # int32, N of each utterance
    max_frames: np.ndarray  # int32, frames of its longest word
    num_frames: np.ndarray  # int64, frames of all its words together

    @property
    def original_id(self) -> np.ndarray:
        """str [E]: the id of the original utterance (``X`` for a copy ``X~name``)."""
        return np.asarray([u.split(ID_SEPARATOR, 1)[0] for u in self.utt_id], dtype=object)

    def mask(self, selection: Selection) -> np.ndarray:
        """bool [E]: the examples ``selection`` keeps."""
        keep = np.ones(len(self.utt_id), dtype=bool)
        if selection.values is not None:
            column = self.original_id if selection.field == "id" else getattr(self, selection.field)
            keep = np.isin(column, list(selection.values))
        if not selection.augmented:
            keep &= self.augment == ""
        return keep


def _check_files(files: Sequence[str]) -> list[str]:
    files = [os.fspath(f) for f in files]
    if not files:
        raise ValueError("no record files given")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(f"record files not found: {missing}")
    return files


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


def read_serialized(files: Sequence[str]) -> tf.data.Dataset:
    """Serialized examples of ``files``, in file order then record order."""
    return tf.data.TFRecordDataset(_check_files(files)).with_options(_options())


def _header(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """The cheap header fields of a record plus ``speaker`` and ``augment``."""
    header = tf.io.parse_single_example(serialized, {**records.HEADER_SPEC, **_EXTRA_HEADER})
    header["label"] = tf.cast(header["label"], tf.int32)
    header["num_frames"] = tf.cast(header["num_frames"], tf.int32)
    return header


def scan(files: Sequence[str]) -> Index:
    """Reads the cheap header fields of every record (no frame decoding)."""
    def summary(serialized):
        h = _header(serialized)
        num_frames = h["num_frames"]
        return {
            "utt_id": h["utt_id"], "group": h["group"], "split": h["split"], "label": h["label"],
            "speaker": h["speaker"], "augment": h["augment"],
            "num_words": tf.size(num_frames, out_type=tf.int32),
            "max_frames": tf.reduce_max(num_frames),
            "num_frames": tf.reduce_sum(tf.cast(num_frames, tf.int64)),
        }

    parts: dict[str, list[np.ndarray]] = {}
    ds = read_serialized(files).map(summary, num_parallel_calls=AUTOTUNE, deterministic=True).batch(4096)
    for chunk in ds.as_numpy_iterator():
        for key, value in chunk.items():
            parts.setdefault(key, []).append(value)
    columns = {}
    for field in dataclasses.fields(Index):
        values = np.concatenate(parts[field.name]) if parts else np.zeros(0)
        if values.dtype.kind in "OS":
            values = np.asarray([v.decode() for v in values], dtype=object)
        columns[field.name] = values
    return Index(**columns)


def lookup_table(words: Sequence[str]) -> tf.lookup.StaticHashTable:
    """word -> id table of a vocabulary (``words[i]`` has id i); unknown words -> 1.

    ``<pad>`` and ``<unk>`` themselves are left out, so a literal "<pad>" in a
    transcript becomes unknown rather than padding.
    """
    keys = tf.constant(list(words[2:]), dtype=tf.string)
    values = tf.range(2, len(words), dtype=tf.int32)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default_value=UNK_ID)


def lookup_ids(table: tf.lookup.StaticHashTable, words: tf.Tensor) -> tf.Tensor:
    """Ids of ``words`` (string ``[N]``) as :meth:`hmaf.data.vocab.Vocab.ids` gives them:
    an unknown word ending in a clitic takes the id of the word before it ("beauty's" ->
    "beauty"), else ``UNK_ID``. int32 ``[N]``."""
    ids = table.lookup(words)
    backed_off = table.lookup(tf.strings.regex_replace(words, CLITIC_PATTERN, ""))
    return tf.where(tf.equal(ids, UNK_ID), backed_off, ids)


def _keep(selection: Selection):
    values = tf.constant(list(selection.values or ()), dtype=tf.string)

    def keep(serialized):
        header = _header(serialized)
        ok = tf.constant(True)
        if selection.values is not None:
            if selection.field == "id":
                column = tf.strings.regex_replace(header["utt_id"], f"{ID_SEPARATOR}.*$", "")
            else:
                column = header[selection.field]
            ok = tf.reduce_any(tf.equal(column, values))
        if not selection.augmented:
            ok = tf.logical_and(ok, tf.equal(header["augment"], ""))
        return ok
    return keep


def _select(ds: tf.data.Dataset, selection: Selection) -> tf.data.Dataset:
    return ds if selection.values is None and selection.augmented else ds.filter(_keep(selection))


def _padded_shapes(word_marks: bool) -> dict[str, list]:
    return {**_PADDED_SHAPES, "word_marks": [None]} if word_marks else _PADDED_SHAPES


def _to_model_example(table: tf.lookup.StaticHashTable, word_marks: bool = False):
    def convert(serialized):
        ex = records.parse_example(serialized)
        word_ids = lookup_ids(table, ex["words"])
        out = {
            "word_ids": word_ids,
            "word_mask": tf.ones_like(word_ids, dtype=tf.bool),
            "frames": ex["frames"],
            "frame_mask": tf.sequence_mask(ex["num_frames"], maxlen=tf.shape(ex["frames"])[1]),
            "label": ex["label"],
            "utt_id": ex["utt_id"],
            "speaker": ex["speaker"],
        }
        if word_marks:
            # A record written before word marks existed has none; CorpusSource checks the
            # corpus's dataset.json first, this catches a record that still lacks them.
            check = tf.debugging.assert_equal(
                tf.size(ex["word_marks"]), tf.size(ex["words"]),
                message="a record has no word_marks for its words: re-run python -m hmaf.prepare on this corpus")
            with tf.control_dependencies([check]):
                out["word_marks"] = tf.identity(ex["word_marks"])
        return out
    return convert


def _round_up(x: tf.Tensor, multiple: int) -> tf.Tensor:
    return (x + multiple - 1) // multiple * multiple


def _fit_padding(pad_words_to: int, pad_frames_to: int):
    """Crops a padded batch to its real extent, then pads N and L up to the multiples."""
    def fit(batch):
        n_real = tf.reduce_max(tf.reduce_sum(tf.cast(batch["word_mask"], tf.int32), axis=1))
        l_real = tf.reduce_max(tf.reduce_sum(tf.cast(batch["frame_mask"], tf.int32), axis=2))
        n_to = _round_up(n_real, pad_words_to)
        l_to = _round_up(l_real, pad_frames_to)
        out = dict(batch)
        for key in ("word_ids", "word_mask", "word_marks", "frames", "frame_mask"):
            if key not in batch:
                continue
            x = batch[key]
            x = x[:, :n_real, :l_real] if key in ("frames", "frame_mask") else x[:, :n_real]
            pads = [[0, 0], [0, n_to - n_real]]
            if key in ("frames", "frame_mask"):
                pads.append([0, l_to - l_real])
            if key == "frames":
                pads.append([0, 0])
            out[key] = tf.pad(x, pads)
        return out
    return fit


def _shape_key(pad_words_to: int, pad_frames_to: int):
    def key(example):
        n = tf.cast(tf.shape(example["word_ids"])[0], tf.int64)
        l = tf.cast(tf.shape(example["frames"])[1], tf.int64)
        return (n + pad_words_to - 1) // pad_words_to * 100_000 + (l + pad_frames_to - 1) // pad_frames_to
    return key


def eval_dataset(files: Sequence[str], words: Sequence[str], *, batch_size: int,
                 selection: Selection = Selection(), pad_words_to: int = 8,
                 pad_frames_to: int = 16, bucket: bool = True, word_marks: bool = False) -> tf.data.Dataset:
    """One pass over the selected examples, each exactly once, unbalanced.

    With ``bucket`` the batches come bucket by bucket (grouped by padded shape), so the
    example order differs from the record order; the last batch of a bucket may be
    smaller than ``batch_size``. ``word_marks``: add the records' ``word_marks`` ``[B, N]``.
    """
    table = lookup_table(words)
    shapes = _padded_shapes(word_marks)
    ds = _select(read_serialized(files), selection)
    ds = ds.map(_to_model_example(table, word_marks), num_parallel_calls=AUTOTUNE, deterministic=True)
    if bucket:
        ds = ds.group_by_window(
            key_func=_shape_key(pad_words_to, pad_frames_to),
            reduce_func=lambda _, window: window.padded_batch(batch_size, shapes),
            window_size=batch_size)
    else:
        ds = ds.padded_batch(batch_size, shapes)
    ds = ds.map(_fit_padding(pad_words_to, pad_frames_to), num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.prefetch(AUTOTUNE).with_options(_options())


def _window_size(batch_size: int, num_classes: int, window_batches: int) -> int:
    """Batches per window: at least ``window_batches`` and such that the window holds
    a whole number of cycles over the classes (so every class has the same count)."""
    cycle = num_classes // math.gcd(batch_size, num_classes)
    return max(1, math.ceil(window_batches / cycle)) * cycle


def _sort_window(batch_size: int, window: int, num_classes: int, seed: int, pad_words_to: int):
    """Reorders a padded window of ``window * batch_size`` examples into ``window``
    batches of similar length, keeping per-class counts per batch (see train_dataset)."""
    def sort(index, examples):
        n = tf.reduce_sum(tf.cast(examples["word_mask"], tf.int64), axis=1)
        l = tf.reduce_max(tf.reduce_sum(tf.cast(examples["frame_mask"], tf.int64), axis=2), axis=1)
        # Padded word count first (it sets N exactly), then frames: measured on speech-like
        # lengths this pads less than N, L, N*L or L-first orderings.
        words_block = (n + pad_words_to - 1) // pad_words_to
        by_length = tf.argsort(words_block * 1_000_000 + l, stable=True)
        labels = tf.gather(examples["label"], by_length) if num_classes > 1 else tf.zeros_like(by_length, tf.int32)
        one_hot = tf.one_hot(labels, max(num_classes, 1), dtype=tf.int64)
        # Rank of each example among the examples of its class, shortest first.
        rank = tf.reduce_sum(tf.cumsum(one_hot, axis=0, exclusive=True) * one_hot, axis=1)
        order = tf.gather(by_length, tf.argsort(rank * max(num_classes, 1) + tf.cast(labels, tf.int64), stable=True))
        batch_order = tf.random.experimental.stateless_shuffle(
            tf.range(window), seed=tf.stack([tf.cast(seed, tf.int64), index]))
        order = tf.reshape(tf.gather(tf.reshape(order, [window, batch_size]), batch_order), [-1])
        batches = {k: tf.reshape(tf.gather(v, order), tf.concat([[window, batch_size], tf.shape(v)[1:]], 0))
                   for k, v in examples.items()}
        return tf.data.Dataset.from_tensor_slices(batches)
    return sort


def train_dataset(files: Sequence[str], words: Sequence[str], *, batch_size: int, num_classes: int,
                  selection: Selection = Selection(), seed: int = 0, balanced: bool = True,
                  bucket: bool = True, window_batches: int = 8, shuffle_buffer: int = 1024,
                  pad_words_to: int = 8, pad_frames_to: int = 16, index: Index | None = None,
                  start_step: int = 0, word_marks: bool = False) -> tf.data.Dataset:
    """An infinite, deterministic stream of training batches.

    Balancing (``balanced=True``): one shuffled, repeated stream per class, read in a
    fixed round robin (class 0, 1, ..., C-1, 0, ...). Any ``batch_size`` consecutive
    examples of it hold every class ``batch_size // C`` or ``batch_size // C + 1``
    times: exactly ``batch_size / C`` each when C divides the batch size; otherwise the
    extra places rotate over the classes from batch to batch, so over C batches every
    class is seen equally often. Unbalanced: one shuffled, repeated stream.

    Length grouping (``bucket=True``): a window of ``window_batches`` batches (rounded up
    to whole class cycles) is ordered by length within each class, the k-th shortest of
    every class placed together, cut into batches, and the batches shuffled. This keeps
    the per-batch class counts above exactly while batching similar lengths.

    Args:
      files: record shards. words: the vocabulary in id order.
      selection: the training examples (groups of a fold or manifest split names).
      index: the corpus :class:`Index` (scanned when None) to check that the selection
        is not empty and, when balancing, that every class has an example (an empty
        class stream would otherwise wait forever).
      shuffle_buffer: examples per (class) shuffle buffer.
      start_step: the first batch to yield; the stream from there equals the tail of the
        stream from 0. Whole windows are skipped as serialized records, before frames
        are decoded or padded, so resuming is cheap.
      word_marks: add the records' ``word_marks`` ``[B, N]`` to every batch.

    Raises:
      ValueError: an empty selection, or a class without examples when balancing.
    """
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    index = scan(files) if index is None else index
    kept = index.mask(selection)
    if not kept.any():
        raise ValueError(f"no training examples match {selection}")
    labels = index.label[kept]
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}); the selection has {labels.min()}..{labels.max()}")
    counts = np.bincount(labels, minlength=num_classes)
    if balanced and not counts.all():
        missing = [int(c) for c in np.flatnonzero(counts == 0)]
        raise ValueError(f"class(es) {missing} have no training example in {selection}; "
                         "balanced sampling needs every class (use balanced=False)")
    table = lookup_table(words)
    base = _select(read_serialized(files), selection)
    if balanced:
        streams = []
        for c in range(num_classes):
            is_class = lambda s, c=c: tf.equal(records.parse_header(s)["label"], c)
            streams.append(base.filter(is_class)
                           .shuffle(shuffle_buffer, seed=seed * 1009 + c, reshuffle_each_iteration=True)
                           .repeat())
        choice = tf.data.Dataset.range(num_classes).repeat()
        ds = tf.data.Dataset.choose_from_datasets(streams, choice)
    else:
        ds = base.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    # Batches come in fixed groups of consecutive examples (a window, or one batch), so
    # the groups before start_step are skipped as records; the rest inside the group later.
    window = _window_size(batch_size, num_classes if balanced else 1, window_batches) if bucket else 1
    skipped_windows, skipped_batches = divmod(start_step, window)
    ds = ds.skip(skipped_windows * window * batch_size)
    ds = ds.map(_to_model_example(table, word_marks), num_parallel_calls=AUTOTUNE, deterministic=True)
    shapes = _padded_shapes(word_marks)
    if bucket:
        ds = ds.padded_batch(window * batch_size, shapes, drop_remainder=True).enumerate(skipped_windows)
        ds = ds.flat_map(_sort_window(batch_size, window, num_classes if balanced else 1, seed, pad_words_to))
    else:
        ds = ds.padded_batch(batch_size, shapes, drop_remainder=True)
    ds = ds.skip(skipped_batches)
    ds = ds.map(_fit_padding(pad_words_to, pad_frames_to), num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.prefetch(AUTOTUNE).with_options(_options())


def padding_stats(batches: Iterable[Mapping[str, np.ndarray]]) -> dict[str, float | int]:
    """How much of the computed arrays is real data.

    Returns ``real_frame_share`` (real frames / sum of B*N*L), ``real_word_share`` (real
    words / sum of B*N), ``num_batches``, ``num_examples`` and ``num_shapes`` (distinct
    (B, N, L): the compilations a jitted step needs).
    """
    real_frames = computed_frames = real_words = computed_words = examples = 0
    shapes = set()
    num_batches = 0
    for batch in batches:
        frame_mask = np.asarray(batch["frame_mask"])
        real_frames += int(frame_mask.sum())
        computed_frames += frame_mask.size
        real_words += int(np.asarray(batch["word_mask"]).sum())
        computed_words += np.asarray(batch["word_mask"]).size
        examples += frame_mask.shape[0]
        shapes.add(frame_mask.shape)
        num_batches += 1
    return {
        "real_frame_share": real_frames / computed_frames if computed_frames else 0.0,
        "real_word_share": real_words / computed_words if computed_words else 0.0,
        "num_batches": num_batches,
        "num_examples": examples,
        "num_shapes": len(shapes),
    }
