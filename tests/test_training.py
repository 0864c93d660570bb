"""Training tests: one step learns, staged training end to end, resume after a kill,
determinism, restoring in a fresh process, NaN detection, stage errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from configs import default
from hmaf.data.toy import ToySource
from hmaf.models import build_model
from hmaf.training.steps import create_train_state, make_train_step
from hmaf.training.trainer import NonFiniteLossError, train_and_evaluate

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = dict(hidden=8, attention_dim=8, fusion_dim=8, filters=8, widths=(2, 3))


def test_train_step_changes_params_and_loss_falls():
    source = ToySource(seed=0)
    batch = next(source.train_batches())
    model = build_model("faf", num_classes=3, vocab_size=30, embed_dim=8, **TINY_MODEL, dropout=0.0)
    state = create_train_state(model, batch, learning_rate=1e-2)
    before = jax.tree.map(np.array, state.params)
    train_step = make_train_step(model)
    losses = []
    for _ in range(40):
        state, metrics = train_step(state, batch, jax.random.key(0))
        losses.append(float(metrics["loss"]))
    changed = jax.tree.leaves(jax.tree.map(lambda a, b: not np.allclose(a, b), before, state.params))
    assert all(changed), "every parameter should receive a gradient"
    assert losses[-1] < 0.3 * losses[0], losses


def run_cli(workdir: Path, *overrides: str, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hmaf.train", "--config", "configs/faf.py:tiny", "--workdir", str(workdir),
           *overrides]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("full")
    proc = run_cli(workdir)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "compiling the train step" in out and "examples/s" in out and "ETA" in out
    return workdir


def test_staged_run_writes_metrics_and_checkpoints(full_run):
    metrics = json.loads((full_run / "metrics.json").read_text())
    assert set(metrics) == {"text", "audio", "fusion", "final"}
    for split in ("train", "validation", "test"):
        assert 0.0 <= metrics["final"][split]["wa"] <= 1.0
        assert set(metrics["fusion"][split]) >= {"wa", "ua", "weighted_f1", "confusion", "per_class"}
    for stage in ("text", "audio", "fusion"):
        assert (full_run / stage / "checkpoints" / "best").is_dir()
        assert list((full_run / stage).glob("events.out.tfevents.*")), "TensorBoard events are missing"
    assert json.loads((full_run / "config.json").read_text())["model"]["name"] == "faf"


def test_resume_after_kill_matches_uninterrupted_run(full_run, tmp_path):
    workdir = tmp_path / "killed"
    proc = run_cli(workdir, start_new_session=True)
    marker = workdir / "fusion" / "checkpoints" / "latest" / "10"
    deadline = time.time() + 600
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "training never reached the fusion stage's first checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert not (workdir / "metrics.json").exists()
    resumed = run_cli(workdir)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "resuming from step" in out
    assert "stage text already finished" in out
    expected = json.loads((full_run / "metrics.json").read_text())
    got = json.loads((workdir / "metrics.json").read_text())
    assert got == expected


def test_restore_in_fresh_process(full_run):
    script = f"""
import json, numpy as np
import hmaf.checkpoint
from hmaf.data.toy import ToySource
from hmaf.metrics import classification_metrics
model, variables, config = hmaf.checkpoint.load({str(full_run)!r})
source = ToySource(batch_size=config.batch_size, seed=config.seed, **config.data.toy)
labels, preds = [], []
for batch in source.eval_batches("test"):
    out = model.apply(variables, {{k: batch[k] for k in ("word_ids", "word_mask", "frames", "frame_mask", "label")}})
    preds.append(np.asarray(out.logits).argmax(-1)); labels.append(batch["label"])
m = classification_metrics(np.concatenate(labels), np.concatenate(preds), 3)
print(json.dumps({{"wa": m["wa"], "model": type(model).__name__, "fusion": model.fusion}}))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    expected = json.loads((full_run / "metrics.json").read_text())["final"]["test"]["wa"]
    assert result == {"wa": expected, "model": "WordFusionModel", "fusion": "faf"}


class NaNSource(ToySource):
    def train_batches(self, start_step=0):
        for batch in super().train_batches(start_step):
            batch = dict(batch)
            batch["frames"] = np.full_like(batch["frames"], np.nan)
            yield batch


def test_nan_loss_raises(tmp_path):
    config = default.get_config("tiny", model="audio_only")
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        train_and_evaluate(config, tmp_path, source=NaNSource(seed=0))


def test_fusion_stage_alone_needs_its_branches(tmp_path):
    config = default.get_config("tiny", model="vf")
    config.stage = "fusion"
    with pytest.raises(FileNotFoundError, match="--config.stage=text"):
        train_and_evaluate(config, tmp_path, source=ToySource(seed=0))
    config.stage = "decoder"
    with pytest.raises(ValueError, match="has stages"):
        train_and_evaluate(config, tmp_path, source=ToySource(seed=0))


@pytest.mark.parametrize("train_embedding", [True, False])
def test_embedding_starts_from_matrix_and_freezes_on_request(train_embedding):
    source = ToySource(seed=0)
    batch = next(source.train_batches())
    matrix = source.embeddings()
    model = build_model("text_only", num_classes=3, vocab_size=30, embed_dim=8, embedding_matrix=matrix,
                        train_embedding=train_embedding, **TINY_MODEL)
    state = create_train_state(model, batch)
    np.testing.assert_array_equal(state.params["text"]["embedding"], matrix)
    train_step = make_train_step(model)
    for _ in range(3):
        state, _ = train_step(state, batch, jax.random.key(0))
    moved = not np.allclose(state.params["text"]["embedding"], matrix)
    assert moved == train_embedding


def test_data_parallel_run_on_eight_cpu_devices_matches_one_device(tmp_path):
    """The config switch alone shards the batch over every device (8 simulated here)."""
    results = {}
    for devices in (1, 8):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        proc = subprocess.run(
            [sys.executable, "-m", "hmaf.train", "--config", "configs/audio_only.py:tiny",
             "--workdir", str(tmp_path / str(devices)), "--config.num_train_steps=10",
             f"--config.data_parallel={devices > 1}"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[devices] = json.loads((tmp_path / str(devices) / "metrics.json").read_text())
    assert "data parallel over 8 devices" in proc.stderr
    for split in ("train", "validation", "test"):
        assert results[8]["final"][split]["wa"] == pytest.approx(results[1]["final"][split]["wa"], abs=0.05)
