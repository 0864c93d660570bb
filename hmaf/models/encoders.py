"""The two unimodal branches of Figure 1 (Algorithm 1).

* :class:`TextAttention`: embedding (eq. 1), BiGRU (eq. 2), word attention (eq. 3-4).
* :class:`AudioAttention`: a frame-level BiGRU with frame attention, vmapped over
  words, pools each word's MFSC frames into ``f_V`` (eq. 5-6); a word-level BiGRU
  with word attention then gives ``(w_h, w_alpha)``.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hmaf.models.attention import Attention, weighted_sum
from hmaf.models.rnn import BiGRU

Dtype = Any


def matrix_init(matrix: np.ndarray) -> Callable[..., jax.Array]:
    """An initializer that returns a given embedding matrix (word2vec/GloVe, §3.1)."""

    def init(key, shape, dtype=jnp.float32):
        del key
        if tuple(shape) != tuple(matrix.shape):
            raise ValueError(f"embedding matrix has shape {matrix.shape}, the model expects {shape}")
        return jnp.asarray(matrix, dtype)

    return init


class TextAttention(nn.Module):
    """Text attention module (§3.2).

    Attributes:
      vocab_size, embed_dim: embedding table size ``[V, D]``.
      hidden: GRU size per direction (paper: 100).
      attention_dim: size of the energies ``t_e`` (default ``2 * hidden``).
      embedding_matrix: optional ``[V, D]`` initial table from the data pipeline;
        rows of unknown words are already random there. ``None`` draws N(0, 1).
      train_embedding: fine-tune the table (True) or keep it frozen.
    """

    vocab_size: int
    embed_dim: int
    hidden: int = 100
    attention_dim: int | None = None
    embedding_matrix: np.ndarray | None = None
    train_embedding: bool = True
    unroll: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, word_ids: jax.Array, word_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Args: word_ids ``[B, N]``; word_mask ``[B, N]``.

        Returns: t_h ``[B, N, 2H]`` (zero at padding) and t_alpha ``[B, N]``.
        """
        init = (matrix_init(self.embedding_matrix) if self.embedding_matrix is not None
                else nn.initializers.normal(1.0))
        table = self.param("embedding", init, (self.vocab_size, self.embed_dim))
        if not self.train_embedding:
            table = jax.lax.stop_gradient(table)
        embedded = jnp.take(table, word_ids, axis=0).astype(self.dtype)  # eq. 1
        t_h = BiGRU(self.hidden, unroll=self.unroll, dtype=self.dtype, name="bigru")(embedded, word_mask)
        t_alpha = Attention(self.attention_dim or 2 * self.hidden, dtype=self.dtype,
                            name="attention")(t_h, word_mask)
        return t_h, t_alpha


class FrameAttention(nn.Module):
    """Frame-level attention for one word position across the batch (eq. 5-6).

    Args (call): frames ``[B, L, M]``; frame_mask ``[B, L]``.
    Returns: f_V ``[B, 2H]`` and f_alpha ``[B, L]``.
    """

    hidden: int = 100
    attention_dim: int | None = None
    unroll: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, frames: jax.Array, frame_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        f_h = BiGRU(self.hidden, unroll=self.unroll, dtype=self.dtype, name="bigru")(
            frames.astype(self.dtype), frame_mask)
        f_alpha = Attention(self.attention_dim or 2 * self.hidden, dtype=self.dtype,
                            name="attention")(f_h, frame_mask)
        return weighted_sum(f_alpha, f_h), f_alpha


class AudioAttention(nn.Module):
    """Audio hierarchical attention module (§3.3).

    The frame-level module is ``nn.vmap``-ed over the word axis with shared weights,
    so all words of all utterances run as one batched scan.
    """

    hidden: int = 100
    attention_dim: int | None = None
    unroll: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, frames: jax.Array, frame_mask: jax.Array, word_mask: jax.Array
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Args: frames ``[B, N, L, M]``; frame_mask ``[B, N, L]``; word_mask ``[B, N]``.

        Returns: w_h ``[B, N, 2H]``, w_alpha ``[B, N]``, f_alpha ``[B, N, L]``.
        """
        frame_level = nn.vmap(
            FrameAttention,
            in_axes=1, out_axes=1,
            variable_axes={"params": None},
            split_rngs={"params": False},
        )(self.hidden, self.attention_dim, self.unroll, self.dtype, name="frame")
        f_v, f_alpha = frame_level(frames, frame_mask)
        w_h = BiGRU(self.hidden, unroll=self.unroll, dtype=self.dtype, name="bigru")(f_v, word_mask)
        w_alpha = Attention(self.attention_dim or 2 * self.hidden, dtype=self.dtype,
                            name="attention")(w_h, word_mask)
        return w_h, w_alpha, f_alpha
