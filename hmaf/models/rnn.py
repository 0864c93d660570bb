"""Masked (bidirectional) GRU with the input projections hoisted out of the scan.

Flax's ``GRUCell`` projects the input inside every scan step. Here the three input
projections of all time steps are one matmul before the scan, so the sequential part
only does the ``[H, 3H]`` recurrent matmul. The parametrisation equals Flax's
``GRUCell`` (input projections with bias, recurrent ones without, except the
candidate's), so results match ``nn.RNN(nn.GRUCell)`` given the same weights:

    r = sigmoid(W_ir x + b_ir + W_hr h)
    z = sigmoid(W_iz x + b_iz + W_hz h)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

Masked steps leave the state unchanged and output zeros. Because padding sits at the
end of each sequence, the reverse direction starts from the zero state at the last
real step, exactly as if the padding were not there.

Optional ``resets`` zero the state before a step. They let one row hold several
sequences end to end (frame packing, :mod:`hmaf.models.packing`): the forward
direction resets at each sequence's first step, the backward one at its last, so
every sequence sees exactly the states it would see alone.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


class GRU(nn.Module):
    """One direction of a GRU over the second-to-last axis.

    Attributes:
      hidden: state size H.
      reverse: run from the last step to the first.
      unroll: scan unroll factor (a speed knob; results do not depend on it).
      dtype: computation dtype (e.g. ``jnp.bfloat16`` on accelerators); the state
        is carried in float32.
      hoist_input: project all steps' inputs in one matmul before the scan (True,
        fast) or inside every step as Flax's ``GRUCell`` does (False; kept for the
        benchmark that measures the difference). Same parameters either way.
    """

    hidden: int
    reverse: bool = False
    unroll: int = 1
    dtype: Dtype = jnp.float32
    hoist_input: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, resets: jax.Array | None = None) -> jax.Array:
        """Args: x ``[..., T, F]``; mask ``[..., T]`` bool; resets ``[..., T]`` bool or None
        (zero the state before these steps). Returns ``[..., T, H]``."""
        h_dim = self.hidden
        lead, (steps, feats) = x.shape[:-2], x.shape[-2:]
        kernel, bias = _InputProjection(feats, 3 * h_dim, name="input")()
        kernel, bias = kernel.astype(self.dtype), bias.astype(self.dtype)
        w_h = self.param("recurrent_kernel", nn.initializers.orthogonal(), (h_dim, 3 * h_dim))
        b_hn = self.param("recurrent_bias", nn.initializers.zeros, (h_dim,))
        x = x.astype(self.dtype).reshape((-1, steps, feats)).swapaxes(0, 1)  # [T, S, F]
        if self.hoist_input:
            x = jnp.dot(x, kernel) + bias  # [T, S, 3H], one matmul for all steps
        step_mask = mask.reshape((-1, steps)).swapaxes(0, 1)[..., None]  # [T, S, 1]
        step_resets = None if resets is None else resets.reshape((-1, steps)).swapaxes(0, 1)[..., None]
        w_h = w_h.astype(self.dtype)

        def step(h, inputs):
            xp, m, reset = inputs
            if not self.hoist_input:
                xp = jnp.dot(xp, kernel) + bias
            if reset is not None:
                h = jnp.where(reset, 0.0, h)
            hp = jnp.dot(h.astype(self.dtype), w_h)
            x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
            h_r, h_z, h_n = jnp.split(hp, 3, axis=-1)
            r = jax.nn.sigmoid(x_r + h_r)
            z = jax.nn.sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + r * (h_n + b_hn.astype(self.dtype)))
            h_new = ((1.0 - z) * n + z * h).astype(jnp.float32)
            h = jnp.where(m, h_new, h)
            return h, jnp.where(m, h_new, 0.0)

        h0 = jnp.zeros((x.shape[1], h_dim), jnp.float32)
        _, outputs = jax.lax.scan(step, h0, (x, step_mask, step_resets), reverse=self.reverse,
                                  unroll=self.unroll)
        return outputs.swapaxes(0, 1).reshape(lead + (steps, h_dim))


class BiGRU(nn.Module):
    """Bidirectional GRU (eq. 2 and 5): forward and backward states concatenated.

    Returns ``[..., T, 2H]`` for input ``[..., T, F]`` and mask ``[..., T]``. With
    packed rows, ``starts``/``ends`` ``[..., T]`` mark each sequence's first/last step.
    """

    hidden: int
    unroll: int = 1
    dtype: Dtype = jnp.float32
    hoist_input: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, starts: jax.Array | None = None,
                 ends: jax.Array | None = None) -> jax.Array:
        kwargs = dict(unroll=self.unroll, dtype=self.dtype, hoist_input=self.hoist_input)
        fwd = GRU(self.hidden, reverse=False, name="forward", **kwargs)(x, mask, starts)
        bwd = GRU(self.hidden, reverse=True, name="backward", **kwargs)(x, mask, ends)
        return jnp.concatenate([fwd, bwd], axis=-1)


class _InputProjection(nn.Module):
    """The ``input`` kernel ``[F, 3H]`` and bias ``[3H]`` of a GRU, laid out (and
    initialised) as an ``nn.Dense`` so checkpoints keep their structure; returned
    as arrays because the unhoisted variant uses them inside the scan."""

    features_in: int
    features_out: int

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array]:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (self.features_in, self.features_out))
        bias = self.param("bias", nn.initializers.zeros, (self.features_out,))
        return kernel, bias
