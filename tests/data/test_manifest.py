import json

import pytest

from hmaf.data.manifest import ManifestError, read_manifest


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_rows_defaults_and_relative_paths(tmp_path):
    (tmp_path / "audio").mkdir()
    m = _write(tmp_path / "m.jsonl", "\n".join([
        json.dumps({"audio": "audio/a.wav", "transcript": "hi there", "label": "happy", "speaker": "s1"}),
        "",
        json.dumps({"audio": str(tmp_path / "audio" / "b.flac"), "label": 3, "speaker": "s2", "id": "B",
                    "split": "test", "group": "session1", "transcript": None,
                    "word_timings": [["hi", 0.1, 0.3], ["there", 0.3, 0.6]]}),
        json.dumps({"audio": "audio/c.wav", "transcript": "", "label": "sad", "speaker": "s1"}),
    ]))
    rows, rejects = read_manifest(m)
    assert rejects == []
    a, b, c = rows
    assert (a.id, a.audio, a.transcript, a.label, a.speaker, a.group, a.split, a.line) == (
        "audio/a", str(tmp_path / "audio" / "a.wav"), "hi there", "happy", "s1", "s1", "", 1)
    assert (b.id, b.label, b.group, b.split, b.transcript, b.line) == ("B", "3", "session1", "test", None, 3)
    assert b.word_timings == (("hi", 0.1, 0.3), ("there", 0.3, 0.6))
    assert c.transcript == ""  # kept: "" is rejected later as empty_transcript, unlike null


def test_transcripts_in_windows_1252_read_as_latin_1_are_repaired(tmp_path):
    m = _write(tmp_path / "m.jsonl", json.dumps(
        {"audio": "a.wav", "transcript": "You didn\x92t", "label": "sad", "speaker": "s"}))
    (row,), _ = read_manifest(m)
    assert row.transcript == "You didn\u2019t"  # so the cache key and the records see the text


def test_jsonl_malformed_rows_are_rejects_with_file_and_line(tmp_path):
    m = _write(tmp_path / "m.jsonl", "\n".join([
        json.dumps({"audio": "a.wav", "label": "x", "speaker": "s"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"audio": "b.wav", "label": "x"}),
        json.dumps({"audio": "c.wav", "label": "x", "speaker": "s", "transcript": 5}),
        json.dumps({"audio": "d.wav", "label": "x", "speaker": "s", "word_timings": [["w", 0.1]]}),
        json.dumps({"audio": "e.wav", "label": "x", "speaker": "s", "id": "a"}),
    ]))
    rows, rejects = read_manifest(m)
    assert [r.id for r in rows] == ["a"]
    assert [(r.line, r.reason) for r in rejects] == [
        (2, "bad_row"), (3, "bad_row"), (4, "bad_row"), (5, "bad_row"), (6, "bad_row"), (7, "duplicate_id")]
    for r in rejects:
        assert f"{m}:{r.line}:" in r.detail
    assert "speaker" in rejects[2].detail and "not valid JSON" in rejects[0].detail
    assert set(rejects[2].to_json()) == {"id", "audio", "reason", "detail"}


def test_csv_manifest(tmp_path):
    m = _write(tmp_path / "m.csv", "\n".join([
        "audio,transcript,label,speaker,split,word_timings",
        'a.wav,"Hello, world",pos,s1,train,',
        "b.wav,,neg,s2,dev,",  # empty cell = missing transcript -> ASR
        'c.wav,hi,neg,s2,,"[[""hi"", 0.0, 0.2]]"',
        "d.wav,x,neg,s2,train,,extra",
        ",x,neg,s2,,",
    ]))
    rows, rejects = read_manifest(m)
    assert [(r.id, r.transcript, r.label, r.split) for r in rows] == [
        ("a", "Hello, world", "pos", "train"), ("b", None, "neg", "dev"), ("c", "hi", "neg", "")]
    assert rows[2].word_timings == (("hi", 0.0, 0.2),)
    assert [(r.line, r.reason) for r in rejects] == [(5, "bad_row"), (6, "bad_row")]


def test_a_prediction_manifest_needs_only_the_audio(tmp_path):
    m = _write(tmp_path / "m.jsonl", "\n".join([
        json.dumps({"audio": "a.wav", "transcript": "hi there"}),
        json.dumps({"audio": "b.wav", "label": "sad", "speaker": "s2"}),
        json.dumps({"transcript": "no audio"}),
    ]))
    rows, rejects = read_manifest(m, labelled=False)
    assert [(r.id, r.label, r.speaker, r.group) for r in rows] == [("a", "", "", ""), ("b", "sad", "s2", "s2")]
    assert [(r.line, r.reason) for r in rejects] == [(3, "bad_row")] and "audio" in rejects[0].detail
    rows, rejects = read_manifest(m)  # a corpus manifest still requires label and speaker
    assert [r.id for r in rows] == ["b"] and "label" in rejects[0].detail
    csv_manifest = _write(tmp_path / "m.csv", "audio,transcript\na.wav,hi\n")
    assert [r.id for r in read_manifest(csv_manifest, labelled=False)[0]] == ["a"]
    with pytest.raises(ManifestError, match="lacks the columns"):
        read_manifest(csv_manifest)


def test_unreadable_manifests_raise(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "missing.jsonl")
    with pytest.raises(ManifestError, match="lacks the columns"):
        read_manifest(_write(tmp_path / "bad.csv", "path,text\nx,y\n"))
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage\xff")
    with pytest.raises(ManifestError, match="binary.jsonl"):
        read_manifest(tmp_path / "binary.jsonl")


def test_default_ids_are_unique_paths_and_real_duplicates_are_rejected(tmp_path):
    rows = [{"audio": "a/001.wav"}, {"audio": "b/001.wav"}, {"audio": "x.wav"}, {"audio": "x.mp3"},
            {"audio": "./a/001.wav"}, {"audio": "c.wav", "id": "a/001"}, {"audio": "y.wav", "id": "keep me"}]
    m = _write(tmp_path / "m.jsonl", "\n".join(json.dumps({**r, "label": "l", "speaker": "s"}) for r in rows))
    good, rejects = read_manifest(m)
    assert [r.id for r in good] == ["a/001", "b/001", "x.wav", "x.mp3", "keep me"]
    assert [(r.line, r.reason) for r in rejects] == [(5, "duplicate_id"), (6, "duplicate_id")]
    assert "m.jsonl:5" in rejects[0].detail and "line 1" in rejects[0].detail
