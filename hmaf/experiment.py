"""The paper's protocol as one command: k-fold CV over every model, Tables 1-3.

``python -m hmaf.experiment --config configs/experiments/<name>.py [--workdir W]``

For each of ``num_folds`` speaker-independent folds (each fold: 20% of the speakers
for test, 20% of the rest for validation, §4.3) the text and audio branches are
trained once (``text_only``, ``audio_only``) and every fusion model of the list
starts from them (staged training). Layout of ``W``::

    W/fold<k>/text_only/    text branch (stage ``text``), the T row of Table 2
    W/fold<k>/audio_only/   audio branch (stage ``audio``), the A row
    W/fold<k>/branches/     links to both stages, the ``branches_dir`` of the fusions
    W/fold<k>/<model>/      a fusion model (stage ``fusion``); ``cross_eval.json``
                            holds its Table 3 evaluation when the config names one
    W/results.json, W/results.md   mean ± std over folds, the tables

Every model directory is a complete workdir (``hmaf.predict --workdir``). A finished
model (its ``metrics.json``) is skipped on rerun; an interrupted one resumes from its
latest checkpoint, so a killed experiment continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import ml_collections

from hmaf.analysis import paper as paper_lib
from hmaf.analysis import tables

BRANCH_MODELS = {"text_only": "text", "audio_only": "audio"}
SPLIT = "test"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def fold_ids(config: ml_collections.ConfigDict) -> list[int]:
    """The folds to run: ``config.folds`` ("0,2") or all ``num_folds``; one (0) when the
    corpus's own manifest splits are used."""
    if config.train.data.split_mode == "manifest":
        return [0]
    if config.folds:
        folds = [int(f) for f in str(config.folds).split(",") if f.strip()]
        bad = [f for f in folds if not 0 <= f < config.num_folds]
        if bad:
            raise ValueError(f"config.folds={config.folds!r}: folds {bad} are outside [0, {config.num_folds})")
        return folds
    return list(range(config.num_folds))


def training_order(models: list[str], staged: bool) -> list[str]:
    """Branch models first: every staged fusion model starts from them."""
    unknown = [m for m in models if m not in tables.MODEL_ORDER]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {list(tables.MODEL_ORDER)}")
    needs_branches = staged and any(m not in BRANCH_MODELS for m in models)
    branches = [m for m in BRANCH_MODELS if m in models or needs_branches]
    return branches + [m for m in tables.MODEL_ORDER if m in models and m not in BRANCH_MODELS]


def model_config(config: ml_collections.ConfigDict, model: str, fold: int, fold_dir: Path) -> ml_collections.ConfigDict:
    """The training config of one model in one fold."""
    train = ml_collections.ConfigDict(config.train.to_dict())
    train.model.name = model
    train.data.fold = fold
    train.data.num_folds = config.num_folds
    train.stage = "all"
    if model in BRANCH_MODELS:
        train.num_train_steps = config.branch_train_steps
        train.branches_dir = ""
    else:
        train.num_train_steps = config.fusion_train_steps
        train.branches_dir = str(fold_dir / "branches") if train.staged else ""
    return train


def _link_branches(fold_dir: Path) -> None:
    """``fold/branches/{text,audio}`` -> the branch models' stages (relative links, so a
    moved experiment directory keeps working)."""
    branches = fold_dir / "branches"
    branches.mkdir(parents=True, exist_ok=True)
    for model, stage in BRANCH_MODELS.items():
        link = branches / stage
        if not link.is_symlink():
            link.symlink_to(Path("..") / model / stage, target_is_directory=True)


def _finished(model_dir: Path) -> dict | None:
    path = model_dir / "metrics.json"
    if not path.exists():
        return None
    metrics = json.loads(path.read_text())
    return metrics if "final" in metrics else None


def _test_metrics(metrics: dict) -> dict:
    stage = [k for k in ("fusion", "text", "audio") if k in metrics][0]
    return {k: metrics[stage][SPLIT][k] for k in tables.METRICS}


