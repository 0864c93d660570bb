"""Shared shape of every experiment config (``python -m hmaf.experiment --config ...``).

An experiment config holds the training config of its models (``train``, as
configs/default.py) plus the protocol: the models, the folds, the steps per stage, the
paper numbers to print beside ours, and optionally a second corpus for Table 3.
"""

import ml_collections

from configs import default

ALL_MODELS = ("hf", "vf", "faf", "ul_fusion", "dl_fusion", "text_only", "audio_only")


def experiment(name: str, data_dir: str, *, paper: str = "", build_hint: str = "",
               models: tuple[str, ...] = ALL_MODELS, num_folds: int = 5,
               split_mode: str = "folds") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.name = name
    config.workdir = f"workdirs/{name}"
    config.train = default.get_config(None)
    config.train.data.dir = data_dir
    config.train.data.split_mode = split_mode
    config.models = models
    config.num_folds = num_folds
    config.folds = ""  # e.g. "0,1": run only these folds
    # Every (fold, seed) pair trains every model (its own branches too); the tables are
    # mean ± std over all those runs. Seeds change initialisation and batch order, not
    # the folds (their assignment has its own fixed seed).
    config.seeds = "0"
    config.branch_train_steps = config.train.num_train_steps  # text_only / audio_only stages
    config.fusion_train_steps = config.train.num_train_steps  # fusion stage of each fusion model
    config.paper = paper  # key of hmaf.analysis.paper.TABLE1 ("mosi", "iemocap4", "iemocap5")
    config.build_hint = build_hint  # the command that prepares data_dir
    # Input pipeline options (hmaf.data.source.CorpusSource): length bucketing, padding.
    config.source = ml_collections.ConfigDict(dict(bucket=True, pad_words_to=8, pad_frames_to=16))
    config.compilation_cache = "workdirs/.jax_cache"  # "" to switch the persistent cache off
    # Table 3: evaluate every trained model on all of another prepared corpus.
    config.cross = ml_collections.ConfigDict(dict(data="", label_map="", paper=""))
    # Paired tests on the same test examples, "a:b" pairs; "best_branch" is the branch
    # (text_only / audio_only) with the better validation score in each run.
    config.comparisons = "faf:ul_fusion,faf:best_branch"
    config.bootstrap = ml_collections.ConfigDict(dict(resamples=10_000, seed=0))
    # The generalisation report (docs/experiments.md). Views beyond in_split need the
    # corpus's utterances.jsonl (engine, voice, sentence, kind of every utterance).
    config.generalisation = ml_collections.ConfigDict(dict(
        views="in_split",  # comma list of in_split, loeo, heldout_sentences, by_kind
        models="",  # models of the loeo / heldout_sentences runs ("": config.models)
        seeds="",  # their seeds ("": config.seeds)
        sentence_folds=3,  # k of the held-out sentence folds
        folds="",  # which of them to run ("": all)
        disjoint_speakers=True,  # held-out sentences: test speakers unseen too (strictest)
        val_share=0.2,  # share of training voices (sentences) held out for validation
        fold_seed=0,  # assigns voices and sentences to the held-out splits
        utterances="",  # "": <data dir>/utterances.jsonl
    ))
    return config
