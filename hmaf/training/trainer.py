"""Staged training (§4.3): text branch, audio branch, then the fusion model.

``train_and_evaluate(config, workdir)`` runs every stage the model needs; each stage
lives in ``workdir/<stage>`` with its own checkpoints, TensorBoard events and
``metrics.json``, and a finished stage is skipped on rerun. A stage trains with
class-balanced batches, evaluates on validation every ``eval_every`` steps, keeps the
best checkpoint (early stopping after ``patience`` evaluations without improvement)
and finally reports WA / UA / weighted F1 of the best model on every split.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from clu import metric_writers

from hmaf import checkpoint as ckpt
from hmaf.metrics import classification_metrics
from hmaf.models import BRANCHES, build_model, model_options
from hmaf.models.packing import pack_batch
from hmaf.training import sharding
from hmaf.training.steps import create_train_state, init_variables, make_eval_step, make_train_step, model_inputs

PyTree = Any
SPLITS = ("train", "validation", "test")
CORPUS_FILES = ("dataset.json", "vocab.txt")


class DataSource(Protocol):
    """What training needs from a corpus (:class:`hmaf.data.source.CorpusSource`)."""

    info: Mapping[str, Any]

    def embeddings(self) -> np.ndarray: ...
    def train_batches(self, start_step: int = 0) -> Iterator[dict]: ...
    def eval_batches(self, split: str) -> Iterator[dict]: ...


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf: training stops instead of going on with garbage."""


def stages_for(config: ml_collections.ConfigDict) -> list[tuple[str, str]]:
    """``[(stage, model_name), ...]`` in order: the branches first when staged."""
    name = config.model.name
    if name in ("text_only", "audio_only"):
        return [(BRANCHES[name][0], name)]
    stages = [("text", "text_only"), ("audio", "audio_only")] if config.staged else []
    return stages + [("fusion", name)]


def _info(source: DataSource, key: str):
    info = source.info
    return info[key] if isinstance(info, Mapping) else getattr(info, key)


def model_spec(config: ml_collections.ConfigDict, model_name: str, source: DataSource) -> dict:
    """JSON-able arguments of :func:`hmaf.models.build_model` (saved beside checkpoints)."""
    options = model_options(config.model.to_dict())
    options["widths"] = list(options.get("widths", (2, 3, 4, 5)))
    return {"name": model_name, "num_classes": int(_info(source, "num_classes")),
            "vocab_size": int(_info(source, "vocab_size")), "embed_dim": int(_info(source, "embedding_dim")),
            **options}


