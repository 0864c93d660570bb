"""The generalisation report: every view of an experiment as mean ± std over runs,
paired model comparisons, and how each training stage ended.

A *view* is one way of splitting the corpus (``in_split``: the config's own folds or
manifest splits; ``loeo``: leave one engine out; ``heldout_sentences``; ``by_kind``:
the in-split test predictions broken down by the embedded corpus's design kinds). A
view has *settings* (e.g. the two directions of leave-one-engine-out), a setting has
*runs* (folds x seeds), and a run has one result per model::

    results[view][setting][run][model] = {"test": {wa, ua, weighted_f1},
                                          "validation": {...}, "stages": {...},
                                          "predictions": [rows] | None}

Prediction rows are those of ``predictions.jsonl``: ``{"id", "label", "predicted",
"probabilities"}``, and with a calibrated stage ``"unfamiliar"``, ``"unfamiliar_kind"`` and
``"unfamiliar_flags"`` (:func:`hmaf.experiment.predict_test_split`): each setting reports
how often the unfamiliar-input flag fires on its test split (in-split test: about the
chosen 5 %; another engine: the more the better). Everything here is pure: numbers in,
dicts and markdown out.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from hmaf.analysis import stats, tables
from hmaf.metrics import classification_metrics
from hmaf.unfamiliar import SCORES as UNFAMILIAR_SCORES

VIEWS = ("in_split", "loeo", "heldout_sentences", "by_kind")
VIEW_TITLES = {"in_split": "In-split test", "loeo": "Leave one engine out",
               "heldout_sentences": "Held-out sentences", "by_kind": "In-split test by kind"}
BRANCHES = ("text_only", "audio_only")
STAGE_FIELDS = ("epochs_trained", "stopped_by", "best_step", "steps_trained")
BEST_BRANCH = "best_branch"
STAGES = ("text", "audio", "fusion")
KINDS = ("ambiguous", "delivery", "text", "both")  # the embedded corpus's design, report order


def parse_views(spec: str) -> list[str]:
    """``"in_split,loeo"`` -> the views in report order; unknown names raise."""
    views = [v.strip() for v in str(spec).split(",") if v.strip()]
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise ValueError(f"unknown generalisation views {unknown}; choose from {list(VIEWS)}")
    return [v for v in VIEWS if v in views]


def parse_comparisons(spec: str) -> list[tuple[str, str]]:
    """``"faf:ul_fusion,faf:best_branch"`` -> ``[("faf", "ul_fusion"), ("faf", "best_branch")]``."""
    pairs = []
    for item in str(spec).split(","):
        if not item.strip():
            continue
        if item.count(":") != 1:
            raise ValueError(f"comparison {item!r} is not model_a:model_b")
        a, b = (s.strip() for s in item.split(":"))
        for name in (a, b):
            if name not in tables.MODEL_ORDER and name != BEST_BRANCH:
                raise ValueError(f"comparison {item!r}: unknown model {name!r}")
        pairs.append((a, b))
    return pairs


def stage_info(metrics: Mapping) -> dict[str, dict]:
    """``{stage: {"epochs_trained", "stopped_by", "best_step", "steps_trained"}}`` of a
    model's ``metrics.json`` (None where the trainer did not record them)."""
    out = {}
    for stage in STAGES:
        if isinstance(metrics.get(stage), Mapping):
            out[stage] = {key: metrics[stage].get(key) for key in STAGE_FIELDS}
    return out


def prediction_row(utt_id: str | bytes, label: str, probabilities: np.ndarray,
                   label_names: Sequence[str]) -> dict:
    """One row of a predictions file (``hmaf.experiment``'s ``predictions.jsonl``,
    ``hmaf.evaluate --predictions``): ``id``, ``label``, ``predicted`` (the most probable of
    ``label_names``) and ``probabilities`` ``{class: p}`` (``probabilities`` ``[C]``)."""
    return {"id": utt_id.decode() if isinstance(utt_id, bytes) else str(utt_id), "label": label,
            "predicted": label_names[int(np.argmax(probabilities))],
            "probabilities": {name: round(float(v), 6) for name, v in zip(label_names, probabilities)}}


def correctness(rows: Sequence[Mapping]) -> dict[str, bool]:
    """``id -> predicted == label`` of prediction rows."""
    return {str(r["id"]): r["predicted"] == r["label"] for r in rows}


def kind_metrics(rows: Sequence[Mapping], kinds: Mapping[str, str], label_names: Sequence[str]) -> dict[str, dict]:
    """WA / UA / weighted F1 of prediction rows per design kind (rows without a kind are
    left out); ``examples`` says how many each kind had."""
    index = {name: i for i, name in enumerate(label_names)}
    out = {}
    found = {kinds[str(r["id"])] for r in rows if str(r["id"]) in kinds}
    for kind in [k for k in KINDS if k in found] + sorted(found - set(KINDS)):
        chosen = [r for r in rows if kinds.get(str(r["id"])) == kind]
        labels = np.array([index[r["label"]] for r in chosen])
        predicted = np.array([index[r["predicted"]] for r in chosen])
        result = classification_metrics(labels, predicted, len(label_names), label_names)
        out[kind] = {k: result[k] for k in tables.METRICS} | {"examples": len(chosen)}
    return out


