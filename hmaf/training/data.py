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
        from hmaf.data.source import CorpusSource
        return CorpusSource(data.dir, fold=data.fold, num_folds=data.num_folds, seed=config.seed,
                            batch_size=config.batch_size, balanced=data.balanced, split_mode=data.split_mode)
    raise ValueError(f"config.data.source={data.source!r}: expected 'corpus' or 'toy'")
