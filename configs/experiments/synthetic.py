"""The embedded synthetic corpus (hmaf.corpora.synthetic): all seven models, 5 folds.

    python -m hmaf.corpora.synthetic --out data/synthetic
    python -m hmaf.experiment --config configs/experiments/synthetic.py

Sized to finish in about half an hour on 2 CPU cores: smaller GRUs and CNN than the
paper (hidden 32 instead of 100, 64 filters instead of 300) and a few hundred steps
per stage. Every utterance is padded to one shape (20 words x 100 frames, the corpus's
l_max), so each model compiles once; the persistent compilation cache serves the
later folds. ``:ci`` is the small setting for continuous integration (a 96-utterance
corpus, 2 folds, a few dozen steps): it checks the whole path, not the claims.
"""

from configs.experiments import base


def get_config(arg=None):
    if arg == "ci":
        config = base.experiment("synthetic_ci", "data/synthetic-ci", num_folds=2,
                                 build_hint="python -m hmaf.corpora.synthetic --out data/synthetic-ci "
                                            "--size 96 --speakers 4")
        config.train.model.update(hidden=8, attention_dim=16, fusion_dim=16, filters=8, widths=(2, 3))
        config.branch_train_steps = 30
        config.fusion_train_steps = 20
        config.train.eval_every = 10
    elif arg in (None, ""):
        config = base.experiment("synthetic", "data/synthetic",
                                 build_hint="python -m hmaf.corpora.synthetic --out data/synthetic")
        config.train.model.update(hidden=32, attention_dim=64, fusion_dim=64, filters=64)
        config.branch_train_steps = 500
        config.fusion_train_steps = 250
        config.train.eval_every = 50
    else:
        raise ValueError(f"unknown variant {arg!r}: use nothing or 'ci'")
    config.train.log_every = 50
    config.train.patience = 4
    config.source.update(bucket=False, pad_words_to=20, pad_frames_to=100)
    return config
