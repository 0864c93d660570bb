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

:class:`BiGRU` runs its two directions as two scans, or with ``fused=True`` as one
scan that carries both states (same parameters, same results; see its docstring
for when each is faster).
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
        kernel, bias, w_h, b_hn = _gru_weights(self, feats, h_dim)
        kernel, bias = kernel.astype(self.dtype), bias.astype(self.dtype)
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

    Attributes:
      fused: run both directions in ONE scan: the backward direction reads its
        inputs time-reversed, and each step advances both states with one batched
        recurrent matmul, halving the sequential steps. Same parameters
        (``forward``/``backward``, laid out as :class:`GRU`'s) and same results as
        the default, two scans (:class:`GRU` per direction). Off by default because
        on CPU it measured slower (eval step of FAF, B=8 N=24 L=64: 55 against
        40 ms of CPU time; ``benchmarks/README.md``); the likely reasons are that
        XLA's CPU runtime can run two independent scans concurrently, one per core,
        and that it lowers the small batched matmul less well than two plain ones.
        It is the form to try where a step is latency-bound (GPU), measured by
        ``python -m benchmarks.run --sections rnn``.
    """

    hidden: int
    unroll: int = 1
    dtype: Dtype = jnp.float32
    hoist_input: bool = True
    fused: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, starts: jax.Array | None = None,
                 ends: jax.Array | None = None) -> jax.Array:
        if not self.fused:
            kwargs = dict(unroll=self.unroll, dtype=self.dtype, hoist_input=self.hoist_input)
            fwd = GRU(self.hidden, reverse=False, name="forward", **kwargs)(x, mask, starts)
            bwd = GRU(self.hidden, reverse=True, name="backward", **kwargs)(x, mask, ends)
            return jnp.concatenate([fwd, bwd], axis=-1)
        h_dim = self.hidden
        lead, (steps, feats) = x.shape[:-2], x.shape[-2:]
        weights = [_GRUWeights(feats, h_dim, name=name)() for name in ("forward", "backward")]
        kernel, bias, w_h, b_hn = (jnp.stack(w).astype(self.dtype) for w in zip(*weights))
        # kernel [2, F, 3H], bias [2, 3H], w_h [2, H, 3H], b_hn [2, H]; index 0 = forward

        def both(a: jax.Array) -> jax.Array:
            """``[..., T, *]`` -> ``[T, 2, S, *]``: time first, the backward copy reversed."""
            a = a.reshape((-1, steps) + a.shape[len(lead) + 1:]).swapaxes(0, 1)  # [T, S, *]
            return jnp.stack([a, a[::-1]], axis=1)

        x = x.astype(self.dtype)
        if self.hoist_input:
            # one matmul for both directions and all steps, then the backward half reversed
            flat = x.reshape((-1, steps, feats)).swapaxes(0, 1)  # [T, S, F]
            proj = jnp.dot(flat, jnp.concatenate([kernel[0], kernel[1]], axis=-1))  # [T, S, 6H]
            fwd_in, bwd_in = jnp.split(proj, 2, axis=-1)
            xs = jnp.stack([fwd_in, bwd_in[::-1]], axis=1) + bias[:, None]  # [T, 2, S, 3H]
        else:
            xs = both(x)  # [T, 2, S, F]
        step_mask = both(mask)[..., None]  # [T, 2, S, 1]
        if starts is None and ends is None:
            step_resets = None
        else:
            no_resets = jnp.zeros(mask.shape, bool)
            fwd_r = both(no_resets if starts is None else starts)[:, 0]
            bwd_r = both(no_resets if ends is None else ends)[:, 1]
            step_resets = jnp.stack([fwd_r, bwd_r], axis=1)[..., None]  # [T, 2, S, 1]
        b_hn = b_hn[:, None]  # [2, 1, H]

        def step(h, inputs):
            xp, m, reset = inputs  # h [2, S, H]
            if not self.hoist_input:
                xp = jnp.einsum("dsf,dfk->dsk", xp, kernel) + bias[:, None]
            if reset is not None:
                h = jnp.where(reset, 0.0, h)
            hp = jnp.einsum("dsh,dhk->dsk", h.astype(self.dtype), w_h)  # both directions, one batched matmul
            x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
            h_r, h_z, h_n = jnp.split(hp, 3, axis=-1)
            r = jax.nn.sigmoid(x_r + h_r)
            z = jax.nn.sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + r * (h_n + b_hn))
            h_new = ((1.0 - z) * n + z * h).astype(jnp.float32)
            h = jnp.where(m, h_new, h)
            return h, jnp.where(m, h_new, 0.0)

        h0 = jnp.zeros((2, xs.shape[2], h_dim), jnp.float32)
        _, outputs = jax.lax.scan(step, h0, (xs, step_mask, step_resets), unroll=self.unroll)  # [T, 2, S, H]
        out = jnp.concatenate([outputs[:, 0], outputs[::-1, 1]], axis=-1)  # [T, S, 2H]
        return out.swapaxes(0, 1).reshape(lead + (steps, 2 * h_dim))


def _gru_weights(module: nn.Module, feats: int, h_dim: int) -> tuple[jax.Array, ...]:
    """Creates one direction's parameters inside ``module``'s compact call:
    input kernel ``[F, 3H]`` and bias ``[3H]`` (submodule ``input``),
    ``recurrent_kernel`` ``[H, 3H]`` and ``recurrent_bias`` ``[H]``."""
    kernel, bias = _InputProjection(feats, 3 * h_dim, name="input")()
    w_h = module.param("recurrent_kernel", nn.initializers.orthogonal(), (h_dim, 3 * h_dim))
    b_hn = module.param("recurrent_bias", nn.initializers.zeros, (h_dim,))
    return kernel, bias, w_h, b_hn


class _GRUWeights(nn.Module):
    """The parameters of one :class:`GRU` direction, without running it (the fused
    :class:`BiGRU` runs both directions itself)."""

    features_in: int
    hidden: int

    @nn.compact
    def __call__(self) -> tuple[jax.Array, ...]:
        return _gru_weights(self, self.features_in, self.hidden)


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
