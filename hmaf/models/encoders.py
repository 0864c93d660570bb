"""The two unimodal branches of Figure 1 (Algorithm 1).

* :class:`TextAttention`: embedding (eq. 1), BiGRU (eq. 2), word attention (eq. 3-4).
* :class:`AudioAttention`: a frame-level BiGRU with frame attention, vmapped over
  words, pools each word's MFSC frames into ``f_V`` (eq. 5-6); a word-level BiGRU
  with word attention then gives ``(w_h, w_alpha)``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hmaf.models.attention import Attention, masked_softmax, weighted_sum
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
    """Frame-level BiGRU (eq. 5) and frame attention scores (eq. 3-4 before the softmax).

    Runs over rows of frames: one word position across the batch (padded layout,
    vmapped over words) or packed rows holding several words end to end.

    Args (call): frames ``[S, T, M]``; frame_mask ``[S, T]``; starts/ends ``[S, T]``
      (each word's first/last frame in packed rows) or None.
    Returns: f_h ``[S, T, 2H]`` and the unnormalised scores ``[S, T]``; the caller
      normalises them per word.
    """

    hidden: int = 100
    attention_dim: int | None = None
    unroll: int = 1
    dtype: Dtype = jnp.float32
    hoist_input: bool = True

    @nn.compact
    def __call__(self, frames: jax.Array, frame_mask: jax.Array, starts: jax.Array | None = None,
                 ends: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        f_h = BiGRU(self.hidden, unroll=self.unroll, dtype=self.dtype, hoist_input=self.hoist_input,
                    name="bigru")(frames.astype(self.dtype), frame_mask, starts, ends)
        scores = Attention(self.attention_dim or 2 * self.hidden, dtype=self.dtype,
                           name="attention")(f_h, frame_mask, normalize=False)
        return f_h, scores


class AudioAttention(nn.Module):
    """Audio hierarchical attention module (§3.3).

    The frame-level module has shared weights over all words. Padded batches run it
    ``nn.vmap``-ed over the word axis (``B * N`` sequences of ``L`` steps); packed
    batches (:mod:`hmaf.models.packing`) run it over rows of real frames only and
    gather the results back to ``[B, N, L]``. Both give the same outputs and use the
    same parameters.
    """

    hidden: int = 100
    attention_dim: int | None = None
    unroll: int = 1
    dtype: Dtype = jnp.float32
    hoist_input: bool = True

    @nn.compact
    def __call__(self, frames: jax.Array, frame_mask: jax.Array, word_mask: jax.Array,
                 packing: Mapping[str, jax.Array] | None = None, *, train: bool = False
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Args: frames ``[B, N, L, M]``; frame_mask ``[B, N, L]``; word_mask ``[B, N]``;
        packing: the arrays of :func:`hmaf.models.packing.pack_batch`, or None;
        train: batch statistics (True) or running averages (False) for the input norm.

        Returns: w_h ``[B, N, 2H]``, w_alpha ``[B, N]``, f_alpha ``[B, N, L]``.
        """
        # Log-mel energies sit far from zero (about -7.5 +- 4 on speech); without
        # normalising them the frame GRUs barely learn. Batch norm per mel band, its
        # statistics taken over real frames only so that padding stays invisible;
        # being part of the model, inference normalises exactly as training did.
        frames = nn.BatchNorm(use_running_average=not train, name="input_norm")(
            frames, mask=frame_mask[..., None])
        frames = jnp.where(frame_mask[..., None], frames, 0.0)
        frame_args = (self.hidden, self.attention_dim, self.unroll, self.dtype, self.hoist_input)
        if packing is None:
            f_h, scores = nn.vmap(
                FrameAttention,
                in_axes=1, out_axes=1,
                variable_axes={"params": None},
                split_rngs={"params": False},
            )(*frame_args, name="frame")(frames, frame_mask)
        else:
            # Packed per device (hmaf.training.distributed), the arrays have a leading
            # group axis G [G, P, R] and index within their group's B / G examples: the
            # gathers are batched over G, so no device reads another device's frames.
            groups = packing["pack_src"].shape[0] if packing["pack_src"].ndim == 3 else 1
            take = jax.vmap(lambda values, index: jnp.take(values, index, axis=0))
            src = packing["pack_src"].reshape((groups, -1))  # [G, P * R]
            rows = take(frames.reshape((groups, -1, frames.shape[-1])), src)  # [G, P * R, M]
            row_shape = packing["pack_mask"].shape[-2:]
            rows = rows.reshape((-1, *row_shape, frames.shape[-1]))  # [G * P, R, M]
            f_h, scores = FrameAttention(*frame_args, name="frame")(
                rows, *(packing[k].reshape((-1, *row_shape)) for k in ("pack_mask", "pack_start", "pack_end")))
            index = packing["unpack_index"].reshape((groups, -1))  # [G, B / G * N * L] -> packed position
            f_h = take(f_h.reshape((groups, -1, f_h.shape[-1])), index).reshape((*frame_mask.shape, -1))
            scores = take(scores.reshape((groups, -1)), index).reshape(frame_mask.shape)  # [B, N, L]
        f_alpha = masked_softmax(scores, frame_mask)  # eq. 4, per word
        f_v = weighted_sum(f_alpha, f_h)  # eq. 6: [B, N, 2H]
        w_h = BiGRU(self.hidden, unroll=self.unroll, dtype=self.dtype, hoist_input=self.hoist_input,
                    name="bigru")(f_v, word_mask)
        w_alpha = Attention(self.attention_dim or 2 * self.hidden, dtype=self.dtype,
                            name="attention")(w_h, word_mask)
        return w_h, w_alpha, f_alpha
