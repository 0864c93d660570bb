"""hmaf.experiment: tables, fold plan, and a tiny run that skips finished models on
rerun and resumes an interrupted one from the shared branches."""

import json

import numpy as np
import pytest

from configs.experiments import base
from hmaf import experiment
from hmaf.analysis import paper, tables
from hmaf.unfamiliar import DEFAULT_SCORE


def test_summary_and_tables_by_hand():
    s = tables.summarize({"fold0-seed0": {"wa": 0.5, "ua": 0.4, "weighted_f1": 0.3},
                          "fold1-seed0": {"wa": 0.7, "ua": 0.6, "weighted_f1": 0.5}})
    assert s["n"] == 2 and s["runs"] == ["fold0-seed0", "fold1-seed0"]
    assert s["mean"]["wa"] == pytest.approx(0.6) and s["std"]["wa"] == pytest.approx(0.1414213, abs=1e-6)
    table = tables.fusion_table({"faf": s, "ul_fusion": s}, paper.reference("iemocap4"))
    lines = table.splitlines()
    assert lines[0].startswith("| Approach | n | WA (%) | UA (%) | Weighted-F1 | paper WA")
    assert lines[2] == "| Ours-FAF | 2 | 60.0 ± 14.1 | 50.0 ± 14.1 | 0.400 ± 0.141 | 72.7 | 72.7 | 0.726 |"
    assert lines[3].startswith("| UL-Fusion") and lines[3].endswith("| 66.5 | 66.8 | 0.663 |")
    modality = tables.modality_table({"faf": s, "text_only": s}, paper.reference("mosi"))
    assert "| T | 2 | 60.0 ± 14.1 | 0.400 ± 0.141 | 75.0 | 0.748 |" in modality
    one = tables.summarize({"fold0-seed0": {"wa": 0.5, "ua": 0.4, "weighted_f1": 0.3}})
    assert tables.cell(one, "wa") == "50.0" and tables.cell(one, "weighted_f1") == "0.300"  # no spread from one run
    with pytest.raises(ValueError, match="no paper numbers"):
        paper.reference("nope")


def test_fold_plan_and_training_order():
    config = base.experiment("x", "d")
    assert experiment.fold_ids(config) == [0, 1, 2, 3, 4]
    config.folds = "1,3"
    assert experiment.fold_ids(config) == [1, 3]
    config.folds = "7"
    with pytest.raises(ValueError, match="outside"):
        experiment.fold_ids(config)
    assert experiment.training_order(["faf", "hf"], staged=True) == ["text_only", "audio_only", "hf", "faf"]
    assert experiment.training_order(["faf"], staged=False) == ["faf"]
    with pytest.raises(ValueError, match="unknown models"):
        experiment.training_order(["bert"], staged=True)


def test_every_shipped_config_loads():
    import importlib
    import pathlib

    for path in sorted(pathlib.Path(experiment.__file__).parents[1].glob("configs/experiments/*.py")):
        if path.stem in ("__init__", "base"):
            continue
        config = importlib.import_module(f"configs.experiments.{path.stem}").get_config()
        assert config.models and config.train.data.dir, path
        paper.reference(config.paper)
        paper.reference(config.cross.paper, table=3)
    from configs.experiments import cross_corpus

    for pair in cross_corpus.PAIRS:
        config = cross_corpus.get_config(pair)
        assert config.cross.data == cross_corpus.PAIRS[pair]["test"] and config.cross.label_map is not None, pair
        assert config.train.data.dir == cross_corpus.PAIRS[pair]["train"], pair


def test_missing_corpus_names_the_build_command(tmp_path):
    config = base.experiment("x", str(tmp_path / "nothing"), build_hint="python -m hmaf.corpora.synthetic --out X")
    with pytest.raises(FileNotFoundError, match="hmaf.corpora.synthetic"):
        experiment.run_experiment(config, tmp_path / "w")


