"""CNN decision making (§3.5, eq. 11-12) and the small dense heads of the baselines."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
# The batch norm of each head: its output (the pooled utterance features the final dense
# layer classifies) is the representation hmaf.eval_step captures for hmaf.unfamiliar.
REPRESENTATION_LAYER = "batch_norm"


class CNNDecision(nn.Module):
    """One convolution layer over words with several widths, max-pooled over time.

    ``f_i = tanh(W_c V_{i:i+k-1} + b_c)`` (eq. 11), ``c_k = max_i f_i`` (eq. 12); the
    feature maps of all widths are concatenated, batch-normalised, dropped out and
    classified; the batch norm's output is the utterance representation that
    :mod:`hmaf.eval_step` captures (:data:`REPRESENTATION_LAYER`). Only windows inside the real words enter the max; an utterance
    shorter than ``k`` words uses the single window at its start (zero-padded), so
    padding never changes the result.

    Attributes:
      num_classes: output classes.
      widths: filter widths (paper: 2, 3, 4, 5); ``filters`` per width (paper: 300).
      dropout: rate on the pooled features ``c`` before the softmax (paper: 0.5).
      input_dropout: rate on the word vectors ``V`` before the convolution
        (``config.model.fused_dropout``; the paper names no dropout there).
    """

    num_classes: int
    widths: Sequence[int] = (2, 3, 4, 5)
    filters: int = 300
    dropout: float = 0.5
    input_dropout: float = 0.5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, v: jax.Array, word_mask: jax.Array, *, train: bool) -> jax.Array:
        """Args: v ``[B, N, D]`` zero at padding; word_mask ``[B, N]``. Returns logits ``[B, C]``."""
        n_words = word_mask.sum(-1)  # [B]
        v = nn.Dropout(self.input_dropout, deterministic=not train)(v)
        pooled = []
        for k in self.widths:
            padded = jnp.pad(v, ((0, 0), (0, k - 1), (0, 0)))  # windows may start at any word
            f = jnp.tanh(nn.Conv(self.filters, (k,), padding="VALID", dtype=self.dtype,
                                 name=f"conv{k}")(padded))  # [B, N, F]
            start = jnp.arange(v.shape[1])
            valid = (start[None] + k <= n_words[:, None]) | (start[None] == 0)  # [B, N]
            pooled.append(jnp.where(valid[..., None], f, -jnp.inf).max(axis=1))
        c = jnp.concatenate(pooled, axis=-1)
        c = nn.BatchNorm(use_running_average=not train, name=REPRESENTATION_LAYER)(c)
        c = nn.Dropout(self.dropout, deterministic=not train)(c)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(c).astype(jnp.float32)


class DenseHead(nn.Module):
    """Utterance vector -> batch norm -> dropout -> softmax logits (UL/DL baselines); the
    batch norm's output is the representation :mod:`hmaf.eval_step` captures."""

    num_classes: int
    dropout: float = 0.5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, u: jax.Array, *, train: bool) -> jax.Array:
        """Args: u ``[B, D]``. Returns logits ``[B, C]``."""
        u = nn.BatchNorm(use_running_average=not train, name=REPRESENTATION_LAYER)(u)
        u = nn.Dropout(self.dropout, deterministic=not train)(u)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(u).astype(jnp.float32)


HEADS = (CNNDecision, DenseHead)  # every model ends in one of these (two for DL-Fusion)
