"""hmaf.experiment: tables, fold plan, and a tiny run that skips finished models on
rerun and resumes an interrupted one from the shared branches."""

import json

import pytest

from configs.experiments import base
from hmaf import experiment
from hmaf.analysis import paper, tables


def test_summary_and_tables_by_hand():
    s = tables.summarize({0: {"wa": 0.5, "ua": 0.4, "weighted_f1": 0.3}, 1: {"wa": 0.7, "ua": 0.6, "weighted_f1": 0.5}})
    assert s["mean"]["wa"] == pytest.approx(0.6) and s["std"]["wa"] == pytest.approx(0.1414213, abs=1e-6)
    table = tables.fusion_table({"faf": s, "ul_fusion": s}, paper.reference("iemocap4"))
    lines = table.splitlines()
    assert lines[0].startswith("| Approach | WA (%) | UA (%) | Weighted-F1 | paper WA")
    assert lines[2] == "| Ours-FAF | 60.0 ± 14.1 | 50.0 ± 14.1 | 0.400 ± 0.141 | 72.7 | 72.7 | 0.726 |"
    assert lines[3].startswith("| UL-Fusion") and lines[3].endswith("| 66.5 | 66.8 | 0.663 |")
    modality = tables.modality_table({"faf": s, "text_only": s}, paper.reference("mosi"))
    assert "| T | 60.0 ± 14.1 | 0.400 ± 0.141 | 75.0 | 0.748 |" in modality
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


def test_missing_corpus_names_the_build_command(tmp_path):
    config = base.experiment("x", str(tmp_path / "nothing"), build_hint="python -m hmaf.corpora.synthetic --out X")
    with pytest.raises(FileNotFoundError, match="hmaf.corpora.synthetic"):
        experiment.run_experiment(config, tmp_path / "w")


def test_tiny_experiment_runs_skips_and_resumes(tmp_path):
    from hmaf.data.fake_corpus import write_fake_corpus

    data = tmp_path / "fake"
    write_fake_corpus(data, num_speakers=4, per_speaker=6, max_frames=12)
    config = base.experiment("tiny", str(data), models=("hf", "text_only"), num_folds=2, paper="iemocap4")
    config.folds = "0"
    config.train.model.update(hidden=4, attention_dim=4, fusion_dim=4, filters=4, widths=(2,))
    config.train.batch_size = 2  # eval batch sizes {2, 1}: few compilations
    config.branch_train_steps = 4
    config.fusion_train_steps = 2
    config.train.eval_every = 2
    config.train.log_every = 2
    config.source.update(bucket=False, pad_words_to=16, pad_frames_to=16)
    config.compilation_cache = str(tmp_path / "cache")
    config.cross.data = str(data)  # Table 3 path: evaluate every model on all of a corpus
    workdir = tmp_path / "run"
    summary = experiment.run_experiment(config, workdir)

    fold = workdir / "fold0"
    assert set(summary["models"]) == {"hf", "text_only"}
    assert (fold / "branches" / "text").resolve() == (fold / "text_only" / "text").resolve()
    assert (fold / "audio_only" / "audio" / "metrics.json").exists()  # branch trained for hf, not reported
    hf_metrics = json.loads((fold / "hf" / "metrics.json").read_text())
    assert summary["models"]["hf"]["per_fold"][0]["wa"] == \
        hf_metrics["fusion"]["test"]["wa"]
    assert summary["cross"]["hf"]["per_fold"][0]["wa"] == json.loads((fold / "hf" / "cross_eval.json").read_text())["wa"]
    report = (workdir / "results.md").read_text()
    assert "| Ours-HF |" in report and "| 70.0 | 69.7 | 0.695 |" in report and "Table 3" in report

    stamps = {m: (fold / m / "experiment.json").stat().st_mtime_ns for m in ("text_only", "audio_only", "hf")}
    again = experiment.run_experiment(config, workdir)  # everything finished: nothing retrains
    assert again["models"]["hf"]["mean"] == summary["models"]["hf"]["mean"]
    assert {m: (fold / m / "experiment.json").stat().st_mtime_ns for m in stamps} == stamps

    # An interrupted fusion model (no final metrics) trains again on the same branches.
    (fold / "hf" / "metrics.json").unlink()
    (fold / "hf" / "fusion" / "metrics.json").unlink()
    experiment.run_experiment(config, workdir)
    assert (fold / "hf" / "metrics.json").exists()
    assert (fold / "hf" / "experiment.json").stat().st_mtime_ns > stamps["hf"]
    assert (fold / "text_only" / "experiment.json").stat().st_mtime_ns == stamps["text_only"]
