"""The two unimodal branches of Figure 1 (Algorithm 1).

* :class:`TextAttention`: embedding (eq. 1), BiGRU (eq. 2), word attention (eq. 3-4);
  optionally (ours) each word's punctuation mark embedded beside its word vector.
* :class:`AudioAttention`: a frame-level BiGRU with frame attention, vmapped over
  words, pools each word's MFSC frames into ``f_V`` (eq. 5-6); a word-level BiGRU
  with word attention then gives ``(w_h, w_alpha)``.
* :class:`UtteranceFrameAttention`: the utterance-level audio encoder of the UL-Fusion
  baseline (Gu et al. 2017): one BiGRU with attention over all real frames of the
  utterance, without word alignment.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hmaf.batch import NUM_MARKS, UNK_ID
from hmaf.models.attention import Attention, masked_softmax, weighted_sum
from hmaf.models.frontend import (frame_columns, jitter_boundaries, normalise_frames, real_frames_in_order,
                                  spec_augment, stats_dropout_draws, with_stats_indicator)
from hmaf.models.rnn import BiGRU

Dtype = Any
# Size of the learned punctuation-mark vector appended to each word vector (ours): six
# mark classes need few dimensions, and 8 stays small beside the 50-300-d word vectors.
MARK_DIM = 8


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
      word_dropout: in training, each real word's id becomes UNK with this
        probability (ours, against memorising sentences; paper: 0).
      embedding_dropout: dropout rate on the embedded word vectors in training
        (ours; paper: 0).
      punctuation: each word's vector gets a learned :data:`MARK_DIM`-d embedding of the
        punctuation mark after it in the transcript (``word_marks``, ids of
        :data:`hmaf.batch.MARK_NAMES`) appended before the BiGRU (ours; paper: False,
        the paper's words carry no punctuation). Marks are not tokens: one position per
        spoken word, as the audio alignment needs.
      punctuation_dropout: in training, each utterance loses all its marks (all 0, as
        words from speech recognition come) with this probability, so that the model
        also learns text without punctuation (ours; 0 = off).
    """

    vocab_size: int
    embed_dim: int
    hidden: int = 100
    attention_dim: int | None = None
    embedding_matrix: np.ndarray | None = None
    train_embedding: bool = True
    unroll: int = 1
    dtype: Dtype = jnp.float32
    word_dropout: float = 0.0
    embedding_dropout: float = 0.0
    punctuation: bool = False
    punctuation_dropout: float = 0.0

    @nn.compact
    def __call__(self, word_ids: jax.Array, word_mask: jax.Array, word_marks: jax.Array | None = None, *,
                 train: bool = False) -> tuple[jax.Array, jax.Array]:
        """Args: word_ids ``[B, N]``; word_mask ``[B, N]``; word_marks int ``[B, N]``
        (needed with ``punctuation``, ignored without); train: apply word and embedding
        dropout.

        Returns: t_h ``[B, N, 2H]`` (zero at padding) and t_alpha ``[B, N]``.
        """
        init = (matrix_init(self.embedding_matrix) if self.embedding_matrix is not None
                else nn.initializers.normal(1.0))
        table = self.param("embedding", init, (self.vocab_size, self.embed_dim))
        if not self.train_embedding:
            table = jax.lax.stop_gradient(table)
        if train and self.word_dropout > 0:
            word_ids = jnp.where(word_mask & _position_bernoulli(self.make_rng("dropout"), self.word_dropout,
                                                                  word_ids.shape), UNK_ID, word_ids)
        embedded = jnp.take(table, word_ids, axis=0).astype(self.dtype)  # eq. 1
        embedded = nn.Dropout(self.embedding_dropout, deterministic=not train)(embedded)
        if self.punctuation:
            if word_marks is None:
                raise ValueError("this text branch has punctuation=True but got no word_marks: the batch needs "
                                 "'word_marks' [B, N] (see hmaf.batch)")
            if train and self.punctuation_dropout > 0:
                keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.punctuation_dropout,
                                            (word_marks.shape[0], 1))
                word_marks = jnp.where(keep, word_marks, 0)
            marks = nn.Embed(NUM_MARKS, MARK_DIM, dtype=self.dtype, name="mark_embedding")(word_marks)
            embedded = jnp.concatenate([embedded, marks], axis=-1)
        t_h = BiGRU(self.hidden, unroll=self.unroll, dtype=self.dtype, name="bigru")(embedded, word_mask)
        t_alpha = Attention(self.attention_dim or 2 * self.hidden, dtype=self.dtype,
                            name="attention")(t_h, word_mask)
        return t_h, t_alpha


