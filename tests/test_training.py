"""Training tests: one step learns, staged training end to end, resume after a kill,
determinism, restoring in a fresh process, NaN detection, stage errors."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
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


def test_trainer_writes_speed_and_cpu_per_example(full_run):
    from benchmarks.trainer import loop_windows

    speeds = loop_windows(str(full_run / "fusion"))
    cpu_ms = loop_windows(str(full_run / "fusion"), "train/cpu_ms_per_example")
    assert len(speeds) == len(cpu_ms) > 0
    assert all(s > 0 for s in speeds) and all(c > 0 for c in cpu_ms)


def test_speed_window_measures_wall_and_cpu_per_example():
    from hmaf.training.trainer import SpeedWindow

    window = SpeedWindow()
    assert all(math.isnan(x) for x in window.read())  # no examples yet
    busy_until = time.process_time() + 0.05
    while time.process_time() < busy_until:
        pass
    window.examples = 10
    speed, cpu_ms = window.read()
    assert cpu_ms >= 1000 * 0.05 / 10
    assert 0 < speed <= 10 / 0.05
    window.reset()
    assert window.examples == 0 and all(math.isnan(x) for x in window.read())


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


def test_resuming_with_another_model_shape_names_the_checkpoint(full_run, tmp_path):
    """A run resumed (or a fusion stage started from its branches) with a config whose
    model has other shapes, here the 64 bands alone against the prosody columns it was
    trained with, stops with a message naming the checkpoint and the way out."""
    from hmaf.checkpoint import CheckpointMismatchError
    from hmaf.data.source import from_config

    def copy_without(name, *removed):
        workdir = tmp_path / name
        shutil.copytree(full_run, workdir)
        for path in removed:
            target = workdir / path
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        return workdir

    # The audio stage resumes from its latest state: through the command line, one line, no traceback.
    proc = run_cli(copy_without("latest", "metrics.json", "audio/metrics.json", "fusion"),
                   "--config.model.prosody=False")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out
    assert "audio/checkpoints/latest" in out and "does not fit this run's" in out, out
    assert "params/audio/frame" in out and "--config.model.prosody=False" in out, out
    assert "Traceback" not in out, out
    # The fusion stage starts from the finished branches.
    config = default.get_config("tiny", model="faf")  # as configs/faf.py:tiny, which made full_run
    config.model.prosody = False
    with pytest.raises(CheckpointMismatchError, match="trained audio branch.*does not fit this run's model"):
        train_and_evaluate(config, copy_without("branch", "metrics.json", "fusion"), from_config(config))


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


def test_epoch_budget_and_eval_interval():
    from hmaf.training.trainer import Budget

    config = default.get_config()
    config.batch_size = 8
    budget = Budget.from_config(config, 410)  # 52 steps per epoch
    assert budget == Budget(steps_per_epoch=52, total_steps=52 * config.num_epochs, eval_every=52)
    config.eval_every_epochs, config.num_epochs = 0.5, 2.5
    assert Budget.from_config(config, 410) == Budget(52, 130, 26)
    config.num_train_steps, config.eval_every = 100, 7  # the fixed-step budget stays available
    assert Budget.from_config(config, 410) == Budget(52, 100, 7)
    config.num_train_steps = 0
    with pytest.raises(ValueError, match="num_train_steps"):
        Budget.from_config(config, None)


def test_early_stopping_ends_a_stage_and_metrics_say_so(tmp_path, full_run):
    config = default.get_config("tiny", model="text_only")
    config.learning_rate = 0.0  # (almost) nothing changes: validation soon stops improving
    config.eval_every, config.patience, config.num_epochs = 3, 2, 20.0
    metrics = train_and_evaluate(config, tmp_path, source=ToySource(seed=0))["text"]
    assert metrics["stopped_by"] == "early_stopping" and metrics["steps_per_epoch"] == 6
    assert metrics["steps_trained"] == metrics["best_step"] + 2 * 3 < metrics["budget_steps"] == 120
    assert metrics["epochs_trained"] == metrics["steps_trained"] / 6
    assert metrics["best_epoch"] == metrics["best_step"] / 6
    budget_run = json.loads((full_run / "metrics.json").read_text())["fusion"]
    assert budget_run["stopped_by"] == "budget" and budget_run["epochs_trained"] == 5.0


def test_prefetch_keeps_order_raises_errors_and_stops():
    from hmaf.training.data import Prefetch

    assert list(Prefetch(range(10), lambda x: 2 * x, 2)) == list(range(0, 20, 2))
    assert list(Prefetch(range(10), lambda x: 2 * x, 0)) == list(range(0, 20, 2))

    def broken():
        yield 1
        raise RuntimeError("bad shard")
    with pytest.raises(RuntimeError, match="bad shard"):
        list(Prefetch(broken(), lambda x: x, 2))
    endless = Prefetch(iter(int, 1), lambda x: x, 2)
    next(endless)
    endless.close()
    assert not endless._thread.is_alive()


def _thread_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_prefetch_opens_a_callable_source_in_its_thread_at_lower_priority():
    from hmaf.training.data import Prefetch

    seen = {}

    def source():  # as a tf.data source: opened, and its own threads started, by the caller
        seen["opener"], seen["nice"] = threading.current_thread().name, _thread_nice()
        child = threading.Thread(target=lambda: seen.update(child=_thread_nice()))
        child.start()
        child.join()
        return iter(range(6))

    before = _thread_nice()
    assert list(Prefetch(source, lambda x: 10 * x, 2, nice=3)) == [10 * x for x in range(6)]
    assert seen["opener"] == "hmaf-prefetch"
    assert seen["nice"] == seen["child"] == min(before + 3, 19)
    assert _thread_nice() == before  # the caller (the step's dispatch) keeps its priority
    list(Prefetch(source, lambda x: x, 2, nice=0))
    assert seen["nice"] == before
    assert list(Prefetch(source, lambda x: x, 0, nice=3)) == list(range(6))  # no thread: caller's priority
    assert seen["opener"] == threading.current_thread().name and seen["nice"] == before


def test_prefetch_does_not_change_results(tmp_path):
    results = []
    for prefetch, nice in ((0, 0), (2, 0), (2, 10)):
        config = default.get_config("tiny", model="text_only")
        config.prefetch, config.prefetch_nice, config.num_train_steps = prefetch, nice, 12
        results.append(train_and_evaluate(config, tmp_path / f"{prefetch}-{nice}", source=ToySource(seed=0)))
    assert results[0] == results[1] == results[2]


def _tiny_state(name="faf", **options):
    from hmaf.training.steps import make_optimizer

    source = ToySource(seed=0)
    batch = next(source.train_batches())
    model = build_model(name, num_classes=3, vocab_size=30, embed_dim=8, **TINY_MODEL, dropout=0.0)
    config = default.get_config()
    config.update(options.pop("config", {}))
    tx = make_optimizer(config, steps_per_epoch=2, total_steps=20, **options)
    return model, batch, create_train_state(model, batch, tx=tx)


def test_frozen_branches_get_no_updates():
    model, batch, state = _tiny_state(frozen=("text", "audio"))
    before = jax.tree.map(np.array, state.params)
    state, _ = make_train_step(model)(state, batch, jax.random.key(0))
    for branch in ("text", "audio"):
        jax.tree.map(np.testing.assert_array_equal, before[branch], jax.tree.map(np.asarray, state.params[branch]))
    others = [k for k in before if k not in ("text", "audio")]
    assert others and all(any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before[k]),
                                                                       jax.tree.leaves(state.params[k])))
                          for k in others)


def _updates(config, grads, values=None):
    import optax

    from hmaf.training.steps import make_optimizer

    params = {"w": np.ones(2, np.float32)}
    tx = make_optimizer(config, steps_per_epoch=2, total_steps=10)
    state, out = tx.init(params), []
    for i, g in enumerate(grads):
        u, state = tx.update({"w": np.asarray(g, np.float32)}, state, params,
                             value=np.float32(1.0 if values is None else values[i]))
        out.append(np.asarray(u["w"]))
        params = optax.apply_updates(params, u)
    return out


def test_optimizer_options_change_the_update():
    import optax

    config = default.get_config()
    grads = [[1000.0, 0.0], [1.0, 1.0], [1.0, -1.0]]
    plain = _updates(config, grads)
    reference = optax.adam(1e-3)  # the paper's optimiser
    state, params = reference.init({"w": np.ones(2, np.float32)}), {"w": np.ones(2, np.float32)}
    for g, got in zip(grads, plain):
        u, state = reference.update({"w": np.asarray(g, np.float32)}, state, params)
        np.testing.assert_allclose(got, u["w"], rtol=1e-6)
    # Clipping: Adam then sees gradients of norm <= 1 (the first one scaled down 1000x).
    config.grad_clip_norm = 1.0
    clipped = _updates(config, grads)
    expected = _updates(default.get_config(), [[1.0, 0.0], [1 / 2 ** 0.5] * 2, [1 / 2 ** 0.5, -1 / 2 ** 0.5]])
    np.testing.assert_allclose(clipped, expected, rtol=1e-5)
    assert not np.allclose(clipped[1], plain[1])
    # Weight decay (AdamW): with zero gradients the weights shrink by lr * wd * w.
    config = default.get_config()
    config.weight_decay = 0.1
    np.testing.assert_allclose(_updates(config, [[0.0, 0.0]])[0], -1e-3 * 0.1 * np.ones(2), rtol=1e-6)
    # Warmup + cosine: zero learning rate at step 0, the full rate at the end of warmup (1 epoch = 2 steps).
    config = default.get_config()
    config.lr_schedule, config.warmup_epochs = "warmup_cosine", 1.0
    steps = _updates(config, [[1.0, 1.0]] * 3)
    assert np.all(steps[0] == 0) and np.all(steps[1] != 0)
    np.testing.assert_allclose(steps[2], _updates(default.get_config(), [[1.0, 1.0]] * 3)[2], rtol=1e-5)
    # Reduce on plateau: a loss that stops falling scales the update down by plateau_factor.
    config = default.get_config()
    config.lr_schedule, config.plateau_factor, config.plateau_patience = "plateau", 0.5, 1
    grads = [[1.0, 1.0]] * 12
    flat = _updates(config, grads, values=[1.0] * 12)
    constant = _updates(default.get_config(), grads)
    np.testing.assert_allclose(flat[0], constant[0], rtol=1e-6)
    np.testing.assert_allclose(flat[-1], 0.5 ** round(np.log2(constant[-1][0] / flat[-1][0])) * constant[-1],
                               rtol=1e-5)
    assert flat[-1][0] / constant[-1][0] <= 0.5
    config.lr_schedule = "cyclic"
    with pytest.raises(ValueError, match="lr_schedule"):
        _updates(config, grads)


def test_evaluate_and_predict_reuse_the_shapes_training_compiled(tmp_path, monkeypatch):
    """One batching seam: hmaf.evaluate meets only batch shapes training already compiled."""
    import hmaf.eval_step
    import hmaf.training.trainer as trainer
    from hmaf.data.fake_corpus import write_fake_corpus
    from hmaf.data.source import from_config
    from hmaf.evaluate import evaluate_workdir
    from hmaf.inference import Predictor

    corpus = tmp_path / "corpus"
    write_fake_corpus(corpus, num_speakers=5, per_speaker=5, max_words=10, max_frames=20)
    config = default.get_config("tiny", model="audio_only")
    config.data.update(source="corpus", dir=str(corpus))
    config.update(pack_frames=True, num_train_steps=4, eval_every=2, batch_size=4)
    seen = {"training": set(), "evaluate": set()}
    real = hmaf.eval_step.make_eval_step

    def recording(tag):
        def make(model, **options):
            step = real(model, **options)

            def wrapped(variables, batch):
                seen[tag].add(tuple(sorted((k, np.shape(v)) for k, v in batch.items())))
                return step(variables, batch)
            return wrapped
        return make
    monkeypatch.setattr(trainer, "make_eval_step", recording("training"))
    train_and_evaluate(config, tmp_path / "run")
    monkeypatch.setattr(hmaf.eval_step, "make_eval_step", recording("evaluate"))
    result = evaluate_workdir(tmp_path / "run", corpus)
    assert result["split"] == "test" and seen["evaluate"]
    assert seen["evaluate"] <= seen["training"]  # no new compilation
    assert any(dict(shapes).get("pack_src") for shapes in seen["evaluate"])  # packed, as in training
    assert Predictor.from_workdir(tmp_path / "run").layout == from_config(config).layout


def test_inference_imports_no_training_code():
    script = ("import sys, hmaf.inference, hmaf.evaluate; "
              "print(sorted(m for m in sys.modules if m.startswith('hmaf.training')))")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_parameter_average_follows_its_formula_and_leaves_the_updates_alone():
    """ema_epochs > 0: the optimiser state keeps e_t = r_t e_{t-1} + (1 - r_t) p_t with
    r_t = min(decay, (1 + t) / (10 + t)) and decay = 1 - 1 / (ema_epochs * steps_per_epoch),
    over the parameters after each update; the updates are Adam's (the paper's) as before."""
    import optax

    from hmaf.training.steps import ema_params, make_optimizer

    grads = [np.array([1.0, -2.0], np.float32), np.array([0.5, 0.5], np.float32)] * 20
    runs = {}
    for ema_epochs in (0.0, 4.0):
        config = default.get_config()
        config.ema_epochs = ema_epochs
        tx = make_optimizer(config, steps_per_epoch=5, total_steps=40)
        params = {"w": np.ones(2, np.float32)}
        state = tx.init(params)
        trajectory = []
        for g in grads:
            updates, state = tx.update({"w": g}, state, params, value=np.float32(1.0))
            params = optax.apply_updates(params, updates)
            trajectory.append(np.asarray(params["w"]))
        runs[ema_epochs] = trajectory, state
    np.testing.assert_array_equal(runs[0.0][0], runs[4.0][0])  # training itself unchanged
    assert ema_params(runs[0.0][1]) is None
    decay, expected = 1.0 - 1.0 / 20.0, np.ones(2)
    for t, p in enumerate(runs[4.0][0], start=1):
        rate = min(decay, (1.0 + t) / (10.0 + t))
        expected = rate * expected + (1.0 - rate) * p
    got = np.asarray(ema_params(runs[4.0][1])["w"])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert not np.allclose(got, runs[4.0][0][-1], rtol=1e-3)  # an average, not the last parameters
    config.ema_epochs = -1.0
    with pytest.raises(ValueError, match="ema_epochs"):
        make_optimizer(config)


def test_parameter_average_is_what_training_validates_keeps_and_resumes(tmp_path):
    """With ema_epochs the best checkpoint holds the average (not the raw parameters), and
    a stopped run resumed to a longer budget ends with the same checkpoint as one run
    straight through (the average is part of the resumable state)."""
    import functools

    import orbax.checkpoint as ocp

    import hmaf.checkpoint as ckpt
    from hmaf.training.steps import ema_params

    def run(workdir, steps):
        config = default.get_config("tiny", model="text_only")
        config.update(num_train_steps=steps, eval_every=steps, patience=100, ema_epochs=1.0)
        train_and_evaluate(config, workdir, source=ToySource(seed=0))
        with ckpt.StageCheckpoints(workdir / "text") as checkpoints:
            best = checkpoints.restore_best_variables()
            step = checkpoints.latest.latest_step()
            state = checkpoints.latest.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore()))["state"]
        return best, state

    best, state = run(tmp_path / "straight", 8)
    average = ema_params(state["opt_state"])
    jax.tree.map(np.testing.assert_allclose, best["params"], average)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(best["params"]),
                                                     jax.tree.leaves(state["params"])))
    run(tmp_path / "resumed", 4)
    (tmp_path / "resumed" / "text" / "metrics.json").unlink()  # a finished stage would be skipped
    _, resumed = run(tmp_path / "resumed", 8)  # (its best may be step 4's, validated only there)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6),
                 ema_params(resumed["opt_state"]), average)
