"""Base config: the paper's sizes and protocol (§4.3). The model files override
``model.name``; ``:tiny`` (e.g. ``--config=configs/faf.py:tiny``) shrinks everything
for a smoke run on a laptop, as big_vision's ``runlocal``."""

import ml_collections


def get_config(arg: str | None = None, model: str = "faf") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict(dict(
        name=model, hidden=100, attention_dim=200, fusion_dim=200, filters=300, widths=(2, 3, 4, 5),
        dropout=0.5, train_embedding=False, unroll=1, dtype="float32"))
    # train_embedding [paper: not stated]: frozen pretrained vectors keep a word the corpus
    # never has (an open vocabulary, hmaf.prepare --vocab_extra) in the space the model
    # learned; measured on the embedded corpus (docs/experiments.md, "New sentences and
    # human speech"). MELD-TTS fine-tunes (configs/experiments/meld_tts.py, measured there).
    # Generalisation options (hmaf/models/classifiers.py); the paper's setting in brackets.
    # Audio input normalisation: batch (masked batch norm) | utterance | speaker | none [none].
    # speaker: each speaker's band statistics (hmaf.prepare writes speaker_stats.json) -- the
    # best of the four across synthesis engines (leave-one-engine-out, docs/experiments.md
    # "Generalisation across engines"); without a speaker's statistics (hmaf.predict on one
    # recording) the utterance's own are used, which measured near chance on another engine.
    config.model.audio_norm = "speaker"
    # speaker norm, ours: in training this share of utterances uses its own statistics
    # instead of its speaker's, as at predict time without a speaker profile [none: 0.0].
    config.model.speaker_stats_dropout = 0.0
    # speaker norm, ours: each frame also carries a column saying whether its utterance
    # was normalised by its speaker's statistics (1) or its own (0) [none: False].
    config.model.stats_indicator = False
    # Audio branch, ours: each frame also carries log F0, voicing and log energy (YIN pitch,
    # hmaf/data/prosody.py; a corpus prepared since they exist), normalised like the bands.
    # Measured across engines and voices: docs/experiments.md "Prosody columns" [False:
    # the 64 log-mel bands alone, §3.1].
    config.model.prosody = True
    # Dropout on the fused word vectors V before the CNN decision [none: 0.0].
    config.model.fused_dropout = 0.5
    # Text branch: word ids -> UNK with this probability in training [0.0].
    config.model.word_dropout = 0.0
    # Text branch: dropout on the embedded word vectors [0.0].
    config.model.embedding_dropout = 0.0
    # Text branch, ours: each word also carries the punctuation mark after it in the
    # transcript (none , . ? ! ...), a learned 8-d vector beside its word vector; needs a
    # corpus prepared with word marks (docs/training.md "Punctuation marks") [False: the
    # paper's words carry no punctuation].
    config.model.punctuation = False
    # punctuation, ours: in training an utterance loses all its marks with this probability,
    # as words from speech recognition carry none [no paper setting; 0.0].
    config.model.punctuation_dropout = 0.0
    # Fusion stage: an utterance loses its text or its audio states with this probability [0.0].
    config.model.modality_dropout = 0.0
    # Fusion stage: learned per-utterance modality gate, ours [False].
    config.model.gate = False
    # Fusion stage: branches run deterministically, only fusion and decision layers learn
    # [ambiguous, §4.3 "tuned the fusion network based on the outputs of each module"; False].
    config.model.freeze_branches = False
    # SpecAugment on the frames in training: masks per utterance and their maximum width [0: off].
    config.model.spec_time_masks = 0
    config.model.spec_time_mask_frames = 0  # frames of utterance time per time mask
    config.model.spec_band_masks = 0
    config.model.spec_band_mask_bands = 0  # mel bands per band mask
    # Word boundaries, ours: in training each word reads its frames through a window moved by
    # up to this many frames (10 ms each), as if its aligner were that far off; word-level
    # audio only (hmaf.models.frontend.jitter_boundaries) [0: the paper's boundaries as given].
    config.model.boundary_jitter_frames = 0
    config.data = ml_collections.ConfigDict(dict(
        source="corpus", dir="data/synthetic", fold=0, num_folds=5, split_mode="folds", balanced=True,
        bucket=False, pad_words_to=16, pad_frames_to=0,  # 0: pad frames to the corpus's l_max
        split_file="",  # split_mode="ids": JSON {"train"|"validation"|"test": [original utterance ids]}
        augmented=True))  # augmented copies (records with an `augment` tag) in train; never in eval
    config.seed = 0
    config.batch_size = 8
    # Budget per stage: at most num_epochs epochs (epoch = train examples / batch_size
    # steps); early stopping on validation decides the end (the paper trains to
    # convergence with early stopping). num_train_steps > 0: exactly that many steps.
    config.num_epochs = 60.0  # a float: fractions of an epoch are fine
    config.num_train_steps = 0
    config.eval_every_epochs = 1.0  # validation every this fraction of an epoch
    config.eval_every = 0  # > 0: every this many steps instead
    config.patience = 6  # evaluations without a better validation score
    config.log_every = 50
    config.select_metric = "ua"
    # Optimiser. Paper (§4.3): plain Adam, learning rate 1e-3, no schedule, no clipping,
    # no weight decay; each addition below is off by default.
    config.learning_rate = 1e-3
    config.lr_schedule = "constant"  # paper | "warmup_cosine" | "plateau" (reduce_on_plateau)
    config.warmup_epochs = 1.0  # warmup_cosine: linear warmup over this many epochs
    config.plateau_factor = 0.5  # plateau: lr x factor after plateau_patience epochs
    config.plateau_patience = 2  # without a lower training loss
    config.grad_clip_norm = 0.0  # paper: 0 (off); > 0 clips the global gradient norm
    config.weight_decay = 0.0  # paper: 0 (Adam); > 0 uses AdamW with this decay
    # paper: 0 (validate and keep the raw parameters). Ours: a moving average of the
    # parameters with this time constant in epochs is validated, kept and reported
    # (FAF at the paper's sizes +2-3 points over two seeds, docs/experiments.md).
    config.ema_epochs = 1.0
    config.prefetch = 2  # batches placed on the device ahead of the step
    # > 0: on the CPU backend the input thread (and tf.data's threads) run this much nicer
    # than the step's XLA threads, so host input work fills CPU time the step leaves idle
    # (Linux). 0 (off): under load it measured no faster (benchmarks/README.md, trainer).
    config.prefetch_nice = 0
    config.profile = False  # a TensorBoard profile of 5 steps (clu periodic_actions.Profile)
    # The frame-level BiGRU runs over packed rows of real frames (2.5x faster train
    # steps on CPU, see benchmarks/README.md); same results as the padded layout.
    config.pack_frames = True
    config.pack_row_multiple = 8  # rows rounded up to this (fewer shapes to compile vs less padding)
    config.data_parallel = False  # shard each batch over all devices (jax.sharding)
    # Multi-process training (docs/scaling.md, "Multi-process training"): every process
    # runs the same command with its own process_id; auto=True lets
    # jax.distributed.initialize() find the cluster (TPU VM, SLURM). Batches are then
    # always sharded over the devices of all processes.
    config.distributed = ml_collections.ConfigDict(dict(coordinator="", num_processes=1, process_id=0, auto=False))
    # Unfamiliar-input flag (hmaf/unfamiliar.py; paper: none, no such flag). Which score
    # flags, threshold at 5 % false alarms on validation: "energy" (of the logits) |
    # "mahalanobis" (the model's utterance features vs class Gaussians fitted on train) |
    # "input" (raw log-mel statistics vs train, model-independent) | "combined" (either of
    # the last two far out). Every score is fitted and reported; this one sets `unfamiliar`.
    # "input": the only one that flagged most of another engine's speech in leave-one-engine-
    # out (98-100 %, energy 3-25 %, mahalanobis 3-18 %; docs/models.md).
    config.unfamiliar_score = "input"
    config.staged = True  # train text and audio branches first, then fine-tune the fusion
    config.stage = "all"  # or one stage: text | audio | fusion
    config.branches_dir = ""  # where the text/audio stages live; "" = the workdir
    if arg == "tiny":
        config.model.update(hidden=8, attention_dim=8, fusion_dim=8, filters=8, widths=(2, 3))
        config.data.source = "toy"
        # Toy batches have one padded shape; packing would vary the row count per batch
        # and so compile several times (tests/test_packing.py covers packing itself).
        config.pack_frames = False
        config.data.toy = ml_collections.ConfigDict(dict(num_classes=3, split_sizes=(48, 24, 24)))
        config.num_epochs = 5.0  # 6 steps per epoch on the toy corpus: 30 steps
        config.eval_every = 10
        config.log_every = 5
        config.patience = 100
        # The average adds to each compile of the step, which dominates these few-step test
        # runs (tests/test_experiment.py 126 -> 149 s); tests/test_training.py covers it.
        config.ema_epochs = 0.0
    elif arg not in (None, ""):
        raise ValueError(f"unknown config variant {arg!r}; use 'tiny' or nothing")
    return config
