"""Tests of hmaf.corpora.emns: emphasis parsing, jobs, recordings mode."""

import json
import os

import pytest

from hmaf.corpora import emns, festival


def test_emphasized_phrases_skip_template_placeholders():
    d = "{transcription} said {user_id} in a {emotion} voice. Placing emphasis on {all} and {acts regularly}."
    assert emns.emphasized_phrases(d) == ["all", "acts regularly"]
    assert emns.emphasized_phrases("{transcription} said {user_id}.") == []


def test_emphasis_spans_whole_words_case_insensitive():
    text = "In all other instances the copular verb acts regularly."
    spans, missing = emns.emphasis_spans(text, ["all", "Acts regularly", "nowhere"])
    assert [text[a:b] for a, b in spans] == ["all", "acts regularly"]
    assert missing == ["nowhere"]
    # "all" must not match inside "install"
    spans, _ = emns.emphasis_spans("install it all", ["all"])
    assert spans == [(11, 14)]


def test_emphasis_segments_put_prosody_on_named_words_only():
    text = "In all other instances the verb acts regularly."
    segs = emns.emphasis_segments(text, emns.emphasis_spans(text, ["all", "acts regularly"])[0])
    assert [(s.text, s.prosody is not None) for s in segs] == [
        ("In", False), ("all", True), ("other instances the verb", False),
        ("acts regularly", True), (".", False)]


def _rows(tmp_path, n=3):
    path = tmp_path / "meta.csv"
    path.write_text(
        "id,utterance,description,emotion,file,speaker\n"
        '1,Hello there friend.,"{transcription} said {user_id}. Placing emphasis on {friend}.",anger,recorded_audio_aaa.wav,3\n'
        '2,It rains again.,"In an {emotion} voice, {user_id} says {transcription}. emphasising on {rains} and {snow}.",sadness,recorded_audio_bbb.wav,3\n'
        "3,Who knows.,{transcription} said {user_id}.,confused,recorded_audio_ccc.wav,3\n")
    return str(path)


def test_jobs_from_metadata(tmp_path):
    rows = emns.read_metadata(_rows(tmp_path))
    jobs, stats = emns.synthesized_jobs(rows, voices=("en+f1", "en+f2"))
    assert [j.fields["label"] for j in jobs] == ["anger", "sadness"]
    assert stats["skipped"] == {"unknown_emotion": 1}
    assert stats["phrases"] == 3 and stats["phrases_not_found"] == 1  # "snow"
    assert jobs[0].voice == "en+f1" and jobs[1].voice == "en+f2"
    assert jobs[0].truth["emphasis"] == ["friend"]


def test_shared_metadata_covers_seven_emotions():
    if not os.path.isfile(emns.DEFAULT_METADATA):
        pytest.skip("shared EMNS metadata not present beside the repository")
    rows = emns.read_metadata(emns.DEFAULT_METADATA)
    jobs, stats = emns.synthesized_jobs(rows)
    assert {j.fields["label"] for j in jobs} == set(emns.EMOTIONS)
    assert stats["phrases_not_found"] / stats["phrases"] < 0.05


def test_recordings_matched_by_file_stem(tmp_path):
    rec = tmp_path / "cleaned_webm"
    rec.mkdir()
    (rec / "recorded_audio_aaa.webm").write_bytes(b"x")
    rows = emns.read_metadata(_rows(tmp_path))
    out, stats = emns.recording_rows(rows, str(rec))
    assert [r["id"] for r in out] == ["emns1"]
    assert out[0]["audio"].endswith("recorded_audio_aaa.webm")
    assert stats["skipped"] == {"no_recording": 1, "unknown_emotion": 1}
    emns.build(str(tmp_path / "out"), metadata=_rows(tmp_path), recordings=str(rec), prepare=False)
    rows = [json.loads(l) for l in open(tmp_path / "out" / "utterances.jsonl")]
    assert rows == [{"id": "emns1", "label": "anger", "speaker": "emns_speaker3",
                     "group": "emns_speaker3", "engine": "recording", "voice": "emns_speaker3",
                     "sentence": emns.common.sentence_id("hello there, friend")}]


def test_build_synthesizes_with_truth(tmp_path):
    meta = _rows(tmp_path)
    result = emns.build(str(tmp_path / "out"), metadata=meta, workers=1, prepare=False,
                        word_timings=True)
    assert result["summary"]["num_utterances"] == 2
    manifest = [json.loads(l) for l in open(tmp_path / "out" / "source" / "manifest.jsonl")]
    assert [w[0] for w in manifest[0]["word_timings"]] == ["Hello", "there", "friend"]
    assert os.path.isfile(tmp_path / "out" / "source" / manifest[0]["audio"])


def test_bad_metadata_is_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing column"):
        emns.read_metadata(str(bad))


@pytest.mark.skipif(not festival.available(), reason="festival is not installed (tools/setup.sh)")
def test_build_with_both_engines_writes_utterances(tmp_path):
    meta = tmp_path / "meta.csv"
    meta.write_text(
        "id,utterance,description,emotion\n"
        '1,Hello there friend.,"Placing emphasis on {friend}.",anger\n'
        '2,It rains again.,"Placing emphasis on {rains}.",sadness\n'
        '3,Hello there friend.,"Placing emphasis on {there}.",happiness\n')
    out = tmp_path / "out"
    assert emns.main(["--out", str(out), "--metadata", str(meta), "--engines", "espeak,festival",
                      "--workers", "1", "--no_prepare"]) == 0
    rows = [json.loads(l) for l in open(out / "utterances.jsonl")]
    assert [(r["engine"], r["voice"], r["group"]) for r in rows] == [
        ("espeak", "en+f1", "espeak:en+f1"), ("festival", "kal", "festival:kal"),
        ("espeak", "en+f2", "espeak:en+f2")]
    assert rows[0]["sentence"] == rows[2]["sentence"] != rows[1]["sentence"]
    truth = [json.loads(l) for l in open(out / "source" / "truth.jsonl")]
    assert [w[0] for w in truth[1]["words"]] == ["It", "rains", "again"]