def _position_bernoulli(rng: jax.Array, rate: float, shape: tuple[int, int]) -> jax.Array:
    """``[B, N]`` draws of Bernoulli(rate), one key per word position, so that adding
    padded positions at the end leaves the draws of the real words unchanged."""
    keys = jax.vmap(lambda n: jax.random.fold_in(rng, n))(jnp.arange(shape[1]))
    draws = jax.vmap(lambda k: jax.random.bernoulli(k, rate, (shape[0],)), out_axes=1)(keys)
    return draws


class FrameAttention(nn.Module):
    """Frame-level BiGRU (eq. 5) and frame attention scores (eq. 3-4 before the softmax).

    Runs over rows of frames: one word position across the batch (padded layout,
    vmapped over words) or packed rows holding several words end to end.

    Args (call): frames ``[S, T, M]``; frame_mask ``[S, T]``; starts/ends ``[S, T]``
      (each word's first/last frame in packed rows) or None; with ``time_major``
      all of them time first (``[T, S, ...]``).
    Returns: f_h ``[S, T, 2H]`` and the unnormalised scores ``[S, T]`` (time first
      with ``time_major``); the caller normalises them per word.
    """

    hidden: int = 100
    attention_dim: int | None = None
    unroll: int = 1
    dtype: Dtype = jnp.float32
    hoist_input: bool | None = None
    time_major: bool = False

    @nn.compact
    def __call__(self, frames: jax.Array, frame_mask: jax.Array, starts: jax.Array | None = None,
                 ends: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        f_h = BiGRU(self.hidden, unroll=self.unroll, dtype=self.dtype, hoist_input=self.hoist_input,
                    time_major=self.time_major, name="bigru")(frames.astype(self.dtype), frame_mask, starts, ends)
        scores = Attention(self.attention_dim or 2 * self.hidden, dtype=self.dtype,
                           name="attention")(f_h, frame_mask, normalize=False)
        return f_h, scores


class AudioEncoder(nn.Module):
    """The attributes both audio encoders share (:class:`AudioAttention` and
    :class:`UtteranceFrameAttention`): GRU and attention sizes and the input front end.

    Attributes:
      audio_norm: input normalisation (:func:`hmaf.models.frontend.normalise_frames`).
      speaker_stats_dropout: in training, the share of utterances normalised by their
        own statistics instead of their speaker's (``audio_norm="speaker"``).
      stats_indicator: every frame also carries a column that says whether its
        utterance was normalised by its speaker's statistics (1) or its own (0), see
        :func:`hmaf.models.frontend.with_stats_indicator` (``audio_norm="speaker"``).
      spec_augment: ``(time_masks, time_mask_frames, band_masks, band_mask_bands)``
        of :func:`hmaf.models.frontend.spec_augment` in training; zeros: off.
      prosody: also read the prosody columns of each frame (ours; False: the 64 log-mel
        bands alone, the paper), see :func:`hmaf.models.frontend.frame_columns`.
    """

    hidden: int = 100
    attention_dim: int | None = None
    unroll: int = 1
    dtype: Dtype = jnp.float32
    hoist_input: bool | None = None
    audio_norm: str = "batch"
    speaker_stats_dropout: float = 0.0
    stats_indicator: bool = False
    spec_augment: tuple[int, int, int, int] = (0, 0, 0, 0)
    prosody: bool = False


class AudioAttention(AudioEncoder):
    """Audio hierarchical attention module (§3.3).

    The frame-level module has shared weights over all words. Padded batches run it
    ``nn.vmap``-ed over the word axis (``B * N`` sequences of ``L`` steps); packed
    batches (:mod:`hmaf.models.packing`) run it over rows of real frames only and
    gather the results back to ``[B, N, L]``. Both give the same outputs and use the
    same parameters. Input normalisation and SpecAugment masks act on the padded
    frames before the packed rows are gathered from them, so both layouts see the
    same normalised and masked frames.

    Attributes: :class:`AudioEncoder`, and
      boundary_jitter_frames: in training, each word reads its frames through a window
        moved by up to this many frames, see :func:`hmaf.models.frontend.jitter_boundaries`
        (ours; 0 = off, the paper).
    """

    boundary_jitter_frames: int = 0

    @nn.compact
    def __call__(self, frames: jax.Array, frame_mask: jax.Array, word_mask: jax.Array,
                 packing: Mapping[str, jax.Array] | None = None, *, train: bool = False,
                 band_stats: Mapping[str, jax.Array] | None = None
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Args: frames ``[B, N, L, M]``; frame_mask ``[B, N, L]``; word_mask ``[B, N]``;
        packing: the arrays of :func:`hmaf.models.packing.pack_batch`, or None;
        train: batch statistics (True) or running averages (False) for the batch input
        norm, SpecAugment on; band_stats: the speaker's ``band_mean``/``band_std``
        ``[B, M]`` for ``audio_norm="speaker"``, or None.

        Returns: w_h ``[B, N, 2H]``, w_alpha ``[B, N]``, f_alpha ``[B, N, L]``.
        """
        # Log-mel energies sit far from zero (about -7.5 +- 4 on speech); without
        # normalising them the frame GRUs barely learn (see frontend.normalise_frames).
        frames = input_frames(self, frames, frame_mask, train=train, band_stats=band_stats,
                              jitter=self.boundary_jitter_frames)
        frame_args = (self.hidden, self.attention_dim, self.unroll, self.dtype, self.hoist_input)
        if packing is None:
            f_h, scores = nn.vmap(
                FrameAttention,
                in_axes=1, out_axes=1,
                variable_axes={"params": None},
                split_rngs={"params": False},
            )(*frame_args, name="frame")(frames, frame_mask)
            f_alpha = masked_softmax(scores, frame_mask)  # eq. 4, per word
            f_v = weighted_sum(f_alpha, f_h)  # eq. 6: [B, N, 2H]
        else:
            f_alpha, f_v = packed_frame_attention(
                FrameAttention(*frame_args, time_major=True, name="frame"), frames, frame_mask, packing,
                pool_packed=not train)
        w_h = BiGRU(self.hidden, unroll=self.unroll, dtype=self.dtype, hoist_input=self.hoist_input,
                    name="bigru")(f_v, word_mask)
        w_alpha = Attention(self.attention_dim or 2 * self.hidden, dtype=self.dtype,
                            name="attention")(w_h, word_mask)
        return w_h, w_alpha, f_alpha


def packed_frame_attention(frame: FrameAttention, frames: jax.Array, frame_mask: jax.Array,
                           packing: Mapping[str, jax.Array], *, pool_packed: bool) -> tuple[jax.Array, jax.Array]:
    """Eq. 3-6 over packed rows (:mod:`hmaf.models.packing`): the frame BiGRU and
    attention on the rows, the per-word softmax, and each word's weighted sum.

    The rows run time-major (``[R, G * P]``): the GRU scans their first axis with no
    transposes in or out. Packed per device (:mod:`hmaf.training.distributed`), the
    packing arrays have a leading group axis G (``[G, P, R]``) and index within their
    group's ``B / G`` examples; the gathers are batched over G, so no device reads
    another device's frames.

    Args: frame: a time-major :class:`FrameAttention`; frames ``[B, N, L, M]``
      (normalised); frame_mask ``[B, N, L]``; packing: the arrays of
      :func:`hmaf.models.packing.pack_batch`; pool_packed: sum eq. 6 in the packed
      rows (a segment sum per word, never building ``[B, N, L, 2H]``: faster
      forward) rather than after unpacking the states (faster forward + backward).
      Both give the same result up to float rounding (tests/test_packing.py).

    Returns: f_alpha ``[B, N, L]`` and f_v ``[B, N, 2H]``.
    """
    b, n, l = frame_mask.shape
    p, r = packing["pack_mask"].shape[-2:]
    groups = packing["pack_src"].shape[0] if packing["pack_src"].ndim == 3 else 1
    take = jax.vmap(lambda values, index: jnp.take(values, index, axis=0))

    def time_major(a: jax.Array) -> jax.Array:
        """``[(G,) P, R]`` -> ``[G, R * P]``: each group's positions, time-major."""
        return a.reshape((groups, p, r)).swapaxes(1, 2).reshape((groups, r * p))

    def rows_first(a: jax.Array) -> jax.Array:
        """``[G, R * P, ...]`` -> ``[R, G * P, ...]``: what the GRU scans."""
        a = a.reshape((groups, r, p) + a.shape[2:])
        return jnp.moveaxis(a, 0, 1).reshape((r, groups * p) + a.shape[3:])

    def per_group(a: jax.Array) -> jax.Array:
        """Inverse of ``rows_first``."""
        a = a.reshape((r, groups, p) + a.shape[2:])
        return jnp.moveaxis(a, 1, 0).reshape((groups, r * p) + a.shape[3:])

    src = time_major(packing["pack_src"])  # [G, R * P]: flat index into the group's [B / G, N, L]
    rows = take(frames.reshape((groups, -1, frames.shape[-1])), src)  # [G, R * P, M]
    f_h, scores = frame(rows_first(rows), *(rows_first(time_major(packing[k]))
                                            for k in ("pack_mask", "pack_start", "pack_end")))
    f_h, scores = per_group(f_h), per_group(scores)  # [G, R * P, 2H], [G, R * P]
    index = packing["unpack_index"].reshape((groups, -1))  # each frame's packed position p * R + r
    index = (index % r) * p + index // r  # ... time-major: r * P + p
    f_alpha = masked_softmax(take(scores, index).reshape(frame_mask.shape), frame_mask)  # eq. 4, per word
    if not pool_packed:
        return f_alpha, weighted_sum(f_alpha, take(f_h, index).reshape((b, n, l, -1)))  # eq. 6
    alpha = take(f_alpha.reshape((groups, -1)), src) * time_major(packing["pack_mask"])  # [G, R * P]
    word = src // l  # the word of each position, b * N + n within its group
    weighted = alpha.astype(f_h.dtype)[..., None] * f_h
    f_v = jax.vmap(lambda values, ids: jax.ops.segment_sum(values, ids, num_segments=b * n // groups))(
        weighted, word)  # eq. 6: [G, B / G * N, 2H]
    return f_alpha, f_v.reshape((b, n, -1))


def input_frames(module: nn.Module, frames: jax.Array, frame_mask: jax.Array, *, train: bool,
                 band_stats: Mapping[str, jax.Array] | None, jitter: int = 0) -> jax.Array:
    """The columns the model reads (:func:`frame_columns`), normalised (and in training
    moved by up to ``jitter`` frames per word, :func:`jitter_boundaries`, then
    SpecAugment-masked): ``[B, N, L, M']``, zero at padding. ``module`` has
    ``audio_norm``, ``speaker_stats_dropout``, ``stats_indicator``, ``spec_augment`` and ``prosody``; call
    inside its compact method (the batch norm and the dropout RNG belong to it)."""
    frames, band_stats = frame_columns(frames, band_stats, prosody=module.prosody)
    b = frames.shape[0]
    own = None
    if train and band_stats is not None and module.speaker_stats_dropout > 0.0:
        own = stats_dropout_draws(module.make_rng("dropout"), module.speaker_stats_dropout, b)
    frames = normalise_frames(frames, frame_mask, module.audio_norm, train=train, band_stats=band_stats, own=own)
    if train and jitter > 0:
        frames = jitter_boundaries(module.make_rng("dropout"), frames, frame_mask, jitter)
    time_masks, time_width, band_masks, band_width = module.spec_augment
    if train and (time_masks * time_width > 0 or band_masks * band_width > 0):
        frames = spec_augment(module.make_rng("dropout"), frames, frame_mask, time_masks=time_masks,
                              time_width=time_width, band_masks=band_masks, band_width=band_width)
    if module.stats_indicator:
        from_speaker = jnp.full((b,), band_stats is not None)
        if own is not None:
            from_speaker = from_speaker & ~own
        frames = with_stats_indicator(frames, frame_mask, from_speaker)
    return frames


class UtteranceFrameAttention(AudioEncoder):
    """Utterance-level audio encoder without word alignment (Gu et al. 2017, the
    paper's duplicated UL-Fusion baseline): a BiGRU over all real frames of the
    utterance in order, frame attention (eq. 3-4) over them, and their weighted sum.

    The batch holds each word's frames (``[B, N, L, M]``); their real frames are
    moved, in order, to the front of one ``N * L`` sequence per utterance (a stable
    sort on the frame mask), so the GRU reads the utterance's frames as one stream.
    Frames between words that the aligner left out are not in the batch.

    Attributes: :class:`AudioEncoder`.
    """

    @nn.compact
    def __call__(self, frames: jax.Array, frame_mask: jax.Array, *, train: bool = False,
                 band_stats: Mapping[str, jax.Array] | None = None) -> tuple[jax.Array, jax.Array]:
        """Args: frames ``[B, N, L, M]``; frame_mask ``[B, N, L]``.

        Returns: the utterance vector ``[B, 2H]`` and the frame attention ``[B, N, L]``
        (summing to 1 over the utterance's real frames, zero at padding).
        """
        frames = input_frames(self, frames, frame_mask, train=train, band_stats=band_stats)
        b, n, l, m = frames.shape
        flat_mask = frame_mask.reshape(b, n * l)
        order = real_frames_in_order(frame_mask)
        stream = jnp.take_along_axis(frames.reshape(b, n * l, m), order[..., None], axis=1)
        stream_mask = jnp.arange(n * l)[None] < flat_mask.sum(1, keepdims=True)  # [B, N*L]
        h = BiGRU(self.hidden, unroll=self.unroll, dtype=self.dtype, hoist_input=self.hoist_input,
                  name="bigru")(stream.astype(self.dtype), stream_mask)
        alpha = Attention(self.attention_dim or 2 * self.hidden, dtype=self.dtype,
                          name="attention")(h, stream_mask)  # [B, N*L] in stream order
        u = weighted_sum(alpha, h)
        # Back to the batch's [B, N, L] layout: position order[i] holds stream step i.
        alpha_flat = jnp.zeros_like(alpha).at[jnp.arange(b)[:, None], order].set(alpha)
        return u, alpha_flat.reshape(b, n, l)
