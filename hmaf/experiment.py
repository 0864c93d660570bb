"""The paper's protocol as one command: k-fold CV x seeds over every model, Tables 1-3,
paired tests, and the generalisation report.

``python -m hmaf.experiment --config configs/experiments/<name>.py [--workdir W]``

A *run* is one split of the corpus with one seed (``config.seeds``, e.g. "0,1,2").
For each of ``num_folds`` speaker-independent folds (each fold: 20% of the speakers
for test, 20% of the rest for validation, §4.3) and each seed, the text and audio
branches are trained once (``text_only``, ``audio_only``) and every fusion model of
the list starts from them (staged training). After training, each model's best
checkpoint predicts the run's test split (``predictions.jsonl``), which the paired
tests and the by-kind breakdown read. Layout of ``W``::

    W/fold<k>/seed<s>/text_only/    text branch (stage ``text``), the T row of Table 2
    W/fold<k>/seed<s>/audio_only/   audio branch (stage ``audio``), the A row
    W/fold<k>/seed<s>/branches/     links to both stages, the ``branches_dir`` of the fusions
    W/fold<k>/seed<s>/<model>/      a fusion model (stage ``fusion``); ``cross_eval.json``
                                    holds its Table 3 evaluation when the config names one
    W/loeo/<train>_to_<test>/seed<s>/<model>/         leave-one-engine-out runs
    W/heldout_sentences/fold<k>/seed<s>/<model>/      held-out sentence runs
    W/splits/*.json                 the split files (ids) of those views
    W/results.json, W/results.md    mean ± std over runs, the tables, the paired tests,
                                    the generalisation report
    W/generalisation.json           every view of config.generalisation.views

Every model directory is a complete workdir (``hmaf.predict --workdir``). A finished
model (its ``metrics.json``) is skipped on rerun; an interrupted one resumes from its
latest checkpoint, so a killed experiment continues where it stopped.

Under ``jax.distributed`` (``--config.train.distributed.*``, as for ``hmaf.train``)
every process runs the same experiment: each trains on its share of every global
batch, predicts the test split itself (the same rows in every process), and only
process 0 writes the files every process would write alike (split files, records,
predictions, reports); the others wait for the split files before they read them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from hmaf.analysis import generalisation
from hmaf.analysis import paper as paper_lib
from hmaf.analysis import splits as splits_lib
from hmaf.analysis import tables
from hmaf.io import atomic_write_text
from hmaf.training import distributed

BRANCH_MODELS = {"text_only": "text", "audio_only": "audio"}
SPLIT = "test"
IN_SPLIT = "in_split"


@dataclasses.dataclass(frozen=True)
class Run:
    """One split of the corpus with one seed: every model of the view trains on it.

    ``split_file`` (ids of train/validation/test) is given to training through
    ``data.split_mode="ids"``; empty for in-split runs, which use the config's folds or
    manifest splits.
    """

    view: str
    setting: str
    name: str
    fold: int
    seed: int
    directory: Path
    models: tuple[str, ...]
    split_file: str = ""


def _int_list(spec: str, field: str) -> list[int]:
    try:
        return [int(v) for v in str(spec).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"config.{field}={spec!r} is not a comma-separated list of integers") from None


def seeds(config: ml_collections.ConfigDict) -> list[int]:
    """The seeds to run: ``config.seeds`` ("0,1,2"), else ``config.train.seed``."""
    return _int_list(config.get("seeds", ""), "seeds") or [int(config.train.seed)]


def fold_ids(config: ml_collections.ConfigDict) -> list[int]:
    """The folds to run: ``config.folds`` ("0,2") or all ``num_folds``; one (0) when the
    corpus's own manifest splits are used."""
    if config.train.data.split_mode == "manifest":
        return [0]
    if config.folds:
        folds = _int_list(config.folds, "folds")
        bad = [f for f in folds if not 0 <= f < config.num_folds]
        if bad:
            raise ValueError(f"config.folds={config.folds!r}: folds {bad} are outside [0, {config.num_folds})")
        return folds
    return list(range(config.num_folds))