def by_kind(setting_runs: Mapping[str, Mapping[str, Mapping]], kinds: Mapping[str, str],
            label_names: Sequence[str]) -> dict[str, dict[str, dict]]:
    """The in-split runs re-cut by kind: ``{kind: {run: {model: {"test": metrics}}}}``."""
    out: dict[str, dict[str, dict]] = {}
    for run, models in setting_runs.items():
        for model, result in models.items():
            if not result.get("predictions"):
                continue
            for kind, metrics in kind_metrics(result["predictions"], kinds, label_names).items():
                out.setdefault(kind, {}).setdefault(run, {})[model] = {"test": metrics}
    return out


def unfamiliar_rates(rows: Sequence[Mapping]) -> dict | None:
    """How often the unfamiliar-input flag fired on prediction rows: ``{"score": the
    stage's chosen score, "chosen": its rate, <score>: rate of every fitted score,
    "examples": n}``; None when the rows carry no flag (a stage without calibration)."""
    flagged = [r for r in rows if r.get("unfamiliar") is not None]
    if not flagged:
        return None
    out = {"score": flagged[0].get("unfamiliar_kind", "energy"),
           "chosen": float(np.mean([r["unfamiliar"] for r in flagged])), "examples": len(flagged)}
    for kind in UNFAMILIAR_SCORES:
        if all(kind in r.get("unfamiliar_flags", {}) for r in flagged):
            out[kind] = float(np.mean([r["unfamiliar_flags"][kind] for r in flagged]))
    return out


