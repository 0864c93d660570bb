"""IEMOCAP, 4 classes (happy+excited, sad, angry, neutral): Tables 1 and 2 of the paper.

    python -m hmaf.corpora.iemocap --root IEMOCAP_full_release --classes 4 --out data/iemocap4
    python -m hmaf.experiment --config configs/experiments/iemocap4.py

Groups are the 5 sessions, so the 5 folds are leave-one-session-out. The paper's sizes.
"""

from configs.experiments import base


def get_config(arg=None):
    return base.experiment("iemocap4", "data/iemocap4", paper="iemocap4",
                           build_hint="python -m hmaf.corpora.iemocap --root IEMOCAP_full_release "
                                      "--classes 4 --out data/iemocap4")