class BatchPreparer:
    """Turns a numpy batch from the source into the step's input: the contract's
    arrays, the frame-packing arrays (``config.pack_frames``: the frame-level BiGRU
    then runs over real frames only, see :mod:`hmaf.models.packing`) and, with
    ``config.data_parallel``, the batch sharded over every device."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.pack = bool(config.get("pack_frames", False))
        self.row_multiple = int(config.get("pack_row_multiple", 8))
        self.mesh = sharding.make_mesh() if config.get("data_parallel", False) else None
        if self.mesh is not None:
            logging.info("data parallel over %d devices (%s)", self.mesh.size, jax.devices()[0].device_kind)

    def __call__(self, batch: Mapping[str, Any]) -> dict:
        batch = model_inputs(batch)
        if self.pack:
            batch = pack_batch(batch, row_multiple=self.row_multiple)
        if self.mesh is not None:
            batch = sharding.shard_batch(batch, self.mesh)
        return batch

    def place_state(self, state: PyTree) -> PyTree:
        return state if self.mesh is None else sharding.replicate(state, self.mesh)


def evaluate(model, variables: PyTree, batches: Iterator[dict], num_classes: int, label_names,
             eval_step=None, prepare: Callable[[Mapping[str, Any]], dict] = model_inputs) -> dict:
    """WA / UA / weighted F1, per-class figures and the confusion matrix over ``batches``."""
    eval_step = eval_step or make_eval_step(model)
    labels, preds = [], []
    for batch in batches:
        out = eval_step(variables, prepare(batch))
        preds.append(np.asarray(jnp.argmax(out["logits"], -1)))
        labels.append(np.asarray(batch["label"]))
    return classification_metrics(np.concatenate(labels), np.concatenate(preds), num_classes, label_names)


def _format_eta(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


def train_stage(config: ml_collections.ConfigDict, stage: str, model_name: str, source: DataSource,
                stage_dir: Path, branch_variables: Mapping[str, PyTree] | None = None) -> dict:
    """Trains one stage, resuming from its latest checkpoint; returns its metrics."""
    done = stage_dir / "metrics.json"
    if done.exists():
        logging.info("stage %s already finished (%s): skipping", stage, done)
        return json.loads(done.read_text())
    stage_dir.mkdir(parents=True, exist_ok=True)
    num_classes, label_names = int(_info(source, "num_classes")), list(_info(source, "label_names"))
    spec = model_spec(config, model_name, source)
    model = build_model(**{**spec, "embedding_matrix": source.embeddings()})
    sample = next(iter(source.eval_batches("validation")))
    variables = init_variables(model, sample, config.seed)
    if branch_variables:  # staged training: start from the pretrained branches
        variables = {collection: dict(tree) for collection, tree in variables.items()}
        for branch, trained in branch_variables.items():
            for collection, tree in trained.items():
                variables[collection][branch] = tree
    state = create_train_state(model, sample, learning_rate=config.learning_rate, variables=variables)

    checkpoints = ckpt.StageCheckpoints(stage_dir)
    meta = {"step": 0, "best_metric": -math.inf, "best_step": -1, "evals_without_improvement": 0}
    restored = checkpoints.restore_latest(state)
    if restored is not None:
        state, meta = restored
        logging.info("stage %s: resuming from step %d", stage, meta["step"])
    prepare = BatchPreparer(config)
    state = prepare.place_state(state)
    writer = metric_writers.create_default_writer(str(stage_dir), just_logging=jax.process_index() > 0)
    train_step, eval_step = make_train_step(model), make_eval_step(model)
    rng = jax.random.key(config.seed)
    step = first_step = int(meta["step"])
    batches = source.train_batches(start_step=step)
    total = int(config.num_train_steps)
    pending: list[dict] = []
    window_start, window_examples = time.perf_counter(), 0
    logging.info("stage %s (%s): training %d steps, batch %d", stage, model_name, total, config.batch_size)
    while step < total and meta["evals_without_improvement"] < config.patience:
        batch = prepare(next(batches))
        if step == first_step:
            logging.info("compiling the train step (first step of this run)...")
            compile_start = time.perf_counter()
        state, metrics = train_step(state, batch, rng)
        if step == first_step:
            jax.block_until_ready(metrics["loss"])
            logging.info("train step compiled and ran in %.1f s", time.perf_counter() - compile_start)
            window_start = time.perf_counter()
        else:
            window_examples += len(batch["label"])
        pending.append(metrics)
        step += 1
        if step % config.log_every == 0 or step == total:
            host = jax.device_get(pending)
            pending = []
            losses = np.array([m["loss"] for m in host])
            if not np.all(np.isfinite(losses)):
                raise NonFiniteLossError(
                    f"stage {stage}: loss became {losses[~np.isfinite(losses)][0]} by step {step}; "
                    f"stopping (try a lower learning_rate; the last good checkpoint is in {stage_dir})")
            means = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            speed = window_examples / elapsed if window_examples else float("nan")
            eta = (total - step) * config.batch_size / speed if speed == speed and speed > 0 else 0.0
            logging.info("[%s] step %d/%d | loss %.4f | acc %.3f | %.1f examples/s | ETA %s", stage, step,
                         total, means["loss"], means["accuracy"], speed, _format_eta(eta))
            writer.write_scalars(step, {f"train/{k}": v for k, v in means.items()} | {"train/examples_per_s": speed})
            window_start, window_examples = time.perf_counter(), 0
        if step % config.eval_every == 0 or step == total:
            variables = {"params": state.params, "batch_stats": state.batch_stats}
            val = evaluate(model, variables, source.eval_batches("validation"), num_classes, label_names,
                           eval_step, prepare)
            metric = val[config.select_metric]
            writer.write_scalars(step, {f"validation/{k}": val[k] for k in ("wa", "ua", "weighted_f1")})
            improved = metric > meta["best_metric"]
            meta = {"step": step, "best_metric": max(metric, meta["best_metric"]),
                    "best_step": step if improved else meta["best_step"],
                    "evals_without_improvement": 0 if improved else meta["evals_without_improvement"] + 1}
            logging.info("[%s] step %d validation: WA %.4f UA %.4f F1 %.4f%s", stage, step, val["wa"], val["ua"],
                         val["weighted_f1"], " (best)" if improved else "")
            if improved:
                checkpoints.save_best(step, variables, spec, config.to_dict())
            checkpoints.save_latest(step, state, meta)
            window_start, window_examples = time.perf_counter(), 0  # evaluation is not training speed
    writer.flush()
    best = checkpoints.restore_best_variables({"params": state.params, "batch_stats": state.batch_stats})
    checkpoints.close()
    results = {split: evaluate(model, best, source.eval_batches(split), num_classes, label_names, eval_step,
                               prepare) for split in SPLITS}
    results["best_step"], results["steps_trained"], results["model"] = meta["best_step"], step, model_name
    for split in SPLITS:
        writer.write_scalars(meta["best_step"], {f"best/{split}/{k}": results[split][k]
                                                 for k in ("wa", "ua", "weighted_f1")})
    writer.close()
    _write_json(done, results)
    logging.info("stage %s done: best step %d, test WA %.4f UA %.4f F1 %.4f", stage, meta["best_step"],
                 results["test"]["wa"], results["test"]["ua"], results["test"]["weighted_f1"])
    return results


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       source: DataSource | None = None) -> dict:
    """Runs the stages of ``config`` (all, or only ``config.stage``) and writes
    ``workdir/metrics.json`` with each stage's metrics and the final model's."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _write_json(workdir / "config.json", config.to_dict())
    if source is None:
        from hmaf.training.data import make_source  # the data pipeline imports TensorFlow
        source = make_source(config)
    data_dir = getattr(source, "data_dir", None)
    if data_dir:  # inference needs the corpus's vocabulary and labels beside the checkpoints
        (workdir / "corpus").mkdir(exist_ok=True)
        for name in CORPUS_FILES:
            shutil.copyfile(Path(data_dir) / name, workdir / "corpus" / name)
    plan = stages_for(config)
    branches_dir = Path(config.get("branches_dir") or workdir)
    if config.stage not in ("all", *[s for s, _ in plan]):
        raise ValueError(f"config.stage={config.stage!r}: model {config.model.name} has stages "
                         f"{[s for s, _ in plan]} (or 'all')")
    results: dict[str, Any] = {}
    for stage, model_name in plan:
        if config.stage not in ("all", stage):
            continue
        branch_variables = None
        if stage == "fusion" and config.staged:
            branch_variables = {}
            for branch in BRANCHES[config.model.name]:
                try:
                    variables = ckpt.StageCheckpoints(branches_dir / branch).restore_best_variables()
                except FileNotFoundError as err:
                    raise FileNotFoundError(
                        f"stage fusion starts from the trained {branch} branch, but {err}; run "
                        f"--config.stage={branch} first (or --config.stage=all)") from err
                branch_variables[branch] = {collection: variables[collection][branch]
                                            for collection in ("params", "batch_stats")
                                            if branch in variables.get(collection, {})}
        # Branch stages may live in a shared directory (one per fold in experiments),
        # so that every fusion model of a fold starts from the same trained branches.
        stage_dir = (branches_dir if stage in ("text", "audio") else workdir) / stage
        results[stage] = train_stage(config, stage, model_name, source, stage_dir, branch_variables)
    final_stage = plan[-1][0]
    if final_stage in results:
        results["final"] = {split: {k: results[final_stage][split][k] for k in ("wa", "ua", "weighted_f1")}
                            for split in SPLITS}
        results["final"]["model"] = config.model.name
    _write_json(workdir / "metrics.json", results)
    return results
