"""Tests of hmaf.corpora.mosi on a tiny tree in the CMU_MOSI_Raw layout."""

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from hmaf.corpora import mosi

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "mosi", "CMU_MOSI_Raw")


@pytest.fixture()
def root(tmp_path):
    root = tmp_path / "CMU_MOSI_Raw"
    shutil.copytree(FIXTURE, root)
    for video, number, _ in mosi.read_scores(str(root / mosi.LABEL_FILE)):
        sf.write(root / mosi.AUDIO_DIR / f"{video}_{number}.wav", np.zeros(1600, np.float32), 16000)
    return str(root)


def test_has0_keeps_zero_as_non_negative(root):
    rows, stats = mosi.manifest_rows(root, "has0")
    labels = {r["id"]: r["label"] for r in rows}
    assert labels == {"03bSnISJMiM_1": "non-negative", "03bSnISJMiM_2": "negative",
                      "03bSnISJMiM_3": "non-negative", "0h-zjBukYpk_1": "negative",
                      "0h-zjBukYpk_2": "non-negative"}
    assert stats["skipped"] == {"no_transcript": 1}  # 0h-zjBukYpk_3 has an empty transcript


def test_non0_drops_zero_scores(root):
    rows, stats = mosi.manifest_rows(root, "non0")
    assert {r["id"] for r in rows} == {"03bSnISJMiM_1", "03bSnISJMiM_2", "0h-zjBukYpk_1", "0h-zjBukYpk_2"}
    assert {r["label"] for r in rows} == {"negative", "positive"}
    assert stats["skipped"]["zero_score"] == 1


def test_score_speaker_and_transcript(root):
    rows, _ = mosi.manifest_rows(root, "has0")
    row = next(r for r in rows if r["id"] == "03bSnISJMiM_2")
    assert row["score"] == -1.8 and row["speaker"] == row["group"] == "03bSnISJMiM"
    assert row["transcript"] == "THERE IS SAD PARTS BUT IT IS NOT"


def test_missing_audio_is_counted(root):
    os.remove(os.path.join(root, mosi.AUDIO_DIR, "03bSnISJMiM_1.wav"))
    rows, stats = mosi.manifest_rows(root, "has0")
    assert stats["skipped"]["no_wav"] == 1 and len(rows) == 4


def test_not_a_release(tmp_path):
    with pytest.raises(mosi.LayoutError, match="OpinionLevelSentiment.csv"):
        mosi.manifest_rows(str(tmp_path))