class PowerOfTwoEval:
    """Wraps a data source so that no evaluation batch has an odd size: the last, partial
    batch of each shape is cut into power-of-two pieces (7 -> 4 + 2 + 1). The jitted
    eval step then meets batch sizes {B, ..., 4, 2, 1} only, which the persistent
    compilation cache serves in every later fold, instead of a new size per split."""

    def __init__(self, source):
        self._source = source

    def __getattr__(self, name):
        return getattr(self._source, name)

    def eval_batches(self, split: str):
        from hmaf.evaluate import power_of_two_batches

        return power_of_two_batches(self._source.eval_batches(split), self._source.batch_size)


def make_source(train: ml_collections.ConfigDict, options: ml_collections.ConfigDict):
    """The fold's data source, from :func:`hmaf.data.source.from_config` (the one seam
    of training, evaluation and inference). ``options`` (config.source: the pipeline's
    padding, e.g. one padded shape for the whole corpus) are written into
    ``train.data``, so that the config saved with each checkpoint rebuilds the same
    batches in ``hmaf.evaluate`` and ``hmaf.predict``."""
    from hmaf.data.source import from_config

    if train.data.source == "corpus":
        train.data.update(options.to_dict())
    return from_config(train)


def run_fold(config: ml_collections.ConfigDict, workdir: Path, fold: int) -> dict[str, dict]:
    """Trains (or skips, or resumes) every model of one fold; returns
    ``{model: {"test": metrics, "seconds": s, "cross": metrics|None}}``."""
    from hmaf.training.trainer import train_and_evaluate

    fold_dir = workdir / f"fold{fold}"
    fold_dir.mkdir(parents=True, exist_ok=True)
    source = None
    results: dict[str, dict] = {}
    for model in training_order(list(config.models), config.train.staged):
        model_dir = fold_dir / model
        record_path = model_dir / "experiment.json"
        metrics = _finished(model_dir)
        if metrics is None:
            train = model_config(config, model, fold, fold_dir)
            if train.branches_dir:
                _link_branches(fold_dir)
            if source is None:  # one source per fold: its record index is built once
                source = make_source(train, config.source)
            logging.info("fold %d: training %s in %s", fold, model, model_dir)
            start = time.perf_counter()
            metrics = train_and_evaluate(train, model_dir, source)
            _write_atomic(record_path, json.dumps({"seconds": time.perf_counter() - start, "fold": fold}))
        else:
            logging.info("fold %d: %s already finished, skipping", fold, model)
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        cross = None
        if config.cross.data and model in config.models:
            cross = cross_evaluate(config, model_dir)
        results[model] = {"test": _test_metrics(metrics), "seconds": record.get("seconds"), "cross": cross}
    return results


def cross_evaluate(config: ml_collections.ConfigDict, model_dir: Path) -> dict:
    """Table 3: the model of ``model_dir`` on every example of ``config.cross.data``
    (cached in ``cross_eval.json``)."""
    from hmaf import evaluate

    path = model_dir / "cross_eval.json"
    if path.exists():
        return json.loads(path.read_text())
    result = evaluate.evaluate_workdir(model_dir, config.cross.data, split="all",
                                       label_map=evaluate.parse_label_map(config.cross.label_map),
                                       batch_size=config.train.batch_size, **config.source.to_dict())
    _write_atomic(path, json.dumps(result, indent=2))
    return result


def summarize(config: ml_collections.ConfigDict, per_fold: dict[int, dict[str, dict]]) -> dict:
    """Mean ± std over folds of each requested model (test split, and Table 3)."""
    out: dict[str, Any] = {"name": config.name, "folds": sorted(per_fold), "models": {}, "cross": {}}
    for model in config.models:
        folds = {k: r[model]["test"] for k, r in per_fold.items() if model in r}
        if not folds:
            continue
        out["models"][model] = tables.summarize(folds) | {
            "per_fold": folds, "seconds": {k: per_fold[k][model]["seconds"] for k in folds}}
        cross = {k: per_fold[k][model]["cross"] for k in folds if per_fold[k][model]["cross"]}
        if cross:
            out["cross"][model] = tables.summarize(cross) | {"per_fold": {
                k: {m: v[m] for m in tables.METRICS} for k, v in cross.items()}}
    return out


