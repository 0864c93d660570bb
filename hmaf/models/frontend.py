"""The audio front end: which frame columns a model reads, their normalisation,
SpecAugment-style masks and word-boundary jitter.

All of them work on the padded frames ``[B, N, L, M]`` that every batch carries (packed
batches gather their rows from these same frames inside the encoder, see
:class:`hmaf.models.encoders.AudioAttention`), so one implementation serves the
padded and the packed layout. Statistics and mask positions are taken over each
utterance's real frames only, in utterance time (the real frames of its words, in
order), so padded words and frames never change the result.
"""

from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from hmaf.data.features import FRAME_DIM, N_MELS, PROSODY_COLUMNS

AUDIO_NORMS = ("batch", "utterance", "speaker", "none")
_EPS = 1e-5


def frame_columns(frames: jax.Array, band_stats: Mapping[str, jax.Array] | None, *, prosody: bool
                  ) -> tuple[jax.Array, Mapping[str, jax.Array] | None]:
    """The frame columns a model reads, and the speaker statistics of the same columns.

    A prepared corpus stores 67 columns per frame (:func:`hmaf.data.features.frame_features`):
    the 64 log-mel bands, then ``log_f0, voicing, log_energy``. ``prosody=False`` (the
    paper) keeps the bands alone; ``prosody=True`` keeps all 67 and needs them.

    Args: frames ``[B, N, L, M]`` with M 64 or 67; band_stats ``band_mean``/``band_std``
    ``[B, M]`` or None. Returns frames ``[B, N, L, M']`` and band_stats ``[B, M']``.

    Raises:
      ValueError: ``prosody=True`` on frames without the prosody columns.
    """
    m = frames.shape[-1]
    if prosody:
        if m != FRAME_DIM:
            raise ValueError(
                f"model.prosody=True reads {FRAME_DIM} columns per frame (64 log-mel bands, then "
                f"{', '.join(PROSODY_COLUMNS)}) but the frames have {m}: the corpus was prepared before "
                f"the prosody columns. Prepare it again (python -m hmaf.prepare), or train a new model with "
                f"model.prosody=False")
        return frames, band_stats
    if m == N_MELS:
        return frames, band_stats
    stats = None if band_stats is None else {k: v[..., :N_MELS] for k, v in band_stats.items()}
    return frames[..., :N_MELS], stats


