"""hmaf.evaluate: metrics against hand-computed confusion matrices, label matching,
MOSI Has0/Non0, and evaluation of a tiny trained workdir (same and other corpus)."""

import json

import numpy as np
import pytest

import experiment_helpers as helpers
from hmaf import evaluate
from hmaf.analysis.tables import metrics_table
from hmaf.metrics import classification_metrics
from hmaf.unfamiliar import DEFAULT_SCORE


def test_metrics_and_table_match_a_hand_computed_confusion_matrix():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = np.array([0, 0, 1, 1, 2, 2, 2, 2, 0])
    result = classification_metrics(labels, preds, 3, ["a", "b", "c"])
    assert result["confusion"] == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    assert result["wa"] == pytest.approx(6 / 9)
    assert result["ua"] == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)
    precision = {"a": 2 / 3, "b": 1 / 2, "c": 3 / 4}
    recall = {"a": 2 / 3, "b": 1 / 2, "c": 3 / 4}
    for name in "abc":
        assert result["per_class"][name]["precision"] == pytest.approx(precision[name])
        assert result["per_class"][name]["recall"] == pytest.approx(recall[name])
    f1 = {k: 2 * precision[k] * recall[k] / (precision[k] + recall[k]) for k in "abc"}
    assert result["weighted_f1"] == pytest.approx((3 * f1["a"] + 2 * f1["b"] + 4 * f1["c"]) / 9)
    table = metrics_table(result)
    assert "| a | 2 | 1 | 0 |" in table and "| c | 1 | 0 | 3 |" in table
    assert "WA 66.67%" in table


def test_has0_and_non0_by_hand():
    truth = np.array([-1, -1, 0, 1, 1])
    predicted = np.array([-1, 1, 1, 1, -1])
    result = evaluate.sentiment_metrics(truth, predicted)
    assert result["has0"]["accuracy"] == pytest.approx(3 / 5)  # >= 0: F F T T T vs F T T T F
    assert result["non0"]["accuracy"] == pytest.approx(2 / 4)  # zero left out
    assert result["non0"]["num_examples"] == 4
    assert evaluate.is_sentiment(["negative", "non-negative"])
    assert evaluate.is_sentiment(["negative", "positive"]) and evaluate.is_sentiment(["Negative", "neutral", "positive"])
    assert not evaluate.is_sentiment(["angry", "happy"])


def test_label_mapping_by_name_with_renames_and_clear_error():
    mapping = evaluate.label_mapping(["angry", "happy", "sad"], ["Happy", "angry"], {"Happy": 3, "angry": 1})
    assert mapping.tolist() == [1, 0]
    mapping = evaluate.label_mapping(["angry", "happy"], ["joy", "anger", "fear"], {"joy": 2, "anger": 1, "fear": 0},
                                     evaluate.parse_label_map("joy=happy, anger=angry"))
    assert mapping.tolist() == [1, 0, -1]  # fear has no examples: ignored
    with pytest.raises(evaluate.LabelMismatchError, match=r"\['fear'\].*--label_map"):
        evaluate.label_mapping(["angry", "happy"], ["fear", "angry"], {"fear": 2, "angry": 1})
    dropped = evaluate.label_mapping(["angry"], ["anger", "disgust"], {"anger": 1, "disgust": 1},
                                     evaluate.parse_label_map("anger=angry,disgust="))
    assert dropped.tolist() == [0, -1]
    with pytest.raises(ValueError, match="data_label=model_label"):
        evaluate.parse_label_map("joy")


def test_power_of_two_batches_keeps_every_example_once():
    batches = [{"label": np.arange(8)}, {"label": np.arange(8, 15)}]
    pieces = list(evaluate.power_of_two_batches(iter(batches), 8))
    assert [len(p["label"]) for p in pieces] == [8, 4, 2, 1]
    assert np.concatenate([p["label"] for p in pieces]).tolist() == list(range(15))


# One padded shape for the tiny corpora: few compilations keep the tests fast.
PADDING = dict(batch_size=4, bucket=False, pad_words_to=24, pad_frames_to=112)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return helpers.tiny_workdir(tmp_path_factory.getbasetemp() / "hmaf-tiny")


