"""CMU-MOSI, binary sentiment by the sign of the score: Tables 1 and 2 of the paper.

    python -m hmaf.corpora.mosi --root CMU_MOSI_Raw --out data/mosi
    python -m hmaf.experiment --config configs/experiments/mosi.py

Groups are the videos (one speaker each): 5 speaker-independent folds. ``hmaf.evaluate``
on a trained fold reports Has0 and Non0 from the raw scores the manifest keeps.
"""

from configs.experiments import base


def get_config(arg=None):
    return base.experiment("mosi", "data/mosi", paper="mosi",
                           build_hint="python -m hmaf.corpora.mosi --root CMU_MOSI_Raw --out data/mosi")
