"""Split files of the held-out views and the generalisation report, as pure functions
over utterances.jsonl rows and per-run results (no training)."""

import json

import numpy as np
import pytest

from hmaf.analysis import generalisation, splits


def _rows(engines=("espeak", "festival"), voices=3, sentences=12, labels=("angry", "sad")):
    """Every voice of every engine speaks every sentence once (one kind per sentence)."""
    rows = []
    for engine in engines:
        for v in range(voices):
            for s in range(sentences):
                rows.append({"id": f"{engine}-{v}-{s}", "label": labels[s % len(labels)], "speaker": f"{engine}:v{v}",
                             "group": f"{engine}:v{v}", "engine": engine, "voice": f"v{v}", "sentence": f"S{s}",
                             "kind": ("ambiguous", "text", "delivery", "both")[s % 4]})
    return rows


def _by_id(rows):
    return {r["id"]: r for r in rows}


def test_read_utterances_names_file_and_line(tmp_path):
    path = tmp_path / "utterances.jsonl"
    path.write_text(json.dumps({"id": "a", "label": "x", "group": "e:v"}) + "\n\n{bad\n")
    with pytest.raises(splits.UtterancesError, match=r"utterances.jsonl:3: not valid JSON"):
        splits.read_utterances(path)
    path.write_text(json.dumps({"id": "a", "label": "x"}) + "\n")
    with pytest.raises(splits.UtterancesError, match=r":1: lacks the fields \['group'\]"):
        splits.read_utterances(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()[:3]))
    assert [r["id"] for r in splits.read_utterances(path)] == ["espeak-0-0", "espeak-0-1", "espeak-0-2"]


def test_loeo_trains_on_one_engine_and_tests_on_the_other():
    rows = _rows()
    found, notes = splits.loeo_splits(rows, val_share=0.4, seed=0)
    assert set(found) == {"festival_to_espeak", "espeak_to_festival"} and notes == []
    index = _by_id(rows)
    split = found["espeak_to_festival"]
    assert {index[i]["engine"] for i in split["test"]} == {"festival"}
    assert {index[i]["engine"] for i in split["train"] + split["validation"]} == {"espeak"}
    train_voices = {index[i]["group"] for i in split["train"]}
    val_voices = {index[i]["group"] for i in split["validation"]}
    assert len(val_voices) == 1 and not train_voices & val_voices  # validation = whole held-out voices
    assert sorted(split["train"] + split["validation"] + split["test"]) == sorted(index)
    assert splits.loeo_splits(rows, val_share=0.4, seed=0) == (found, notes)  # deterministic


def test_loeo_engine_from_group_and_one_engine_note():
    rows = [{k: v for k, v in r.items() if k != "engine"} for r in _rows()]
    assert set(splits.loeo_splits(rows)[0]) == {"festival_to_espeak", "espeak_to_festival"}
    found, notes = splits.loeo_splits(_rows(engines=("espeak",)))
    assert found == {} and "needs two or more engines" in notes[0]
    found, notes = splits.loeo_splits(_rows(voices=1))
    assert len(found) == 2 and any("one voice" in n for n in notes)


@pytest.mark.parametrize("disjoint_speakers", [True, False])
def test_heldout_sentences_never_seen_in_training(disjoint_speakers):
    rows = _rows()
    found, notes = splits.heldout_sentence_splits(rows, num_folds=3, seed=0, disjoint_speakers=disjoint_speakers)
    assert len(found) == 3
    index = _by_id(rows)
    tested = set()
    for split in found:
        seen = {index[i]["sentence"] for i in split["train"]}
        new = {index[i]["sentence"] for i in split["test"]}
        assert seen and new and not seen & new
        assert not seen & {index[i]["sentence"] for i in split["validation"]}
        train_speakers = {index[i]["group"] for i in split["train"]}
        test_speakers = {index[i]["group"] for i in split["test"]}
        assert bool(train_speakers & test_speakers) != disjoint_speakers
        tested |= new
    assert tested == {r["sentence"] for r in rows}  # every sentence is tested once over the folds
    if disjoint_speakers:
        assert any("disjoint" in n for n in notes)


def test_heldout_sentences_notes_instead_of_failing():
    rows = [{k: v for k, v in r.items() if k != "sentence"} for r in _rows()]
    assert splits.heldout_sentence_splits(rows) == ([], ["held-out sentences: utterances.jsonl has no `sentence` "
                                                         "field; view skipped"])
    found, notes = splits.heldout_sentence_splits(_rows(sentences=2), num_folds=3)
    assert found == [] and "cannot make 3 folds" in notes[0]


