"""EMNS sentences (real text, labels and word emphasis) spoken by TTS voices, 7 emotions.

    python -m hmaf.corpora.emns --out data/emns
    python -m hmaf.experiment --config configs/experiments/emns_tts.py

In-split: the corpus's own train/validation/test splits (its speakers are a few TTS
voices, too few for 5 speaker-independent folds). The question this corpus asks is
whether fusion holds up where text carries no signal (neutral prose, the emotion is in
the voice): the held-out sentences view tests on sentences never seen in training or
validation (3 folds over sentence ids, any voice), and the paired tests put FAF
against audio-only there (and against UL-Fusion and the better branch). With
``--engines espeak,festival`` at build time, ``--config.generalisation.views`` can add
``loeo``. The paper's sizes; one seed (add ``--config.seeds=0,1,2`` for more).
"""

from configs.experiments import base


def get_config(arg=None):
    config = base.experiment("emns_tts", "data/emns", split_mode="manifest",
                             build_hint="python -m hmaf.corpora.emns --out data/emns")
    config.comparisons = "faf:audio_only,faf:ul_fusion,faf:best_branch"
    config.generalisation.update(views="in_split,heldout_sentences", sentence_folds=3, disjoint_speakers=False,
                                 models="hf,vf,faf,ul_fusion,text_only,audio_only")
    return config
