"""Masked (bidirectional) GRU, its input projections hoisted out of the scan where that
is faster.

Flax's ``GRUCell`` projects the input inside every scan step. Hoisted, the three input
projections of all time steps are one matmul before the scan, so the sequential part
only does the ``[H, 3H]`` recurrent matmul: faster on accelerators, slower on CPU
(:func:`hoists`). The parametrisation equals Flax's
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
      hoist_input: project all steps' inputs in one matmul before the scan (True) or
        inside every step as Flax's ``GRUCell`` does (False). Same parameters and
        results either way. None (default): by platform, see :func:`hoists`.
      time_major: inputs, masks and outputs have time FIRST (``[T, ..., F]``): the
        scan's own layout, so no transposes in or out (the packed frame rows,
        :class:`hmaf.models.encoders.AudioAttention`).
      recompute: in the backward pass, recompute each step's gates from the carried
        state instead of saving them in the forward pass (``jax.checkpoint``). Same
        gradients. None (default): by platform, see :func:`recomputes`.
    """

    hidden: int
    reverse: bool = False
    unroll: int = 1
    dtype: Dtype = jnp.float32
    hoist_input: bool | None = None
    time_major: bool = False
    recompute: bool | None = None

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, resets: jax.Array | None = None) -> jax.Array:
        """Args: x ``[..., T, F]``; mask ``[..., T]`` bool; resets ``[..., T]`` bool or None
        (zero the state before these steps); time first with ``time_major``.
        Returns ``[..., T, H]`` (``[T, ..., H]`` with ``time_major``)."""
        h_dim = self.hidden
        feats = x.shape[-1]
        kernel, bias, w_h, b_hn = _gru_weights(self, feats, h_dim)
        kernel, bias = kernel.astype(self.dtype), bias.astype(self.dtype)
        if self.time_major:
            steps, lead = x.shape[0], x.shape[1:-1]
            x = x.astype(self.dtype).reshape((steps, -1, feats))  # [T, S, F]
            step_mask = mask.reshape((steps, -1))[..., None]  # [T, S, 1]
            step_resets = None if resets is None else resets.reshape((steps, -1))[..., None]
        else:
            lead, steps = x.shape[:-2], x.shape[-2]
            x = x.astype(self.dtype).reshape((-1, steps, feats)).swapaxes(0, 1)  # [T, S, F]
            step_mask = mask.reshape((-1, steps)).swapaxes(0, 1)[..., None]  # [T, S, 1]
            step_resets = None if resets is None else resets.reshape((-1, steps)).swapaxes(0, 1)[..., None]
        hoist = hoists(self.hoist_input)
        if hoist:
            x = jnp.dot(x, kernel) + bias  # [T, S, 3H], one matmul for all steps
        w_h = w_h.astype(self.dtype)

        def step(h, inputs):
            xp, m, reset = inputs
            if not hoist:
                xp = jnp.dot(xp, kernel) + bias
            if reset is not None:
                h = jnp.where(reset, 0.0, h)
            hp = jnp.dot(h.astype(self.dtype), w_h)
            r, z = jnp.split(_sigmoid(xp[..., :2 * h_dim] + hp[..., :2 * h_dim]), 2, axis=-1)
            n = jnp.tanh(xp[..., 2 * h_dim:] + r * (hp[..., 2 * h_dim:] + b_hn.astype(self.dtype)))
            h_new = ((1.0 - z) * n + z * h).astype(jnp.float32)
            h = jnp.where(m, h_new, h)
            return h, jnp.where(m, h_new, 0.0)

        if recomputes(self.recompute):
            step = jax.checkpoint(step, policy=jax.checkpoint_policies.nothing_saveable)
        h0 = jnp.zeros((x.shape[1], h_dim), jnp.float32)
        _, outputs = jax.lax.scan(step, h0, (x, step_mask, step_resets), reverse=self.reverse,
                                  unroll=self.unroll)  # [T, S, H]
        if self.time_major:
            return outputs.reshape((steps, *lead, h_dim))
        return outputs.swapaxes(0, 1).reshape(lead + (steps, h_dim))


