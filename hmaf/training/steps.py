"""Pure train and eval steps (one ``jax.jit`` each); imports jax/flax/optax only.

``train_step(state, batch, rng)`` is a pure function of its arguments: the per-step
dropout key is ``fold_in(rng, state.step)``, so a resumed run draws the same keys.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from hmaf.eval_step import make_eval_step, model_inputs  # noqa: F401 (re-exported for callers)

PyTree = Any


class TrainState(train_state.TrainState):
    """Parameters, optimiser state and batch-norm statistics."""

    batch_stats: PyTree


def init_variables(model: nn.Module, sample_batch: Mapping[str, Any], seed: int = 0) -> PyTree:
    """Initialises ``{'params', 'batch_stats'}`` under jit (un-jitted GRU init is slow)."""
    rngs = {"params": jax.random.key(seed), "dropout": jax.random.key(seed + 1)}
    init = jax.jit(lambda b: model.init(rngs, b, train=False))
    variables = init(model_inputs(sample_batch))
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def make_optimizer(config: Mapping[str, Any], *, steps_per_epoch: int = 1, total_steps: int = 1,
                   frozen: Sequence[str] = ()) -> optax.GradientTransformationExtraArgs:
    """The optimiser a training config names; the paper's (§4.3) is plain Adam at 1e-3.

    Config fields (paper setting first):
      ``learning_rate`` 1e-3; ``lr_schedule`` "constant" (paper) | "warmup_cosine"
      (linear warmup over ``warmup_epochs``, cosine decay to 0 at the end of the budget)
      | "plateau" (``optax.contrib.reduce_on_plateau`` on the training loss averaged over
      an epoch: x ``plateau_factor`` after ``plateau_patience`` epochs without improvement);
      ``grad_clip_norm`` 0 = off (paper), else clip the global gradient norm;
      ``weight_decay`` 0 = Adam (paper), else AdamW with this decoupled decay.

    ``frozen``: top-level parameter subtrees (e.g. ``("text", "audio")``) that get zero
    updates (``config.model.freeze_branches`` in the fusion stage). The update takes the
    step's loss as ``value`` (used by "plateau" only).
    """
    lr = float(config.get("learning_rate", 1e-3))
    schedule = config.get("lr_schedule", "constant")
    if schedule == "constant":
        learning_rate: float | optax.Schedule = lr
    elif schedule == "warmup_cosine":
        warmup = int(round(float(config.get("warmup_epochs", 1.0)) * steps_per_epoch))
        learning_rate = optax.warmup_cosine_decay_schedule(
            0.0, lr, warmup_steps=max(warmup, 1), decay_steps=max(total_steps, warmup + 1))
    elif schedule == "plateau":
        learning_rate = lr
    else:
        raise ValueError(f"lr_schedule={schedule!r}: expected 'constant', 'warmup_cosine' or 'plateau'")
    weight_decay = float(config.get("weight_decay", 0.0))
    adam = (optax.adamw(learning_rate, weight_decay=weight_decay) if weight_decay > 0
            else optax.adam(learning_rate))
    parts = []
    if float(config.get("grad_clip_norm", 0.0)) > 0:
        parts.append(optax.clip_by_global_norm(float(config.grad_clip_norm)))
    parts.append(adam)
    if schedule == "plateau":
        parts.append(optax.contrib.reduce_on_plateau(
            factor=float(config.get("plateau_factor", 0.5)), patience=int(config.get("plateau_patience", 2)),
            accumulation_size=max(steps_per_epoch, 1)))
    tx = optax.chain(*parts)
    if frozen:
        frozen = set(frozen)
        tx = optax.multi_transform(
            {"train": tx, "frozen": optax.set_to_zero()},
            lambda params: {k: jax.tree.map(lambda _: "frozen" if k in frozen else "train", v)
                            for k, v in params.items()})
    return optax.with_extra_args_support(tx)


def create_train_state(model: nn.Module, sample_batch: Mapping[str, Any], *, learning_rate: float = 1e-3,
                       seed: int = 0, variables: PyTree | None = None,
                       tx: optax.GradientTransformation | None = None) -> TrainState:
    """A train state over freshly initialised or given variables; ``tx`` defaults to
    Adam at ``learning_rate`` (§4.3), see :func:`make_optimizer`."""
    variables = variables or init_variables(model, sample_batch, seed)
    tx = optax.with_extra_args_support(tx if tx is not None else optax.adam(learning_rate))
    return TrainState.create(apply_fn=model.apply, params=variables["params"],
                             batch_stats=variables["batch_stats"], tx=tx)


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
        # As TrainState.apply_gradients, passing the loss on (reduce_on_plateau reads it).
        param_updates, opt_state = state.tx.update(grads, state.opt_state, state.params, value=loss)
        state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, param_updates),
                              opt_state=opt_state, batch_stats=updates["batch_stats"])
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean(jnp.argmax(out.logits, -1) == batch["label"]),
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(state.params),
        }
        return state, metrics

    return jax.jit(train_step, donate_argnums=(0,) if donate else ())
