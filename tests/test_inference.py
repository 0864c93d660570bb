"""hmaf.inference / hmaf.predict on synthesized speech, with and without text, and
the clear errors for bad input."""

import json

import numpy as np
import pytest
import soundfile

import experiment_helpers as helpers
from hmaf import predict
from hmaf.data.utterance import PreprocessError
from hmaf.inference import Predictor, ProfileError, utterance_batch
from hmaf.unfamiliar import DEFAULT_SCORE


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return helpers.tiny_workdir(tmp_path_factory.getbasetemp() / "hmaf-tiny")


@pytest.fixture(scope="module")
def predictor(workdir):
    return Predictor.from_workdir(workdir)


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return helpers.speech(tmp_path_factory.mktemp("speech") / "x.wav")


def test_utterance_batch_pads_to_the_contract():
    from hmaf.batch import validate

    batch = utterance_batch([np.array([3, 1], np.int32)], [[np.ones((5, 64), np.float32), np.ones((17, 64), np.float32)]])
    validate(batch)
    assert batch["frames"].shape == (1, 8, 32, 64) and batch["frame_mask"][0, 1].sum() == 17


def test_predict_with_text(predictor, wav):
    p = predictor(wav, "What the hell, this is great!", frame_attention=True)
    assert p.words == ["what", "the", "hell", "this", "is", "great"]
    assert p.label in predictor.label_names and p.probabilities[p.label] == max(p.probabilities.values())
    assert sum(p.probabilities.values()) == pytest.approx(1, abs=1e-5)
    assert set(p.attention) == {"t_alpha", "w_alpha", "s_alpha", "u_alpha"}
    for name, weights in p.attention.items():
        assert len(weights) == 6
        assert sum(weights) == pytest.approx(2.0 if name == "u_alpha" else 1.0, abs=1e-4)
    assert [sum(f) for f in p.frame_attention] == pytest.approx([1.0] * 6, abs=1e-4)
    assert not p.transcript_auto and all(s < e for s, e in zip(p.word_start, p.word_end))
    assert set(p.unknown_words) <= set(p.words)


def test_calibrated_probabilities_and_the_unfamiliar_flag(predictor, wav, monkeypatch):
    assert predictor.calibration is not None  # the trainer wrote fusion/calibration.json
    detector = predictor.unfamiliar
    assert detector.score == DEFAULT_SCORE and detector.available == ("energy", "mahalanobis", "input", "combined")
    p = predictor(wav, "What the hell, this is great!")
    assert p.calibrated and isinstance(p.unfamiliar, bool) and p.unfamiliar_kind == DEFAULT_SCORE
    assert p.unfamiliar == (p.unfamiliar_score > detector.thresholds[DEFAULT_SCORE])
    monkeypatch.setattr(predictor, "calibration", None)
    uncalibrated = predictor(wav, "What the hell, this is great!")
    assert not uncalibrated.calibrated and uncalibrated.unfamiliar is None and uncalibrated.unfamiliar_kind is None
    # Scaling by one temperature keeps the ranking of the classes.
    order = sorted(p.probabilities, key=p.probabilities.get)
    assert order == sorted(uncalibrated.probabilities, key=uncalibrated.probabilities.get)
    monkeypatch.undo()
    monkeypatch.setattr(detector, "thresholds", {**detector.thresholds, DEFAULT_SCORE: -1e9})
    flagged = predictor(wav, "What the hell, this is great!")
    assert flagged.unfamiliar and flagged.unfamiliar_score == pytest.approx(p.unfamiliar_score)
    assert "unfamiliar input" in predict.format_prediction(flagged)
    assert f"{DEFAULT_SCORE} score" in predict.format_prediction(flagged)
    assert "unfamiliar input" not in predict.format_prediction(uncalibrated)


