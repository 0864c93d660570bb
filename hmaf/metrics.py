"""Classification metrics of the paper (numpy only): WA, UA, weighted F1.

* WA, weighted accuracy: plain accuracy over all examples.
* UA, unweighted accuracy: the mean of the per-class recalls.
* weighted F1: per-class F1 weighted by the class's support.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C, C]`` counts; rows are true classes, columns predicted classes."""
    labels = np.asarray(labels, np.int64)
    predictions = np.asarray(predictions, np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} hold a class outside [0, {num_classes})")
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def from_confusion(matrix: np.ndarray, label_names: Sequence[str] | None = None) -> dict:
    """WA, UA, weighted F1 and per-class precision/recall/F1 from a confusion matrix.

    Classes absent from the labels are left out of UA (their recall is undefined).
    """
    matrix = np.asarray(matrix, np.float64)
    support = matrix.sum(1)
    predicted = matrix.sum(0)
    true_pos = np.diag(matrix)
    recall = _safe_divide(true_pos, support)
    precision = _safe_divide(true_pos, predicted)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    total = support.sum()
    present = support > 0
    names = list(label_names) if label_names is not None else [str(i) for i in range(len(matrix))]
    return {
        "wa": float(true_pos.sum() / total) if total else 0.0,
        "ua": float(recall[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
        "num_examples": int(total),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(names, precision, recall, f1, support)},
        "confusion": matrix.astype(np.int64).tolist(),
    }


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, num_classes: int,
                           label_names: Sequence[str] | None = None) -> dict:
    """:func:`from_confusion` of the confusion matrix of ``labels`` vs ``predictions``."""
    return from_confusion(confusion_matrix(labels, predictions, num_classes), label_names)