def test_evaluate_workdir_on_its_corpus(workdir, tmp_path, capsys):
    corpus = workdir.parent / "corpus"
    out = tmp_path / "eval.json"
    rows_path = tmp_path / "predictions.jsonl"
    assert evaluate.main(["--workdir", str(workdir), "--data", str(corpus), "--out", str(out),
                          "--predictions", str(rows_path)]) == 0
    result = json.loads(out.read_text())
    assert result["split"] == "test" and not result["cross_corpus"]
    # one row per test example, in the model's label names, agreeing with the metrics
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    assert len(rows) == result["num_examples"] == len({r["id"] for r in rows})
    assert np.mean([r["label"] == r["predicted"] for r in rows]) == pytest.approx(result["wa"])
    for r in rows:
        assert set(r["probabilities"]) == set(result["label_names"])
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert max(r["probabilities"], key=r["probabilities"].get) == r["predicted"]
    trained = json.loads((workdir / "metrics.json").read_text())
    assert result["wa"] == pytest.approx(trained["fusion"]["test"]["wa"])
    assert np.sum(result["confusion"]) == result["num_examples"]
    assert "confusion" in out.with_suffix(".md").read_text()
    # Calibration fitted on validation by the trainer, measured here on the same test split.
    record = json.loads((workdir / "fusion" / "calibration.json").read_text())
    calibration = result["calibration"]
    assert calibration["temperature"] == record["temperature"] > 0
    for key in ("ece_before", "ece_after", "nll_before", "nll_after", "unfamiliar_rate", "temperature_here",
                "nll_here", "ece_here"):
        assert calibration[key] == pytest.approx(record["test"][key], rel=1e-4, abs=1e-6)
    assert f"these examples fit temperature {calibration['temperature_here']:.3f}" in capsys.readouterr().out
    # The unfamiliar-input detector: every score fitted (Gaussians on train, thresholds on
    # validation), its arrays beside the record, the chosen one's rate reported.
    unfamiliar = record["unfamiliar"]
    assert unfamiliar["score"] == calibration["unfamiliar_score"] == DEFAULT_SCORE
    assert set(unfamiliar["thresholds"]) == {"energy", "mahalanobis", "input", "combined"}
    assert unfamiliar["dims"] == {"mahalanobis": 4, "input": 3 * 13 + 2}  # filters x widths of the tiny model
    with np.load(workdir / "fusion" / unfamiliar["file"]) as arrays:
        assert arrays["mahalanobis_means"].shape == (4, 4)  # one mean per class
        assert arrays["input_precision"].shape == (41, 41)
    assert result["unfamiliar_rate"] == calibration["unfamiliar_rate"]
    assert calibration["unfamiliar_rates"][DEFAULT_SCORE] == calibration["unfamiliar_rate"]
    assert set(calibration["unfamiliar_rates"]) == set(unfamiliar["thresholds"])
    assert all(0.0 <= v <= 1.0 for v in calibration["unfamiliar_rates"].values())
    assert record["nll_after"] <= record["nll_before"] + 1e-9  # the fit minimises validation NLL
    assert out.with_suffix(".reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert "ECE" in out.with_suffix(".md").read_text()
    everything = evaluate.evaluate_workdir(workdir, corpus, split="all", **PADDING)
    assert everything["num_examples"] == json.loads((corpus / "dataset.json").read_text())["num_examples"]


def test_evaluate_on_another_corpus_matches_labels_by_name(workdir, tmp_path):
    from hmaf.data.fake_corpus import write_fake_corpus

    other = tmp_path / "other"
    write_fake_corpus(other, labels=("neutral", "angry", "happy"), num_speakers=3, per_speaker=4)
    result = evaluate.evaluate_workdir(workdir, other, **PADDING)
    assert result["split"] == "all" and result["cross_corpus"] and result["num_examples"] == 12
    assert result["label_names"] == ["angry", "happy", "sad", "neutral"]
    support = {k: v["support"] for k, v in result["per_class"].items()}
    assert support == {"angry": 4, "happy": 4, "sad": 0, "neutral": 4}

    odd = tmp_path / "odd"
    write_fake_corpus(odd, labels=("joy", "anger"), num_speakers=2, per_speaker=2)
    assert evaluate.main(["--workdir", str(workdir), "--data", str(odd)]) == 2
    mapped = evaluate.evaluate_workdir(workdir, odd, label_map={"joy": "happy", "anger": "angry"}, **PADDING)
    assert mapped["per_class"]["happy"]["support"] == 2 and mapped["left_out"] == 0
    partial = evaluate.evaluate_workdir(workdir, odd, label_map={"joy": "happy", "anger": ""}, **PADDING)
    assert partial["num_examples"] == 2 and partial["left_out"] == 2


def test_own_stats_evaluates_as_predict_without_a_profile(workdir, tmp_path, monkeypatch):
    """``own_stats``: every utterance normalised by itself, so the corpus's speaker
    statistics no longer matter; without it they do."""
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(workdir.parent / "corpus", corpus)
    speaker = evaluate.evaluate_workdir(workdir, corpus, predictions=tmp_path / "speaker.jsonl", **PADDING)
    own = evaluate.evaluate_workdir(workdir, corpus, own_stats=True, predictions=tmp_path / "own.jsonl", **PADDING)
    assert own["own_stats"] and not speaker["own_stats"] and own["num_examples"] == speaker["num_examples"]

    def probabilities(name):
        rows = map(json.loads, (tmp_path / name).read_text().splitlines())
        return [p for r in rows for _, p in sorted(r["probabilities"].items())]

    assert probabilities("own.jsonl") != pytest.approx(probabilities("speaker.jsonl"), abs=1e-4)
    stats_path = corpus / "speaker_stats.json"
    stats = json.loads(stats_path.read_text())
    for entry in stats.values():
        entry["mean"] = [m + 3.0 for m in entry["mean"]]
        entry["std"] = [s * 2.0 for s in entry["std"]]
    stats_path.write_text(json.dumps(stats))
    evaluate.evaluate_workdir(workdir, corpus, predictions=tmp_path / "shifted.jsonl", **PADDING)
    evaluate.evaluate_workdir(workdir, corpus, own_stats=True, predictions=tmp_path / "own2.jsonl", **PADDING)
    assert probabilities("shifted.jsonl") != pytest.approx(probabilities("speaker.jsonl"), abs=1e-4)
    assert probabilities("own2.jsonl") == pytest.approx(probabilities("own.jsonl"), abs=1e-6)
    from hmaf import checkpoint

    load = checkpoint.load

    def batch_normed(*args, **kwargs):  # the same model with the paper's kind of normalisation
        model, variables, config = load(*args, **kwargs)
        return model.clone(audio_norm="batch"), variables, config

    monkeypatch.setattr(checkpoint, "load", batch_normed)
    with pytest.raises(ValueError, match="own_stats.*audio_norm='batch', not per speaker"):
        evaluate.evaluate_workdir(workdir, corpus, own_stats=True, **PADDING)
