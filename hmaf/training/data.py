"""Builds the training data source a config names."""

from __future__ import annotations

import ml_collections


def make_source(config: ml_collections.ConfigDict):
    """``config.data.source``: ``corpus`` (prepared TFRecords in ``config.data.dir``)
    or ``toy`` (a learnable in-memory corpus, for tests and smoke runs)."""
    data = config.data
    if data.source == "toy":
        from hmaf.data.toy import ToySource
        return ToySource(batch_size=config.batch_size, seed=config.seed, **data.get("toy", {}))
    if data.source == "corpus":
        from hmaf.data.source import CorpusSource, DatasetInfo
        # Every new batch shape is a new XLA compilation (seconds each on CPU). With
        # frame packing the frame axis costs nothing to pad, so by default frames are
        # padded to the corpus's l_max and words to a multiple of pad_words_to: a
        # handful of shapes in all. pad_frames_to > 0 with bucket=True instead trades
        # more compilations for less padding (the padded layout).
        pad_frames_to = data.pad_frames_to or DatasetInfo.load(data.dir).l_max
        return CorpusSource(data.dir, fold=data.fold, num_folds=data.num_folds, seed=config.seed,
                            batch_size=config.batch_size, balanced=data.balanced, split_mode=data.split_mode,
                            bucket=data.bucket, pad_words_to=data.pad_words_to, pad_frames_to=pad_frames_to)
    raise ValueError(f"config.data.source={data.source!r}: expected 'corpus' or 'toy'")