def utterance_band_stats(frames: jax.Array, frame_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and standard deviation of every mel band over an utterance's real frames.

    Args: frames ``[B, N, L, M]``; frame_mask ``[B, N, L]``.
    Returns: mean ``[B, M]`` and std ``[B, M]`` (``sqrt(var + 1e-5)``, so that a
    constant band does not divide by zero).
    """
    weight = frame_mask[..., None].astype(jnp.float32)  # [B, N, L, 1]
    count = jnp.maximum(weight.sum((1, 2)), 1.0)  # [B, 1]
    x = jnp.where(frame_mask[..., None], frames.astype(jnp.float32), 0.0)
    mean = x.sum((1, 2)) / count
    var = (weight * (x - mean[:, None, None]) ** 2).sum((1, 2)) / count
    return mean, jnp.sqrt(var + _EPS)


def normalise_frames(frames: jax.Array, frame_mask: jax.Array, mode: str, *, train: bool,
                     band_stats: Mapping[str, jax.Array] | None = None, own: jax.Array | None = None
                     ) -> jax.Array:
    """Normalises log-mel frames per band; call inside a module's compact method.

    Modes (``config.model.audio_norm``):
      ``batch``: masked batch norm over the real frames of the batch, running averages
        at inference (a ``BatchNorm`` named ``input_norm`` in the calling module).
      ``utterance``: ``(x - mean_u) / std_u`` with each utterance's own statistics.
      ``speaker``: ``(x - band_mean) / band_std`` from ``band_stats`` (the speaker's
        statistics, batch keys ``band_mean``/``band_std`` ``[B, M]``); without them the
        utterance's own statistics, as ``utterance``. ``own`` ``[B]`` bool marks the
        utterances that use their own statistics even so (the speaker-statistics
        dropout of training, drawn by :func:`stats_dropout_draws`).
      ``none``: the raw log-mel energies (the paper, §3.1).

    Args: frames ``[B, N, L, M]``; frame_mask ``[B, N, L]``; own ``[B]`` bool or None.
    Returns ``[B, N, L, M]``, zero at padded frames.
    """
    if mode == "batch":
        # Statistics over real frames only so that padding stays invisible; being part
        # of the model, inference normalises exactly as training did.
        frames = nn.BatchNorm(use_running_average=not train, name="input_norm")(
            frames, mask=frame_mask[..., None])
    elif mode == "utterance" or (mode == "speaker" and band_stats is None):
        mean, std = utterance_band_stats(frames, frame_mask)
        frames = (frames - mean[:, None, None]) / std[:, None, None]
    elif mode == "speaker":
        mean, std = band_stats["band_mean"], jnp.maximum(band_stats["band_std"], _EPS)
        if own is not None:
            own_mean, own_std = utterance_band_stats(frames, frame_mask)
            mean, std = jnp.where(own[:, None], own_mean, mean), jnp.where(own[:, None], own_std, std)
        frames = (frames - mean[:, None, None]) / std[:, None, None]
    elif mode != "none":
        raise ValueError(f"audio_norm={mode!r}; choose one of {AUDIO_NORMS}")
    return jnp.where(frame_mask[..., None], frames, 0.0)


def stats_dropout_draws(rng: jax.Array, rate: float, batch_size: int) -> jax.Array:
    """Which utterances of a training batch use their own statistics instead of their
    speaker's (``model.speaker_stats_dropout``): ``[B]`` bool, each True with
    probability ``rate``."""
    return jax.random.bernoulli(rng, rate, (batch_size,))


def with_stats_indicator(frames: jax.Array, frame_mask: jax.Array, from_speaker: jax.Array) -> jax.Array:
    """Appends the column that says how each utterance was normalised
    (``model.stats_indicator``): 1 on every real frame of an utterance normalised by
    its speaker's statistics, 0 by its own; 0 at padding.

    Args: frames ``[B, N, L, M]``; frame_mask ``[B, N, L]``; from_speaker ``[B]`` bool.
    Returns ``[B, N, L, M + 1]``.
    """
    column = (frame_mask & from_speaker[:, None, None]).astype(frames.dtype)[..., None]
    return jnp.concatenate([frames, column], axis=-1)


def band_stats_of(batch: Mapping[str, jax.Array]) -> dict[str, jax.Array] | None:
    """The optional speaker statistics of a batch (:mod:`hmaf.batch`), or None."""
    present = [k for k in ("band_mean", "band_std") if k in batch]
    if not present:
        return None
    if len(present) != 2:
        raise ValueError(f"batch has {present} but needs both band_mean and band_std")
    return {k: batch[k] for k in ("band_mean", "band_std")}


def utterance_time(frame_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each real frame's place in utterance time (the real frames of the utterance's words
    in order): ``[B, N, L]`` int (meaningless at padding), and the real frame count ``[B]``."""
    flat = frame_mask.reshape(frame_mask.shape[0], -1).astype(jnp.int32)
    return (jnp.cumsum(flat, axis=1) - 1).reshape(frame_mask.shape), flat.sum(1)


def real_frames_in_order(frame_mask: jax.Array) -> jax.Array:
    """``[B, N*L]``: the flat (word, frame) index of each real frame in utterance time
    first, then those of the padding (a stable sort on the mask)."""
    return jnp.argsort(~frame_mask.reshape(frame_mask.shape[0], -1), axis=1, stable=True)


def spec_augment_mask(rng: jax.Array, frame_mask: jax.Array, n_mels: int, *, time_masks: int,
                      time_width: int, band_masks: int, band_width: int) -> jax.Array:
    """Where SpecAugment masks an utterance's frames (Park et al. 2019, without warping).

    Per utterance, ``time_masks`` spans of ``w ~ U{0..time_width}`` consecutive real
    frames in utterance time (the real frames of its words in order, so a span may
    cross a word boundary but never counts padding) and ``band_masks`` spans of
    ``f ~ U{0..band_width}`` consecutive mel bands over all its frames. Draws have shape
    ``[B, masks]`` only, so padding never changes which real frames are masked. Band
    masks fall on the log-mel bands only (the first ``min(n_mels, 64)`` columns); a time
    mask covers every column of its frames.

    Args: rng; frame_mask ``[B, N, L]``; n_mels: columns per frame (M). Returns masked
    ``[B, N, L, M]`` bool (False at padded frames).
    """
    b = frame_mask.shape[0]
    time_key, band_key = jax.random.split(rng)
    position, total = utterance_time(frame_mask)

    def spans(key, length, masks, width):  # [B, masks] starts and widths inside [0, length)
        w_key, s_key = jax.random.split(key)
        w = jax.random.randint(w_key, (b, masks), 0, width + 1)
        w = jnp.minimum(w, length[:, None])
        start = jnp.floor(jax.random.uniform(s_key, (b, masks)) * (length[:, None] - w + 1)).astype(jnp.int32)
        return start, w

    in_time = jnp.zeros(frame_mask.shape, bool)
    if time_masks > 0 and time_width > 0:
        start, w = spans(time_key, total, time_masks, time_width)
        pos = position[..., None]  # [B, N, L, 1]
        hit = (pos >= start[:, None, None]) & (pos < (start + w)[:, None, None])
        in_time = hit.any(-1)
    in_band = jnp.zeros((b, n_mels), bool)
    if band_masks > 0 and band_width > 0:
        start, w = spans(band_key, jnp.full((b,), min(n_mels, N_MELS)), band_masks, band_width)
        band = jnp.arange(n_mels)[None, :, None]  # [1, M, 1]
        in_band = ((band >= start[:, None]) & (band < (start + w)[:, None])).any(-1)  # [B, M]
    return frame_mask[..., None] & (in_time[..., None] | in_band[:, None, None, :])


def spec_augment(rng: jax.Array, frames: jax.Array, frame_mask: jax.Array, *, time_masks: int,
                 time_width: int, band_masks: int, band_width: int) -> jax.Array:
    """Replaces the masked cells of normalised frames by the utterance's band means.

    The fill value is the per-band mean over the utterance's real frames (zero after
    utterance normalisation, near zero after batch norm), so a mask removes
    information without adding an energy the utterance never had.

    Args: frames ``[B, N, L, M]`` (after :func:`normalise_frames`); frame_mask
    ``[B, N, L]``. Returns ``[B, N, L, M]``.
    """
    masked = spec_augment_mask(rng, frame_mask, frames.shape[-1], time_masks=time_masks,
                               time_width=time_width, band_masks=band_masks, band_width=band_width)
    mean, _ = utterance_band_stats(frames, frame_mask)
    return jnp.where(masked, mean[:, None, None].astype(frames.dtype), frames)


def jitter_boundaries(rng: jax.Array, frames: jax.Array, frame_mask: jax.Array, max_shift: int) -> jax.Array:
    """Each word reads its frames through a window moved by ``d ~ U{-max_shift..max_shift}``
    frames in utterance time, as if its aligner had placed both of its boundaries ``d``
    frames off (ours: training against the boundary errors of another aligner or of
    human speech).

    Utterance time is the utterance's real frames, word after word (:func:`spec_augment_mask`),
    so a window moved past a word's edge reads the neighbouring word's frames, and one
    moved past the utterance's first or last frame repeats that frame. A word keeps its
    frame count, so the frame mask (and the packing computed from it on the host) stays
    valid. One key per word position (``fold_in``), so padded words never change the
    draws of the real ones.

    Args: rng; frames ``[B, N, L, M]``; frame_mask ``[B, N, L]``; max_shift >= 0.
    Returns ``[B, N, L, M]``, zero at padded frames.
    """
    b, n, l, m = frames.shape
    keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(n))
    shift = jax.vmap(lambda k: jax.random.randint(k, (b,), -max_shift, max_shift + 1), out_axes=1)(keys)  # [B, N]
    position, total = utterance_time(frame_mask)
    last = jnp.maximum(total - 1, 0)[:, None, None]  # [B, 1, 1]
    source_time = jnp.clip(position + shift[:, :, None], 0, last).reshape(b, n * l)
    source = jnp.take_along_axis(real_frames_in_order(frame_mask), source_time, axis=1)  # [B, N*L]
    moved = jnp.take_along_axis(frames.reshape(b, n * l, m), source[..., None], axis=1).reshape(b, n, l, m)
    return jnp.where(frame_mask[..., None], moved, 0.0).astype(frames.dtype)
