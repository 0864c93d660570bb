"""hmaf.unfamiliar: the scores on known Gaussians, Ledoit-Wolf shrinkage, the input
statistics on a known signal, storage, the old-record fallback, and the representation
the eval step captures (numpy and tiny models only)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hmaf import unfamiliar as U


def _cloud(rng, n, d, shift=0.0):
    """Correlated Gaussian features: a fixed mixing matrix, so the covariance matters."""
    mixing = np.random.default_rng(123).normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    return (rng.normal(size=(n, d)) + shift) @ mixing


def _features(rng, n, shift=0.0, classes=3):
    labels = rng.integers(0, classes, n)
    means = np.random.default_rng(7).normal(scale=3.0, size=(classes, 12))
    rep = _cloud(rng, n, 12, shift) + means[labels]  # class-conditional representation
    stats = _cloud(rng, n, 8, shift)
    logits = rng.normal(size=(n, classes))
    return U.Features(logits, rep, stats), labels


def test_in_distribution_rate_is_the_chosen_rate_and_a_shifted_cloud_is_flagged():
    rng = np.random.default_rng(0)
    train, train_labels = _features(rng, 600)
    validation, _ = _features(rng, 600)
    detector = U.UnfamiliarDetector.fit(train, train_labels, validation, temperature=1.0, rate=0.05)
    assert detector.available == U.SCORES and detector.score == U.DEFAULT_SCORE
    assert all(v == pytest.approx(0.05, abs=0.005) for v in detector.info["flagged_validation"].values())
    same, _ = _features(rng, 4000)
    rates = detector.rates(same)
    for kind in U.SCORES:  # new data from the training distribution: about the chosen 5 %
        assert rates[kind] == pytest.approx(0.05, abs=0.02), kind
    shifted, _ = _features(rng, 1000, shift=2.5)
    rates = detector.rates(shifted)
    for kind in ("mahalanobis", "input", "combined"):
        assert rates[kind] > 0.95, (kind, rates)
    assert rates["energy"] < 0.2  # random logits: the output-based score cannot see the shift
    score, flag = detector(shifted)
    np.testing.assert_array_equal(flag, score > detector.thresholds[detector.score])


def test_class_conditional_means_catch_a_point_between_classes():
    # Two tight classes far apart: the midpoint is near the pooled mean, yet far from both.
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 200)
    x = rng.normal(scale=0.3, size=(400, 4)) + np.where(labels[:, None] == 0, -5.0, 5.0)
    classes = U.Gaussians.fit(x, labels)
    single = U.Gaussians.fit(x)
    midpoint = np.zeros((1, 4))
    assert classes.distance(midpoint)[0] > 50 * np.median(classes.distance(x))
    assert single.distance(midpoint)[0] < np.median(single.distance(x))


def test_shrinkage_keeps_fewer_examples_than_dimensions_finite():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 50))
    gaussians = U.Gaussians.fit(x, np.repeat([0, 1], 5))
    assert 0.0 < gaussians.shrinkage <= 1.0
    assert np.all(np.isfinite(gaussians.precision))
    values = np.linalg.eigvalsh(gaussians.precision)
    assert values.min() > 0 and values.max() / values.min() < 1e3  # well conditioned
    d = gaussians.distance(rng.normal(size=(20, 50)))
    assert np.all(np.isfinite(d)) and np.all(d > 0)
    # Isotropic data: the target is right, so almost all weight goes to it.
    _, s = U.ledoit_wolf(rng.normal(size=(2000, 5)))
    assert s > 0.8
    # Strongly correlated data with many examples: little shrinkage.
    _, s = U.ledoit_wolf(_cloud(rng, 5000, 5) * np.array([10, 1, 1, 1, 0.1]))
    assert s < 0.05


def test_ledoit_wolf_matches_its_definition_by_hand():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 4))
    x -= x.mean(0)
    cov, s = U.ledoit_wolf(x)
    sample = x.T @ x / 30
    mu = np.trace(sample) / 4
    d2 = np.sum((sample - mu * np.eye(4)) ** 2)
    b2 = sum(np.sum((np.outer(r, r) - sample) ** 2) for r in x) / 30 ** 2
    assert s == pytest.approx(min(b2, d2) / d2, rel=1e-10)
    np.testing.assert_allclose(cov, (1 - s) * sample + s * mu * np.eye(4), rtol=1e-12)


def test_input_statistics_of_a_known_signal_ignore_padding():
    # Utterance 0: 3 words of 4, 2 and 4 real frames; band k of frame t = k / 10 + (t % 2).
    bands = 16
    frames = np.full((2, 4, 5, bands), 99.0, np.float32)  # garbage in every padded cell
    frame_mask = np.zeros((2, 4, 5), bool)
    word_mask = np.zeros((2, 4), bool)
    t = 0
    for w, n in enumerate((4, 2, 4)):
        for i in range(n):
            frames[0, w, i] = np.arange(bands) / 10 + t % 2
            t += 1
        frame_mask[0, w, :n] = True
        word_mask[0, w] = True
    frames[1, 0, :2] = 1.0  # utterance 1: one word, two constant frames
    frame_mask[1, 0, :2] = word_mask[1, 0] = True
    stats = U.input_statistics(frames, frame_mask, word_mask, hop_s=0.01, coefficients=4)
    assert stats.shape == (2, 3 * 4 + 2)
    # DCT-II (orthonormal) of the band-mean profile k / 10 + 0.5: c0 = sum / sqrt(M), and a
    # profile rising with k has a negative c1, no even-order terms beyond c0.
    profile = np.arange(bands) / 10 + 0.5
    assert stats[0, 0] == pytest.approx(profile.sum() / np.sqrt(bands), rel=1e-6)
    c1 = np.sqrt(2 / bands) * np.sum(profile * np.cos(np.pi * (2 * np.arange(bands) + 1) / (2 * bands)))
    assert stats[0, 1] == pytest.approx(c1, rel=1e-6) and c1 < 0
    np.testing.assert_allclose(stats[0, [2]], 0.0, atol=1e-6)  # float32 frames
    # band stds: 0.5 in every band (half the frames are 1 higher) -> only c0 = 0.5 sqrt(M)
    np.testing.assert_allclose(stats[0, 4:8], [0.5 * np.sqrt(bands), 0, 0, 0], atol=1e-6)
    assert stats[0, 8] == pytest.approx(0.5, rel=1e-6)  # frame energy alternates by 1
    assert stats[0, 9] == pytest.approx(np.log(3 / 0.10))  # 3 words in 10 frames of 10 ms
    np.testing.assert_allclose(stats[1, :4], [np.sqrt(bands), 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(stats[1, 4:9], 0.0, atol=1e-12)
    assert stats[1, 9] == pytest.approx(np.log(1 / 0.02))
    # spectral flux: within each word every band changes by exactly 1 from frame to frame
    np.testing.assert_allclose(stats[0, 10:14], [np.sqrt(bands), 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(stats[1, 10:14], 0.0, atol=1e-12)  # constant frames
    assert U.input_statistics(frames, frame_mask, word_mask).shape == (2, 3 * 13 + 2)  # the default


def test_spectral_flux_ignores_word_boundaries_and_one_frame_words():
    bands = 8
    frames = np.zeros((1, 3, 4, bands), np.float32)
    frame_mask = np.zeros((1, 3, 4), bool)
    frames[0, 0, :3], frames[0, 1, :2], frames[0, 2, :1] = 0.0, 5.0, -7.0  # constant words, jumps between
    frame_mask[0, 0, :3] = frame_mask[0, 1, :2] = frame_mask[0, 2, :1] = True
    frames[0, 0, 3] = 50.0  # padding after a word
    stats = U.input_statistics(frames, frame_mask, np.ones((1, 3), bool), coefficients=4)
    np.testing.assert_allclose(stats[0, 10:14], 0.0, atol=1e-12)
    frames[0, 1, 1] = 6.0  # one real change of 1 in every band, of 3 within-word pairs
    stats = U.input_statistics(frames, frame_mask, np.ones((1, 3), bool), coefficients=4)
    assert stats[0, 10] == pytest.approx(np.sqrt(bands) / 3)


def test_a_detector_fitted_before_the_flux_reads_the_leading_statistics():
    rng = np.random.default_rng(5)
    stats = rng.normal(size=(200, 3 * 13 + 2))
    old = U.Gaussians.fit(stats[:, :2 * 13 + 2])  # as fitted by the earlier input_statistics
    detector = U.UnfamiliarDetector("input", 1.0, {"input": 10.0}, inputs=old)
    features = U.Features(np.zeros((200, 2)), input_stats=stats)
    np.testing.assert_allclose(detector.scores(features)["input"], old.distance(stats[:, :2 * 13 + 2]))


def test_save_load_round_trip_and_the_fallbacks(tmp_path, caplog):
    rng = np.random.default_rng(4)
    train, labels = _features(rng, 300)
    validation, _ = _features(rng, 300)
    detector = U.UnfamiliarDetector.fit(train, labels, validation, temperature=1.7, score="input")
    test, _ = _features(rng, 50, shift=0.5)
    calibration = {"temperature": 1.7, "energy_threshold": detector.thresholds["energy"],
                   "unfamiliar": detector.record()}
    detector.save(tmp_path)
    loaded = U.UnfamiliarDetector.load(calibration, tmp_path)
    assert loaded.score == "input" and loaded.thresholds == detector.thresholds
    for kind, values in detector.scores(test).items():
        np.testing.assert_allclose(loaded.scores(test)[kind], values, rtol=1e-5)  # precision kept as float32
    assert U.UnfamiliarDetector.load(calibration, tmp_path, score="mahalanobis").score == "mahalanobis"
    # A calibration.json from before the feature-space scores: energy, its own threshold.
    old = {"temperature": 1.7, "energy_threshold": 0.25}
    fallback = U.UnfamiliarDetector.load(old, tmp_path)
    assert fallback.available == ("energy",) and fallback.thresholds["energy"] == 0.25
    score, flag = fallback(U.Features(test.logits))  # needs no features beyond the logits
    np.testing.assert_array_equal(flag, score > 0.25)
    with pytest.raises(ValueError, match="predates"):
        U.UnfamiliarDetector.load(old, tmp_path, score="input")
    # The arrays lost: energy, with a warning naming the file.
    (tmp_path / U.UNFAMILIAR_FILE).unlink()
    with caplog.at_level(logging.WARNING):
        lost = U.UnfamiliarDetector.load(calibration, tmp_path)
    assert lost.score == "energy" and U.UNFAMILIAR_FILE in caplog.text
    with pytest.raises(ValueError, match="features that were not given"):
        loaded(U.Features(test.logits))
    with pytest.raises(ValueError, match="choose one of"):
        U.UnfamiliarDetector.fit(train, labels, validation, temperature=1.0, score="distance")


def test_the_fit_is_deterministic():
    rng = np.random.default_rng(5)
    train, labels = _features(rng, 200)
    validation, _ = _features(rng, 200)
    a = U.UnfamiliarDetector.fit(train, labels, validation, temperature=1.0)
    b = U.UnfamiliarDetector.fit(train, labels, validation, temperature=1.0)
    assert a.record() == b.record()
    for key, value in a.arrays().items():
        np.testing.assert_array_equal(value, b.arrays()[key])


@pytest.mark.parametrize("name", ["audio_only", "dl_fusion"])
def test_the_captured_representation_is_what_the_last_dense_layer_classifies(name):
    import jax

    from hmaf.data.toy import random_batch
    from hmaf.eval_step import make_eval_step, model_inputs
    from hmaf.models import build_model

    batch = random_batch(np.random.default_rng(0), 3, 4, 5, vocab_size=11, num_classes=3, min_words=1,
                         min_frames=1)
    model = build_model(name, num_classes=3, vocab_size=11, embed_dim=6, hidden=4, attention_dim=4,
                        fusion_dim=4, filters=4, widths=(2,))
    variables = jax.jit(lambda b: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, b,
                                             train=False))(model_inputs(batch))
    out = make_eval_step(model)(variables, model_inputs(batch))
    rep = np.asarray(out["representation"])
    params = variables["params"]
    if name == "audio_only":
        dense = params["decision"]["logits"]
        np.testing.assert_allclose(rep @ dense["kernel"] + dense["bias"], out["logits"], rtol=1e-4, atol=1e-5)
    else:  # two heads, concatenated by name: audio_head then text_head
        width = params["audio_head"]["logits"]["kernel"].shape[0]
        heads = [rep[:, :width] @ params["audio_head"]["logits"]["kernel"] + params["audio_head"]["logits"]["bias"],
                 rep[:, width:] @ params["text_head"]["logits"]["kernel"] + params["text_head"]["logits"]["bias"]]
        probs = (1.2 * jax.nn.softmax(heads[1]) + 0.8 * jax.nn.softmax(heads[0])) / 2.0
        np.testing.assert_allclose(np.log(probs + 1e-12), out["logits"], rtol=1e-4, atol=1e-5)
    # the model's own output is unchanged by the capture
    plain = model.apply(variables, model_inputs(batch), train=False)
    np.testing.assert_allclose(plain.logits, out["logits"], rtol=1e-6)


def test_the_config_default_is_the_module_default():
    from configs import default

    # a config saved before the switch existed gets DEFAULT_SCORE: the two must agree
    assert default.get_config().unfamiliar_score == U.DEFAULT_SCORE
