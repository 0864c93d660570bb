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
    assert "onset_breakdown" in total and "onset_breakdown" not in rows[0]
    assert total["onset"]["signed_median_ms"] <= total["onset"]["median_ms"]
    assert "| auto | all/all |" in capsys.readouterr().out


def test_word_kinds_and_breakdown_group_onset_errors():
    import numpy as np

    from hmaf.data.align import Alignment

    case = alignment.Case("espeak", "corpus", "en", "plain", "the cat sat", np.zeros(16000, np.float32),
                          ["the", "cat", "sat"], np.array([0.1, 0.3, 0.7]), np.array([0.3, 0.5, 0.9]))
    assert alignment.word_kinds(case) == [("first", "fricative"), ("after_word", "stop"),
                                          ("after_pause", "fricative")]
    result = Alignment(starts=np.array([0.09, 0.33, 0.7]), ends=case.ends, confidence=np.ones(3), aligner="x")
    table = alignment.breakdown([(case, result), (case, None)])  # a failed case counts nowhere
    assert table["espeak/first_phone=stop"]["words"] == 1
    assert table["espeak/first_phone=stop"]["signed_median_ms"] == 30.0  # late: positive
    assert table["espeak/first_phone=fricative"]["words"] == 2
    assert table["espeak/position=first"]["signed_median_ms"] == -10.0


def test_flite_is_a_held_out_engine_and_boundaries_on_the_signal_can_be_chosen(tmp_path, monkeypatch):
    from hmaf.data import align_sphinx

    moved = []
    real_refine = align_sphinx.refine
    monkeypatch.setattr(align_sphinx, "refine", lambda *a: moved.append(1) or real_refine(*a))
    out = tmp_path / "alignment.jsonl"
    assert alignment.main(["--utterances", "1", "--engines", "flite", "--aligners", "pocketsphinx",
                           "--boundaries", "signal", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["engine"] for r in rows} == {"flite", "all"} and all(r["boundaries"] == "signal" for r in rows)
    assert moved and rows[-1]["words"] > 0  # the setting reached the aligner
    assert "flite" not in alignment.ENGINES  # not in the default: the aligners were not developed on it