def _unfamiliar_summary(per_run: Mapping[str, Mapping]) -> dict:
    """Mean and sample std over runs of each rate of :func:`unfamiliar_rates`."""
    keys = [k for k in ("chosen", *UNFAMILIAR_SCORES) if all(k in r for r in per_run.values())]
    runs = sorted(per_run)
    out: dict = {"score": per_run[runs[0]]["score"], "n": len(runs), "mean": {}, "std": {}, "per_run": dict(per_run)}
    for key in keys:
        values = np.asarray([per_run[r][key] for r in runs], np.float64)
        out["mean"][key] = float(values.mean())
        out["std"][key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def summarize_setting(runs: Mapping[str, Mapping[str, Mapping]], models: Sequence[str]) -> dict[str, dict]:
    """``{model: mean/std over runs (+ n, per_run)}`` of one setting's test metrics, with
    ``unfamiliar`` (:func:`unfamiliar_rates` as mean/std over runs) when the predictions
    carry the flag."""
    out = {}
    for model in models:
        per_run = {run: r[model]["test"] for run, r in runs.items() if model in r}
        if per_run:
            out[model] = tables.summarize(per_run) | {"per_run": per_run}
            rates = {run: unfamiliar_rates(r[model].get("predictions") or []) for run, r in runs.items()
                     if model in r}
            rates = {run: v for run, v in rates.items() if v is not None}
            if rates:
                out[model]["unfamiliar"] = _unfamiliar_summary(rates)
    return out


def better_branch(models: Mapping[str, Mapping], select_metric: str) -> str | None:
    """The branch (text_only or audio_only) with the better VALIDATION score in one run
    (text wins a tie); None when either is missing."""
    if not all(b in models and models[b].get("validation") for b in BRANCHES):
        return None
    scores = {b: models[b]["validation"][select_metric] for b in BRANCHES}
    return max(BRANCHES, key=lambda b: (scores[b], b == "text_only"))


def compare_models(runs: Mapping[str, Mapping[str, Mapping]], a: str, b: str, *, select_metric: str = "wa",
                   resamples: int = 10_000, seed: int = 0) -> dict | None:
    """Paired comparison of ``a`` and ``b`` (or the run's better branch) on the same test
    examples of every run that has both models' predictions; None when none has."""
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    chosen: dict[str, str] = {}
    for run, models in runs.items():
        other = better_branch(models, select_metric) if b == BEST_BRANCH else b
        if other is None or not models.get(a, {}).get("predictions") or not models.get(other, {}).get("predictions"):
            continue
        right_a, right_b = correctness(models[a]["predictions"]), correctness(models[other]["predictions"])
        if set(right_a) != set(right_b):
            raise ValueError(f"run {run}: {a} and {other} were tested on different examples")
        ids = sorted(right_a)
        pairs[run] = (np.array([right_a[i] for i in ids]), np.array([right_b[i] for i in ids]))
        chosen[run] = other
    if not pairs:
        return None
    result = stats.compare(pairs, resamples=resamples, seed=seed)
    result.update(model_a=a, model_b=b)
    if b == BEST_BRANCH:
        result["chosen"] = chosen
    return result


def training_summary(runs: Mapping[str, Mapping[str, Mapping]], models: Sequence[str]) -> dict[str, dict]:
    """``{model: {stage: {"epochs": [...], "stopped_by": {reason: count}, "runs": n,
    "best_share": [...]}}}``; ``best_share`` is where the best checkpoint fell, as a
    share of the steps trained (1.0: at the end, still improving)."""
    out: dict[str, dict] = {}
    for model in models:
        for run, results in runs.items():
            for stage, info in results.get(model, {}).get("stages", {}).items():
                entry = out.setdefault(model, {}).setdefault(
                    stage, {"epochs": [], "stopped_by": {}, "runs": 0, "best_share": []})
                entry["runs"] += 1
                if info.get("epochs_trained") is not None:
                    entry["epochs"].append(float(info["epochs_trained"]))
                if info.get("best_step") is not None and info.get("steps_trained"):
                    entry["best_share"].append(float(info["best_step"]) / float(info["steps_trained"]))
                if info.get("stopped_by"):
                    entry["stopped_by"][info["stopped_by"]] = entry["stopped_by"].get(info["stopped_by"], 0) + 1
    return out


def _comparison_row(setting: str, c: Mapping) -> str:
    ci = c["bootstrap"]
    b_name = tables.DISPLAY.get(c["model_b"], c["model_b"])
    if "chosen" in c:
        counts = {m: list(c["chosen"].values()).count(m) for m in BRANCHES}
        b_name = "better branch (" + ", ".join(f"{tables.DISPLAY[m]} {n}" for m, n in counts.items() if n) + ")"
    wilcoxon = "n/a" if c["wilcoxon_p"] is None else f"{c['wilcoxon_p']:.3g}"
    return (f"| {setting} | {tables.DISPLAY.get(c['model_a'], c['model_a'])} vs {b_name} | {c['runs']} | "
            f"{c['examples']} | {100 * c['accuracy_a']:.1f} | {100 * c['accuracy_b']:.1f} | "
            f"{100 * ci['difference']:+.1f} [{100 * ci['low']:+.1f}, {100 * ci['high']:+.1f}] | "
            f"{c['mcnemar']['p']:.3g} ({c['mcnemar']['b']}/{c['mcnemar']['c']}) | {c['sign_test_p']:.3g} "
            f"({c['runs_a_better']}/{c['runs_b_better']}) | {wilcoxon} |")


def comparison_table(comparisons: Mapping[str, Sequence[Mapping]]) -> str:
    """Markdown of ``{setting: [compare_models results]}``."""
    lines = ["| Setting | Comparison | runs | examples | acc A (%) | acc B (%) | A − B (pp) [95% CI] | "
             "McNemar p (b/c) | sign p (runs A/B better) | Wilcoxon p |", "|" + "---|" * 10]
    for setting, results in comparisons.items():
        lines += [_comparison_row(setting, c) for c in results]
    return "\n".join(lines)


def _epochs_cell(entry: Mapping | None) -> str:
    if not entry or not entry["epochs"]:
        return "n/a"
    values = np.asarray(entry["epochs"])
    if len(values) == 1:
        return f"{values[0]:.1f} (n=1)"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f} (n={len(values)})"


def _stopped_cell(entry: Mapping | None) -> str:
    if not entry or not entry["stopped_by"]:
        return "n/a"
    named = {"early_stopping": "early stopping", "budget": "budget"}
    return ", ".join(f"{named.get(k, k)} {v}/{entry['runs']}" for k, v in sorted(entry["stopped_by"].items()))


def _best_cell(entry: Mapping | None) -> str:
    if not entry or not entry["best_share"]:
        return "n/a"
    return f"{100 * np.mean(entry['best_share']):.0f}%"


def training_table(training: Mapping[str, Mapping[str, Mapping]]) -> str:
    """Markdown: epochs trained per stage, how each stage stopped and where its best
    checkpoint fell (mean share of the steps trained), per setting and model."""
    lines = ["| Setting | Approach | Stage | epochs trained | stopped by | best checkpoint at |",
             "|---|---|---|---|---|---|"]
    for setting, models in training.items():
        for model in tables.ordered(list(models)):
            for stage in STAGES:
                if stage in models[model]:
                    entry = models[model][stage]
                    lines.append(f"| {setting} | {tables.DISPLAY.get(model, model)} | {stage} | "
                                 f"{_epochs_cell(entry)} | {_stopped_cell(entry)} | {_best_cell(entry)} |")
    return "\n".join(lines)


