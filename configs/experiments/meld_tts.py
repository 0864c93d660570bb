"""MELD utterances spoken by espeak-ng: 3 sentiments (default) or 7 emotions (``:emotion``).

    python -m hmaf.corpora.meld --out data/meld-sentiment --task sentiment
    python -m hmaf.experiment --config configs/experiments/meld_tts.py

MELD's splits (train/validation from meld_train.csv, test from meld_dev.csv) are used,
one run; evaluation reports Has0/Non0 for the sentiment task.
"""

from configs.experiments import base


def get_config(arg=None):
    task = arg or "sentiment"
    if task not in ("sentiment", "emotion"):
        raise ValueError(f"unknown variant {arg!r}: use 'sentiment' or 'emotion'")
    data = f"data/meld-{task}"
    return base.experiment(f"meld_tts_{task}", data, split_mode="manifest",
                           build_hint=f"python -m hmaf.corpora.meld --out {data} --task {task}")
