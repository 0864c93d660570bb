"""A prepared corpus directory as a source of training and evaluation batches.

``CorpusSource(data_dir)`` reads ``dataset.json``, ``vocab.txt``, ``embeddings.npy`` and
the record shards written by ``python -m hmaf.prepare``, splits the examples into
train / validation / test (speaker-independent folds or the manifest's own splits) and
serves numpy batches of the batch contract (:mod:`hmaf.batch`) through
:mod:`hmaf.data.pipeline`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Iterator, Mapping

import numpy as np

from hmaf.data import folds as folds_lib
from hmaf.data import pipeline
from hmaf.data.vocab import Vocab

SPLITS = folds_lib.SPLITS
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
            n_mels=int(meta.get("n_mels", 64)), vocab_size=int(emb["vocab_size"]),
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
      split_mode: "folds" (speaker-independent folds over groups) or "manifest" (the
        records' ``split`` field: train / dev|val|validation / test).
      fold_seed: seeds the assignment of groups to folds; separate from ``seed`` so that
        runs with different seeds evaluate on the same folds.
      val_share: share of the non-test groups used for validation (folds mode).
      bucket, window_batches, shuffle_buffer, pad_words_to, pad_frames_to: passed to
        :mod:`hmaf.data.pipeline`.
    """

    def __init__(self, data_dir: str | os.PathLike, *, fold: int = 0, num_folds: int = 5, seed: int = 0,
                 batch_size: int = 8, balanced: bool = True, split_mode: str = "folds",
                 fold_seed: int = 0, val_share: float = 0.2, bucket: bool = True,
                 window_batches: int = 8, shuffle_buffer: int = 1024, pad_words_to: int = 8,
                 pad_frames_to: int = 16):
        self.data_dir = os.fspath(data_dir)
        self.info = DatasetInfo.load(self.data_dir)
        vocab_path = os.path.join(self.data_dir, "vocab.txt")
        self.vocab = Vocab.load(vocab_path)
        if len(self.vocab) != self.info.vocab_size:
            raise CorpusError(f"{vocab_path} has {len(self.vocab)} words but dataset.json says "
                              f"vocab_size {self.info.vocab_size}")
        self.files = [os.path.join(self.data_dir, "records", name) for name in self.info.shards]
        missing = [f for f in self.files if not os.path.isfile(f)]
        if missing:
            raise CorpusError(f"record shards listed in dataset.json are missing: {missing}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.seed = seed
        self.batch_size = batch_size
        self.balanced = balanced
        self.split_mode = split_mode
        self._pipeline_options = dict(pad_words_to=pad_words_to, pad_frames_to=pad_frames_to, bucket=bucket)
        self._train_options = dict(window_batches=window_batches, shuffle_buffer=shuffle_buffer)
        if split_mode == "folds":
            all_folds = folds_lib.speaker_folds(sorted(self.info.groups), num_folds, fold_seed, val_share)
            if not 0 <= fold < num_folds:
                raise ValueError(f"fold must be in [0, {num_folds}), got {fold}")
            self.fold: folds_lib.Fold | None = all_folds[fold]
            self.selections = {split: pipeline.Selection("group", getattr(self.fold, split)) for split in SPLITS}
        elif split_mode == "manifest":
            self.fold = None
            names = folds_lib.manifest_splits(list(self.info.splits))
            self.selections = {split: pipeline.Selection("split", names[split]) for split in SPLITS}
        else:
            raise ValueError(f"split_mode must be 'folds' or 'manifest', got {split_mode!r}")

    @functools.cached_property
    def index(self) -> pipeline.Index:
        """Per-example metadata of all records (one header pass over the shards)."""
        return pipeline.scan(self.files)

    @property
    def split_sizes(self) -> dict[str, int]:
        """Examples per split, from ``dataset.json`` counts (no pass over the records)."""
        counts = self.info.groups if self.split_mode == "folds" else self.info.splits
        return {split: sum(int(counts.get(v, 0)) for v in self.selections[split].values) for split in SPLITS}

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
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
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
        """
        return self.train_dataset(start_step).as_numpy_iterator()

    def eval_batches(self, split: str) -> Iterator[dict[str, np.ndarray]]:
        """One pass over ``split`` ("train", "validation" or "test"), every example once,
        unbalanced; batches are grouped by shape, the last of a shape may be smaller."""
        selection = self._selection(split)
        if not selection.values:
            raise CorpusError(f"{self.data_dir} has no examples in split {split!r} "
                              f"({self.split_mode} mode: {selection})")
        return pipeline.eval_dataset(self.files, self.vocab.words, batch_size=self.batch_size,
                                     selection=selection, **self._pipeline_options).as_numpy_iterator()
