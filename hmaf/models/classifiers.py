"""Complete models: the paper's word-level fusion model and its baselines.

Every model maps a batch (see :mod:`hmaf.batch`) to :class:`ModelOutput`, names its
branches ``text`` and ``audio`` so that staged training can copy pretrained branch
weights into a fusion model, and sows every attention distribution into the
``intermediates`` collection (``t_alpha``, ``w_alpha``, ``f_alpha``, ``s_alpha``,
``u_alpha``; ``uf_alpha`` for the utterance-frame baseline, ``gate`` when gated)
for inference and Figure 3.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hmaf.models.attention import weighted_sum
from hmaf.models.decision import CNNDecision, DenseHead
from hmaf.models.encoders import AudioAttention, TextAttention, UtteranceFrameAttention
from hmaf.models.frontend import band_stats_of
from hmaf.models.fusion import FUSIONS, ModalityGate, drop_modality
from hmaf.models.packing import packed_inputs

Dtype = Any
DL_WEIGHTS = (1.2, 0.8)  # text, audio (Wöllmer et al. 2013, as in §4.2.3)


class ModelOutput(NamedTuple):
    """logits ``[B, C]`` decide the class; each of ``head_logits`` is trained with
    cross-entropy (one head for most models, two for decision-level fusion)."""

    logits: jax.Array
    head_logits: tuple[jax.Array, ...]


class _Branches(nn.Module):
    """Shared attributes of every model (sizes of the paper as defaults).

    Generalisation options (``config.model``; paper setting in brackets):
      audio_norm: audio input normalisation ("speaker" in configs/default.py, chosen across engines;
        "batch" the module default; "none" paper), see
        :func:`hmaf.models.frontend.normalise_frames`.
      speaker_stats_dropout: with audio_norm="speaker", the share of training
        utterances normalised by their own statistics instead of their speaker's (ours;
        no paper setting, as the paper does not normalise).
      stats_indicator: with audio_norm="speaker", each frame also says whether its
        utterance was normalised by its speaker's statistics or its own (ours; False).
      fused_dropout: dropout on the word vectors entering the CNN decision (0.5 ours,
        default; the paper names none there).
      word_dropout, embedding_dropout: text-branch regularisation (0 paper).
      punctuation: the text branch also sees each word's punctuation mark (batch key
        ``word_marks``), see :class:`hmaf.models.encoders.TextAttention` (False paper);
        punctuation_dropout: the share of training utterances whose marks are all
        dropped (0 ours by default; no paper setting).
      prosody: the audio branch also reads each frame's prosody columns (log F0,
        voicing, log energy; ours, True in configs/default.py; False paper), see
        :func:`hmaf.models.frontend.frame_columns`.
      spec_time_masks, spec_time_mask_frames, spec_band_masks, spec_band_mask_bands:
        SpecAugment masks on the frames in training (0 paper), see
        :func:`hmaf.models.frontend.spec_augment`.
      boundary_jitter_frames: in training, each word's frames are read through a window
        moved by up to this many frames, as if its boundaries were that far off (0 paper),
        see :func:`hmaf.models.frontend.jitter_boundaries`; word-level audio only (the
        utterance-level encoders of the UL baselines read no word boundaries).
      modality_dropout, gate: act in the models that fuse both modalities (hf, vf, faf,
        ul_fusion, ul_fusion_frames); freeze_branches in every model built from
        pretrained branches. The single-branch models ignore all three, since they
        are trained as the text and audio stages with the same options.
    """

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
    audio_norm: str = "batch"
    speaker_stats_dropout: float = 0.0
    stats_indicator: bool = False
    fused_dropout: float = 0.5
    word_dropout: float = 0.0
    embedding_dropout: float = 0.0
    punctuation: bool = False
    punctuation_dropout: float = 0.0
    prosody: bool = False
    spec_time_masks: int = 0
    spec_time_mask_frames: int = 0
    spec_band_masks: int = 0
    spec_band_mask_bands: int = 0
    boundary_jitter_frames: int = 0
    modality_dropout: float = 0.0
    gate: bool = False
    freeze_branches: bool = False

    def branch_mode(self, train: bool) -> bool:
        """Whether the branches run in training mode: not when frozen (fusion stage)."""
        return train and not self.freeze_branches

    def frozen(self, *arrays: jax.Array) -> tuple[jax.Array, ...]:
        """Branch outputs, cut from the gradient when the branches are frozen."""
        return tuple(jax.lax.stop_gradient(a) for a in arrays) if self.freeze_branches else arrays

    @property
    def spec_augment(self) -> tuple[int, int, int, int]:
        return (self.spec_time_masks, self.spec_time_mask_frames, self.spec_band_masks,
                self.spec_band_mask_bands)

    def text_branch(self, batch, train: bool = False):
        t_h, t_alpha = TextAttention(
            self.vocab_size, self.embed_dim, self.hidden, self.attention_dim,
            self.embedding_matrix, self.train_embedding, self.unroll, self.dtype,
            word_dropout=self.word_dropout, embedding_dropout=self.embedding_dropout,
            punctuation=self.punctuation, punctuation_dropout=self.punctuation_dropout, name="text",
        )(batch["word_ids"], batch["word_mask"], batch.get("word_marks"), train=train)
        self.sow("intermediates", "t_alpha", t_alpha)
        return t_h, t_alpha

    def audio_branch(self, batch, train):
        w_h, w_alpha, f_alpha = AudioAttention(
            self.hidden, self.attention_dim, self.unroll, self.dtype, audio_norm=self.audio_norm,
            speaker_stats_dropout=self.speaker_stats_dropout, stats_indicator=self.stats_indicator,
            spec_augment=self.spec_augment, prosody=self.prosody,
            boundary_jitter_frames=self.boundary_jitter_frames, name="audio",
        )(batch["frames"], batch["frame_mask"], batch["word_mask"], packed_inputs(batch), train=train,
          band_stats=band_stats_of(batch))
        self.sow("intermediates", "w_alpha", w_alpha)
        self.sow("intermediates", "f_alpha", f_alpha)
        return w_h, w_alpha

    def both_branches(self, batch, train):
        """Text and audio word states of a fusion model, after the frozen-branch rule,
        modality dropout and the modality gate: ``(t_h, t_alpha, w_h, w_alpha)``.

        An utterance whose text is dropped gets ``t_h = 0`` and ``t_alpha = w_alpha``
        (and the other way round), so the shared attention ``s_alpha = (t_alpha +
        w_alpha) / 2`` becomes the kept modality's attention: it still sums to 1 over
        the real words and is zero at padding, and FAF's ``u_alpha`` still sums to 2.
        The gate scales the word states only; the attentions stay the branches'.
        """
        t_h, t_alpha = self.text_branch(batch, self.branch_mode(train))
        w_h, w_alpha = self.audio_branch(batch, self.branch_mode(train))
        t_h, t_alpha, w_h, w_alpha = self.frozen(t_h, t_alpha, w_h, w_alpha)
        t_h, w_h, dropped = self.drop_modality(t_h, w_h, train)
        if dropped is not None:
            t_alpha, w_alpha = (jnp.where((dropped == 1)[:, None], w_alpha, t_alpha),
                                jnp.where((dropped == 2)[:, None], t_alpha, w_alpha))
        if self.gate:
            g = self.gate_weights(weighted_sum(t_alpha, t_h), weighted_sum(w_alpha, w_h))
            t_h, w_h = g[:, 0, None, None] * t_h, g[:, 1, None, None] * w_h
        return t_h, t_alpha, w_h, w_alpha

    def drop_modality(self, text, audio, train):
        """Modality dropout in training (:func:`hmaf.models.fusion.drop_modality`);
        returns ``(text, audio, dropped [B] or None)``."""
        if not (train and self.modality_dropout > 0):
            return text, audio, None
        text, audio, dropped = drop_modality(self.make_rng("dropout"), self.modality_dropout, text, audio)
        self.sow("intermediates", "modality_dropped", dropped)  # 0 none, 1 text, 2 audio
        return text, audio, dropped

    def gate_weights(self, text_summary, audio_summary):
        """``[B, 2]`` weights from :class:`ModalityGate`, sown as ``gate``."""
        g = ModalityGate(self.dtype, name="modality_gate")(text_summary, audio_summary)
        self.sow("intermediates", "gate", g)
        return g

    def cnn_head(self, v, word_mask, train):
        return CNNDecision(self.num_classes, self.widths, self.filters, self.dropout, self.fused_dropout,
                           self.dtype, name="decision")(v, word_mask, train=train)


class WordFusionModel(_Branches):
    """The paper's model (Figure 1): both branches, HF/VF/FAF fusion, CNN decision."""

    fusion: str = "faf"

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, train: bool = False) -> ModelOutput:
        t_h, t_alpha, w_h, w_alpha = self.both_branches(batch, train)
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
        t_h, t_alpha = self.text_branch(batch, train)
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
        t_h, t_alpha, w_h, w_alpha = self.both_branches(batch, train)
        u = jnp.concatenate([weighted_sum(t_alpha, t_h), weighted_sum(w_alpha, w_h)], -1)
        logits = DenseHead(self.num_classes, self.dropout, self.dtype, name="head")(u, train=train)
        return ModelOutput(logits, (logits,))