def report(config: ml_collections.ConfigDict, summary: dict, elapsed_s: float | None = None) -> str:
    """The markdown of ``results.md``: Table 1 and Table 2 shapes (and Table 3 when a
    cross-corpus evaluation ran), paper numbers beside ours where the corpus is the same."""
    folds = summary["folds"]
    lines = [f"# Experiment `{config.name}`", "",
             f"Corpus `{config.train.data.dir}`; {len(folds)} fold(s) {folds} of "
             f"{config.num_folds if config.train.data.split_mode == 'folds' else 'manifest splits'}; "
             f"test split; mean ± std over folds.", ""]
    paper = paper_lib.reference(config.paper)
    models = summary["models"]
    if models:
        lines += ["## Fusion strategies (Table 1)", "", tables.fusion_table(models, paper), ""]
    if any(m in models for _, m in tables.MODALITIES):
        lines += ["## Modalities (Table 2)", "", tables.modality_table(models, paper), ""]
    if summary["cross"]:
        cross_paper = paper_lib.reference(config.cross.paper, table=3)
        lines += [f"## Generalisation to `{config.cross.data}` (Table 3)", "",
                  tables.generalization_table(summary["cross"], cross_paper), ""]
    if elapsed_s is not None:
        lines += [f"Wall time of this run: {elapsed_s / 60:.1f} min.", ""]
    return "\n".join(lines)


def check_corpus(config: ml_collections.ConfigDict) -> None:
    """A clear error, with the command that builds it, when the corpus is missing."""
    for data_dir in [config.train.data.dir] + ([config.cross.data] if config.cross.data else []):
        if not (Path(data_dir) / "dataset.json").exists():
            hint = f" Build it with: {config.build_hint}" if config.build_hint else ""
            raise FileNotFoundError(f"experiment {config.name}: no prepared corpus at {data_dir} "
                                    f"(dataset.json missing).{hint}")


def run_experiment(config: ml_collections.ConfigDict, workdir: str | os.PathLike | None = None) -> dict:
    """Runs (or resumes) the whole experiment; writes and returns ``results.json``."""
    workdir = Path(workdir or config.workdir)
    check_corpus(config)
    if config.compilation_cache:
        # Every fold compiles the same programs (same model, same padded shapes): a
        # persistent cache makes that a one-time cost, also across reruns.
        import jax

        jax.config.update("jax_compilation_cache_dir", os.path.abspath(config.compilation_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    workdir.mkdir(parents=True, exist_ok=True)
    _write_atomic(workdir / "experiment_config.json", json.dumps(config.to_dict(), indent=2, sort_keys=True))
    start = time.perf_counter()
    per_fold = {}
    for fold in fold_ids(config):
        per_fold[fold] = run_fold(config, workdir, fold)
        summary = summarize(config, per_fold)  # partial tables after every fold
        _write_atomic(workdir / "results.json", json.dumps(summary, indent=2))
        _write_atomic(workdir / "results.md", report(config, summary))
    elapsed = time.perf_counter() - start
    summary["elapsed_s"] = elapsed
    _write_atomic(workdir / "results.json", json.dumps(summary, indent=2))
    _write_atomic(workdir / "results.md", report(config, summary, elapsed))
    return summary


def main(argv):
    from absl import app, flags, logging as absl_logging

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    absl_logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
    summary = run_experiment(flags.FLAGS.config, flags.FLAGS.workdir)
    workdir = Path(flags.FLAGS.workdir or flags.FLAGS.config.workdir)
    print((workdir / "results.md").read_text())
    print(f"results: {workdir / 'results.json'} ({summary['elapsed_s'] / 60:.1f} min)")


def _define_flags() -> None:
    from absl import flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "Experiment config (configs/experiments/*.py).",
                                    lock_config=True)
    flags.DEFINE_string("workdir", None, "Experiment directory (default: config.workdir).")
    flags.mark_flags_as_required(["config"])


if __name__ == "__main__":
    from absl import app

    sys.path.insert(0, os.getcwd())  # config files import `configs.*`
    _define_flags()
    app.run(main)
