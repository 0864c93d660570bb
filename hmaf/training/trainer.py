"""Staged training (§4.3): text branch, audio branch, then the fusion model.

``train_and_evaluate(config, workdir)`` runs every stage the model needs; each stage
lives in ``workdir/<stage>`` with its own checkpoints, TensorBoard events (hparams
included) and ``metrics.json``, and a finished stage is skipped on rerun. A stage
trains with class-balanced batches for at most ``num_epochs`` epochs (or exactly
``num_train_steps`` steps when that is > 0), evaluates on validation every
``eval_every_epochs`` of an epoch (or every ``eval_every`` steps when > 0), keeps the
best checkpoint, stops early after ``patience`` evaluations without improvement, and
finally reports WA / UA / weighted F1 of the best model on every split, with the
epochs trained and whether early stopping or the budget ended the stage.

Batches come from :func:`hmaf.data.source.from_config` (padded and packed there) and
reach the device ahead of the step (:class:`hmaf.training.data.Prefetch`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol

import jax
import ml_collections
import numpy as np
from clu import metric_writers, periodic_actions

from hmaf import checkpoint as ckpt
from hmaf.io import atomic_write_text
from hmaf.calibration import CALIBRATION_FILE, calibrate, calibration_report
from hmaf.eval_step import make_eval_step, model_inputs
from hmaf.metrics import classification_metrics
from hmaf.models import BRANCHES, build_model, model_options
from hmaf.training import distributed, sharding
from hmaf.training.data import Prefetch
from hmaf.training.steps import create_train_state, ema_params, init_variables, make_optimizer, make_train_step
from hmaf.unfamiliar import DEFAULT_SCORE, SCORES, Features, UnfamiliarDetector, input_statistics

PyTree = Any
SPLITS = ("train", "validation", "test")
CORPUS_FILES = ("dataset.json", "vocab.txt")


class DataSource(Protocol):
    """What training needs from a corpus (:class:`hmaf.data.source.CorpusSource`)."""

    info: Mapping[str, Any]
    num_train_examples: int

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
    """Places a finished numpy batch from the source (padded, packed: see
    :func:`hmaf.data.source.from_config`) on the device: the step's inputs only.

    With ``config.data_parallel``, and always on several processes, the GLOBAL batch is
    sharded over every device of every process: this process keeps its share of the
    rows and, with ``config.pack_frames``, packs each of its devices' sub-batches on its
    own with ``layout`` (:mod:`hmaf.training.distributed`)."""

    def __init__(self, config: ml_collections.ConfigDict, layout=None):
        sharded = config.get("data_parallel", False) or jax.process_count() > 1
        self.mesh = sharding.make_mesh() if sharded else None
        self.layout = layout if config.get("pack_frames", False) else None
        if self.mesh is not None:
            self.first_device, self.local_devices = sharding.local_devices(self.mesh)
            logging.info("data parallel over %d devices of %d process(es) (%s)%s", self.mesh.size,
                         jax.process_count(), jax.devices()[0].device_kind,
                         ", frames packed per device" if self.layout is not None else "")

    def __call__(self, batch: Mapping[str, Any], pad: bool = False) -> dict:
        """``pad``: repeat the last example until the batch divides over the devices
        (evaluation tails); the caller drops the extra predictions."""
        batch = model_inputs(batch)
        if self.mesh is None:
            return jax.device_put(batch)
        if pad:
            batch = distributed.pad_to_multiple(batch, self.mesh.size)
        if self.layout is not None:
            local = distributed.pack_per_device(batch, self.layout, self.mesh.size, self.first_device,
                                                self.local_devices)
            return sharding.shard_batch(local, self.mesh, packed_per_device=True)
        rows = distributed.process_rows(len(batch["label"]), self.mesh.size, self.first_device, self.local_devices)
        return sharding.shard_batch({k: v[rows] for k, v in batch.items()}, self.mesh)

    def for_eval(self, batch: Mapping[str, Any]) -> dict:
        return self(batch, pad=True)

    def for_checkpoint(self, tree: PyTree) -> PyTree:
        """Sharded: the replicated arrays as numpy, so that the checkpoint carries no
        device topology (``hmaf.checkpoint.load`` on one device restores it) and Orbax
        writes it from process 0; resuming places it as the target state is placed."""
        return tree if self.mesh is None else jax.tree.map(sharding.to_host, tree)

    def place_state(self, state: PyTree) -> PyTree:
        return state if self.mesh is None else sharding.replicate(state, self.mesh)


@dataclasses.dataclass(frozen=True)
class Budget:
    """A stage's training budget in steps: ``total_steps`` at most, validation every
    ``eval_every`` steps; an epoch is ``steps_per_epoch`` steps."""

    steps_per_epoch: int
    total_steps: int
    eval_every: int

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, num_train_examples: int | None) -> "Budget":
        """Epochs (``num_epochs``, ``eval_every_epochs``) unless ``num_train_steps`` /
        ``eval_every`` are > 0; an epoch is ceil(train examples / batch size) steps."""
        steps = int(config.get("num_train_steps", 0))
        if not num_train_examples:
            if steps <= 0:
                raise ValueError("an epoch budget needs the number of training examples; this data source "
                                 "has none (set config.num_train_steps > 0)")
            per_epoch = steps
        else:
            per_epoch = max(1, math.ceil(num_train_examples / config.batch_size))
        total = steps if steps > 0 else max(1, math.ceil(float(config.num_epochs) * per_epoch))
        every = int(config.get("eval_every", 0))
        if every <= 0:
            every = max(1, round(float(config.get("eval_every_epochs", 1.0)) * per_epoch))
        return cls(steps_per_epoch=per_epoch, total_steps=total, eval_every=every)

    def epoch(self, step: int) -> float:
        return step / self.steps_per_epoch


class SpeedWindow:
    """Training speed over the steps since :meth:`reset`: examples/s of wall time, and
    the process's CPU time per example (every thread: the step's and the input's), which
    shows the loop's own cost even where other jobs share the cores."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.wall, self.cpu, self.examples = time.perf_counter(), time.process_time(), 0

    def read(self) -> tuple[float, float]:
        """``(examples per second, CPU milliseconds per example)``; NaN without examples."""
        if not self.examples:
            return float("nan"), float("nan")
        wall = max(time.perf_counter() - self.wall, 1e-9)
        return self.examples / wall, 1000.0 * (time.process_time() - self.cpu) / self.examples