def test_known_ids_and_split_file(tmp_path):
    rows = _rows(voices=1, sentences=2)
    kept, dropped = splits.keep_known(rows, {"espeak-0-0", "festival-0-1"})
    assert [r["id"] for r in kept] == ["espeak-0-0", "festival-0-1"] and dropped == 2
    path = tmp_path / "splits" / "x.json"
    splits.write_split(path, {"test": ["c"], "train": ["a"], "validation": ["b"]})
    assert json.loads(path.read_text()) == {"train": ["a"], "validation": ["b"], "test": ["c"]}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def _predictions(ids, labels, right):
    """Prediction rows with ``right[i]`` saying whether example i is predicted correctly."""
    other = {"angry": "sad", "sad": "angry"}
    return [{"id": i, "label": l, "predicted": l if r else other[l], "probabilities": {}}
            for i, l, r in zip(ids, labels, right)]


STAGE = {"text_only": "text", "audio_only": "audio"}


def _run(rng, ids, labels, accuracy, validation):
    out = {}
    for model, acc in accuracy.items():
        right = rng.random(len(ids)) < acc
        out[model] = {"test": {"wa": right.mean(), "ua": right.mean(), "weighted_f1": right.mean()},
                      "validation": {"wa": validation[model], "ua": validation[model], "weighted_f1": 0.0},
                      "stages": {STAGE.get(model, "fusion"): {"epochs_trained": 3.5, "stopped_by": "early_stopping",
                                                               "best_step": 20, "steps_trained": 40}},
                      "predictions": _predictions(ids, labels, right)}
    return out


def test_assemble_and_report():
    rng = np.random.default_rng(0)
    rows = _rows(engines=("espeak",), voices=1, sentences=40)
    ids, labels = [r["id"] for r in rows], [r["label"] for r in rows]
    accuracy = {"faf": 0.9, "ul_fusion": 0.6, "text_only": 0.5, "audio_only": 0.8}
    runs = {f"fold{k}-seed0": _run(rng, ids, labels, accuracy, {"faf": 0.9, "ul_fusion": 0.6, "text_only": 0.7,
                                                              "audio_only": 0.6 + 0.2 * k})
            for k in range(3)}
    kinds = splits.kinds_of(rows)
    results = {"in_split": {"5 speaker folds": runs}}
    results["by_kind"] = generalisation.by_kind(runs, kinds, ["angry", "sad"])
    general = generalisation.assemble(results, ["faf", "ul_fusion", "text_only", "audio_only"],
                                      notes={"loeo": ["leave-one-engine-out needs two or more engines"]},
                                      comparisons=generalisation.parse_comparisons("faf:ul_fusion,faf:best_branch"),
                                      resamples=1000)
    in_split = general["views"]["in_split"]
    faf = in_split["settings"]["5 speaker folds"]["faf"]
    assert faf["n"] == 3 and faf["mean"]["wa"] == pytest.approx(np.mean([r["faf"]["test"]["wa"] for r in runs.values()]))
    vs_ul, vs_branch = in_split["comparisons"]["5 speaker folds"]
    assert vs_ul["model_b"] == "ul_fusion" and vs_ul["examples"] == 120 and vs_ul["mcnemar"]["p"] < 0.05
    # the branch is chosen on validation: text (0.7) in fold 0, audio (0.8, 1.0) in folds 1 and 2
    assert vs_branch["chosen"] == {"fold0-seed0": "text_only", "fold1-seed0": "audio_only",
                                   "fold2-seed0": "audio_only"}
    assert set(general["views"]["by_kind"]["settings"]) == {"ambiguous", "text", "delivery", "both"}
    assert general["views"]["by_kind"]["settings"]["text"]["faf"]["n"] == 3
    assert in_split["training"]["5 speaker folds"]["faf"]["fusion"] == {
        "epochs": [3.5] * 3, "stopped_by": {"early_stopping": 3}, "runs": 3, "best_share": [0.5] * 3}
    text = generalisation.report(general)
    assert "### Leave one engine out" in text and "- leave-one-engine-out needs two or more engines" in text
    assert "| 5 speaker folds | Ours-FAF | 3 |" in text
    assert "vs better branch (Text only (T) 1, Audio only (A) 2)" in text
    assert "| 5 speaker folds | Ours-FAF | fusion | 3.5 ± 0.0 (n=3) | early stopping 3/3 | 50% |" in text
    assert list(general["views"]["by_kind"]["settings"]) == ["ambiguous", "delivery", "text", "both"]
    assert json.loads(json.dumps(general)) == general  # JSON-able
    only_faf = generalisation.assemble({"in_split": results["in_split"]}, ["faf"], resamples=10)
    assert list(only_faf["views"]["in_split"]["settings"]["5 speaker folds"]) == ["faf"]
    # the branches trained for the fusion still show how their stages ended
    assert list(only_faf["views"]["in_split"]["training"]["5 speaker folds"]) == [
        "faf", "ul_fusion", "text_only", "audio_only"]


