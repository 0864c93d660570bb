"""Complete models: the paper's word-level fusion model and its baselines.

Every model maps a batch (see :mod:`hmaf.batch`) to :class:`ModelOutput`, names its
branches ``text`` and ``audio`` so that staged training can copy pretrained branch
weights into a fusion model, and sows every attention distribution into the
``intermediates`` collection (``t_alpha``, ``w_alpha``, ``f_alpha``, ``s_alpha``,
``u_alpha``) for inference and Figure 3.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hmaf.models.attention import weighted_sum
from hmaf.models.decision import CNNDecision, DenseHead
from hmaf.models.encoders import AudioAttention, TextAttention
from hmaf.models.fusion import FUSIONS
from hmaf.models.packing import packed_inputs

Dtype = Any
DL_WEIGHTS = (1.2, 0.8)  # text, audio (Wöllmer et al. 2013, as in §4.2.3)


class ModelOutput(NamedTuple):
    """logits ``[B, C]`` decide the class; each of ``head_logits`` is trained with
    cross-entropy (one head for most models, two for decision-level fusion)."""

    logits: jax.Array
    head_logits: tuple[jax.Array, ...]


class _Branches(nn.Module):
    """Shared attributes of every model (sizes of the paper as defaults)."""

    num_classes: int
    vocab_size: int
    embed_dim: int
    hidden: int = 100
    attention_dim: int = 200
    fusion_dim: int = 200
    filters: int = 300
    widths: tuple[int, ...] = (2, 3, 4, 5)
    dropout: float = 0.5
    embedding_matrix: np.ndarray | None = None
    train_embedding: bool = True
    unroll: int = 1
    dtype: Dtype = jnp.float32

    def text_branch(self, batch):
        t_h, t_alpha = TextAttention(
            self.vocab_size, self.embed_dim, self.hidden, self.attention_dim,
            self.embedding_matrix, self.train_embedding, self.unroll, self.dtype, name="text",
        )(batch["word_ids"], batch["word_mask"])
        self.sow("intermediates", "t_alpha", t_alpha)
        return t_h, t_alpha

    def audio_branch(self, batch, train):
        w_h, w_alpha, f_alpha = AudioAttention(
            self.hidden, self.attention_dim, self.unroll, self.dtype, name="audio",
        )(batch["frames"], batch["frame_mask"], batch["word_mask"], packed_inputs(batch), train=train)
        self.sow("intermediates", "w_alpha", w_alpha)
        self.sow("intermediates", "f_alpha", f_alpha)
        return w_h, w_alpha

    def cnn_head(self, v, word_mask, train):
        return CNNDecision(self.num_classes, self.widths, self.filters, self.dropout, self.dtype,
                           name="decision")(v, word_mask, train=train)


class WordFusionModel(_Branches):
    """The paper's model (Figure 1): both branches, HF/VF/FAF fusion, CNN decision."""

    fusion: str = "faf"

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, train: bool = False) -> ModelOutput:
        t_h, t_alpha = self.text_branch(batch)
        w_h, w_alpha = self.audio_branch(batch, train)
        fusion_cls = FUSIONS[self.fusion]
        kwargs = dict(attention_dim=self.attention_dim) if self.fusion == "faf" else {}
        v, alphas = fusion_cls(self.fusion_dim, dtype=self.dtype, name="fusion", **kwargs)(
            t_h, t_alpha, w_h, w_alpha, batch["word_mask"])
        for name, alpha in alphas.items():
            self.sow("intermediates", name, alpha)
        logits = self.cnn_head(v, batch["word_mask"], train)
        return ModelOutput(logits, (logits,))


class TextOnlyModel(_Branches):
    """Text only (Table 2, T); also stage 1 of staged training: ``V_i = t_alpha_i t_h_i``."""

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, train: bool = False) -> ModelOutput:
        t_h, t_alpha = self.text_branch(batch)
        logits = self.cnn_head(t_alpha[..., None] * t_h, batch["word_mask"], train)
        return ModelOutput(logits, (logits,))


class AudioOnlyModel(_Branches):
    """Audio only (Table 2, A); also stage 2 of staged training: ``V_i = w_alpha_i w_h_i``."""

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, train: bool = False) -> ModelOutput:
        w_h, w_alpha = self.audio_branch(batch, train)
        logits = self.cnn_head(w_alpha[..., None] * w_h, batch["word_mask"], train)
        return ModelOutput(logits, (logits,))


class UtteranceFusionModel(_Branches):
    """UL-Fusion (§4.2.3): attention-pooled text and audio utterance vectors,
    concatenated, then a softmax classifier."""

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, train: bool = False) -> ModelOutput:
        t_h, t_alpha = self.text_branch(batch)
        w_h, w_alpha = self.audio_branch(batch, train)
        u = jnp.concatenate([weighted_sum(t_alpha, t_h), weighted_sum(w_alpha, w_h)], -1)
        logits = DenseHead(self.num_classes, self.dropout, self.dtype, name="head")(u, train=train)
        return ModelOutput(logits, (logits,))


class DecisionFusionModel(_Branches):
    """DL-Fusion (§4.2.3): separate text and audio softmax classifiers, each trained
    on the label; the prediction is ``1.2 p_text + 0.8 p_audio`` (divided by 2 so it
    stays a distribution; ``logits`` are its log)."""

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, train: bool = False) -> ModelOutput:
        t_h, t_alpha = self.text_branch(batch)
        w_h, w_alpha = self.audio_branch(batch, train)
        text_logits = DenseHead(self.num_classes, self.dropout, self.dtype, name="text_head")(
            weighted_sum(t_alpha, t_h), train=train)
        audio_logits = DenseHead(self.num_classes, self.dropout, self.dtype, name="audio_head")(
            weighted_sum(w_alpha, w_h), train=train)
        w_text, w_audio = DL_WEIGHTS
        probs = (w_text * jax.nn.softmax(text_logits) + w_audio * jax.nn.softmax(audio_logits)) / (
            w_text + w_audio)
        return ModelOutput(jnp.log(probs + 1e-12), (text_logits, audio_logits))


MODELS: dict[str, type[_Branches]] = {
    "hf": WordFusionModel, "vf": WordFusionModel, "faf": WordFusionModel,
    "text_only": TextOnlyModel, "audio_only": AudioOnlyModel,
    "ul_fusion": UtteranceFusionModel, "dl_fusion": DecisionFusionModel,
}
# Which pretrained branches (staged training, §4.3) each model is built from.
BRANCHES: dict[str, tuple[str, ...]] = {
    "hf": ("text", "audio"), "vf": ("text", "audio"), "faf": ("text", "audio"),
    "ul_fusion": ("text", "audio"), "dl_fusion": ("text", "audio"),
    "text_only": ("text",), "audio_only": ("audio",),
}
