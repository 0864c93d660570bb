"""hmaf.compare: paired tests between two sets of prediction files."""

import json

import pytest

from hmaf import compare


def _write(path, rows):
    path.write_text("".join(json.dumps({"id": i, "label": l, "predicted": p}) + "\n" for i, l, p in rows))
    return str(path)


def test_pairs_runs_by_position_on_shared_ids(tmp_path, capsys):
    # run 0: A right on u1, u2, u3; B right on u1 only; u9 is only in A (not paired)
    a0 = _write(tmp_path / "a0.jsonl", [("u1", "x", "x"), ("u2", "y", "y"), ("u3", "x", "x"), ("u9", "x", "y")])
    b0 = _write(tmp_path / "b0.jsonl", [("u3", "x", "y"), ("u2", "y", "x"), ("u1", "x", "x")])
    # run 1: both right on v1, B alone right on v2
    a1 = _write(tmp_path / "a1.jsonl", [("v1", "x", "x"), ("v2", "x", "y")])
    b1 = _write(tmp_path / "b1.jsonl", [("v1", "x", "x"), ("v2", "x", "x")])
    assert compare.main(["--a", f"{a0},{a1}", "--b", f"{b0},{b1}", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 5 and result["runs"] == 2
    assert result["mcnemar"]["b"] == 2 and result["mcnemar"]["c"] == 1
    assert result["accuracy_a"] == pytest.approx(4 / 5) and result["accuracy_b"] == pytest.approx(3 / 5)
    assert result["runs_a_better"] == 1 and result["runs_b_better"] == 1
    assert compare.main(["--a", f"{a0},{a1}", "--b", f"{b0},{b1}"]) == 0
    assert "McNemar p = 1 (only A right 2, only B right 1)" in capsys.readouterr().out


def test_bad_inputs_name_the_problem(tmp_path, capsys):
    a = _write(tmp_path / "a.jsonl", [("u1", "x", "x")])
    other = _write(tmp_path / "o.jsonl", [("w1", "x", "x")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "u1", "label": "x"}\n')
    assert compare.main(["--a", a, "--b", f"{a},{a}"]) == 2
    assert "same number of files" in capsys.readouterr().err
    assert compare.main(["--a", a, "--b", other]) == 2
    assert "share no example id" in capsys.readouterr().err
    assert compare.main(["--a", a, "--b", str(bad)]) == 2
    assert "bad.jsonl line 1" in capsys.readouterr().err
