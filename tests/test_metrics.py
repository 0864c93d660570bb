import numpy as np
import pytest

from hmaf.metrics import classification_metrics, confusion_matrix, from_confusion


def test_hand_computed_confusion():
    labels = np.array([0, 0, 0, 1, 1, 2])
    preds = np.array([0, 1, 0, 1, 2, 2])
    matrix = confusion_matrix(labels, preds, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    m = from_confusion(matrix, ["a", "b", "c"])
    assert m["wa"] == pytest.approx(4 / 6)
    assert m["ua"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # per class: a P=1 R=2/3 F=.8; b P=.5 R=.5 F=.5; c P=.5 R=1 F=2/3
    assert m["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert m["per_class"]["c"]["precision"] == pytest.approx(0.5)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)


def test_absent_class_is_left_out_of_ua_and_bad_labels_raise():
    m = classification_metrics(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    assert m["ua"] == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