def view_table(settings: Mapping[str, Mapping[str, Mapping]]) -> str:
    """Markdown of one view: a row per (setting, model), WA / UA / F1 as mean ± std, n runs."""
    lines = ["| Setting | Approach | n | WA (%) | UA (%) | Weighted-F1 |", "|---|---|---|---|---|---|"]
    for setting, models in settings.items():
        for model in tables.ordered(list(models)):
            s = models[model]
            lines.append(f"| {setting} | {tables.DISPLAY.get(model, model)} | {len(s['runs'])} | "
                         + " | ".join(tables.cell(s, k) for k in tables.METRICS) + " |")
    return "\n".join(lines)


def _rate_cell(entry: Mapping, key: str) -> str:
    if key not in entry["mean"]:
        return "–"
    mean, std = 100 * entry["mean"][key], 100 * entry["std"][key]
    return f"{mean:.1f}" if entry["n"] == 1 else f"{mean:.1f} ± {std:.1f}"


def unfamiliar_table(settings: Mapping[str, Mapping[str, Mapping]]) -> str:
    """Markdown: the share of each setting's test utterances flagged as unfamiliar input,
    per model: by the stage's chosen score and by every fitted score; "" when no model
    has the flag."""
    lines = ["| Setting | Approach | n | flagged (%) | score | " + " | ".join(UNFAMILIAR_SCORES) + " |",
             "|" + "---|" * (5 + len(UNFAMILIAR_SCORES))]
    found = False
    for setting, models in settings.items():
        for model in tables.ordered(list(models)):
            entry = models[model].get("unfamiliar")
            if not entry:
                continue
            found = True
            lines.append(f"| {setting} | {tables.DISPLAY.get(model, model)} | {entry['n']} | "
                         f"{_rate_cell(entry, 'chosen')} | {entry['score']} | "
                         + " | ".join(_rate_cell(entry, k) for k in UNFAMILIAR_SCORES) + " |")
    return "\n".join(lines) if found else ""


def assemble(results: Mapping[str, Mapping[str, Mapping[str, Mapping]]], models: Sequence[str], *,
             notes: Mapping[str, Sequence[str]] | None = None, comparisons: Sequence[tuple[str, str]] = (),
             select_metric: str = "wa", resamples: int = 10_000, seed: int = 0) -> dict:
    """The JSON of ``generalisation.json`` from ``results[view][setting][run][model]``."""
    notes = notes or {}
    out: dict = {"views": {}}
    for view in [v for v in VIEWS if v in results or v in notes]:
        settings = results.get(view, {})
        entry: dict = {"title": VIEW_TITLES[view], "notes": list(notes.get(view, [])), "settings": {},
                       "comparisons": {}, "training": {}}
        for setting, runs in settings.items():
            entry["settings"][setting] = summarize_setting(runs, models)
            if view != "by_kind":
                # every trained model, also the branches trained only for the fusions:
                # their stages are the fusions' first stages
                trained = tables.ordered(sorted({m for results in runs.values() for m in results}))
                entry["training"][setting] = training_summary(runs, trained)
                found = [compare_models(runs, a, b, select_metric=select_metric, resamples=resamples, seed=seed)
                         for a, b in comparisons]
                found = [c for c in found if c]
                if found:
                    entry["comparisons"][setting] = found
        out["views"][view] = entry
    return out


def report(generalisation: Mapping, *, name: str = "") -> str:
    """The markdown of the generalisation section (one part per view)."""
    lines = [f"## Generalisation{f' of `{name}`' if name else ''}", "",
             "WA / UA (%) and weighted F1 on each view's test split, mean ± sample std over n runs "
             "(folds × seeds).", ""]
    for view, entry in generalisation["views"].items():
        lines += [f"### {entry['title']}", ""]
        lines += [f"- {note}" for note in entry["notes"]] + ([""] if entry["notes"] else [])
        if not any(entry["settings"].values()):
            lines += ["No results for this view.", ""]
            continue
        lines += [view_table(entry["settings"]), ""]
        flagged = unfamiliar_table(entry["settings"])
        if flagged:
            lines += ["Unfamiliar input: % of the test utterances flagged (threshold at 5 % false alarms on "
                      "validation), by the stage's chosen score and by each score fitted beside it "
                      "(hmaf.unfamiliar):", "", flagged, ""]
        if entry["comparisons"]:
            lines += ["Paired comparisons on the same test examples (95% CI: paired bootstrap over examples, "
                      "stratified by run; McNemar: exact, pooled over runs; sign/Wilcoxon: over runs):", "",
                      comparison_table(entry["comparisons"]), ""]
        if entry["training"]:
            lines += ["Training (epochs per stage; best checkpoint at: mean share of the stage's steps; "
                      "n/a: not recorded by the trainer):", "",
                      training_table(entry["training"]), ""]
    return "\n".join(lines)