def evaluate(model, variables: PyTree, batches: Iterable[dict], num_classes: int, label_names,
             eval_step=None, prepare: Callable[[Mapping[str, Any]], dict] = model_inputs,
             prefetch: int = 0) -> dict:
    """WA / UA / weighted F1, per-class figures and the confusion matrix over ``batches``
    (placed by ``prepare``, ``prefetch`` batches ahead)."""
    logits, labels = predict_logits(model, variables, batches, eval_step, prepare, prefetch)
    return classification_metrics(labels, logits.argmax(-1), num_classes, label_names)


def predict_logits(model, variables: PyTree, batches: Iterable[dict], eval_step=None,
                   prepare: Callable[[Mapping[str, Any]], dict] = model_inputs,
                   prefetch: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``[E, C]`` and labels ``[E]`` of every example of ``batches``."""
    outputs = predict_outputs(model, variables, batches, eval_step, prepare, prefetch, features=False)
    return outputs["logits"], outputs["labels"]


def predict_outputs(model, variables: PyTree, batches: Iterable[dict], eval_step=None,
                    prepare: Callable[[Mapping[str, Any]], dict] = model_inputs, prefetch: int = 0, *,
                    features: bool = True) -> dict[str, np.ndarray]:
    """``logits`` ``[E, C]`` and ``labels`` ``[E]`` of every example of ``batches``; with
    ``features`` also the eval step's ``representation`` ``[E, D]`` and the raw log-mel
    ``input_stats`` ``[E, S]`` (:func:`hmaf.unfamiliar.input_statistics`, from the host
    batch, so every process has all rows)."""
    eval_step = eval_step or make_eval_step(model)
    keys = ("logits", "representation") if features else ("logits",)
    out: dict[str, list] = {k: [] for k in (*keys, "labels", "input_stats")}

    def host_part(batch):
        stats = (input_statistics(batch["frames"], batch["frame_mask"], batch["word_mask"])
                 if features else None)
        return prepare(batch), np.asarray(batch["label"]), stats

    with Prefetch(batches, host_part, prefetch) as placed:
        for batch, label, stats in placed:
            result = eval_step(variables, batch)
            # Every process gets the whole batch's outputs (gathered across processes);
            # rows beyond the labels pad a tail to the device count.
            for key in keys:
                out[key].append(sharding.to_host(result[key])[:len(label)])
            out["labels"].append(label)
            out["input_stats"].append(stats)
    return {k: np.concatenate(v) for k, v in out.items() if v and v[0] is not None}


def hparams(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The config flattened for TensorBoard's hparams (``model.hidden``: 100, ...)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            flat[prefix] = node if isinstance(node, (bool, int, float, str)) else str(node)
    walk("", config.to_dict())
    return flat


def _format_eta(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _write_json(path: Path, payload: dict) -> None:
    if jax.process_index() == 0:  # the same content on every process: one writer
        atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True))


def calibrate_stage(config: ml_collections.ConfigDict, outputs: Mapping[str, Mapping[str, np.ndarray]],
                    stage_dir: Path) -> dict:
    """Temperature and unfamiliar-input detector of a finished stage (hmaf.calibration,
    hmaf.unfamiliar): the temperature and every threshold on validation, the Gaussians of
    the feature-space scores on train (original examples only); the flag uses
    ``config.unfamiliar_score``. Writes ``calibration.json`` and ``unfamiliar.npz`` to
    ``stage_dir`` (process 0) and returns the record, with the test split's figures under
    ``test``. Args: ``outputs[split]`` of :func:`predict_outputs`."""
    val = outputs["validation"]
    calibration = calibrate(val["logits"], val["labels"])

    def features(split):
        o = outputs[split]
        return Features(o["logits"], o.get("representation"), o.get("input_stats"))

    detector = UnfamiliarDetector.fit(features("train"), outputs["train"]["labels"], features("validation"),
                                      temperature=calibration["temperature"],
                                      score=config.get("unfamiliar_score", DEFAULT_SCORE),
                                      rate=calibration["false_alarm_rate"])
    calibration["unfamiliar"] = detector.record()
    test = outputs["test"]
    if len(test["labels"]):
        calibration["test"] = calibration_report(test["logits"], test["labels"], calibration, detector=detector,
                                                 features=features("test"))
    if distributed.is_primary():
        detector.save(stage_dir)  # before the record that names it
    _write_json(stage_dir / CALIBRATION_FILE, calibration)
    return calibration


def train_stage(config: ml_collections.ConfigDict, stage: str, model_name: str, source: DataSource,
                stage_dir: Path, branch_variables: Mapping[str, PyTree] | None = None) -> dict:
    """Trains one stage, resuming from its latest checkpoint; returns its metrics."""
    done = stage_dir / "metrics.json"
    if done.exists():
        logging.info("stage %s already finished (%s): skipping", stage, done)
        return json.loads(done.read_text())
    stage_dir.mkdir(parents=True, exist_ok=True)
    num_classes, label_names = int(_info(source, "num_classes")), list(_info(source, "label_names"))
    budget = Budget.from_config(config, getattr(source, "num_train_examples", None))
    spec = model_spec(config, model_name, source)
    model = build_model(**{**spec, "embedding_matrix": source.embeddings()})
    sample = next(iter(source.eval_batches("validation")))
    variables = init_variables(model, sample, config.seed)
    if branch_variables:  # staged training: start from the pretrained branches
        variables = {collection: dict(tree) for collection, tree in variables.items()}
        for branch, trained in branch_variables.items():
            for collection, tree in trained.items():
                ckpt.check_shapes(variables[collection].get(branch, {}), tree,
                                  f"the trained {branch} branch ({collection})")
                variables[collection][branch] = tree
    frozen = tuple(branch_variables or ()) if config.model.get("freeze_branches", False) else ()
    tx = make_optimizer(config, steps_per_epoch=budget.steps_per_epoch, total_steps=budget.total_steps,
                        frozen=frozen)
    state = create_train_state(model, sample, variables=variables, tx=tx)

    checkpoints = ckpt.StageCheckpoints(stage_dir)
    meta = {"step": 0, "best_metric": -math.inf, "best_step": -1, "evals_without_improvement": 0}
    prepare = BatchPreparer(config, getattr(source, "layout", None))
    state = prepare.place_state(state)  # before restoring: every process restores its own replicas
    try:
        restored = checkpoints.restore_latest(state)
    except ckpt.CheckpointMismatchError:
        checkpoints.close()
        raise
    if restored is not None:
        state, meta = restored
        logging.info("stage %s: resuming from step %d", stage, meta["step"])
    writer = metric_writers.create_default_writer(str(stage_dir), just_logging=jax.process_index() > 0)
    writer.write_hparams(hparams(config) | {"stage": stage, "stage_model": model_name})
    train_step, eval_step = make_train_step(model), make_eval_step(model)
    rng = jax.random.key(config.seed)
    if prepare.mesh is not None:
        rng = sharding.replicate(rng, prepare.mesh)
    step = first_step = int(meta["step"])
    total, prefetch = budget.total_steps, int(config.get("prefetch", 2))
    report = periodic_actions.ReportProgress(num_train_steps=total, writer=writer, every_steps=config.log_every,
                                             every_secs=None)
    actions = [report]
    if config.get("profile", False):
        actions.append(periodic_actions.Profile(logdir=str(stage_dir), num_profile_steps=5,
                                                first_profile=first_step + 10))
    pending: list[dict] = []
    window = SpeedWindow()
    logging.info("stage %s (%s): at most %d steps (%.4g epochs of %d steps), batch %d, validation every %d steps%s",
                 stage, model_name, total, budget.epoch(total), budget.steps_per_epoch, config.batch_size,
                 budget.eval_every, f", branches {list(frozen)} frozen" if frozen else "")
    # The source's iterator (and its tf.data threads) starts in the prefetch thread, at
    # the lower priority ``prefetch_nice`` gives it (hmaf.training.data) where the step
    # runs on the same CPU cores; an accelerator's host threads keep their priority.
    nice = int(config.get("prefetch_nice", 0)) if jax.default_backend() == "cpu" else 0
    batches = Prefetch(functools.partial(source.train_batches, start_step=step), prepare, prefetch, nice=nice)
    try:
        while step < total and meta["evals_without_improvement"] < config.patience:
            batch = next(batches)
            if step == first_step:
                logging.info("compiling the train step (first step of this run)...")
                compile_start = time.perf_counter()
            state, metrics = train_step(state, batch, rng)
            if step == first_step:
                jax.block_until_ready(metrics["loss"])
                logging.info("train step compiled and ran in %.1f s", time.perf_counter() - compile_start)
                window.reset()
            else:
                window.examples += len(batch["label"])
            pending.append(metrics)
            step += 1
            for action in actions:
                action(step)
            if step % config.log_every == 0 or step == total:
                host = jax.tree.map(sharding.to_host, pending)
                pending = []
                losses = np.array([m["loss"] for m in host])
                if not np.all(np.isfinite(losses)):
                    raise NonFiniteLossError(
                        f"stage {stage}: loss became {losses[~np.isfinite(losses)][0]} by step {step}; "
                        f"stopping (try a lower learning_rate; the last good checkpoint is in {stage_dir})")
                means = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
                speed, cpu_ms = window.read()
                eta = (total - step) * config.batch_size / speed if speed == speed and speed > 0 else 0.0
                logging.info("[%s] epoch %.2f/%.4g step %d/%d | loss %.4f | acc %.3f | %.1f examples/s | ETA %s "
                             "(budget)", stage, budget.epoch(step), budget.epoch(total), step, total,
                             means["loss"], means["accuracy"], speed, _format_eta(eta))
                writer.write_scalars(step, {f"train/{k}": v for k, v in means.items()}
                                     | {"train/examples_per_s": speed, "train/cpu_ms_per_example": cpu_ms,
                                        "train/epoch": budget.epoch(step)})
                window.reset()
            if step % budget.eval_every == 0 or step == total:
                # With ema_epochs > 0 the parameters' moving average is validated and kept.
                average = ema_params(state.opt_state)
                variables = {"params": state.params if average is None else average,
                             "batch_stats": state.batch_stats}
                with report.timed("eval"):
                    val = evaluate(model, variables, source.eval_batches("validation"), num_classes, label_names,
                                   eval_step, prepare.for_eval, prefetch)
                metric = val[config.select_metric]
                writer.write_scalars(step, {f"validation/{k}": val[k] for k in ("wa", "ua", "weighted_f1")})
                improved = metric > meta["best_metric"]
                meta = {"step": step, "best_metric": max(metric, meta["best_metric"]),
                        "best_step": step if improved else meta["best_step"],
                        "evals_without_improvement": 0 if improved else meta["evals_without_improvement"] + 1}
                logging.info("[%s] epoch %.2f step %d validation: WA %.4f UA %.4f F1 %.4f%s", stage,
                             budget.epoch(step), step, val["wa"], val["ua"], val["weighted_f1"],
                             " (best)" if improved else "")
                if improved:
                    checkpoints.save_best(step, prepare.for_checkpoint(variables), spec, config.to_dict())
                checkpoints.save_latest(step, prepare.for_checkpoint(state), meta)
                window.reset()  # evaluation is not training speed
    finally:
        batches.close()
    writer.flush()
    best = checkpoints.restore_best_variables({"params": state.params, "batch_stats": state.batch_stats})
    checkpoints.close()
    outputs = {split: predict_outputs(model, best, source.eval_batches(split), eval_step, prepare.for_eval,
                                      prefetch)
               for split in SPLITS}
    results = {split: classification_metrics(o["labels"], o["logits"].argmax(-1), num_classes, label_names)
               for split, o in outputs.items()}
    calibration = calibrate_stage(config, outputs, stage_dir)
    logging.info("stage %s calibration on validation: temperature %.3f, ECE %.4f -> %.4f, NLL %.4f -> %.4f; "
                 "unfamiliar input (%s score) flagged on %s of the test split", stage, calibration["temperature"],
                 calibration["ece_before"], calibration["ece_after"], calibration["nll_before"],
                 calibration["nll_after"], calibration["unfamiliar"]["score"],
                 f"{100 * calibration['test']['unfamiliar_rate']:.1f}%" if "test" in calibration else "n/a")
    stopped_by = "early_stopping" if meta["evals_without_improvement"] >= config.patience else "budget"
    results.update(best_step=meta["best_step"], steps_trained=step, model=model_name, stopped_by=stopped_by,
                   steps_per_epoch=budget.steps_per_epoch, epochs_trained=budget.epoch(step),
                   best_epoch=budget.epoch(meta["best_step"]), budget_steps=total)
    for split in SPLITS:
        writer.write_scalars(meta["best_step"], {f"best/{split}/{k}": results[split][k]
                                                 for k in ("wa", "ua", "weighted_f1")})
    writer.close()
    if distributed.is_primary():
        _write_json(done, results)
    logging.info("stage %s done after %.2f epochs (%d steps, stopped by %s): best epoch %.2f (step %d), "
                 "test WA %.4f UA %.4f F1 %.4f", stage, budget.epoch(step), step, stopped_by.replace("_", " "),
                 budget.epoch(meta["best_step"]), meta["best_step"], results["test"]["wa"], results["test"]["ua"],
                 results["test"]["weighted_f1"])
    return results


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       source: DataSource | None = None) -> dict:
    """Runs the stages of ``config`` (all, or only ``config.stage``) and writes
    ``workdir/metrics.json`` with each stage's metrics and the final model's."""
    score = config.get("unfamiliar_score", DEFAULT_SCORE)
    if score not in SCORES:  # before training, not after it
        raise ValueError(f"config.unfamiliar_score={score!r}; choose one of {SCORES}")
    distributed.initialize(config)  # several processes: join the job before any device is used
    primary = distributed.is_primary()  # files every process would write alike: process 0 only
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if primary:
        _write_json(workdir / "config.json", config.to_dict())
    if source is None:
        from hmaf.data.source import from_config  # the data pipeline imports TensorFlow
        # Sharded over devices, BatchPreparer packs each device's rows: the source packs nothing.
        sharded = config.get("data_parallel", False) or jax.process_count() > 1
        source = from_config(config, pack=False if sharded else None)
    data_dir = getattr(source, "data_dir", None)
    if data_dir and primary:  # inference needs the corpus's vocabulary and labels beside the checkpoints
        (workdir / "corpus").mkdir(exist_ok=True)
        for name in CORPUS_FILES:
            shutil.copyfile(Path(data_dir) / name, workdir / "corpus" / name)
        layout = getattr(source, "layout", None)
        if layout is not None:  # inference shapes its batches as training did
            from hmaf.data.layout import LAYOUT_FILE
            layout = dataclasses.replace(layout, pack=bool(config.get("pack_frames", False)))
            _write_json(workdir / "corpus" / LAYOUT_FILE, layout.to_dict())
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
                    with ckpt.StageCheckpoints(branches_dir / branch) as branch_checkpoints:
                        variables = branch_checkpoints.restore_best_variables()
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
    if primary:
        _write_json(workdir / "metrics.json", results)
    return results