class UtteranceFrameFusionModel(_Branches):
    """UL-Fusion as the paper duplicated it (Gu et al. 2017, §4.2.3): the text
    utterance vector of the text branch and an utterance-level audio vector from a
    BiGRU with attention over all real frames of the utterance, without word
    alignment (:class:`UtteranceFrameAttention`, sown as ``uf_alpha`` ``[B, N, L]``),
    concatenated, then a softmax classifier.

    Its audio encoder (``audio_utt``) has no branch stage: staged training starts
    it from scratch in the fusion stage, with the pretrained text branch (see
    :data:`BRANCHES`). Modality dropout and the gate act on the two utterance vectors.
    """

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, train: bool = False) -> ModelOutput:
        t_h, t_alpha = self.text_branch(batch, self.branch_mode(train))
        t_h, t_alpha = self.frozen(t_h, t_alpha)
        u_text = weighted_sum(t_alpha, t_h)
        u_audio, uf_alpha = UtteranceFrameAttention(
            self.hidden, self.attention_dim, self.unroll, self.dtype, audio_norm=self.audio_norm,
            speaker_stats_dropout=self.speaker_stats_dropout, stats_indicator=self.stats_indicator,
            spec_augment=self.spec_augment, prosody=self.prosody, name="audio_utt",
        )(batch["frames"], batch["frame_mask"], train=train, band_stats=band_stats_of(batch))
        self.sow("intermediates", "uf_alpha", uf_alpha)
        u_text, u_audio, _ = self.drop_modality(u_text, u_audio, train)
        if self.gate:
            g = self.gate_weights(u_text, u_audio)
            u_text, u_audio = g[:, :1] * u_text, g[:, 1:] * u_audio
        u = jnp.concatenate([u_text, u_audio], -1)
        logits = DenseHead(self.num_classes, self.dropout, self.dtype, name="head")(u, train=train)
        return ModelOutput(logits, (logits,))


