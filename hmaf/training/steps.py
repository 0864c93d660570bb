"""Pure train and eval steps (one ``jax.jit`` each); imports jax/flax/optax only.

``train_step(state, batch, rng)`` is a pure function of its arguments: the per-step
dropout key is ``fold_in(rng, state.step)``, so a resumed run draws the same keys.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from hmaf.batch import KEYS
from hmaf.models.packing import PACK_KEYS

PyTree = Any


class TrainState(train_state.TrainState):
    """Parameters, optimiser state and batch-norm statistics."""

    batch_stats: PyTree


def model_inputs(batch: Mapping[str, Any]) -> dict[str, jax.Array]:
    """The contract's arrays and, when present, the frame-packing arrays (drops e.g.
    ``utt_id`` strings, which jit can't take)."""
    return {k: batch[k] for k in (*KEYS, *PACK_KEYS) if k in batch}


def init_variables(model: nn.Module, sample_batch: Mapping[str, Any], seed: int = 0) -> PyTree:
    """Initialises ``{'params', 'batch_stats'}`` under jit (un-jitted GRU init is slow)."""
    rngs = {"params": jax.random.key(seed), "dropout": jax.random.key(seed + 1)}
    init = jax.jit(lambda b: model.init(rngs, b, train=False))
    variables = init(model_inputs(sample_batch))
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def create_train_state(model: nn.Module, sample_batch: Mapping[str, Any], *, learning_rate: float = 1e-3,
                       seed: int = 0, variables: PyTree | None = None) -> TrainState:
    """Adam at ``learning_rate`` (§4.3) over freshly initialised or given variables."""
    variables = variables or init_variables(model, sample_batch, seed)
    return TrainState.create(apply_fn=model.apply, params=variables["params"],
                             batch_stats=variables["batch_stats"], tx=optax.adam(learning_rate))


def cross_entropy(head_logits: tuple[jax.Array, ...], labels: jax.Array) -> jax.Array:
    """Mean categorical cross-entropy, summed over the model's classifier heads."""
    return sum(optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
               for logits in head_logits)


def make_train_step(model: nn.Module, *, donate: bool = True) -> Callable:
    """Returns ``train_step(state, batch, rng) -> (state, metrics)``, jitted with the state donated."""

    def train_step(state: TrainState, batch: Mapping[str, jax.Array], rng: jax.Array):
        dropout_rng = jax.random.fold_in(rng, state.step)

        def loss_fn(params):
            out, updates = model.apply({"params": params, "batch_stats": state.batch_stats}, batch,
                                       train=True, rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
            return cross_entropy(out.head_logits, batch["label"]), (out, updates)

        (loss, (out, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(grads=grads, batch_stats=updates["batch_stats"])
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean(jnp.argmax(out.logits, -1) == batch["label"]),
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(state.params),
        }
        return state, metrics

    return jax.jit(train_step, donate_argnums=(0,) if donate else ())


def make_eval_step(model: nn.Module, *, with_attention: bool = False) -> Callable:
    """Returns jitted ``eval_step(variables, batch) -> dict`` with ``logits``, ``probs``
    and, with ``with_attention``, every sown attention distribution."""

    def eval_step(variables: PyTree, batch: Mapping[str, jax.Array]):
        out, state = model.apply(variables, batch, train=False, mutable=["intermediates"])
        result = {"logits": out.logits, "probs": jax.nn.softmax(out.logits)}
        if with_attention:
            result.update({k: v[0] for k, v in state["intermediates"].items()})
        return result

    return jax.jit(eval_step)