def in_split_runs(config: ml_collections.ConfigDict, workdir: Path) -> list[Run]:
    """Every (fold, seed) pair of the config's own splits."""
    setting = "manifest splits" if config.train.data.split_mode == "manifest" else f"{config.num_folds} speaker folds"
    return [Run(IN_SPLIT, setting, f"fold{fold}-seed{seed}", fold, seed, workdir / f"fold{fold}" / f"seed{seed}",
                tuple(config.models))
            for fold in fold_ids(config) for seed in seeds(config)]


def training_order(models: list[str], staged: bool) -> list[str]:
    """Branch models first: every staged fusion model starts from them."""
    unknown = [m for m in models if m not in tables.MODEL_ORDER]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {list(tables.MODEL_ORDER)}")
    needs_branches = staged and any(m not in BRANCH_MODELS for m in models)
    branches = [m for m in BRANCH_MODELS if m in models or needs_branches]
    return branches + [m for m in tables.MODEL_ORDER if m in models and m not in BRANCH_MODELS]


def model_config(config: ml_collections.ConfigDict, model: str, run: Run) -> ml_collections.ConfigDict:
    """The training config of one model in one run."""
    train = ml_collections.ConfigDict(config.train.to_dict())
    train.model.name = model
    train.seed = run.seed
    train.data.fold = run.fold
    train.data.num_folds = config.num_folds
    if train.data.source == "corpus":
        # Every model's saved config carries the run's padding, so that hmaf.evaluate and
        # hmaf.predict rebuild the batch shapes it was trained on (the run's one source
        # is built from the first model's config).
        train.data.update(config.source.to_dict())
    if run.split_file:
        train.data.split_mode = "ids"
        train.data.split_file = run.split_file
    train.stage = "all"
    if model in BRANCH_MODELS:
        train.num_train_steps = config.branch_train_steps
        train.branches_dir = ""
    else:
        train.num_train_steps = config.fusion_train_steps
        train.branches_dir = str(run.directory / "branches") if train.staged else ""
    return train


def _link_branches(run_dir: Path) -> None:
    """``run/branches/{text,audio}`` -> the branch models' stages (relative links, so a
    moved experiment directory keeps working)."""
    branches = run_dir / "branches"
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


def _split_metrics(metrics: dict, split: str) -> dict:
    return {k: metrics["final"][split][k] for k in tables.METRICS}


def make_source(train: ml_collections.ConfigDict, options: ml_collections.ConfigDict):
    """The fold's data source, from :func:`hmaf.data.source.from_config` (the one seam
    of training, evaluation and inference). ``options`` (config.source: the pipeline's
    padding, e.g. one padded shape for the whole corpus) are written into
    ``train.data``, so that the config saved with each checkpoint rebuilds the same
    batches in ``hmaf.evaluate`` and ``hmaf.predict``."""
    import jax

    from hmaf.data.source import from_config

    if train.data.source == "corpus":
        train.data.update(options.to_dict())
    # Sharded over devices, the trainer packs each device's rows itself (as hmaf.train).
    sharded = train.get("data_parallel", False) or jax.process_count() > 1
    return from_config(train, pack=False if sharded else None)


def predict_test_split(model_dir: Path, source) -> list[dict]:
    """Per-example predictions of ``model_dir``'s best checkpoint on ``source``'s test
    split: ``{"id", "label", "predicted", "probabilities": {class: p}}`` (softmax of the
    logits, no temperature), in the source's test order; with the stage's calibration
    also ``"unfamiliar"`` (the flag of its chosen score, :mod:`hmaf.unfamiliar`),
    ``"unfamiliar_score"`` (that score) and ``"unfamiliar_flags"`` ``{score: flag}`` of
    every fitted score. Restores the checkpoint with :func:`hmaf.checkpoint.load` and runs
    the shared eval step on the run's own batches (:func:`hmaf.data.source.from_config`:
    the shapes training compiled)."""
    from hmaf import checkpoint
    from hmaf.calibration import CALIBRATION_FILE
    from hmaf.eval_step import make_eval_step, model_inputs
    from hmaf.unfamiliar import Features, UnfamiliarDetector, input_statistics

    model, variables, _ = checkpoint.load(model_dir)
    calibration_path = checkpoint.find_stage_dir(model_dir) / CALIBRATION_FILE
    detector = (UnfamiliarDetector.load(json.loads(calibration_path.read_text()), calibration_path.parent)
                if calibration_path.exists() else None)
    info = source.info
    label_names = list(info["label_names"] if isinstance(info, dict) else info.label_names)
    eval_step = make_eval_step(model)
    rows = []
    for batch in source.eval_batches(SPLIT):
        out = eval_step(variables, model_inputs(batch))
        probs = np.asarray(out["probs"], np.float64)
        flags: dict[str, np.ndarray] = {}
        if detector is not None:
            features = Features(np.asarray(out["logits"]), np.asarray(out["representation"]),
                                input_statistics(batch["frames"], batch["frame_mask"], batch["word_mask"]))
            scores, flags = detector.scores(features), detector.flags(features)
        for i, (utt_id, label, p) in enumerate(zip(batch["utt_id"], np.asarray(batch["label"]), probs)):
            row = generalisation.prediction_row(utt_id, label_names[int(label)], p, label_names)
            if detector is not None:
                row.update(unfamiliar=bool(flags[detector.score][i]),
                           unfamiliar_score=round(float(scores[detector.score][i]), 6),
                           unfamiliar_kind=detector.score,
                           unfamiliar_flags={k: bool(v[i]) for k, v in flags.items()})
            rows.append(row)
    return rows