class DecisionFusionModel(_Branches):
    """DL-Fusion (§4.2.3): separate text and audio softmax classifiers, each trained
    on the label; the prediction is ``1.2 p_text + 0.8 p_audio`` (divided by 2 so it
    stays a distribution; ``logits`` are its log). Each head sees one modality, so
    modality dropout and the gate do not apply; ``freeze_branches`` does."""

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, train: bool = False) -> ModelOutput:
        t_h, t_alpha = self.text_branch(batch, self.branch_mode(train))
        w_h, w_alpha = self.audio_branch(batch, self.branch_mode(train))
        t_h, t_alpha, w_h, w_alpha = self.frozen(t_h, t_alpha, w_h, w_alpha)
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
    "ul_fusion": UtteranceFusionModel, "ul_fusion_frames": UtteranceFrameFusionModel,
    "dl_fusion": DecisionFusionModel,
}
# Which pretrained branches (staged training, §4.3) each model is built from.
BRANCHES: dict[str, tuple[str, ...]] = {
    "hf": ("text", "audio"), "vf": ("text", "audio"), "faf": ("text", "audio"),
    "ul_fusion": ("text", "audio"), "dl_fusion": ("text", "audio"),
    "ul_fusion_frames": ("text",),  # its frame-level audio encoder trains in the fusion stage
    "text_only": ("text",), "audio_only": ("audio",),
}
