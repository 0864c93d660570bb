"""Calibration: temperature scaling, ECE, NLL, energy score and threshold against hand computation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hmaf import calibration as cal


def test_nll_and_energy_by_hand():
    logits = np.array([[0.0, np.log(3.0)], [0.0, 0.0]])
    labels = np.array([1, 0])
    expected = -(np.log(0.75) + np.log(0.5)) / 2
    assert cal.negative_log_likelihood(logits, labels) == pytest.approx(expected, rel=1e-12)
    # T = 2 halves the logits: p(label) = sqrt(3) / (1 + sqrt(3)) for the first row.
    expected_t2 = -(np.log(np.sqrt(3) / (1 + np.sqrt(3))) + np.log(0.5)) / 2
    assert cal.negative_log_likelihood(logits, labels, 2.0) == pytest.approx(expected_t2, rel=1e-12)
    np.testing.assert_allclose(cal.energy_score(logits), [-np.log(4.0), -np.log(2.0)], rtol=1e-12)
    np.testing.assert_allclose(cal.energy_score(logits, 2.0), [-2 * np.log(1 + np.sqrt(3)), -2 * np.log(2)],
                               rtol=1e-12)
    # A confident input has lower energy (more familiar) than a flat one.
    confident, flat = cal.energy_score(np.array([[10.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert confident < flat


def test_ece_of_a_two_bin_case_by_hand():
    # Two examples at confidence 0.9 (one right, one wrong) and two at 0.7 (both right):
    # ECE = 0.5 * |0.5 - 0.9| + 0.5 * |1.0 - 0.7| = 0.35.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.3, 0.7]])
    labels = np.array([0, 1, 1, 1])
    assert cal.expected_calibration_error(probs, labels) == pytest.approx(0.35, abs=1e-12)
    # One bin (bins=1): |accuracy 0.75 - mean confidence 0.8| = 0.05.
    assert cal.expected_calibration_error(probs, labels, bins=1) == pytest.approx(0.05, abs=1e-12)


def test_fitted_temperature_recovers_the_sampling_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, size=(6000, 4))
    true_t = 2.5  # labels drawn from softmax(logits / 2.5): the logits are overconfident
    probs = cal.softmax(logits, true_t)
    labels = (rng.random((6000, 1)) > np.cumsum(probs, -1)).sum(-1)
    t = cal.fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.08)
    assert cal.negative_log_likelihood(logits, labels, t) < cal.negative_log_likelihood(logits, labels)
    assert cal.fit_temperature(logits, labels) == t  # deterministic


def test_threshold_gives_the_false_alarm_rate_on_the_calibration_set():
    scores = np.random.default_rng(1).normal(size=2000)
    threshold = cal.threshold_for_false_alarm(scores, 0.05)
    assert np.mean(scores > threshold) == pytest.approx(0.05, abs=0.002)
    with pytest.raises(ValueError, match="false-alarm rate"):
        cal.threshold_for_false_alarm(scores, 1.5)


def test_calibrate_record_is_json_and_improves_an_overconfident_model():
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 4.0, size=(3000, 3))
    labels = (rng.random((3000, 1)) > np.cumsum(cal.softmax(logits, 3.0), -1)).sum(-1)
    record = json.loads(json.dumps(cal.calibrate(logits, labels)))
    assert record["temperature"] == pytest.approx(3.0, rel=0.1)
    assert record["ece_after"] < record["ece_before"] and record["nll_after"] < record["nll_before"]
    assert record["flagged_validation"] == pytest.approx(0.05, abs=0.002)
    assert record["examples"] == 3000 and record["ece_bins"] == 15
    probs, scores, flags = cal.apply_calibration(logits, record)
    np.testing.assert_array_equal(probs.argmax(-1), logits.argmax(-1))  # scaling keeps the class
    np.testing.assert_allclose(probs.sum(-1), 1.0)
    np.testing.assert_array_equal(flags, scores > record["energy_threshold"])


def test_report_fits_the_temperature_of_the_data_it_measures():
    """``temperature_here``: data drawn at T = 4 from logits calibrated at T = 1.5 on validation
    fit about 4, with a lower NLL than the record's temperature gives them."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 4.0, size=(4000, 4))

    def draw(t):
        return (rng.random((len(logits), 1)) > np.cumsum(cal.softmax(logits, t), -1)).sum(-1)

    record = cal.calibrate(logits, draw(1.5))
    assert record["temperature"] == pytest.approx(1.5, rel=0.08)
    shifted = cal.calibration_report(logits, draw(4.0), record)
    assert shifted["temperature_here"] == pytest.approx(4.0, rel=0.08)
    assert shifted["nll_here"] < shifted["nll_after"] and shifted["ece_here"] < shifted["ece_after"]
    same = cal.calibration_report(logits, draw(1.5), record)
    assert same["temperature_here"] == pytest.approx(record["temperature"], rel=0.08)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="NaN or inf"):
        cal.fit_temperature(np.array([[0.0, np.nan]]), np.array([0]))
    with pytest.raises(ValueError, match="labels must lie"):
        cal.calibrate(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        cal.energy_score(np.zeros(3))


def test_reliability_diagram_writes_a_png(tmp_path):
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.3, 0.7]])
    path = cal.reliability_diagram(probs, np.array([0, 1, 1, 1]), tmp_path / "reliability.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["reliability.png"]  # no temporary file left