def _temperature(model_dir: Path) -> float | None:
    """The temperature fitted on validation for the model's last stage, or None."""
    from hmaf import checkpoint
    from hmaf.calibration import CALIBRATION_FILE

    path = checkpoint.find_stage_dir(model_dir) / CALIBRATION_FILE
    return float(json.loads(path.read_text())["temperature"]) if path.exists() else None


def pooled_calibration(runs: list[tuple[list[dict], float | None]]) -> dict | None:
    """ECE (15 bins) and NLL of the test predictions of every run put together, before
    and after each run's own temperature: one test split of 128 utterances is too small
    for a 15-bin ECE (its sampling noise alone is several points), folds x seeds are
    not. ``runs``: (prediction rows, temperature) per run; runs without a temperature
    are left out. Returns None when no run has one."""
    from hmaf.calibration import expected_calibration_error, negative_log_likelihood, softmax

    logits, temperatures, labels = [], [], []
    for rows, temperature in runs:
        if temperature is None or not rows:
            continue
        names = list(rows[0]["probabilities"])
        log_p = np.log(np.maximum([[r["probabilities"][n] for n in names] for r in rows], 1e-12))
        logits.append(log_p)  # log softmax: the logits up to a constant per row
        temperatures.append(np.full((len(rows), 1), temperature))
        labels.append([names.index(r["label"]) for r in rows])
    if not logits:
        return None
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    scaled = logits / np.concatenate(temperatures)  # each run at its own temperature
    return {"runs": len(temperatures), "examples": int(len(labels)),
            "ece_before": expected_calibration_error(softmax(logits), labels),
            "ece_after": expected_calibration_error(softmax(scaled), labels),
            "nll_before": negative_log_likelihood(logits, labels),
            "nll_after": negative_log_likelihood(scaled, labels)}


