"""Additive attention of eq. 3-4 and a softmax that makes padding invisible."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over the last axis restricted to ``mask``.

    Masked positions get exactly 0 and do not enter the normaliser, so adding padded
    positions changes nothing. A row with no real position (a padded word) is all
    zeros rather than NaN, and its gradient stays finite.

    Args: scores ``[..., T]`` float; mask ``[..., T]`` bool. Returns ``[..., T]``.
    """
    scores = scores.astype(jnp.float32)
    filled = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    shifted = filled - jax.lax.stop_gradient(filled.max(axis=-1, keepdims=True))
    weights = jnp.where(mask, jnp.exp(shifted), 0.0)
    total = weights.sum(axis=-1, keepdims=True)
    return weights / jnp.maximum(total, jnp.finfo(jnp.float32).tiny)


class Attention(nn.Module):
    """``e_i = tanh(W h_i + b)`` (eq. 3), ``alpha = softmax(e_i^T v)`` (eq. 4).

    Attributes:
      dim: size of the attentive energies ``e_i``.
    """

    dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jax.Array, mask: jax.Array | None, *, normalize: bool = True) -> jax.Array:
        """Args: h ``[..., T, D]``; mask ``[..., T]``. Returns alpha ``[..., T]``, or with
        ``normalize=False`` the raw scores ``e_i^T v`` (packed frames normalise per word
        after unpacking; ``mask`` is then unused)."""
        energies = jnp.tanh(nn.Dense(self.dim, dtype=self.dtype, name="energy")(h))
        scores = nn.Dense(1, use_bias=False, dtype=self.dtype, name="context")(energies)[..., 0]
        return masked_softmax(scores, mask) if normalize else scores


def weighted_sum(alpha: jax.Array, h: jax.Array) -> jax.Array:
    """``sum_i alpha_i h_i`` (eq. 6). alpha ``[..., T]``, h ``[..., T, D]`` -> ``[..., D]``."""
    return jnp.einsum("...t,...td->...d", alpha.astype(h.dtype), h)
