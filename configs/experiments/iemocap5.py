"""IEMOCAP, 5 classes (the 4 plus frustrated): the paper reports FAF only.

    python -m hmaf.corpora.iemocap --root IEMOCAP_full_release --classes 5 --out data/iemocap5
    python -m hmaf.experiment --config configs/experiments/iemocap5.py
"""

from configs.experiments import base


def get_config(arg=None):
    return base.experiment("iemocap5", "data/iemocap5", paper="iemocap5",
                           build_hint="python -m hmaf.corpora.iemocap --root IEMOCAP_full_release "
                                      "--classes 5 --out data/iemocap5")