def _read_predictions(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_models(config: ml_collections.ConfigDict, run: Run) -> dict[str, dict]:
    """Trains (or skips, or resumes) every model of one run and predicts its test split;
    returns ``{model: {"test", "validation", "seconds", "cross", "stages", "predictions"}}``
    (branch models trained for the fusions included)."""
    from hmaf.training.trainer import train_and_evaluate

    run.directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(Path(run.split_file).read_bytes()).hexdigest() if run.split_file else ""
    source = None
    results: dict[str, dict] = {}
    for model in training_order(list(run.models), config.train.staged):
        model_dir = run.directory / model
        record_path = model_dir / "experiment.json"
        predictions_path = model_dir / "predictions.jsonl"
        train = model_config(config, model, run)
        metrics = _finished(model_dir)
        if metrics is not None and record_path.exists() and \
                json.loads(record_path.read_text()).get("split_sha256", "") != digest:
            # A split file is regenerated from utterances.jsonl on every run: a rebuilt
            # corpus changes it, and a model trained on the old split must not be reported.
            raise ValueError(f"{model_dir} was trained on another version of {run.split_file} (was the corpus "
                             f"rebuilt?); remove {run.directory} or use a new workdir")
        if source is None and (metrics is None or not predictions_path.exists()):
            source = make_source(train, config.source)  # one per run: its record index is built once
        if metrics is None:
            if train.branches_dir:
                _link_branches(run.directory)
            logging.info("%s %s: training %s in %s", run.view, run.name, model, model_dir)
            start = time.perf_counter()
            metrics = train_and_evaluate(train, model_dir, source)
            record = {"seconds": time.perf_counter() - start, "fold": run.fold, "seed": run.seed,
                      "split_file": run.split_file, "split_sha256": digest}
            if distributed.is_primary():
                atomic_write_text(record_path, json.dumps(record))
        else:
            logging.info("%s %s: %s already finished, skipping", run.view, run.name, model)
            record = json.loads(record_path.read_text()) if record_path.exists() else {}
        if predictions_path.exists():
            rows = _read_predictions(predictions_path)
        else:  # every process predicts (same rows); process 0 writes them
            rows = predict_test_split(model_dir, source)
            if distributed.is_primary():
                atomic_write_text(predictions_path, "".join(json.dumps(r) + "\n" for r in rows))
        cross = None
        if run.view == IN_SPLIT and config.cross.data and model in config.models:
            cross = cross_evaluate(config, model_dir)
        own_stage = BRANCH_MODELS.get(model, "fusion")
        results[model] = {"test": _split_metrics(metrics, SPLIT), "validation": _split_metrics(metrics, "validation"),
                          "seconds": record.get("seconds"), "cross": cross,
                          "stages": {k: v for k, v in generalisation.stage_info(metrics).items() if k == own_stage},
                          "temperature": _temperature(model_dir),
                          "predictions": rows}
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
    if distributed.is_primary():
        atomic_write_text(path, json.dumps(result, indent=2))
    return result


def _corpus_ids(data_dir: str) -> set[str]:
    """The utterance ids of the prepared corpus's records (one header pass)."""
    from hmaf.data import pipeline
    from hmaf.data.source import DatasetInfo

    info = DatasetInfo.load(data_dir)
    return set(pipeline.scan([str(Path(data_dir) / "records" / name) for name in info.shards]).utt_id.tolist())


@dataclasses.dataclass
class Plan:
    """The runs of the generalisation views, the kinds for ``by_kind``, and what the
    report says about views the corpus cannot support."""

    runs: list[Run]
    kinds: dict[str, str]
    notes: dict[str, list[str]]


def plan_generalisation(config: ml_collections.ConfigDict, workdir: Path) -> Plan:
    """Reads ``utterances.jsonl``, writes the split files of the held-out views to
    ``W/splits/`` and lists their runs (every split x ``generalisation.seeds``)."""
    options = config.generalisation
    views = generalisation.parse_views(options.views)
    notes: dict[str, list[str]] = {view: [] for view in views if view != IN_SPLIT}
    plan = Plan([], {}, notes)
    if not notes:
        return plan
    data_dir = config.train.data.dir
    path = Path(options.utterances or Path(data_dir) / "utterances.jsonl")
    if not path.exists():
        for view in notes:
            notes[view].append(f"the corpus has no `{path}` (engines, sentences, kinds); view skipped")
        return plan
    rows, dropped = splits_lib.keep_known(splits_lib.read_utterances(path), _corpus_ids(data_dir))
    if dropped:
        logging.warning("%d utterances of %s have no record in %s (rejected at prepare): left out", dropped, path,
                        data_dir)
    models = tuple(m.strip() for m in options.models.split(",") if m.strip()) if options.models else tuple(config.models)
    run_seeds = _int_list(options.seeds, "generalisation.seeds") or seeds(config)
    fold_seed = int(options.fold_seed)

    def add_runs(view: str, setting: str, key: str, fold: int, directory: Path, split: dict) -> None:
        split_path = workdir / "splits" / f"{key}.json"
        if distributed.is_primary():  # the others read it after run_experiment's barrier
            splits_lib.write_split(split_path, split)
        for seed in run_seeds:
            name = f"fold{fold}-seed{seed}" if view == "heldout_sentences" else f"seed{seed}"
            plan.runs.append(Run(view, setting, name, fold, seed, directory / f"seed{seed}", models,
                                 str(split_path.absolute())))

    if "loeo" in views:
        found, view_notes = splits_lib.loeo_splits(rows, val_share=options.val_share, seed=fold_seed)
        notes["loeo"] += view_notes
        for direction, split in found.items():
            add_runs("loeo", direction.replace("_to_", " → "), f"loeo-{direction}", 0,
                     workdir / "loeo" / direction, split)
    if "heldout_sentences" in views:
        found, view_notes = splits_lib.heldout_sentence_splits(
            rows, num_folds=options.sentence_folds, seed=fold_seed, val_share=options.val_share,
            disjoint_speakers=options.disjoint_speakers)
        notes["heldout_sentences"] += view_notes
        wanted = _int_list(options.folds, "generalisation.folds") or list(range(len(found)))
        setting = "new sentences, new speakers" if options.disjoint_speakers else "new sentences"
        for fold in wanted:
            if fold < len(found):
                add_runs("heldout_sentences", setting, f"heldout_sentences-fold{fold}", fold,
                         workdir / "heldout_sentences" / f"fold{fold}", found[fold])
    if "by_kind" in views:
        plan.kinds = splits_lib.kinds_of(rows)
        if not plan.kinds:
            notes["by_kind"].append("utterances.jsonl has no `kind` field (only the embedded corpus has one); "
                                    "view skipped")
    return plan


def _public(results: dict[str, dict]) -> dict[str, dict]:
    """A run's results without the per-example predictions (they stay in predictions.jsonl)."""
    return {model: {k: v for k, v in r.items() if k != "predictions"} for model, r in results.items()}


def summarize(config: ml_collections.ConfigDict, per_run: dict[str, dict[str, dict]]) -> dict:
    """Mean ± std over runs (folds x seeds) of each requested model (test split, and
    Table 3), and the in-split paired comparisons."""
    out: dict[str, Any] = {"name": config.name, "folds": fold_ids(config), "seeds": seeds(config),
                           "runs": sorted(per_run), "models": {}, "cross": {}}
    for model in config.models:
        runs = {k: r[model]["test"] for k, r in per_run.items() if model in r}
        if not runs:
            continue
        out["models"][model] = tables.summarize(runs) | {
            "per_run": runs, "seconds": {k: per_run[k][model]["seconds"] for k in runs}}
        pooled = pooled_calibration([(per_run[k][model]["predictions"], per_run[k][model].get("temperature"))
                                     for k in runs])
        if pooled:
            out["models"][model]["calibration"] = pooled
        cross = {k: per_run[k][model]["cross"] for k in runs if per_run[k][model]["cross"]}
        if cross:
            out["cross"][model] = tables.summarize(cross) | {"per_run": {
                k: {m: v[m] for m in tables.METRICS} for k, v in cross.items()}}
    return out


def assemble_generalisation(config: ml_collections.ConfigDict, results: dict, plan: Plan) -> dict:
    """``generalisation.json`` from ``results[view][setting][run][model]``."""
    results = dict(results)
    notes = dict(plan.notes)
    if "by_kind" in notes and plan.kinds and results.get(IN_SPLIT):
        label_names = json.loads((Path(config.train.data.dir) / "dataset.json").read_text())["label_names"]
        in_split = next(iter(results[IN_SPLIT].values()))
        results["by_kind"] = generalisation.by_kind(in_split, plan.kinds, label_names)
    models = list(dict.fromkeys(list(config.models) + [m.strip() for m in config.generalisation.models.split(",")
                                                       if m.strip()]))
    return generalisation.assemble(results, models, notes=notes,
                                   comparisons=generalisation.parse_comparisons(config.comparisons),
                                   select_metric=config.train.select_metric,
                                   resamples=config.bootstrap.resamples, seed=config.bootstrap.seed)


def report(config: ml_collections.ConfigDict, summary: dict, general: dict | None = None,
           elapsed_s: float | None = None) -> str:
    """The markdown of ``results.md``: Table 1 and Table 2 shapes (and Table 3 when a
    cross-corpus evaluation ran), paper numbers beside ours where the corpus is the same,
    then the generalisation report (paired tests, views, epochs per stage)."""
    folds, run_seeds = summary["folds"], summary["seeds"]
    splits = (f"{len(folds)} fold(s) {folds} of {config.num_folds}" if config.train.data.split_mode == "folds"
              else "the corpus's manifest splits")
    lines = [f"# Experiment `{config.name}`", "",
             f"Corpus `{config.train.data.dir}`; {splits} × {len(run_seeds)} seed(s) {run_seeds} = "
             f"{len(summary['runs'])} run(s); test split; mean ± sample std over the n runs.", ""]
    paper = paper_lib.reference(config.paper)
    models = summary["models"]
    if models:
        lines += ["## Fusion strategies (Table 1)", "", tables.fusion_table(models, paper), ""]
    if any(m in models for _, m in tables.MODALITIES):
        lines += ["## Modalities (Table 2)", "", tables.modality_table(models, paper), ""]
    calibrated = [m for m in tables.ordered(list(models)) if "calibration" in models[m]]
    if calibrated:
        lines += ["## Calibration (test predictions of all runs pooled; ours)", "",
                  "| model | runs | examples | ECE before → after temperature | NLL before → after |",
                  "|---|---|---|---|---|"]
        for m in calibrated:
            c = models[m]["calibration"]
            lines.append(f"| {tables.DISPLAY.get(m, m)} | {c['runs']} | {c['examples']} | "
                         f"{c['ece_before']:.3f} → {c['ece_after']:.3f} | {c['nll_before']:.3f} → {c['nll_after']:.3f} |")
        lines.append("")
    if summary["cross"]:
        cross_paper = paper_lib.reference(config.cross.paper, table=3)
        lines += [f"## Generalisation to `{config.cross.data}` (Table 3)", "",
                  tables.generalization_table(summary["cross"], cross_paper), ""]
    if general:
        lines += [generalisation.report(general), ""]
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


def _write_reports(config, workdir: Path, results: dict, plan: Plan, elapsed_s: float | None = None) -> dict:
    in_split = next(iter(results.get(IN_SPLIT, {}).values()), {})
    summary = summarize(config, in_split)
    general = assemble_generalisation(config, results, plan)
    summary["comparisons"] = general["views"].get(IN_SPLIT, {}).get("comparisons", {})
    if elapsed_s is not None:
        summary["elapsed_s"] = elapsed_s
    if not distributed.is_primary():
        return summary
    public = {view: {setting: {run: _public(r) for run, r in runs.items()} for setting, runs in settings.items()}
              for view, settings in results.items()}
    atomic_write_text(workdir / "generalisation.json", json.dumps(general | {"results": public}, indent=2))
    atomic_write_text(workdir / "results.json", json.dumps(summary, indent=2))
    atomic_write_text(workdir / "results.md", report(config, summary, general, elapsed_s))
    return summary


def run_experiment(config: ml_collections.ConfigDict, workdir: str | os.PathLike | None = None) -> dict:
    """Runs (or resumes) the whole experiment; writes and returns ``results.json``."""
    workdir = Path(workdir or config.workdir)
    check_corpus(config)
    several = distributed.initialize(config.train)  # join the job before any device is used
    if config.compilation_cache:
        # Every fold compiles the same programs (same model, same padded shapes): a
        # persistent cache makes that a one-time cost, also across reruns.
        import jax

        jax.config.update("jax_compilation_cache_dir", os.path.abspath(config.compilation_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    workdir.mkdir(parents=True, exist_ok=True)
    if distributed.is_primary():
        atomic_write_text(workdir / "experiment_config.json", json.dumps(config.to_dict(), indent=2, sort_keys=True))
    start = time.perf_counter()
    plan = plan_generalisation(config, workdir)
    if several:  # the split files exist (process 0 wrote them) before any process reads them
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("hmaf.experiment: split files written")
    results: dict[str, dict[str, dict[str, dict]]] = {}
    for run in in_split_runs(config, workdir) + plan.runs:
        results.setdefault(run.view, {}).setdefault(run.setting, {})[run.name] = run_models(config, run)
        _write_reports(config, workdir, results, plan)  # partial tables after every run
    return _write_reports(config, workdir, results, plan, time.perf_counter() - start)


def main(argv):
    from absl import app, flags, logging as absl_logging

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    absl_logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
    summary = run_experiment(flags.FLAGS.config, flags.FLAGS.workdir)
    if not distributed.is_primary():  # process 0 wrote the reports
        return
    workdir = Path(flags.FLAGS.workdir or flags.FLAGS.config.workdir)
    print((workdir / "results.md").read_text())
    print(f"results: {workdir / 'results.json'}, {workdir / 'generalisation.json'} "
          f"({summary['elapsed_s'] / 60:.1f} min)")


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