def test_seeds_parse():
    config = base.experiment("x", "d")
    assert experiment.seeds(config) == [0]
    config.seeds = "0, 2"
    assert experiment.seeds(config) == [0, 2]
    config.seeds = ""
    config.train.seed = 5
    assert experiment.seeds(config) == [5]
    config.seeds = "a"
    with pytest.raises(ValueError, match="config.seeds"):
        experiment.seeds(config)
    config.seeds = "3"
    runs = experiment.in_split_runs(config, experiment.Path("W"))
    assert [(r.name, str(r.directory)) for r in runs] == [(f"fold{k}-seed3", f"W/fold{k}/seed3") for k in range(5)]
    train = experiment.model_config(config, "faf", runs[1])
    assert (train.seed, train.data.fold, train.branches_dir) == (3, 1, "W/fold1/seed3/branches")
    assert (train.data.pad_words_to, train.data.pad_frames_to) == (config.source.pad_words_to,
                                                                   config.source.pad_frames_to)


def test_generalisation_plan_and_notes(tmp_path):
    from experiment_helpers import fake_corpus_with_utterances

    data = fake_corpus_with_utterances(tmp_path)
    config = base.experiment("plan", str(data), models=("faf",), num_folds=3)
    config.seeds = "0,1"
    config.generalisation.update(views="by_kind,loeo,heldout_sentences", sentence_folds=2, folds="1")
    plan = experiment.plan_generalisation(config, tmp_path / "W")
    assert [(r.view, r.name) for r in plan.runs] == [
        ("loeo", "seed0"), ("loeo", "seed1"), ("loeo", "seed0"), ("loeo", "seed1"),
        ("heldout_sentences", "fold1-seed0"), ("heldout_sentences", "fold1-seed1")]
    assert str(plan.runs[-1].directory) == str(tmp_path / "W" / "heldout_sentences" / "fold1" / "seed1")
    assert json.loads((tmp_path / "W" / "splits" / "loeo-e0_to_e1.json").read_text())["test"][0].startswith("s3-")
    assert len(plan.kinds) == 36 and plan.notes["loeo"] == []
    train = experiment.model_config(config, "faf", plan.runs[0])
    assert (train.data.split_mode, train.data.split_file) == ("ids", plan.runs[0].split_file)

    (data / "utterances.jsonl").unlink()  # a corpus built before utterances.jsonl: notes, no error
    plan = experiment.plan_generalisation(config, tmp_path / "W2")
    assert plan.runs == [] and all("view skipped" in notes[0] for notes in plan.notes.values())
    assert set(plan.notes) == {"loeo", "heldout_sentences", "by_kind"}


def test_pooled_calibration_puts_the_runs_together_each_at_its_own_temperature():
    from hmaf.calibration import expected_calibration_error, negative_log_likelihood, softmax

    rng = np.random.default_rng(0)
    logits = [rng.normal(scale=3.0, size=(40, 3)), rng.normal(scale=3.0, size=(30, 3))]
    labels = [rng.integers(0, 3, 40), rng.integers(0, 3, 30)]
    temperatures = [2.0, 0.5]
    names = ["a", "b", "c"]

    def rows(z, y):
        return [{"label": names[t], "probabilities": dict(zip(names, p))} for p, t in zip(softmax(z), y)]

    runs = [(rows(z, y), t) for z, y, t in zip(logits, labels, temperatures)] + [(rows(logits[0], labels[0]), None)]
    pooled = experiment.pooled_calibration(runs)
    all_labels = np.concatenate(labels)
    scaled = np.concatenate([z / t for z, t in zip(logits, temperatures)])
    assert (pooled["runs"], pooled["examples"]) == (2, 70)  # the run without a temperature is left out
    assert pooled["ece_before"] == pytest.approx(expected_calibration_error(softmax(np.concatenate(logits)), all_labels))
    assert pooled["ece_after"] == pytest.approx(expected_calibration_error(softmax(scaled), all_labels))
    assert pooled["nll_after"] == pytest.approx(negative_log_likelihood(scaled, all_labels), rel=1e-6)
    assert pooled["ece_after"] != pytest.approx(pooled["ece_before"])
    assert experiment.pooled_calibration([(rows(logits[0], labels[0]), None)]) is None


