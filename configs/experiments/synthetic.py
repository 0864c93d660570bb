"""The embedded synthetic corpus (hmaf.corpora.synthetic, both engines by default).

    python -m hmaf.corpora.synthetic --out data/synthetic
    python -m hmaf.experiment --config configs/experiments/synthetic.py        # ~20 min
    python -m hmaf.experiment --config configs/experiments/synthetic.py:full   # the claims

Every variant uses the paper's model sizes (configs/default.py: GRU hidden 100,
attention and fusion 200, 300 CNN filters per width 2-5), the trainer's default
budget (epochs with early stopping on validation) and pads every utterance to one
shape (20 words x 100 frames, the corpus's l_max), so each model compiles once and the
persistent compilation cache serves every later run.

* ``""`` (default), sized for about 20 minutes on 2 CPU cores: fold 0, seed 0, the
  models of the paired tests (FAF, UL-Fusion and the two branches), the in-split view
  and its breakdown by kind. One run: the paired tests count examples (McNemar,
  bootstrap), not runs. Estimate, not a measurement of this config: train steps at
  batch 8 cost about 0.55 / 0.83 / 0.99 CPU-seconds (text / audio / FAF) on this
  2-core machine under load, i.e. about 0.3-0.5 s on idle cores; at ~50 steps per
  epoch and ~10 epochs per stage that is about 15-20 minutes for the four models.
* ``:full``: all seven models, 5 folds x 3 seeds (n = 15 runs), and every view of the
  generalisation report (leave-one-engine-out and held-out sentences with FAF,
  UL-Fusion and the branches, 3 seeds each): hours on 2 cores; the setting of the
  README's claims.
* ``:ci``: a 96-utterance corpus, 2 folds, tiny models and a few dozen steps, for
  continuous integration: it checks the whole path, not the claims.
"""

from configs.experiments import base

ALL_VIEWS = "in_split,loeo,heldout_sentences,by_kind"


def get_config(arg=None):
    if arg == "ci":
        config = base.experiment("synthetic_ci", "data/synthetic-ci", num_folds=2,
                                 build_hint="python -m hmaf.corpora.synthetic --out data/synthetic-ci "
                                            "--size 96 --speakers 4")
        config.train.model.update(hidden=8, attention_dim=16, fusion_dim=16, filters=8, widths=(2, 3))
        config.branch_train_steps = 30
        config.fusion_train_steps = 20
        config.train.eval_every = 10
        config.train.patience = 4
        config.train.ema_epochs = 0.0  # compile time in a few dozen steps (configs/default.py: tiny)
    elif arg in (None, "", "full"):
        name = "synthetic_full" if arg == "full" else "synthetic"
        config = base.experiment(name, "data/synthetic",
                                 build_hint="python -m hmaf.corpora.synthetic --out data/synthetic")
        if arg == "full":
            config.seeds = "0,1,2"
            config.generalisation.update(views=ALL_VIEWS, models="faf,ul_fusion,text_only,audio_only")
        else:
            config.folds = "0"
            config.models = ("faf", "ul_fusion", "text_only", "audio_only")
            config.generalisation.update(views="in_split,by_kind")
    else:
        raise ValueError(f"unknown variant {arg!r}: use nothing, 'full' or 'ci'")
    config.train.log_every = 50
    config.source.update(bucket=False, pad_words_to=20, pad_frames_to=100)
    return config
