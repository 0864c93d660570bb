"""The settings of one corpus preparation, shared by its phases and by the Beam path."""

from __future__ import annotations

import dataclasses
from hmaf.data import features as features_lib
from hmaf.data.align import BOUNDARIES, DEFAULT_BOUNDARIES


@dataclasses.dataclass(frozen=True)
class PrepareSettings:
    """How a manifest becomes a corpus (see :func:`hmaf.data.writer.prepare`).

    Attributes:
      embeddings: spec for :func:`hmaf.data.embeddings.build_matrix`.
      l_max: the most frames kept per word.
      long_word_rule: "subsample" or "truncate", for words longer than ``l_max`` frames.
      num_shards: TFRecord shards; None: about one per 64 MiB of frames.
      labels: label names in class-index order; rows with other labels are rejected
        ("unknown_label"). None: the sorted labels of the good examples.
      name: the corpus name (shard file prefix); None: the output folder's name.
      seed: seeds the embeddings of unknown words (and "train" embeddings).
      progress: show progress bars.
      aligner: "aeneas" (the paper's), "pocketsphinx" or "auto" (:mod:`hmaf.data.align`).
      boundaries: where pocketsphinx's word boundaries end up, "hmm" or "signal"
        (:data:`hmaf.data.align.BOUNDARIES`).
      augment: waveform augmentation spec (:mod:`hmaf.data.augment`): extra rows
        ``<id>~<name>`` per original; "" (default, the paper's setting) for none.
      vocab_extra: an open vocabulary: the N most frequent words of the pretrained
        ``embeddings`` join the corpus's words (:func:`hmaf.data.embeddings.pretrained_words`);
        0 (default, the paper's) for the corpus's words only.
    """

    embeddings: str = "glove6b50"
    l_max: int = 100
    long_word_rule: str = "subsample"
    num_shards: int | None = None
    labels: tuple[str, ...] | None = None
    name: str | None = None
    seed: int = 0
    progress: bool = True
    aligner: str = "auto"
    boundaries: str = DEFAULT_BOUNDARIES
    augment: str = ""
    vocab_extra: int = 0

    def __post_init__(self) -> None:
        if self.labels is not None and not isinstance(self.labels, tuple):
            object.__setattr__(self, "labels", tuple(self.labels))

    def check(self) -> None:
        """Raises ValueError naming the first bad setting."""
        if self.long_word_rule not in features_lib.LONG_WORD_RULES:
            raise ValueError(f"long_word_rule must be one of {features_lib.LONG_WORD_RULES}, "
                             f"got {self.long_word_rule!r}")
        from hmaf.data.align import ALIGNERS

        if self.aligner not in ALIGNERS:
            raise ValueError(f"aligner must be one of {ALIGNERS}, got {self.aligner!r}")
        if self.boundaries not in BOUNDARIES:
            raise ValueError(f"boundaries must be one of {BOUNDARIES}, got {self.boundaries!r}")
        if self.augment:
            from hmaf.data.augment import parse_augment

            parse_augment(self.augment)  # a bad spec fails before any work
        if self.vocab_extra < 0:
            raise ValueError(f"vocab_extra must be >= 0, got {self.vocab_extra}")
        if self.vocab_extra and self.embeddings.partition(":")[0] == "train":
            raise ValueError(f"vocab_extra needs pretrained embeddings, not {self.embeddings!r}")
        if self.l_max < 1:
            raise ValueError(f"l_max must be >= 1, got {self.l_max}")
        if self.num_shards is not None and self.num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {self.num_shards}")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels has duplicates: {list(self.labels)}")