def test_tiny_experiment_runs_skips_and_resumes(tmp_path):
    from hmaf.data.fake_corpus import write_fake_corpus
    from hmaf.data.folds import speaker_folds

    data = tmp_path / "fake"
    write_fake_corpus(data, num_speakers=4, per_speaker=6, max_frames=12)
    config = base.experiment("tiny", str(data), models=("hf", "text_only"), num_folds=2, paper="iemocap4")
    config.folds = "0"
    config.seeds = "0,1"
    config.train.model.update(hidden=4, attention_dim=4, fusion_dim=4, filters=4, widths=(2,))
    config.train.batch_size = 2  # eval batch sizes {2, 1}: few compilations
    config.branch_train_steps = 4
    config.fusion_train_steps = 2
    config.train.eval_every = 2
    config.train.log_every = 2
    config.source.update(bucket=False, pad_words_to=16, pad_frames_to=16)
    config.compilation_cache = str(tmp_path / "cache")
    config.cross.data = str(data)  # Table 3 path: evaluate every model on all of a corpus
    config.comparisons = "hf:text_only,hf:best_branch"
    config.bootstrap.resamples = 200
    workdir = tmp_path / "run"
    summary = experiment.run_experiment(config, workdir)

    fold = workdir / "fold0"
    runs = ["fold0-seed0", "fold0-seed1"]
    assert set(summary["models"]) == {"hf", "text_only"} and summary["runs"] == runs
    assert summary["models"]["hf"]["n"] == 2
    for seed in (0, 1):
        run = fold / f"seed{seed}"
        assert (run / "branches" / "text").resolve() == (run / "text_only" / "text").resolve()
        assert (run / "audio_only" / "audio" / "metrics.json").exists()  # branch trained for hf, not reported
        assert json.loads((run / "hf" / "config.json").read_text())["seed"] == seed
        hf_metrics = json.loads((run / "hf" / "metrics.json").read_text())
        assert summary["models"]["hf"]["per_run"][f"fold0-seed{seed}"]["wa"] == hf_metrics["fusion"]["test"]["wa"]
        # predictions.jsonl: the best checkpoint on the test split, the same accuracy as metrics.json
        rows = [json.loads(line) for line in (run / "hf" / "predictions.jsonl").read_text().splitlines()]
        test_speakers = speaker_folds([f"s{k}" for k in range(4)], 2)[0].test
        assert {r["id"].split("-")[0] for r in rows} == set(test_speakers)
        assert len(rows) == hf_metrics["fusion"]["test"]["num_examples"]
        assert np.mean([r["label"] == r["predicted"] for r in rows]) == pytest.approx(hf_metrics["fusion"]["test"]["wa"])
        assert all(sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-4) for r in rows)
        # the stage's unfamiliar-input flag on every row, every fitted score beside it
        assert all(isinstance(r["unfamiliar"], bool) and r["unfamiliar_kind"] == DEFAULT_SCORE for r in rows)
        assert all(set(r["unfamiliar_flags"]) == {"energy", "mahalanobis", "input", "combined"} for r in rows)
    assert summary["cross"]["hf"]["per_run"]["fold0-seed0"]["wa"] == \
        json.loads((fold / "seed0" / "hf" / "cross_eval.json").read_text())["wa"]
    comparisons = summary["comparisons"]["2 speaker folds"]
    assert [c["model_b"] for c in comparisons] == ["text_only", "best_branch"]
    assert comparisons[0]["runs"] == 2 and set(comparisons[1]["chosen"]) == set(runs)
    report = (workdir / "results.md").read_text()
    assert "| Ours-HF | 2 |" in report and "| 70.0 | 69.7 | 0.695 |" in report and "Table 3" in report
    assert "Ours-HF vs Text only (T)" in report and "### In-split test" in report
    pooled = summary["models"]["hf"]["calibration"]  # both seeds' test predictions together
    assert pooled["runs"] == 2 and pooled["examples"] == sum(
        len((fold / f"seed{s}" / "hf" / "predictions.jsonl").read_text().splitlines()) for s in (0, 1))
    assert "## Calibration (test predictions of all runs pooled; ours)" in report
    assert "| 2 speaker folds | Ours-HF | 2 |" in report.split("% of the test utterances flagged")[1]
    general = json.loads((workdir / "generalisation.json").read_text())
    assert set(general["results"]["in_split"]["2 speaker folds"]) == set(runs)

    models = ("text_only", "audio_only", "hf")
    stamps = {(s, m): (fold / f"seed{s}" / m / "experiment.json").stat().st_mtime_ns for s in (0, 1) for m in models}
    again = experiment.run_experiment(config, workdir)  # everything finished: nothing retrains
    assert again["models"]["hf"]["mean"] == summary["models"]["hf"]["mean"]
    assert {k: (fold / f"seed{k[0]}" / k[1] / "experiment.json").stat().st_mtime_ns for k in stamps} == stamps

    # An interrupted fusion model (no final metrics) of one seed trains again on the same branches.
    (fold / "seed1" / "hf" / "metrics.json").unlink()
    (fold / "seed1" / "hf" / "fusion" / "metrics.json").unlink()
    (fold / "seed1" / "hf" / "predictions.jsonl").unlink()
    experiment.run_experiment(config, workdir)
    assert (fold / "seed1" / "hf" / "predictions.jsonl").exists()
    after = {k: (fold / f"seed{k[0]}" / k[1] / "experiment.json").stat().st_mtime_ns for k in stamps}
    assert after[(1, "hf")] > stamps[(1, "hf")]
    assert {k: v for k, v in after.items() if k != (1, "hf")} == {k: v for k, v in stamps.items() if k != (1, "hf")}


