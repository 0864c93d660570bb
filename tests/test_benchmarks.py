"""Smoke test of the benchmark harness: ``--quick`` writes complete JSON lines
(fields only; timings are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {"section", "model", "variant", "batch_size", "max_words", "max_frames", "examples_per_s", "step_ms",
          "lower_s", "compile_s", "flops", "flops_per_s", "flops_xla_compiled", "memory_compiled_bytes",
          "peak_memory_bytes", "peak_memory_source", "real_frame_share", "backend", "device_kind",
          "jax_version", "cpu_count", "dtype"}


def test_quick_run_writes_every_section(tmp_path):
    out = tmp_path / "bench.jsonl"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["section"] for r in records} == {"nested", "train", "infer", "latency"}
    for r in records:
        assert FIELDS <= set(r), FIELDS - set(r)
        assert r["backend"] == "cpu" and r["peak_memory_source"] == "process_peak_rss"
        assert r["examples_per_s"] > 0 and r["compile_s"] > 0 and r["peak_memory_bytes"] > 0
        assert 0 < r["real_frame_share"] <= 1
        if r["section"] != "latency":
            # unrolled FLOPs count every scan step, the compiled figure each loop body once
            assert r["flops"] > r["flops_xla_compiled"] > 0 and r["flops_per_s"] > 0
    train = [r for r in records if r["section"] == "train"]
    assert train and all(r["variant"] == "packed" and r["model"] == "faf" for r in train)
    assert any(r["section"] == "latency" and r["latency_ms"] > 0 for r in records)


def test_bad_shape_is_rejected():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--shapes", "8x24"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "BxNxL" in proc.stderr
