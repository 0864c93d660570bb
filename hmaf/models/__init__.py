"""Pure Flax models of Gu et al. 2018; they take arrays only (see :mod:`hmaf.batch`)."""

from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from hmaf.models.classifiers import BRANCHES, MODELS, ModelOutput
from hmaf.models.frontend import AUDIO_NORMS

__all__ = ["BRANCHES", "MODELS", "ModelOutput", "build_model"]

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_model(name: str, *, num_classes: int, vocab_size: int, embed_dim: int,
                embedding_matrix: np.ndarray | None = None, **options: Any):
    """Builds a model by its config name.

    Args:
      name: one of ``hf, vf, faf, text_only, audio_only, ul_fusion, ul_fusion_frames,
        dl_fusion``.
      num_classes, vocab_size, embed_dim: sizes from the prepared corpus.
      embedding_matrix: initial ``[vocab_size, embed_dim]`` table (None at restore
        time: the checkpoint holds the table).
      options: model config fields (hidden, attention_dim, fusion_dim, filters, widths,
        dropout, train_embedding, unroll, dtype as a name; the generalisation options
        audio_norm, speaker_stats_dropout, stats_indicator, prosody, fused_dropout, word_dropout,
        embedding_dropout, punctuation, punctuation_dropout, modality_dropout, gate, freeze_branches,
        spec_time_masks, spec_time_mask_frames, spec_band_masks, spec_band_mask_bands,
        boundary_jitter_frames, see :class:`hmaf.models.classifiers._Branches`).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    options = dict(options)
    _check_options(options)
    if isinstance(options.get("dtype"), str):
        options["dtype"] = _DTYPES[options["dtype"]]
    if "widths" in options:
        options["widths"] = tuple(options["widths"])
    if name in ("hf", "vf", "faf"):
        options["fusion"] = name
    return MODELS[name](num_classes=num_classes, vocab_size=vocab_size, embed_dim=embed_dim,
                        embedding_matrix=embedding_matrix, **options)


def _check_options(options: Mapping[str, Any]) -> None:
    """Raises ValueError naming the first model option outside its range."""
    if options.get("audio_norm", "batch") not in AUDIO_NORMS:
        raise ValueError(f"audio_norm={options['audio_norm']!r}; choose one of {AUDIO_NORMS}")
    if options.get("stats_indicator", False) and options.get("audio_norm", "batch") != "speaker":
        raise ValueError(f"stats_indicator=True says which statistics normalised an utterance, so it needs "
                         f"audio_norm='speaker', not {options.get('audio_norm', 'batch')!r}")
    for key in ("dropout", "fused_dropout", "word_dropout", "embedding_dropout", "modality_dropout",
                "speaker_stats_dropout", "punctuation_dropout"):
        rate = options.get(key, 0.0)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{key}={rate}: a rate must lie in [0, 1]")
    for key in ("spec_time_masks", "spec_time_mask_frames", "spec_band_masks", "spec_band_mask_bands",
                "boundary_jitter_frames"):
        value = options.get(key, 0)
        if int(value) != value or value < 0:
            raise ValueError(f"{key}={value}: must be a non-negative integer")


def model_options(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """The build_model keyword arguments held in a config's ``model`` section."""
    return {k: v for k, v in dict(model_config).items() if k != "name"}