def test_generalisation_views_end_to_end(tmp_path):
    from experiment_helpers import fake_corpus_with_utterances

    data = fake_corpus_with_utterances(tmp_path)
    config = base.experiment("views", str(data), models=("text_only", "audio_only"), num_folds=3)
    config.folds = "0"
    config.train.model.update(hidden=4, attention_dim=4, fusion_dim=4, filters=4, widths=(2,))
    config.train.batch_size = 2
    config.branch_train_steps = 2
    config.train.eval_every = 2
    config.train.log_every = 2
    config.source.update(bucket=False, pad_words_to=16, pad_frames_to=16)
    config.compilation_cache = str(tmp_path / "cache")
    config.comparisons = "text_only:audio_only"
    config.bootstrap.resamples = 200
    config.generalisation.update(views="in_split,loeo,heldout_sentences,by_kind", folds="0",
                                 disjoint_speakers=False)
    workdir = tmp_path / "run"
    experiment.run_experiment(config, workdir)

    general = json.loads((workdir / "generalisation.json").read_text())
    rows = {r["id"]: r for r in map(json.loads, (data / "utterances.jsonl").read_text().splitlines())}
    assert set(general["views"]["loeo"]["settings"]) == {"e0 → e1", "e1 → e0"}
    for direction, (train_engine, test_engine) in (("e0_to_e1", ("e0", "e1")), ("e1_to_e0", ("e1", "e0"))):
        split = json.loads((workdir / "splits" / f"loeo-{direction}.json").read_text())
        predicted = [json.loads(line)["id"] for line in
                     (workdir / "loeo" / direction / "seed0" / "audio_only" / "predictions.jsonl").read_text().splitlines()]
        assert sorted(predicted) == sorted(split["test"])  # training used the split file
        assert {rows[i]["engine"] for i in predicted} == {test_engine}
        assert {rows[i]["engine"] for i in split["train"]} == {train_engine}
    split = json.loads((workdir / "splits" / "heldout_sentences-fold0.json").read_text())
    predicted = [json.loads(line)["id"] for line in
                 (workdir / "heldout_sentences" / "fold0" / "seed0" / "text_only" / "predictions.jsonl")
                 .read_text().splitlines()]
    assert sorted(predicted) == sorted(split["test"])
    assert not {rows[i]["sentence"] for i in predicted} & {rows[i]["sentence"] for i in split["train"]}
    assert set(general["views"]["by_kind"]["settings"]) == {"ambiguous", "delivery", "text", "both"}
    assert general["views"]["heldout_sentences"]["comparisons"]["new sentences"][0]["model_a"] == "text_only"
    report = (workdir / "results.md").read_text()
    for title in ("### In-split test", "### Leave one engine out", "### Held-out sentences", "### In-split test by kind"):
        assert title in report
    # epochs per stage and the stop reason come from the trainer's stage metrics
    stage = json.loads((workdir / "loeo" / "e0_to_e1" / "seed0" / "audio_only" / "audio" / "metrics.json").read_text())
    assert f"| e0 → e1 | Audio only (A) | audio | {stage['epochs_trained']:.1f} (n=1) | budget 1/1 |" in report

    # A rebuilt corpus changes a split file: the models trained on the old one are not reused.
    lines = (data / "utterances.jsonl").read_text().splitlines(keepends=True)
    (data / "utterances.jsonl").write_text("".join(lines[:-1]))
    with pytest.raises(ValueError, match="trained on another version of .*loeo-e"):
        experiment.run_experiment(config, workdir)