def test_a_stage_calibrated_before_the_feature_scores_still_predicts(workdir, wav, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(workdir, old, symlinks=True)
    path = old / "fusion" / "calibration.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in record.items() if k not in ("unfamiliar", "test")}))
    (old / "fusion" / "unfamiliar.npz").unlink()
    predictor = Predictor.from_workdir(old)
    p = predictor(wav, "What the hell, this is great!")
    assert p.unfamiliar_kind == "energy" and isinstance(p.unfamiliar, bool)
    assert p.unfamiliar == (p.unfamiliar_score > record["energy_threshold"])


def test_predict_without_text_uses_speech_recognition(predictor, wav):
    p = predictor(wav)
    assert p.transcript_auto and p.words
    assert len(p.attention["t_alpha"]) == len(p.words)


def test_bad_inputs_are_clear_errors(predictor, wav, tmp_path):
    with pytest.raises(PreprocessError, match="missing.wav.*no such file") as missing:
        predictor(tmp_path / "missing.wav", "hello")
    assert missing.value.reason == "unreadable_audio"
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(PreprocessError, match="empty.wav.*no audio") as err:
        predictor(empty, "hello")
    assert err.value.reason == "unreadable_audio"
    with pytest.raises(PreprocessError, match="x.wav: no_words"):
        predictor(wav, "?! ... --")


def test_predict_cli_json_table_and_errors(workdir, wav, tmp_path, capsys):
    assert predict.main(["--workdir", str(workdir), "--audio", str(wav), "--text", "what the hell this is great",
                         "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["words"][2] == "hell" and len(result["attention"]["u_alpha"]) == 6
    assert predict.main(["--workdir", str(workdir), "--audio", str(wav), "--text", "what the hell this is great"]) == 0
    table = capsys.readouterr().out
    assert "t_alpha" in table and "hell" in table
    assert predict.main(["--workdir", str(workdir), "--audio", str(tmp_path / "nope.wav"), "--text", "hi"]) == 2
    assert "nope.wav" in capsys.readouterr().err
    assert predict.main(["--workdir", str(tmp_path), "--audio", str(wav)]) == 2
    assert "vocabulary" in capsys.readouterr().err


def test_mostly_unknown_words_are_warned_about_once(workdir, tmp_path, caplog):
    predictor = Predictor.from_workdir(workdir)  # its own warned-once state
    known_text, unknown_text = "This is great, I feel delighted!", "Zorbly the quaxing flimbuts"
    with caplog.at_level("WARNING"):
        known = predictor(helpers.speech(tmp_path / "known.wav", known_text), known_text)
    assert not known.unknown_words and "vocabulary" not in caplog.text
    unknown_wav = helpers.speech(tmp_path / "unknown.wav", unknown_text)
    with caplog.at_level("WARNING"):
        for _ in range(2):
            p = predictor(unknown_wav, unknown_text)
    assert p.unknown_words == ["zorbly", "quaxing", "flimbuts"]
    assert caplog.text.count("3 of 4 words are not in this model's vocabulary") == 1
    assert "--vocab_extra" in caplog.text
    assert "most words (3 of 4) are unknown" in predict.format_prediction(p)
    assert "most words" not in predict.format_prediction(known)


def test_word_boundaries_follow_the_training_corpus(workdir, predictor, wav, tmp_path, capsys):
    """The Predictor aligns as its corpus was prepared (dataset.json's ``boundaries``; "hmm"
    for a corpus from before the setting); ``--boundaries`` of hmaf.predict overrides it."""
    import shutil

    from hmaf.data.align import DEFAULT_BOUNDARIES

    meta = json.loads((workdir / "corpus" / "dataset.json").read_text())
    assert predictor.boundaries == meta["boundaries"] == DEFAULT_BOUNDARIES
    old = tmp_path / "old"
    shutil.copytree(workdir, old)
    for boundaries in ("signal", None):
        changed = {k: v for k, v in meta.items() if k != "boundaries"}
        if boundaries:
            changed["boundaries"] = boundaries
        (old / "corpus" / "dataset.json").write_text(json.dumps(changed))
        assert Predictor.from_workdir(old).boundaries == (boundaries or "hmm")
    starts = {}
    for boundaries in ("hmm", "signal"):
        assert predict.main(["--workdir", str(workdir), "--audio", str(wav), "--text", "what the hell this is great",
                             "--boundaries", boundaries, "--json"]) == 0
        starts[boundaries] = np.array(json.loads(capsys.readouterr().out)["word_start"])
    assert 0.001 < np.abs(starts["signal"] - starts["hmm"]).max() < 0.1


def test_predict_manifest_goes_on_after_a_bad_row(workdir, wav, tmp_path):
    manifest = tmp_path / "m.jsonl"
    rows = [{"id": "good", "audio": str(wav), "transcript": "what the hell this is great", "label": "happy",
             "speaker": "s"},
            {"id": "bad", "audio": "gone.wav", "transcript": "hi", "label": "sad", "speaker": "s"},
            {"id": "unlabelled", "audio": str(wav), "transcript": "what the hell this is great"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "pred.jsonl"
    assert predict.main(["--workdir", str(workdir), "--manifest", str(manifest), "--out", str(out)]) == 0
    lines = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert lines["good"]["true_label"] == "happy" and lines["good"]["label"]
    assert lines["bad"]["error"] == "unreadable_audio" and "no such file" in lines["bad"]["detail"]
    # New recordings need no label or speaker: only the audio (and, here, the words).
    assert lines["unlabelled"]["true_label"] is None
    # "good" is speaker s's only recording: its speaker statistics are its own (computed on
    # the host rather than in the model, hence the tolerance).
    assert lines["unlabelled"]["probabilities"] == pytest.approx(lines["good"]["probabilities"], abs=1e-4)


def test_a_speaker_profile_reaches_speaker_normalised_models(workdir, wav, tmp_path, capsys):
    from hmaf.data.normalize import utterance_stats

    predictor = Predictor.from_workdir(workdir)
    assert predictor.model.audio_norm == "speaker"  # the default config's
    utt = predictor.preprocess(wav, "What the hell, this is great!")
    own = predictor.predict_utterances([utt])[0].probabilities
    mean, std = utterance_stats(utt.frames)
    predictor.speaker_profile = (mean, std)  # the utterance's own statistics: the fallback's result
    assert predictor.predict_utterances([utt])[0].probabilities == pytest.approx(own, abs=1e-4)
    predictor.speaker_profile = (mean + 3.0, std * 2.0)
    shifted = predictor.predict_utterances([utt])[0].probabilities
    assert shifted != pytest.approx(own, abs=1e-6)
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"mean": (mean + 3.0).tolist(), "std": (std * 2.0).tolist(), "frames": 9}))
    args = ["--workdir", str(workdir), "--audio", str(wav), "--text", "What the hell, this is great!", "--json"]
    assert predict.main(args + ["--speaker_profile", str(profile)]) == 0
    assert json.loads(capsys.readouterr().out)["probabilities"] == pytest.approx(shifted, abs=1e-5)
    assert predict.main(args + ["--speaker_profile", str(tmp_path / "none.json")]) == 2
    assert "none.json" in capsys.readouterr().err
    assert predictor.model.prosody  # the default config's: a 64-column profile predates its columns
    with pytest.raises(ProfileError, match="profile holds 64 columns but this model reads 67"):
        Predictor(predictor.model, predictor.variables, predictor.vocab, predictor.label_names,
                  speaker_profile=(mean[:64], std[:64]))


def test_predict_manifest_normalises_each_speaker_by_their_recordings(workdir, wav, tmp_path):
    """A speaker-normalised model given a manifest with speakers uses each speaker's
    statistics over the manifest's recordings (computed here by hand), in row order with a
    failed row among them; a row without a speaker, and --own_stats, use the recording's own."""
    other = helpers.speech(tmp_path / "other.wav", "We could not have asked for a better day")
    text = "What the hell, this is great!"
    rows = [{"id": "a1", "audio": str(wav), "transcript": text, "speaker": "s"},
            {"id": "a2", "audio": str(other), "transcript": "We could not have asked for a better day",
             "speaker": "s"},
            {"id": "bad", "audio": "gone.wav", "transcript": "hi", "speaker": "s"},
            {"id": "solo", "audio": str(wav), "transcript": text}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    predictor = Predictor.from_workdir(workdir)
    utterances = [predictor.preprocess(wav, text), predictor.preprocess(other, rows[1]["transcript"])]
    frames = np.concatenate([f for u in utterances for f in u.frames]).astype(np.float64)
    profile = (frames.mean(0).astype(np.float32), frames.std(0).astype(np.float32))
    by_speaker = [p.probabilities for p in (predictor.predict_utterances([u], speaker_profile=profile)[0]
                                            for u in utterances)]
    own = predictor.predict_utterances([utterances[0]])[0].probabilities
    assert by_speaker[0] != pytest.approx(own, abs=1e-4)

    out = tmp_path / "pred.jsonl"
    assert predict.main(["--workdir", str(workdir), "--manifest", str(manifest), "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["a1", "a2", "bad", "solo"] and "error" in lines[2]
    assert lines[0]["probabilities"] == pytest.approx(by_speaker[0], abs=1e-4)
    assert lines[1]["probabilities"] == pytest.approx(by_speaker[1], abs=1e-4)
    assert lines[3]["probabilities"] == pytest.approx(own, abs=1e-4)
    assert [line.get("normalisation") for line in lines] == ["profile", "profile", None, "utterance"]
    assert predict.main(["--workdir", str(workdir), "--manifest", str(manifest), "--out", str(out),
                         "--own_stats"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["probabilities"] == pytest.approx(own, abs=1e-4)
    assert lines[0]["normalisation"] == "utterance"
    with pytest.raises(SystemExit):  # a profile and own statistics exclude each other
        predict.main(["--workdir", str(workdir), "--manifest", str(manifest), "--own_stats",
                      "--speaker_profile", str(tmp_path / "p.json")])
