"""A prepared corpus directory as a source of training and evaluation batches.

``CorpusSource(data_dir)`` reads ``dataset.json``, ``vocab.txt``, ``embeddings.npy`` and
the record shards written by ``python -m hmaf.prepare``, splits the examples into
train / validation / test (speaker-independent folds, the manifest's own splits or a
JSON file of utterance ids) and serves numpy batches of the batch contract
(:mod:`hmaf.batch`) through :mod:`hmaf.data.pipeline`, finished by one
:class:`hmaf.data.layout.BatchLayout` (padding, power-of-two tails, frame packing).

:func:`from_config` is the one constructor of batches for training, evaluation,
experiments and inference: given the ``config`` saved with a checkpoint it rebuilds
exactly the batch shapes training used.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Iterator, Mapping

import numpy as np

import ml_collections

from hmaf.data import folds as folds_lib
from hmaf.data import pipeline
from hmaf.data.features import FRAME_DIM
from hmaf.data.layout import BatchLayout
from hmaf.data.vocab import Vocab

SPLITS = folds_lib.SPLITS
EVAL_SPLITS = (*SPLITS, "all")
SPLIT_MODES = ("folds", "manifest", "ids")
SPEAKER_STATS = "speaker_stats.json"
_REQUIRED_KEYS = ("name", "num_examples", "label_names", "shards", "l_max", "embeddings")


class CorpusError(ValueError):
    """A prepared corpus directory that is incomplete or inconsistent."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """The metadata of a prepared corpus (``dataset.json``); ``metadata`` holds all of it."""

    name: str
    num_examples: int
    label_names: tuple[str, ...]
    l_max: int
    n_mels: int
    frame_dim: int  # columns per frame: n_mels log-mel bands, then the prosody columns if any
    vocab_size: int
    embedding_dim: int
    shards: tuple[str, ...]
    label_counts: Mapping[str, int]
    groups: Mapping[str, int]
    splits: Mapping[str, int]
    metadata: Mapping[str, object]

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @classmethod
    def load(cls, data_dir: str | os.PathLike) -> "DatasetInfo":
        """Reads ``data_dir/dataset.json``; errors name the file and the missing keys."""
        path = os.path.join(data_dir, "dataset.json")
        try:
            with open(path, encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise CorpusError(f"{path} not found: is {data_dir} a corpus written by hmaf.prepare?") from None
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path} is not valid JSON: {e}") from None
        missing = [k for k in _REQUIRED_KEYS if k not in meta]
        emb = meta.get("embeddings", {})
        missing += [f"embeddings.{k}" for k in ("dim", "vocab_size") if k not in emb]
        if missing:
            raise CorpusError(f"{path} lacks keys {missing}")
        return cls(
            name=meta["name"], num_examples=int(meta["num_examples"]),
            label_names=tuple(meta["label_names"]), l_max=int(meta["l_max"]),
            n_mels=int(meta.get("n_mels", 64)), frame_dim=int(meta.get("frame_dim", meta.get("n_mels", 64))),
            vocab_size=int(emb["vocab_size"]),
            embedding_dim=int(emb["dim"]), shards=tuple(meta["shards"]),
            label_counts=dict(meta.get("label_counts", {})), groups=dict(meta.get("groups", {})),
            splits=dict(meta.get("splits", {})), metadata=meta)


class CorpusSource:
    """Batches of a prepared corpus for one fold (or the manifest's splits).

    Args:
      data_dir: the prepared corpus directory.
      fold: which of ``num_folds`` speaker-independent folds (``split_mode="folds"``).
      num_folds: k of the k-fold split over the records' ``group`` field.
      seed: seeds the training stream (shuffles, batch order).
      batch_size: examples per batch.
      balanced: class-balanced training batches (see :func:`pipeline.train_dataset`).
      split_mode: "folds" (speaker-independent folds over groups), "manifest" (the
        records' ``split`` field: train / dev|val|validation / test) or "ids"
        (``split_file``: JSON ``{"train": [ids], "validation": [...], "test": [...]}`` of
        original utterance ids); None: no splits, only ``eval_batches("all")``.
      fold_seed: seeds the assignment of groups to folds; separate from ``seed`` so that
        runs with different seeds evaluate on the same folds.
      val_share: share of the non-test groups used for validation (folds mode).
      bucket, window_batches, shuffle_buffer, pad_words_to, pad_frames_to: passed to
        :mod:`hmaf.data.pipeline`; ``pad_frames_to=0`` pads frames to the corpus's l_max.
      pack, row_multiple: frame packing of every batch (:class:`BatchLayout`).
      augmented: augmented copies (records with a non-empty ``augment``) in the train
        split; never in validation or test.
      speaker_stats: attach ``band_mean`` / ``band_std`` float32 ``[B, M]`` of each
        example's speaker from ``data_dir/speaker_stats.json``.
      vocab_path: the vocabulary mapping words to ids (default ``data_dir/vocab.txt``;
        a trained model's own vocabulary when evaluating on another corpus).
      word_marks: add each word's punctuation mark ``word_marks`` int32 ``[B, N]``
        (models with ``punctuation=True``); the corpus must have been prepared with them.
    """

    def __init__(self, data_dir: str | os.PathLike, *, fold: int = 0, num_folds: int = 5, seed: int = 0,
                 batch_size: int = 8, balanced: bool = True, split_mode: str = "folds",
                 fold_seed: int = 0, val_share: float = 0.2, bucket: bool = True,
                 window_batches: int = 8, shuffle_buffer: int = 1024, pad_words_to: int = 8,
                 pad_frames_to: int = 16, pack: bool = False, row_multiple: int = 8, augmented: bool = True,
                 split_file: str | os.PathLike = "", speaker_stats: bool = False,
                 vocab_path: str | os.PathLike | None = None, word_marks: bool = False):
        self.data_dir = os.fspath(data_dir)
        self.info = DatasetInfo.load(self.data_dir)
        own_vocab = vocab_path is None
        vocab_path = os.path.join(self.data_dir, "vocab.txt") if own_vocab else os.fspath(vocab_path)
        self.vocab = Vocab.load(vocab_path)
        if own_vocab and len(self.vocab) != self.info.vocab_size:
            raise CorpusError(f"{vocab_path} has {len(self.vocab)} words but dataset.json says "
                              f"vocab_size {self.info.vocab_size}")
        self.files = [os.path.join(self.data_dir, "records", name) for name in self.info.shards]
        missing = [f for f in self.files if not os.path.isfile(f)]
        if missing:
            raise CorpusError(f"record shards listed in dataset.json are missing: {missing}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if word_marks and "word_marks" not in self.info.metadata:
            raise CorpusError(
                f"{self.data_dir} was prepared without punctuation marks per word (records field word_marks), "
                f"which a model with punctuation=True needs: re-run python -m hmaf.prepare on its manifest "
                f"(the phase-1 cache in {os.path.join(self.data_dir, 'cache')} is reused), or train with "
                f"--config.model.punctuation=False")
        self.seed = seed
        self.batch_size = batch_size
        self.balanced = balanced
        self.split_mode = split_mode
        self.augmented = augmented
        pad_frames_to = pad_frames_to or self.info.l_max
        self._pipeline_options = dict(pad_words_to=pad_words_to, pad_frames_to=pad_frames_to, bucket=bucket,
                                      word_marks=word_marks)
        self._pack = dict(pack=pack, row_multiple=row_multiple)
        self._speaker_stats = speaker_stats
        self._train_options = dict(window_batches=window_batches, shuffle_buffer=shuffle_buffer)
        if split_mode == "folds":
            all_folds = folds_lib.speaker_folds(sorted(self.info.groups), num_folds, fold_seed, val_share)
            if not 0 <= fold < num_folds:
                raise ValueError(f"fold must be in [0, {num_folds}), got {fold}")
            self.fold: folds_lib.Fold | None = all_folds[fold]
            fields = {split: ("group", getattr(self.fold, split)) for split in SPLITS}
        elif split_mode == "manifest":
            self.fold = None
            names = folds_lib.manifest_splits(list(self.info.splits))
            fields = {split: ("split", names[split]) for split in SPLITS}
        elif split_mode == "ids":
            self.fold = None
            fields = {split: ("id", ids) for split, ids in read_split_file(split_file).items()}
        elif split_mode is None:  # a corpus only evaluated as a whole (split "all")
            self.fold = None
            fields = {}
        else:
            raise ValueError(f"split_mode must be one of {SPLIT_MODES}, got {split_mode!r}")
        self.selections = {split: pipeline.Selection(field, values, augmented=augmented and split == "train")
                           for split, (field, values) in fields.items()}

    @functools.cached_property
    def index(self) -> pipeline.Index:
        """Per-example metadata of all records (one header pass over the shards)."""
        return pipeline.scan(self.files)

    @property
    def split_sizes(self) -> dict[str, int]:
        """Examples per split (augmented copies included in train when used)."""
        return {split: int(self.index.mask(selection).sum()) for split, selection in self.selections.items()}

    @property
    def num_train_examples(self) -> int:
        """Examples in the train split: an epoch is ``num_train_examples / batch_size`` steps."""
        return self.split_sizes["train"]

    @functools.cached_property
    def layout(self) -> BatchLayout:
        """The batch shapes of this corpus (sized from all its original records)."""
        originals = self.index.augment == ""
        words = self.index.num_words[originals].astype(np.float64)
        frames = self.index.num_frames[originals].astype(np.float64)
        return BatchLayout(batch_size=self.batch_size, **{k: self._pipeline_options[k] for k in
                                                          ("pad_words_to", "pad_frames_to")},
                           **self._pack, mean_frames=float(frames.sum() / max(words.sum(), 1.0)),
                           mean_words=float(words.mean()) if words.size else 1.0,
                           utterance_std=float(frames.std()) if frames.size else 0.0)

    @functools.cached_property
    def speaker_band_stats(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """speaker -> (mean float32 [M], std float32 [M]) from ``speaker_stats.json`` (M: the frame width)."""
        path = os.path.join(self.data_dir, SPEAKER_STATS)
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            raise CorpusError(f"{path} not found: audio_norm='speaker' (the default) needs the per-speaker band "
                              f"statistics that hmaf.prepare writes; for a corpus prepared without them run "
                              f"`python -m hmaf.data.normalize {self.data_dir}`, or train with "
                              f"--config.model.audio_norm=batch") from None
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path} is not valid JSON: {e}") from None
        stats = {}
        for speaker, entry in raw.items():
            mean, std = (np.asarray(entry.get(k, ()), np.float32) for k in ("mean", "std"))
            if mean.shape != (self.info.frame_dim,) or std.shape != (self.info.frame_dim,):
                raise CorpusError(f"{path}: speaker {speaker!r} needs 'mean' and 'std' of {self.info.frame_dim} "
                                  f"columns (the corpus's frame width); recompute them with "
                                  f"`python -m hmaf.data.normalize {self.data_dir}`")
            stats[speaker] = (mean, std)
        return stats

    def _finish(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Attaches the speaker statistics (when asked) and packs the batch."""
        if self._speaker_stats:
            stats = self.speaker_band_stats
            speakers = [s.decode() if isinstance(s, bytes) else str(s) for s in batch["speaker"]]
            unknown = sorted(set(speakers) - set(stats))
            if unknown:
                raise CorpusError(f"{os.path.join(self.data_dir, SPEAKER_STATS)} has no statistics for "
                                  f"speaker(s) {unknown}")
            batch["band_mean"] = np.stack([stats[s][0] for s in speakers])
            batch["band_std"] = np.stack([stats[s][1] for s in speakers])
        return self.layout.finish(batch)

    def utt_ids(self, split: str) -> list[str]:
        """The utterance ids of ``split``, in record order."""
        return list(self.index.utt_id[self.index.mask(self._selection(split))])

    def embeddings(self) -> np.ndarray:
        """The embedding matrix float32 ``[vocab_size, embedding_dim]`` (row 0 zeros)."""
        path = os.path.join(self.data_dir, "embeddings.npy")
        if not os.path.isfile(path):
            raise CorpusError(f"{path} not found")
        matrix = np.load(path)
        expected = (self.info.vocab_size, self.info.embedding_dim)
        if matrix.shape != expected or matrix.dtype != np.float32:
            raise CorpusError(f"{path} holds {matrix.dtype} {matrix.shape}, expected float32 {expected}")
        return matrix

    def _selection(self, split: str) -> pipeline.Selection:
        if split not in EVAL_SPLITS:
            raise ValueError(f"split must be one of {EVAL_SPLITS}, got {split!r}")
        if split == "all":
            return pipeline.Selection()
        if split not in self.selections:
            raise ValueError(f"{self.data_dir} was opened without splits (split_mode=None): only 'all'")
        return self.selections[split]

    def train_dataset(self, start_step: int = 0):
        """The infinite training ``tf.data.Dataset`` of batches from ``start_step`` on."""
        return pipeline.train_dataset(
            self.files, self.vocab.words, batch_size=self.batch_size,
            num_classes=self.info.num_classes, selection=self.selections["train"], seed=self.seed,
            balanced=self.balanced, index=self.index, start_step=start_step,
            **self._pipeline_options, **self._train_options)

    def train_batches(self, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Infinite numpy training batches from step ``start_step`` on.

        The stream is a fixed function of the corpus, split and seed, so resuming at
        ``start_step`` yields exactly the batches an uninterrupted run sees from that
        step on. Skipped steps cost a pass over their records' headers, not their frames.
        Batches are finished by :attr:`layout` (packed when asked).
        """
        return map(self._finish, self.train_dataset(start_step).as_numpy_iterator())

    def eval_batches(self, split: str) -> Iterator[dict[str, np.ndarray]]:
        """One pass over ``split`` ("train", "validation", "test" or "all"), every original
        example once, unbalanced, no augmented copies; batches are grouped by shape, and
        the last, partial batch of a shape is cut into power-of-two pieces (few shapes)."""
        selection = self._selection(split)
        if selection.values is not None and not selection.values:
            raise CorpusError(f"{self.data_dir} has no examples in split {split!r} "
                              f"({self.split_mode} mode: {selection})")
        batches = pipeline.eval_dataset(self.files, self.vocab.words, batch_size=self.batch_size,
                                        selection=selection, **self._pipeline_options).as_numpy_iterator()
        return map(self._finish, self.layout.split_tail(batches))


def read_split_file(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """``{"train": [...], "validation": [...], "test": [...]}`` of original utterance ids
    (``split_mode="ids"``); errors name the file and the problem."""
    path = os.fspath(path)
    if not path:
        raise ValueError("split_mode='ids' needs data.split_file (a JSON file of utterance ids per split)")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise CorpusError(f"split file {path} not found") from None
    except json.JSONDecodeError as e:
        raise CorpusError(f"split file {path} is not valid JSON: {e}") from None
    missing = [s for s in SPLITS if not isinstance(raw.get(s) if isinstance(raw, dict) else None, list)]
    if missing:
        raise CorpusError(f"split file {path} needs a list of ids for {missing}")
    splits = {s: tuple(str(i) for i in raw[s]) for s in SPLITS}
    seen: dict[str, str] = {}
    for split, ids in splits.items():
        for utt in ids:
            if pipeline.ID_SEPARATOR in utt:
                raise CorpusError(f"split file {path}: {utt!r} in {split} is an augmented copy's id; list "
                                  "original ids (a copy follows its original, into train only)")
            if seen.setdefault(utt, split) != split:
                raise CorpusError(f"split file {path}: id {utt!r} is in both {seen[utt]} and {split}")
    return splits


def from_config(config: ml_collections.ConfigDict, *, data_dir: str | os.PathLike | None = None,
                vocab_path: str | os.PathLike | None = None, splits: bool = True, pack: bool | None = None,
                own_stats: bool = False):
    """The batches of ``config`` (a training config, e.g. the one saved with a
    checkpoint): the one constructor training, evaluation, experiments and inference use.

    ``config.data.source``: ``corpus`` (prepared records in ``config.data.dir``, or
    ``data_dir``) -> :class:`CorpusSource`; ``toy`` -> :class:`hmaf.data.toy.ToySource`.
    Batch size, seed, padding, packing (``config.pack_frames``, ``pack_row_multiple``),
    splits and augmented copies all come from ``config``; fields a config saved by an
    older version lacks take their defaults. ``vocab_path``: the training corpus's
    vocabulary, to evaluate a trained model on another corpus; ``splits=False``: no
    train/validation/test splits (another corpus evaluated as a whole, split "all").
    ``pack``: overrides ``config.pack_frames`` (False: the trainer packs per device when it
    shards batches). ``config.model.punctuation`` adds the batches' ``word_marks``.
    ``own_stats``: batches carry no speaker statistics even for ``audio_norm="speaker"``,
    so the model normalises each utterance by its own, as :class:`hmaf.inference.Predictor`
    does without a speaker profile.

    Raises:
      CorpusError: ``config.model.prosody`` on a corpus prepared before the prosody
        columns (found before any model is built or trained).
    """
    data = config.data
    pack = dict(pack=bool(config.get("pack_frames", False)) if pack is None else pack,
                row_multiple=int(config.get("pack_row_multiple", 8)))
    model = config.get("model", {})
    word_marks = bool(model.get("punctuation", False))
    if data.source == "toy":
        from hmaf.data.toy import ToySource
        return ToySource(batch_size=config.batch_size, seed=config.seed, word_marks=word_marks, **pack,
                         **data.get("toy", {}))
    if data.source != "corpus":
        raise ValueError(f"config.data.source={data.source!r}: expected 'corpus' or 'toy'")
    source = CorpusSource(
        data.dir if data_dir is None else data_dir, fold=data.get("fold", 0), num_folds=data.get("num_folds", 5),
        seed=config.seed, batch_size=config.batch_size, balanced=data.get("balanced", True),
        split_mode=data.get("split_mode", "folds") if splits else None, split_file=data.get("split_file", ""),
        augmented=data.get("augmented", True), bucket=data.get("bucket", False),
        pad_words_to=data.get("pad_words_to", 16), pad_frames_to=data.get("pad_frames_to", 0),
        speaker_stats=model.get("audio_norm", "") == "speaker" and not own_stats, vocab_path=vocab_path,
        word_marks=word_marks, **pack)
    if model.get("prosody", False) and source.info.frame_dim != FRAME_DIM:
        raise CorpusError(
            f"{source.data_dir} holds {source.info.frame_dim} columns per frame, prepared before the prosody "
            f"columns that a model with prosody=True reads ({FRAME_DIM}): re-run python -m hmaf.prepare on its "
            f"manifest; a model trained with prosody=True cannot use it, a new one can with "
            f"--config.model.prosody=False")
    return source
