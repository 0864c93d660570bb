import json

from benchmarks import alignment


def test_alignment_benchmark_reports_errors_and_mismatch_rates(tmp_path, capsys):
    out = tmp_path / "alignment.jsonl"
    assert alignment.main(["--utterances", "2", "--engines", "espeak", "--aligners", "pocketsphinx,auto",
                           "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["aligner"], r["set"]) for r in rows] == [
        (a, s) for a in ("pocketsphinx", "auto") for s in ("corpus", "unseen", "all")]
    total = rows[2]
    assert total["utterances"] == rows[0]["utterances"] + rows[1]["utterances"] >= 3
    assert total["failures"] == 0 and 0 < total["onset"]["median_ms"] < 60
    assert 0 <= total["onset"]["within_20ms"] <= total["onset"]["within_50ms"] <= 1
    assert rows[5]["mismatch"]["correct_rejected"] == 0 and "mismatch" not in rows[2]
    assert "| auto | all/all |" in capsys.readouterr().out
