"""Word-level fusion (§3.4, Figure 2, Algorithm 2): HF, VF and FAF.

Each takes the aligned unimodal outputs ``(t_h, t_alpha)`` and ``(w_h, w_alpha)``
and returns the shared word vectors ``V`` ``[B, N, D]`` (zero at padded words) plus
the attentions it formed.
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


FUSIONS = {"hf": HorizontalFusion, "vf": VerticalFusion, "faf": FineTuningAttentionFusion}
