"""EMNS sentences (real text, labels and word emphasis) spoken by espeak-ng, 7 emotions.

    python -m hmaf.corpora.emns --out data/emns
    python -m hmaf.experiment --config configs/experiments/emns_tts.py

The corpus's own train/validation/test splits are used (its speakers are 4 TTS voices,
too few for 5 speaker-independent folds). The paper's sizes and steps.
"""

from configs.experiments import base


def get_config(arg=None):
    return base.experiment("emns_tts", "data/emns", split_mode="manifest",
                           build_hint="python -m hmaf.corpora.emns --out data/emns")
