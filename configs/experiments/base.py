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
    config.branch_train_steps = config.train.num_train_steps  # text_only / audio_only stages
    config.fusion_train_steps = config.train.num_train_steps  # fusion stage of each fusion model
    config.paper = paper  # key of hmaf.analysis.paper.TABLE1 ("mosi", "iemocap4", "iemocap5")
    config.build_hint = build_hint  # the command that prepares data_dir
    # Input pipeline options (hmaf.data.source.CorpusSource): length bucketing, padding.
    config.source = ml_collections.ConfigDict(dict(bucket=True, pad_words_to=8, pad_frames_to=16))
    config.compilation_cache = "workdirs/.jax_cache"  # "" to switch the persistent cache off
    # Table 3: evaluate every trained model on all of another prepared corpus.
    config.cross = ml_collections.ConfigDict(dict(data="", label_map="", paper=""))
    return config
