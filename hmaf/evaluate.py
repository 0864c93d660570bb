"""Evaluates a trained workdir on any prepared corpus (also one it was not trained on).

    python -m hmaf.evaluate --workdir W --data D [--split test|validation|train|all]
                            [--label_map "joy=happy,anger=angry"] [--scores F] [--out F.json]

Reports WA, UA, weighted F1, per-class precision/recall/F1 and the confusion matrix
(rows true, columns predicted, over the model's classes), calibration (ECE and NLL
before and after temperature scaling, how often the unfamiliar-input flag fires; with
``--out F.json`` a reliability diagram ``F.reliability.png``), and for sentiment labels
(negative / [neutral] / positive) the MOSI conventions:

* Has0: negative (< 0) against non-negative (>= 0), accuracy and weighted F1;
* Non0: the same with the zero (neutral) examples left out, positive (> 0) against
  negative.

The sign of the truth comes from per-utterance raw scores when there are any
(``--scores``, or a ``score`` field in ``D/source/manifest.jsonl``), else from the label
names (neutral = 0). The predicted sign comes from the predicted class's name.

Words map to ids with the *training* corpus's vocabulary (``W/corpus/vocab.txt``), so
another corpus's words the model never saw become ``<unk>``; labels are matched by name,
and a label of the data that the model does not know is an error unless
``--label_map`` renames it. The default split is ``test`` of the training fold when
``D`` is the training corpus, else ``all``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import ml_collections
import numpy as np

from hmaf import cli
from hmaf.analysis.generalisation import prediction_row
from hmaf.io import atomic_write_text
from hmaf.calibration import CALIBRATION_FILE, calibration_report, reliability_diagram, softmax
from hmaf.metrics import classification_metrics
from hmaf.unfamiliar import Features, UnfamiliarDetector, input_statistics

SPLITS = ("train", "validation", "test", "all")
# "non-negative" is the Has0 convention's second class (hmaf.corpora.mosi --convention has0).
SENTIMENT_SIGNS = {"negative": -1, "neutral": 0, "positive": 1, "non-negative": 1}


class LabelMismatchError(ValueError):
    """The data holds labels the model cannot predict."""


def parse_label_map(spec: str | None) -> dict[str, str]:
    """``"joy=happy, anger=angry, fear="`` -> ``{"joy": "happy", "anger": "angry", "fear": ""}``
    (an empty target leaves that label's examples out)."""
    out = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ValueError(f"label map entry {item!r} is not data_label=model_label")
        data_label, model_label = (s.strip() for s in item.split("=", 1))
        out[data_label] = model_label
    return out


def label_mapping(model_labels: Sequence[str], data_labels: Sequence[str], data_counts: Mapping[str, int],
                  label_map: Mapping[str, str] | None = None) -> np.ndarray:
    """int ``[len(data_labels)]``: the model class of each data label, matched by name
    (case-insensitively, after ``label_map``); -1 for labels without examples and for
    labels ``label_map`` maps to "" (their examples are left out).

    Raises:
      LabelMismatchError: a data label with examples has no model class.
    """
    label_map = dict(label_map or {})
    index = {name.lower(): i for i, name in enumerate(model_labels)}
    mapping = np.full(len(data_labels), -1, np.int64)
    unknown = []
    for j, name in enumerate(data_labels):
        target = label_map.get(name, name).lower()
        if not target:
            continue
        if target in index:
            mapping[j] = index[target]
        elif data_counts.get(name, 1) > 0:
            unknown.append(name)
    if unknown:
        raise LabelMismatchError(
            f"the data's labels {unknown} are not among the model's {list(model_labels)}; rename them with "
            f"--label_map (e.g. {unknown[0]}={model_labels[0]}) or evaluate on a corpus with the same label set")
    return mapping


def is_sentiment(label_names: Sequence[str]) -> bool:
    names = {n.lower() for n in label_names}
    return "negative" in names and len(names) > 1 and names <= set(SENTIMENT_SIGNS)


def _binary(truth: np.ndarray, predicted: np.ndarray) -> dict:
    result = classification_metrics(truth.astype(np.int64), predicted.astype(np.int64), 2, ["negative", "non-negative"])
    return {"accuracy": result["wa"], "weighted_f1": result["weighted_f1"], "num_examples": result["num_examples"]}


def sentiment_metrics(truth_sign: np.ndarray, predicted_sign: np.ndarray) -> dict:
    """Has0 and Non0 (see the module docstring) from signs in {-1, 0, 1}."""
    truth_sign, predicted_sign = np.asarray(truth_sign), np.asarray(predicted_sign)
    has0 = _binary(truth_sign >= 0, predicted_sign >= 0)
    keep = truth_sign != 0
    non0 = _binary(truth_sign[keep] > 0, predicted_sign[keep] > 0) if keep.any() else None
    return {"has0": has0, "non0": non0}


def read_scores(path: str | os.PathLike) -> dict[str, float]:
    """``id -> score`` from a JSONL or CSV file with ``id`` and ``score`` columns (rows
    without a score are left out)."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        if path.endswith(".csv"):
            rows = list(csv.DictReader(f))
        else:
            rows = [json.loads(line) for line in f if line.strip()]
    return {str(r["id"]): float(r["score"]) for r in rows
            if r.get("id") not in (None, "") and r.get("score") not in (None, "")}


def power_of_two_batches(batches: Iterable[dict], batch_size: int) -> Iterator[dict]:
    """Cuts unpacked batches smaller than ``batch_size`` into power-of-two pieces
    (7 -> 4 + 2 + 1); :func:`hmaf.data.source.from_config` sources already do this
    (:meth:`hmaf.data.layout.BatchLayout.split_tail`)."""
    from hmaf.data.layout import BatchLayout

    return BatchLayout(batch_size=batch_size).split_tail(batches)


def _same_corpus(a: Mapping, b: Mapping) -> bool:
    if a.get("content_hash") and b.get("content_hash"):
        return a["content_hash"] == b["content_hash"]
    return a.get("name") == b.get("name") and a.get("num_examples") == b.get("num_examples")


def evaluate_workdir(workdir: str | os.PathLike, data_dir: str | os.PathLike, *, split: str | None = None,
                     label_map: Mapping[str, str] | None = None, scores: Mapping[str, float] | None = None,
                     stage: str | None = None, batch_size: int | None = None, pad_words_to: int | None = None,
                     pad_frames_to: int | None = None, bucket: bool | None = None,
                     reliability_png: str | os.PathLike | None = None, no_punctuation: bool = False,
                     own_stats: bool = False, predictions: str | os.PathLike | None = None) -> dict:
    """Evaluates the model of ``workdir`` on the prepared corpus ``data_dir``.

    Returns the metrics of :func:`hmaf.metrics.from_confusion` plus ``split``,
    ``workdir``, ``data``, ``label_names`` and, for sentiment labels, ``sentiment``
    (Has0/Non0 and where the truth's sign came from). Batches come from
    :func:`hmaf.data.source.from_config` with the config saved beside the checkpoint,
    so they have the shapes training used (its compiled eval step is reused);
    ``batch_size``, ``pad_words_to``, ``pad_frames_to`` and ``bucket`` override that
    config's values when given.

    When the stage has a ``calibration.json`` (fitted on validation by the trainer),
    ``calibration`` holds the temperature, NLL and ECE (15 bins) before and after
    scaling, and the share of inputs flagged unfamiliar (``unfamiliar_rate``, also at the
    top level; about 5 % in domain by construction) by the stage's chosen score
    (``unfamiliar_score``), with every fitted score's rate in ``unfamiliar_rates``
    (:mod:`hmaf.unfamiliar`). ``reliability_png``: also write a reliability diagram
    of the (calibrated) probabilities there. ``no_punctuation``: a model trained with
    punctuation marks (``model.punctuation``) sees every mark as 0, as words from speech
    recognition come (the corpus then needs no marks); the result says ``no_punctuation``.
    ``own_stats``: a model with ``audio_norm="speaker"`` normalises every utterance by its
    own statistics instead of its speaker's, as ``hmaf.predict`` without
    ``--speaker_profile`` sees a recording (a ValueError for other models); the result says
    ``own_stats``.
    ``predictions``: also write one JSON line per evaluated example there, as
    ``hmaf.experiment``'s ``predictions.jsonl`` (``id``, ``label`` and ``predicted`` in the
    model's label names, ``probabilities`` of the calibrated logits when the stage has a
    calibration), so that two models or two versions of a corpus can be compared
    example by example (``hmaf.analysis.stats``).
    """
    from hmaf import checkpoint
    from hmaf.data.source import DatasetInfo, from_config
    from hmaf.eval_step import make_eval_step, model_inputs

    workdir, data_dir = Path(workdir), Path(data_dir)
    trained_meta_path = workdir / "corpus" / "dataset.json"
    if not trained_meta_path.exists():
        raise FileNotFoundError(f"{trained_meta_path} not found: {workdir} was not trained on a prepared corpus")
    trained = json.loads(trained_meta_path.read_text())
    info = DatasetInfo.load(data_dir)
    model_labels = list(trained["label_names"])
    mapping = label_mapping(model_labels, info.label_names, info.label_counts, label_map)
    model, variables, config = checkpoint.load(workdir, stage)
    if no_punctuation and not getattr(model, "punctuation", False):
        raise ValueError(f"no_punctuation: the model of {workdir} was trained without punctuation marks")
    if own_stats and getattr(model, "audio_norm", None) != "speaker":
        raise ValueError(f"own_stats: the model of {workdir} normalises its audio with "
                         f"audio_norm={getattr(model, 'audio_norm', None)!r}, not per speaker")

    same = _same_corpus(trained, info.metadata)
    split = split or ("test" if same else "all")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    config = ml_collections.ConfigDict(config.to_dict())
    config.data.source = "corpus"
    if batch_size is not None:
        config.batch_size = batch_size
    overrides = {"pad_words_to": pad_words_to, "pad_frames_to": pad_frames_to, "bucket": bucket}
    config.data.update({k: v for k, v in overrides.items() if v is not None})
    if no_punctuation:  # the zeros come below: the corpus need not have marks
        config.model.punctuation = False
    source = from_config(config, data_dir=data_dir, vocab_path=workdir / "corpus" / "vocab.txt",
                         splits=split != "all", own_stats=own_stats)
    eval_step = make_eval_step(model)
    utt_ids, labels, logits, representation, input_stats = [], [], [], [], []
    for batch in source.eval_batches(split):
        if no_punctuation:
            batch["word_marks"] = np.zeros_like(batch["word_ids"])
        out = eval_step(variables, model_inputs(batch))
        logits.append(np.asarray(out["logits"]))
        representation.append(np.asarray(out["representation"]))
        input_stats.append(input_statistics(batch["frames"], batch["frame_mask"], batch["word_mask"]))
        labels.append(np.asarray(batch["label"]))
        utt_ids += [u.decode() for u in batch["utt_id"]]
    if not labels:
        raise ValueError(f"{data_dir} has no examples in split {split!r}")
    data_labels = np.concatenate(labels)
    keep = mapping[data_labels] >= 0  # labels mapped to "" are left out
    features = Features(*(np.concatenate(a)[keep] for a in (logits, representation, input_stats)))
    data_labels, logits = data_labels[keep], features.logits
    predicted = logits.argmax(-1)
    utt_ids = [u for u, k in zip(utt_ids, keep) if k]
    if not keep.any():
        raise ValueError(f"every example of {data_dir} ({split}) was left out by the label map")
    result = classification_metrics(mapping[data_labels], predicted, len(model_labels), model_labels)
    result.update(workdir=str(workdir), data=str(data_dir), split=split, label_names=model_labels,
                  model=config.model.name, cross_corpus=not same, left_out=int((~keep).sum()),
                  no_punctuation=no_punctuation, own_stats=own_stats)
    calibration_path = checkpoint.find_stage_dir(workdir, stage) / CALIBRATION_FILE
    if calibration_path.exists():  # fitted on validation when the stage finished training
        record = json.loads(calibration_path.read_text())
        detector = UnfamiliarDetector.load(record, calibration_path.parent)
        result["calibration"] = {"temperature": record["temperature"],
                                 "energy_threshold": record["energy_threshold"],
                                 "unfamiliar_thresholds": detector.thresholds,
                                 **calibration_report(logits, mapping[data_labels], record, detector=detector,
                                                      features=features)}
        result["unfamiliar_rate"] = result["calibration"]["unfamiliar_rate"]
    if reliability_png is not None:  # of the calibrated probabilities when there is a calibration
        temperature = result.get("calibration", {}).get("temperature", 1.0)
        reliability_diagram(softmax(logits, temperature), mapping[data_labels], reliability_png,
                            title=f"{config.model.name}, {split}, T = {temperature:.2f}")
        result["reliability_diagram"] = str(reliability_png)
    if predictions is not None:
        temperature = result.get("calibration", {}).get("temperature", 1.0)
        rows = [prediction_row(u, model_labels[int(t)], probs, model_labels)
                for u, t, probs in zip(utt_ids, mapping[data_labels], softmax(logits, temperature))]
        atomic_write_text(predictions, "".join(json.dumps(row) + "\n" for row in rows))
        result["predictions"] = str(predictions)
    if is_sentiment(model_labels) and is_sentiment(info.label_names):
        predicted_sign = np.asarray([SENTIMENT_SIGNS[model_labels[p].lower()] for p in predicted])
        if scores is None:
            manifest = data_dir / "source" / "manifest.jsonl"
            scores = read_scores(manifest) if manifest.exists() else {}
        if scores and all(u in scores for u in utt_ids):
            truth_sign = np.sign([scores[u] for u in utt_ids]).astype(np.int64)
            origin = "scores"
        else:
            truth_sign = np.asarray([SENTIMENT_SIGNS[info.label_names[l].lower()] for l in data_labels])
            origin = "labels"
        result["sentiment"] = sentiment_metrics(truth_sign, predicted_sign) | {"truth_sign_from": origin}
    return result


def format_result(result: Mapping) -> str:
    """The readable table of an evaluation."""
    from hmaf.analysis.tables import metrics_table

    lines = [f"model {result['model']} ({result['workdir']}) on {result['data']}, split {result['split']}"
             + (" (cross-corpus)" if result["cross_corpus"] else ""), "", metrics_table(result)]
    if "calibration" in result:
        c = result["calibration"]
        lines += ["", f"calibration (temperature {c['temperature']:.3f}, fitted on validation): "
                      f"ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f}, NLL {c['nll_before']:.4f} -> "
                      f"{c['nll_after']:.4f}; unfamiliar input flagged on {100 * c['unfamiliar_rate']:.1f}% "
                      f"of {c['examples']} examples ({c['unfamiliar_score']} score"
                      + "".join(f"; {k} {100 * v:.1f}%" for k, v in c.get("unfamiliar_rates", {}).items()
                                if k != c["unfamiliar_score"]) + ")",
                  f"these examples fit temperature {c['temperature_here']:.3f} (NLL {c['nll_here']:.4f}, ECE "
                  f"{c['ece_here']:.4f}) against validation's {c['temperature']:.3f}: the model is "
                  + ("more" if c["temperature_here"] > c["temperature"] else "less")
                  + " overconfident here than on validation"]
    if "sentiment" in result:
        s = result["sentiment"]
        lines += ["", f"MOSI conventions (truth sign from {s['truth_sign_from']}):"]
        for key, name in (("has0", "Has0 (negative vs non-negative)"), ("non0", "Non0 (zeros left out)")):
            if s[key]:
                lines.append(f"  {name}: accuracy {100 * s[key]['accuracy']:.2f}%  weighted F1 "
                             f"{s[key]['weighted_f1']:.4f}  (n={s[key]['num_examples']})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m hmaf.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="a trained workdir")
    parser.add_argument("--data", required=True, help="a prepared corpus directory")
    parser.add_argument("--split", choices=SPLITS, default=None,
                        help="default: test (same corpus as training) or all (another corpus)")
    parser.add_argument("--label_map", default="", help="rename data labels: 'joy=happy,anger=angry'")
    parser.add_argument("--scores", default=None, help="JSONL/CSV with id and raw sentiment score (Has0/Non0)")
    parser.add_argument("--stage", default=None, help="text, audio or fusion (default: the last trained)")
    parser.add_argument("--out", default=None, help="write the metrics JSON here (and the table beside it, .md)")
    parser.add_argument("--predictions", default=None,
                        help="also write each example's label, prediction and probabilities here (JSONL)")
    parser.add_argument("--no_punctuation", action="store_true",
                        help="a model trained with punctuation marks sees none (as words from speech recognition)")
    parser.add_argument("--own_stats", action="store_true",
                        help="a speaker-normalised model normalises each utterance by its own statistics "
                             "(as hmaf.predict without --speaker_profile)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        result = evaluate_workdir(args.workdir, args.data, split=args.split,
                                  label_map=parse_label_map(args.label_map),
                                  scores=read_scores(args.scores) if args.scores else None, stage=args.stage,
                                  reliability_png=Path(args.out).with_suffix(".reliability.png") if args.out else None,
                                  no_punctuation=args.no_punctuation, own_stats=args.own_stats,
                                  predictions=args.predictions)
    except (FileNotFoundError, LabelMismatchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = format_result(result)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        for path, text in ((out, json.dumps(result, indent=2)), (out.with_suffix(".md"), table + "\n")):
            atomic_write_text(path, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
