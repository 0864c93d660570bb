"""The jitted evaluation step and the step inputs, shared by training, evaluation and
inference (imports jax/flax only: inference needs no training code).

``make_eval_step(model)(variables, batch)`` returns the logits and probabilities of a
batch of the batch contract (:mod:`hmaf.batch`), packed or padded.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax

from hmaf.batch import KEYS
from hmaf.models.packing import PACK_KEYS

PyTree = Any
# Optional per-example inputs: the speaker's log-mel band statistics float32 [B, 64]
# (``config.model.audio_norm == "speaker"``, see INTERFACES.md).
OPTIONAL_KEYS = ("band_mean", "band_std")


def model_inputs(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's arrays, the optional speaker statistics and, when present, the
    frame-packing arrays; drops what jit can't take (e.g. ``utt_id`` strings)."""
    return {k: batch[k] for k in (*KEYS, *OPTIONAL_KEYS, *PACK_KEYS) if k in batch}


def make_eval_step(model: nn.Module, *, with_attention: bool = False) -> Callable:
    """Returns jitted ``eval_step(variables, batch) -> dict`` with ``logits`` ``[B, C]``,
    ``probs`` ``[B, C]`` and, with ``with_attention``, every sown attention distribution."""

    def eval_step(variables: PyTree, batch: Mapping[str, jax.Array]):
        out, state = model.apply(variables, batch, train=False, mutable=["intermediates"])
        result = {"logits": out.logits, "probs": jax.nn.softmax(out.logits)}
        if with_attention:
            result.update({k: v[0] for k, v in state["intermediates"].items()})
        return result

    return jax.jit(eval_step)