def test_stage_info_and_missing_fields():
    metrics = {"text": {"epochs_trained": 2.0, "stopped_by": "budget"}, "fusion": {"test": {}}, "final": {}}
    nothing = dict.fromkeys(generalisation.STAGE_FIELDS)
    assert generalisation.stage_info(metrics) == {"text": nothing | {"epochs_trained": 2.0, "stopped_by": "budget"},
                                                   "fusion": nothing}
    runs = {"r": {"faf": {"stages": {"fusion": nothing}}}}
    table = generalisation.training_table({"s": generalisation.training_summary(runs, ["faf"])})
    assert table.splitlines()[-1] == "| s | Ours-FAF | fusion | n/a | n/a | n/a |"
    with pytest.raises(ValueError, match="unknown generalisation views"):
        generalisation.parse_views("in_split,loso")
    with pytest.raises(ValueError, match="unknown model"):
        generalisation.parse_comparisons("faf:bert")


def test_unfamiliar_rates_per_setting_in_the_report():
    def rows(flags_by_kind, chosen="combined"):
        n = len(next(iter(flags_by_kind.values())))
        return [{"id": f"u{i}", "label": "angry", "predicted": "angry", "probabilities": {},
                 "unfamiliar": flags_by_kind[chosen][i], "unfamiliar_kind": chosen, "unfamiliar_score": 0.0,
                 "unfamiliar_flags": {k: v[i] for k, v in flags_by_kind.items()}} for i in range(n)]

    in_domain = rows({"energy": [True] + [False] * 19, "mahalanobis": [False] * 20, "input": [True, True] + [False] * 18,
                      "combined": [True] + [False] * 19})
    other = rows({"energy": [False] * 20, "mahalanobis": [True] * 5 + [False] * 15, "input": [True] * 18 + [False] * 2,
                  "combined": [True] * 19 + [False]})
    assert generalisation.unfamiliar_rates(other) == {"score": "combined", "chosen": 0.95, "examples": 20,
                                                      "energy": 0.0, "mahalanobis": 0.25, "input": 0.9,
                                                      "combined": 0.95}
    assert generalisation.unfamiliar_rates([{"id": "a", "label": "x", "predicted": "x"}]) is None  # no calibration

    def result(predictions):
        return {"test": {"wa": 1.0, "ua": 1.0, "weighted_f1": 1.0}, "predictions": predictions}

    results = {"in_split": {"5 speaker folds": {"run0": {"faf": result(in_domain)}, "run1": {"faf": result(other)}}},
               "loeo": {"espeak → festival": {"seed0": {"faf": result(other)}},
                        "festival → espeak": {"seed0": {"faf": result(in_domain[:10])}}}}
    general = generalisation.assemble(results, ["faf"], resamples=10)
    entry = general["views"]["in_split"]["settings"]["5 speaker folds"]["faf"]["unfamiliar"]
    assert entry["n"] == 2 and entry["mean"]["chosen"] == pytest.approx((0.05 + 0.95) / 2)
    assert entry["std"]["input"] == pytest.approx(np.std([0.1, 0.9], ddof=1))
    text = generalisation.report(general)
    assert "% of the test utterances flagged" in text
    assert "| espeak → festival | Ours-FAF | 1 | 95.0 | combined | 0.0 | 25.0 | 90.0 | 95.0 |" in text
    assert "| 5 speaker folds | Ours-FAF | 2 | 50.0 ± 63.6 | combined |" in text
    # runs without the flag (stages trained before it existed): no table
    plain = generalisation.assemble({"loeo": {"a → b": {"seed0": {"faf": result([{"id": "a", "label": "x",
                                                                                "predicted": "x"}])}}}}, ["faf"])
    assert "flagged" not in generalisation.report(plain)
