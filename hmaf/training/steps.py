"""Pure train and eval steps (one ``jax.jit`` each); imports jax/flax/optax only.

``train_step(state, batch, rng)`` is a pure function of its arguments: the per-step
dropout key is ``fold_in(rng, state.step)``, so a resumed run draws the same keys.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

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


class ParamsEmaState(NamedTuple):
    """``count`` updates so far and ``params_ema``, the running average of the parameters."""

    count: jax.Array
    params_ema: PyTree


def params_ema(decay: float) -> optax.GradientTransformation:
    """Keeps an exponential moving average of the parameters *after* each update in the
    optimiser state; passes the updates on unchanged (training itself is not altered).

    The decay at update ``t`` is ``min(decay, (1 + t) / (10 + t))``, so the average
    follows the parameters closely in the first steps instead of remembering their
    initial values (the warm-up of TensorFlow's ``ExponentialMovingAverage`` with
    ``num_updates``). Read it with :func:`ema_params`.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"params_ema: decay must be in (0, 1), got {decay}")

    def init(params):
        # A copy: the train step donates its state, and two leaves sharing a buffer cannot both be donated.
        return ParamsEmaState(count=jnp.zeros([], jnp.int32),
                              params_ema=jax.tree.map(lambda p: jnp.array(p, copy=True), params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("params_ema needs the parameters (tx.update(grads, state, params))")
        count = state.count + 1
        rate = jnp.minimum(decay, (1.0 + count) / (10.0 + count))
        new_params = optax.apply_updates(params, updates)
        average = jax.tree.map(lambda e, p: rate * e + (1.0 - rate) * p, state.params_ema, new_params)
        return updates, ParamsEmaState(count=count, params_ema=average)

    return optax.GradientTransformation(init, update)


def ema_params(opt_state: PyTree) -> PyTree | None:
    """The parameters' moving average inside an optimiser state from
    :func:`make_optimizer` (``ema_epochs`` > 0); ``None`` when it keeps none."""
    found = optax.tree.get_all_with_path(opt_state, "params_ema")
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"the optimiser state holds {len(found)} parameter averages; expected one")
    return found[0][1]


def make_optimizer(config: Mapping[str, Any], *, steps_per_epoch: int = 1, total_steps: int = 1,
                   frozen: Sequence[str] = ()) -> optax.GradientTransformationExtraArgs:
    """The optimiser a training config names; the paper's (§4.3) is plain Adam at 1e-3.

    Config fields (paper setting first):
      ``learning_rate`` 1e-3; ``lr_schedule`` "constant" (paper) | "warmup_cosine"
      (linear warmup over ``warmup_epochs``, cosine decay to 0 at the end of the budget)
      | "plateau" (``optax.contrib.reduce_on_plateau`` on the training loss averaged over
      an epoch: x ``plateau_factor`` after ``plateau_patience`` epochs without improvement);
      ``grad_clip_norm`` 0 = off (paper), else clip the global gradient norm;
      ``weight_decay`` 0 = Adam (paper), else AdamW with this decoupled decay;
      ``ema_epochs`` 0 = off (paper), else a moving average of the parameters with a
      time constant of this many epochs (decay ``1 - 1 / (ema_epochs * steps_per_epoch)``,
      :func:`params_ema`): the trainer validates, keeps and reports the average.

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
    ema_epochs = float(config.get("ema_epochs", 0.0))
    if ema_epochs < 0:
        raise ValueError(f"ema_epochs={ema_epochs}: expected 0 (off) or a time constant > 0 in epochs")
    if ema_epochs > 0:  # after the freezing, so that it averages what the step applies
        # A time constant under two steps would be no average: two steps at least.
        tx = optax.chain(tx, params_ema(1.0 - 1.0 / max(ema_epochs * steps_per_epoch, 2.0)))
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
