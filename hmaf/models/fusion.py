"""Word-level fusion (§3.4, Figure 2, Algorithm 2): HF, VF and FAF.

Each takes the aligned unimodal outputs ``(t_h, t_alpha)`` and ``(w_h, w_alpha)``
and returns the shared word vectors ``V`` ``[B, N, D]`` (zero at padded words) plus
the attentions it formed.

Two additions of ours act on the branch outputs before any fusion (HF/VF/FAF and the
utterance-level baselines), so that a modality that carries no signal cannot drag
the fused decision along: :func:`drop_modality` (modality dropout in training) and
:class:`ModalityGate` (a learned per-utterance weight of each modality).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hmaf.models.attention import Attention

Dtype = Any


def _zero_padding(v: jax.Array, word_mask: jax.Array) -> jax.Array:
    return jnp.where(word_mask[..., None], v, 0.0)


def _shared_state(module: nn.Module, t_h, t_alpha, w_h, w_alpha):
    """VF steps (i)-(ii), shared by FAF: ``h = dense([t_h, w_h])`` and
    ``s_alpha = (t_alpha + w_alpha) / 2``. Call inside ``module``'s compact method."""
    dense = nn.Dense(module.dim, dtype=module.dtype, name="dense")
    return nn.relu(dense(jnp.concatenate([t_h, w_h], -1))), 0.5 * (t_alpha + w_alpha)


class HorizontalFusion(nn.Module):
    """HF: ``t_V = t_alpha t_h`` (eq. 7), ``w_V = w_alpha w_h`` (eq. 8), then
    ``V = dense([t_V, w_V])``. No attention interaction across modalities."""

    dim: int = 200
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, t_h, t_alpha, w_h, w_alpha, word_mask):
        t_v = t_alpha[..., None] * t_h
        w_v = w_alpha[..., None] * w_h
        v = nn.relu(nn.Dense(self.dim, dtype=self.dtype, name="dense")(jnp.concatenate([t_v, w_v], -1)))
        return _zero_padding(v, word_mask), {}


class VerticalFusion(nn.Module):
    """VF: ``h = dense([t_h, w_h])``, ``s_alpha = (t_alpha + w_alpha) / 2``,
    ``V = s_alpha h``."""

    dim: int = 200
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, t_h, t_alpha, w_h, w_alpha, word_mask):
        h, s_alpha = _shared_state(self, t_h, t_alpha, w_h, w_alpha)
        return _zero_padding(s_alpha[..., None] * h, word_mask), {"s_alpha": s_alpha}


class FineTuningAttentionFusion(nn.Module):
    """FAF: shared state and attention as in VF, then eq. 9-10:

        u_e = tanh(W_u h + b_u),   u_alpha = softmax(u_e^T v_u) + s_alpha,   V = u_alpha h

    so ``u_alpha`` sums to 2 over the real words.
    """

    dim: int = 200
    attention_dim: int = 200
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, t_h, t_alpha, w_h, w_alpha, word_mask):
        h, s_alpha = _shared_state(self, t_h, t_alpha, w_h, w_alpha)
        u_alpha = Attention(self.attention_dim, dtype=self.dtype, name="fine_tune")(h, word_mask) + s_alpha
        u_alpha = jnp.where(word_mask, u_alpha, 0.0)
        return (_zero_padding(u_alpha[..., None] * h, word_mask),
                {"s_alpha": s_alpha, "u_alpha": u_alpha})


def drop_modality(rng: jax.Array, rate: float, text: jax.Array, audio: jax.Array
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Modality dropout: with probability ``rate`` an utterance loses one of its two
    modalities (text or audio, equally likely, never both).

    As in inverted dropout, each modality is dropped with probability ``rate / 2``
    and the kept states are scaled by ``1 / (1 - rate / 2)``, so their expectation is
    unchanged and inference (no dropout) needs no rescaling.

    Args: rng; text, audio: states with a leading batch axis (``[B, N, D]`` word
    states or ``[B, D]`` utterance vectors).
    Returns: the new text and audio states and ``dropped`` ``[B]`` int32 (0: kept both,
    1: text dropped, 2: audio dropped).
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"modality_dropout must lie in [0, 1], got {rate}")
    b = text.shape[0]
    drop_key, which_key = jax.random.split(rng)
    drop = jax.random.bernoulli(drop_key, rate, (b,))
    text_side = jax.random.bernoulli(which_key, 0.5, (b,))
    dropped = jnp.where(drop, jnp.where(text_side, 1, 2), 0).astype(jnp.int32)
    scale = 1.0 / (1.0 - rate / 2)

    def apply(x, gone):
        gone = gone.reshape((b,) + (1,) * (x.ndim - 1))
        return jnp.where(gone, 0.0, x * scale).astype(x.dtype)

    return apply(text, dropped == 1), apply(audio, dropped == 2), dropped


class ModalityGate(nn.Module):
    """A learned per-utterance modality gate (ours, not in the paper).

    From the attention-pooled utterance summaries of both modalities,
    ``g = sigmoid(W [t_u, a_u] + b)`` gives one weight in [0, 1] per modality; the
    caller scales each modality's states by its weight before fusion. The gate can
    thus learn to turn a modality down for an utterance whose text (or voice) says
    nothing about the label, e.g. neutral words in an angry voice.
    """

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, text_summary: jax.Array, audio_summary: jax.Array) -> jax.Array:
        """Args: text_summary ``[B, Dt]``, audio_summary ``[B, Da]``. Returns ``[B, 2]``
        (text weight, audio weight)."""
        x = jnp.concatenate([text_summary, audio_summary], -1)
        return jax.nn.sigmoid(nn.Dense(2, dtype=self.dtype, name="dense")(x).astype(jnp.float32))


FUSIONS = {"hf": HorizontalFusion, "vf": VerticalFusion, "faf": FineTuningAttentionFusion}