class BiGRU(nn.Module):
    """Bidirectional GRU (eq. 2 and 5): forward and backward states concatenated.

    Returns ``[..., T, 2H]`` for input ``[..., T, F]`` and mask ``[..., T]``. With
    packed rows, ``starts``/``ends`` ``[..., T]`` mark each sequence's first/last step.
    With ``time_major``, every argument and the result have time first, as in
    :class:`GRU`.

    Attributes:
      fused: run both directions in ONE scan: the backward direction reads its
        inputs time-reversed, and each step advances both states with one batched
        recurrent matmul, halving the sequential steps. Same parameters
        (``forward``/``backward``, laid out as :class:`GRU`'s) and same results as
        the default, two scans (:class:`GRU` per direction). Off by default because
        on CPU it measured slower with hoisted projections (eval step of FAF, B=8
        N=24 L=64: 55 against 40 ms of CPU time; ``benchmarks/README.md``) and no
        faster without (the frame BiGRU of a 8x48x128 batch: 41 against 42-44 ms).
        It is the form to try where a step is latency-bound (GPU), measured by
        ``python -m benchmarks.run --sections rnn``.
    """

    hidden: int
    unroll: int = 1
    dtype: Dtype = jnp.float32
    hoist_input: bool | None = None
    fused: bool = False
    time_major: bool = False
    recompute: bool | None = None

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, starts: jax.Array | None = None,
                 ends: jax.Array | None = None) -> jax.Array:
        if not self.fused:
            kwargs = dict(unroll=self.unroll, dtype=self.dtype, hoist_input=self.hoist_input,
                          time_major=self.time_major, recompute=self.recompute)
            fwd = GRU(self.hidden, reverse=False, name="forward", **kwargs)(x, mask, starts)
            bwd = GRU(self.hidden, reverse=True, name="backward", **kwargs)(x, mask, ends)
            return jnp.concatenate([fwd, bwd], axis=-1)
        if self.time_major:
            raise ValueError("BiGRU(fused=True) takes batch-major inputs; time_major needs fused=False")
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
        hoist = hoists(self.hoist_input)
        if hoist:
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
            if not hoist:
                xp = jnp.einsum("dsf,dfk->dsk", xp, kernel) + bias[:, None]
            if reset is not None:
                h = jnp.where(reset, 0.0, h)
            hp = jnp.einsum("dsh,dhk->dsk", h.astype(self.dtype), w_h)  # both directions, one batched matmul
            r, z = jnp.split(_sigmoid(xp[..., :2 * h_dim] + hp[..., :2 * h_dim]), 2, axis=-1)
            n = jnp.tanh(xp[..., 2 * h_dim:] + r * (hp[..., 2 * h_dim:] + b_hn))
            h_new = ((1.0 - z) * n + z * h).astype(jnp.float32)
            h = jnp.where(m, h_new, h)
            return h, jnp.where(m, h_new, 0.0)

        if recomputes(self.recompute):
            step = jax.checkpoint(step, policy=jax.checkpoint_policies.nothing_saveable)
        h0 = jnp.zeros((2, xs.shape[2], h_dim), jnp.float32)
        _, outputs = jax.lax.scan(step, h0, (xs, step_mask, step_resets), unroll=self.unroll)  # [T, 2, S, H]
        out = jnp.concatenate([outputs[:, 0], outputs[::-1, 1]], axis=-1)  # [T, S, 2H]
        return out.swapaxes(0, 1).reshape(lead + (steps, 2 * h_dim))


def hoists(hoist_input: bool | None) -> bool:
    """Whether a GRU hoists its input projections: ``hoist_input``, or for None, by
    the platform JAX computes on. On CPU the hoisted ``[T, S, 3H]`` projections are a
    large fresh buffer written once and read back step by step (34 MB per direction
    for the frame rows of a 8x48x128 batch), while the per-step ``[S, F] @ [F, 3H]``
    product stays in cache: the FAF eval step ran 1.07-1.26x faster without hoisting
    (benchmarks/README.md, issue 11; the train step measured the same either way). On
    an H200, bound by sequential steps, hoisting was 1.12-1.15x faster (same file,
    issue 5)."""
    return jax.default_backend() != "cpu" if hoist_input is None else hoist_input


def recomputes(recompute: bool | None) -> bool:
    """Whether a GRU recomputes its steps' gates in the backward pass: ``recompute``,
    or for None, on CPU only. Saved, they are about ten ``[T, S, H]`` buffers per
    direction written in the forward pass and read back (115 MB for the frame rows of a
    8x48x128 batch); recomputed, the backward pass redoes each step's two small matmuls
    from the state it already has. On CPU the FAF train step ran 1.17-1.23x faster
    recomputing (benchmarks/README.md, issue 11); on accelerators, where every
    sequential step's latency counts, it is unmeasured and off."""
    return jax.default_backend() == "cpu" if recompute is None else recompute


def _sigmoid(x: jax.Array) -> jax.Array:
    """The logistic function as ``(1 + tanh(x / 2)) / 2``, equal to it up to float
    rounding: XLA's CPU backend evaluates tanh much faster than its logistic (a GRU
    direction over [224, 128] packed frame rows: 58 against 77 ms, one core)."""
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


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
