"""Tests of hmaf.corpora.iemocap on a tiny tree in the release's layout."""

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from hmaf.corpora import iemocap

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "iemocap", "IEMOCAP_full_release")
MISSING_WAV = "Ses01F_impro01_F005"  # labelled neu with agreement, but its wav is absent


@pytest.fixture()
def root(tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    shutil.copytree(FIXTURE, root)
    for session in ("Session1", "Session2"):
        eval_dir = root / session / "dialog" / "EmoEvaluation"
        for name in os.listdir(eval_dir):
            dialog = name[:-4]
            for utt in iemocap.parse_emo_evaluation(str(eval_dir / name)):
                if utt == MISSING_WAV:
                    continue
                wav_dir = root / session / "sentences" / "wav" / dialog
                wav_dir.mkdir(parents=True, exist_ok=True)
                sf.write(wav_dir / f"{utt}.wav", np.zeros(1600, np.float32), 16000)
    return str(root)


def test_four_class_labels_and_majority_rule(root):
    rows, stats = iemocap.manifest_rows(root, classes=4)
    labels = {r["id"]: r["label"] for r in rows}
    assert labels == {
        "Ses01F_impro01_F000": "neutral",   # 3 of 3 evaluators (self-evaluation C-F1 ignored)
        "Ses01F_impro01_M000": "happy",     # exc, named by C-E1 and C-E2
        "Ses01F_impro01_F003": "sad",
        "Ses02M_script01_1_M000": "happy",  # hap
        "Ses02M_script01_1_F000": "angry",
    }
    # M001 "ang": only C-E2 says Anger (C-M1 is the actor's self-evaluation) -> no agreement.
    assert stats["skipped"] == {"fru": 1, "no_agreement": 1, "no_wav": 1, "oth": 1, "sur": 1, "xxx": 1}


def test_five_class_keeps_frustration(root):
    rows, stats = iemocap.manifest_rows(root, classes=5)
    labels = {r["id"]: r["label"] for r in rows}
    assert labels["Ses01F_impro01_F001"] == "frustrated"
    assert "fru" not in stats["skipped"] and stats["kept"] == 6


def test_speaker_and_session_groups(root):
    rows, _ = iemocap.manifest_rows(root, classes=4)
    by_id = {r["id"]: r for r in rows}
    assert by_id["Ses01F_impro01_M000"]["speaker"] == "Ses01F"
    assert by_id["Ses01F_impro01_M000"]["group"] == "Session1"
    assert by_id["Ses02M_script01_1_F000"]["group"] == "Session2"
    assert by_id["Ses01F_impro01_F000"]["transcript"] == "Excuse me."
    assert os.path.isfile(by_id["Ses01F_impro01_F000"]["audio"])


def test_wdseg_word_timings(root):
    rows, _ = iemocap.manifest_rows(root, classes=4, word_timings=True)
    by_id = {r["id"]: r for r in rows}
    assert by_id["Ses01F_impro01_F000"]["word_timings"] == [
        ["excuse", pytest.approx(0.33), pytest.approx(0.51)], ["me", pytest.approx(0.61), pytest.approx(0.90)]]
    assert "word_timings" not in by_id["Ses01F_impro01_M000"]  # no .wdseg for it


def test_not_a_release_names_what_is_missing(tmp_path):
    with pytest.raises(iemocap.LayoutError, match="Session1..Session5"):
        iemocap.manifest_rows(str(tmp_path))
    (tmp_path / "Session1" / "sentences" / "wav").mkdir(parents=True)
    with pytest.raises(iemocap.LayoutError, match="dialog/transcriptions"):
        iemocap.manifest_rows(str(tmp_path))
