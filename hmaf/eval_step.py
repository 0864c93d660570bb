"""The jitted evaluation step and the step inputs, shared by training, evaluation and
inference (imports jax/flax only: inference needs no training code).

``make_eval_step(model)(variables, batch)`` returns the logits, probabilities and
utterance representation of a batch of the batch contract (:mod:`hmaf.batch`), packed
or padded. The representation is read with Flax's ``capture_intermediates`` in this step
only: the models' outputs and parameters stay as they are.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from hmaf.batch import KEYS, OPTIONAL_KEYS
from hmaf.models.decision import HEADS, REPRESENTATION_LAYER
from hmaf.models.packing import PACK_KEYS

PyTree = Any


def model_inputs(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's arrays, its optional ones (speaker statistics, word marks) and,
    when present, the frame-packing arrays; drops what jit can't take (e.g. ``utt_id``
    strings)."""
    return {k: batch[k] for k in (*KEYS, *OPTIONAL_KEYS, *PACK_KEYS) if k in batch}


def _is_representation(module: nn.Module, method: str) -> bool:
    """The output of a decision head's batch norm: the pooled utterance features that the
    final dense layer classifies (dropout is off at evaluation)."""
    return method == "__call__" and module.name == REPRESENTATION_LAYER and isinstance(module.parent, HEADS)


def representation_of(intermediates: Mapping[str, Any]) -> jax.Array:
    """``[B, D]``: the captured head features, concatenated in path order (decision-level
    fusion has two heads, text then audio by name)."""
    flat = traverse_util.flatten_dict(dict(intermediates))
    found = [flat[path][0] for path in sorted(flat) if path[-2:] == (REPRESENTATION_LAYER, "__call__")]
    if not found:
        raise ValueError("the model has no decision head whose features could be captured")
    return jnp.concatenate(found, axis=-1).astype(jnp.float32)


def make_eval_step(model: nn.Module, *, with_attention: bool = False) -> Callable:
    """Returns jitted ``eval_step(variables, batch) -> dict`` with ``logits`` ``[B, C]``,
    ``probs`` ``[B, C]``, ``representation`` ``[B, D]`` (the utterance features before the
    final dense layer, for :mod:`hmaf.unfamiliar`) and, with ``with_attention``, every sown
    attention distribution."""

    def eval_step(variables: PyTree, batch: Mapping[str, jax.Array]):
        out, state = model.apply(variables, batch, train=False, mutable=["intermediates"],
                                 capture_intermediates=_is_representation)
        inter = state["intermediates"]
        result = {"logits": out.logits, "probs": jax.nn.softmax(out.logits),
                  "representation": representation_of(inter)}
        if with_attention:  # the sown attentions sit at the top level, captured outputs below
            result.update({k: v[0] for k, v in inter.items() if isinstance(v, tuple)})
        return result

    return jax.jit(eval_step)
