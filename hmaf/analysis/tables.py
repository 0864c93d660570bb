"""Mean ± std over folds and markdown tables shaped like the paper's Tables 1-3."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

METRICS = ("wa", "ua", "weighted_f1")
# Paper order and names of Table 1 rows.
MODEL_ORDER = ("hf", "vf", "faf", "ul_fusion", "dl_fusion", "text_only", "audio_only")
DISPLAY = {"hf": "Ours-HF", "vf": "Ours-VF", "faf": "Ours-FAF", "ul_fusion": "UL-Fusion",
           "dl_fusion": "DL-Fusion", "text_only": "Text only (T)", "audio_only": "Audio only (A)"}
FUSION_MODELS = ("hf", "vf", "faf", "ul_fusion", "dl_fusion")
MODALITIES = (("T", "text_only"), ("A", "audio_only"), ("T+A", "faf"))


def summarize(per_run: Mapping[str, Mapping[str, float]]) -> dict:
    """``{run: {wa, ua, weighted_f1}}`` -> mean and std over runs (sample std, ddof=1;
    0 for one run); ``runs`` lists the run names, ``n`` counts them."""
    runs = sorted(per_run)
    out: dict = {"runs": runs, "n": len(runs), "mean": {}, "std": {}}
    for key in METRICS:
        values = np.asarray([per_run[k][key] for k in runs], np.float64)
        out["mean"][key] = float(values.mean()) if len(values) else float("nan")
        out["std"][key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def cell(summary: Mapping | None, key: str) -> str:
    """``mean ± std`` (accuracies in %, F1 as a fraction); the mean alone for one run,
    whose spread is unknown, not zero."""
    if not summary:
        return "–"
    mean, std = summary["mean"][key], summary["std"][key]
    single = summary.get("n", 2) == 1
    if key == "weighted_f1":
        return f"{mean:.3f}" if single else f"{mean:.3f} ± {std:.3f}"
    return f"{100 * mean:.1f}" if single else f"{100 * mean:.1f} ± {100 * std:.1f}"


def _paper_cell(paper: Mapping[str, Mapping[str, float]], model: str, key: str) -> str:
    value = paper.get(model, {}).get(key)
    if value is None:
        return "–"
    return f"{value:.3f}" if key == "weighted_f1" else f"{value:.1f}"


def _n(summary: Mapping | None) -> str:
    return str(summary.get("n", len(summary.get("runs", [])))) if summary else "0"


def ordered(models: Sequence[str]) -> list[str]:
    return [m for m in MODEL_ORDER if m in models] + [m for m in models if m not in MODEL_ORDER]


def fusion_table(summaries: Mapping[str, Mapping], paper: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """Table 1: one row per model, n runs, WA / UA (%) / weighted F1 as mean ± std over runs,
    with the paper's numbers beside ours when ``paper`` is given."""
    paper = paper or {}
    header = ["Approach", "n", "WA (%)", "UA (%)", "Weighted-F1"]
    if paper:
        header += ["paper WA", "paper UA", "paper F1"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in ordered(list(summaries)):
        row = [DISPLAY.get(model, model), _n(summaries[model])] + [cell(summaries[model], k) for k in METRICS]
        if paper:
            row += [_paper_cell(paper, model, k) for k in METRICS]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def modality_table(summaries: Mapping[str, Mapping], paper: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """Table 2: text only (T), audio only (A) and both with FAF (T+A): WA (%) and F1."""
    paper = paper or {}
    header = ["Modality", "n", "WA (%)", "F1"] + (["paper WA", "paper F1"] if paper else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, model in MODALITIES:
        if model not in summaries:
            continue
        row = [name, _n(summaries[model]), cell(summaries[model], "wa"), cell(summaries[model], "weighted_f1")]
        if paper:
            row += [_paper_cell(paper, model, "wa"), _paper_cell(paper, model, "weighted_f1")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def generalization_table(summaries: Mapping[str, Mapping], paper: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """Table 3: WA (%) and F1 of each model on the other corpus."""
    paper = paper or {}
    header = ["Approach", "n", "WA (%)", "F1"] + (["paper WA", "paper F1"] if paper else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in ordered(list(summaries)):
        row = [DISPLAY.get(model, model), _n(summaries[model]), cell(summaries[model], "wa"), cell(summaries[model], "weighted_f1")]
        if paper:
            row += [_paper_cell(paper, model, "wa"), _paper_cell(paper, model, "weighted_f1")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def metrics_table(result: Mapping) -> str:
    """A readable report of one evaluation (:func:`hmaf.metrics.from_confusion` output):
    the headline metrics, per-class precision/recall/F1 and the confusion matrix."""
    names = list(result["per_class"])
    lines = [f"examples: {result['num_examples']}",
             f"WA {100 * result['wa']:.2f}%   UA {100 * result['ua']:.2f}%   "
             f"weighted F1 {result['weighted_f1']:.4f}", "",
             "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name in names:
        c = result["per_class"][name]
        lines.append(f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |")
    lines += ["", "confusion (rows: true, columns: predicted)", "",
              "| true \\ predicted | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for name, row in zip(names, result["confusion"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)
