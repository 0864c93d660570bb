"""Multi-process training (``jax.distributed`` on CPU through gloo): two processes of two
forced devices each train like ONE process of four devices on the same global batches,
padded and packed, and a killed two-process job, restarted with ``python -m hmaf.train``,
resumes to the same end.

Every run is a subprocess (the device count and the distributed runtime are fixed per
process); the runs use the tiny audio-only config (one stage, 6 steps, validation
every 2, evaluation tails of 6 = 4 + 2 examples padded to the 4 devices).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
STEPS = 6
OVERRIDES = dict(num_train_steps=STEPS, eval_every=2, log_every=1, data_parallel=True)
SPLIT_SIZES = (48, 22, 22)  # eval tails of 6 examples: batches of 4 and 2 (padded to 4 devices)

# One process of the job: trains the given layouts one after the other.
DRIVER = textwrap.dedent(f"""
    import sys
    from pathlib import Path
    from configs import default
    from hmaf.training import distributed
    from hmaf.training.trainer import train_and_evaluate

    workdir, coordinator, num_processes, process_id = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    config = default.get_config("tiny", model="audio_only")
    config.update({OVERRIDES!r})
    config.data.toy.split_sizes = {SPLIT_SIZES!r}
    config.distributed.update(coordinator=coordinator, num_processes=num_processes, process_id=process_id)
    distributed.initialize(config)
    for layout in sys.argv[5:]:
        config.pack_frames = layout == "packed"
        train_and_evaluate(config, Path(workdir) / layout)
""")


def test_pack_per_device_keeps_each_device_s_frames_on_the_device():
    """Each device's rows gather only its own frames, with one row count for all, and
    the processes' shares put together rebuild every real frame of the global batch."""
    from hmaf.data.layout import BatchLayout
    from hmaf.data.toy import random_batch
    from hmaf.training.distributed import pack_per_device

    batch = random_batch(np.random.default_rng(0), 8, 6, 10, vocab_size=20)
    layout = BatchLayout(batch_size=8, pad_words_to=6, pad_frames_to=10, pack=True, mean_frames=6.0,
                         mean_words=4.5)
    shares = [pack_per_device(batch, layout, 4, first, 2) for first in (0, 2)]  # 2 processes, 2 devices each
    src = np.concatenate([s["pack_src"] for s in shares])  # [4 devices, P, R]
    mask = np.concatenate([s["pack_mask"] for s in shares])
    assert src.shape[0] == 4 and src.shape[2] == 10 and mask.shape == src.shape
    unpack = np.concatenate([s["unpack_index"] for s in shares]).reshape(4, 2, 6, 10)  # per device
    real = batch["frame_mask"].reshape(4, 2, 6, 10)
    frames = batch["frames"].reshape(4, 2 * 6 * 10, -1)
    for d in range(4):  # device d's indices stay inside its own 2 examples and P * R positions
        assert src[d].max() < 2 * 6 * 10 and unpack[d].max() < src[d].size
        rows = frames[d][src[d]]  # [P, R, M]: the device's own frames only
        rebuilt = rows.reshape(-1, rows.shape[-1])[unpack[d]]  # [2, 6, 10, M]
        np.testing.assert_array_equal(rebuilt[real[d]], batch["frames"].reshape(4, 2, 6, 10, -1)[d][real[d]])
        assert mask[d].sum() == real[d].sum()
    np.testing.assert_array_equal(np.concatenate([s["frames"] for s in shares]), batch["frames"])
    with pytest.raises(ValueError, match="batch size 6 does not divide over 4 devices"):
        pack_per_device({k: v[:6] for k, v in batch.items()}, layout, 4, 0, 2)


PER_DEVICE_STEP = textwrap.dedent("""
    import json, re
    import jax, numpy as np
    from hmaf.data.layout import BatchLayout
    from hmaf.data.toy import random_batch
    from hmaf.models import build_model
    from hmaf.training.distributed import pack_per_device
    from hmaf.training.sharding import make_mesh, replicate, shard_batch
    from hmaf.training.steps import create_train_state, make_train_step

    batch = random_batch(np.random.default_rng(0), 8, 6, 10, vocab_size=20, num_classes=3)
    model = build_model("audio_only", num_classes=3, vocab_size=20, embed_dim=8, hidden=7, attention_dim=6,
                        fusion_dim=5, filters=4, widths=(2, 3))
    layout = BatchLayout(batch_size=8, pad_words_to=6, pad_frames_to=10, pack=True, mean_frames=6.0,
                         mean_words=4.5)
    mesh = make_mesh()
    packed = shard_batch(pack_per_device(batch, layout, 4, 0, 4), mesh, packed_per_device=True)
    step = make_train_step(model, donate=False)
    many = replicate(create_train_state(model, batch), mesh)
    hlo = step.lower(many, packed, jax.random.key(1)).compile().as_text()
    many, m_many = step(many, packed, jax.random.key(1))
    one = jax.device_put(create_train_state(model, batch), jax.devices()[0])
    one, m_one = step(one, jax.device_put(batch, jax.devices()[0]), jax.random.key(1))
    diff = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                                            one.params, many.params)))
    print("RESULT " + json.dumps(dict(loss_one=float(m_one["loss"]), loss_many=float(m_many["loss"]), diff=diff,
                                      all_gathers=len(re.findall(r"all-gather-start|all-gather\\(", hlo)),
                                      all_reduces=len(re.findall(r"all-reduce", hlo)))))
""")


def test_per_device_packing_equals_one_device_and_gathers_no_frames():
    """Four devices, each packing its own sub-batch: one train step equals the padded
    step on one device, and the compiled step has no all-gather (each device gathers
    its own frames into its rows; only the gradients are all-reduced)."""
    proc = subprocess.run([sys.executable, "-c", PER_DEVICE_STEP], cwd=REPO, env=env(4), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads([l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1][len("RESULT "):])
    np.testing.assert_allclose(result["loss_many"], result["loss_one"], rtol=1e-5)
    assert result["diff"] < 1e-5
    assert result["all_reduces"] > 0 and result["all_gathers"] == 0


def test_distributed_config_errors():
    from configs import default
    from hmaf.training.distributed import initialize

    config = default.get_config("tiny")
    assert initialize(config) is False  # one process: nothing to join
    config.distributed.num_processes = 2
    with pytest.raises(ValueError, match="coordinator=HOST:PORT"):
        initialize(config)
    config.distributed.update(coordinator="127.0.0.1:1", process_id=2)
    with pytest.raises(ValueError, match=r"process_id=2 must lie in \[0, 2\)"):
        initialize(config)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(devices: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def start(args: list[str], devices: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env(devices), stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(procs: list[subprocess.Popen]) -> None:
    """No process survives a test: kill each one's process group."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def finish(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 600) -> None:
    try:
        deadline = time.time() + timeout
        for proc, log in zip(procs, logs):
            proc.wait(timeout=max(deadline - time.time(), 1))
            assert proc.returncode == 0, log.read_text()[-4000:]
    finally:
        stop(procs)


def job(workdir: Path, processes: int, devices: int, *layouts: str, cli: list[str] | None = None
        ) -> tuple[list[subprocess.Popen], list[Path]]:
    """Starts ``processes`` processes of ``devices`` devices each (the driver, or
    ``python -m hmaf.train`` with the ``cli`` arguments)."""
    workdir.mkdir(parents=True, exist_ok=True)
    coordinator = f"127.0.0.1:{free_port()}"
    procs, logs = [], []
    for i in range(processes):
        if cli is None:
            args = ["-c", DRIVER, str(workdir), coordinator, str(processes), str(i), *layouts]
        else:
            args = ["-m", "hmaf.train", "--workdir", str(workdir), *cli,
                    f"--config.distributed.coordinator={coordinator}",
                    f"--config.distributed.num_processes={processes}", f"--config.distributed.process_id={i}"]
        logs.append(workdir / f"process{i}.log")
        procs.append(start(args, devices, logs[-1]))
    return procs, logs


def latest_state(run: Path) -> tuple[int, dict]:
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager((run / "audio" / "checkpoints" / "latest").absolute(),
                                    options=ocp.CheckpointManagerOptions(read_only=True))
    step = manager.latest_step()
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                             meta=ocp.args.JsonRestore()))
    manager.close()
    return step, restored["state"]


def train_losses(run: Path, writers: int = 1) -> dict[int, float]:
    """``{step: train/loss}`` from the TensorBoard events, one file per run of the job
    (written by process 0 only); a step redone after a resume keeps its last value (a
    killed run may not have flushed its events)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    events = sorted((run / "audio").glob("events.out.tfevents.*"))
    assert len(events) == writers, events
    losses = {}
    for path in events:
        acc = EventAccumulator(str(path), size_guidance={"tensors": 0})
        acc.Reload()
        losses.update({e.step: float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors("train/loss")})
    return losses


def max_diff(a, b) -> float:
    import jax

    return max(jax.tree.leaves(jax.tree.map(
        lambda x, y: float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))), a, b)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """ONE process of 4 devices (padded, then packed) and, concurrently, a job of two
    processes of 2 devices: padded, then packed, killed after the packed run's first
    checkpoint and restarted with ``python -m hmaf.train``, which resumes it."""
    root = tmp_path_factory.mktemp("distributed")
    one = job(root / "one", 1, 4, "padded", "packed")
    two = job(root / "two", 2, 2, "padded", "packed")
    try:
        marker = root / "two" / "packed" / "audio" / "checkpoints" / "latest" / "2"
        deadline = time.time() + 600
        while not marker.exists() and all(p.poll() is None for p in two[0]) and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), two[1][0].read_text()[-4000:]
        stop(two[0])
        assert not (root / "two" / "packed" / "metrics.json").exists(), "the job finished before it was killed"
        cli = ["--config", "configs/audio_only.py:tiny", *[f"--config.{k}={v}" for k, v in OVERRIDES.items()],
               f"--config.data.toy.split_sizes={SPLIT_SIZES}", "--config.pack_frames=True"]
        resumed = job(root / "two" / "packed", 2, 2, cli=cli)
        finish(*resumed)
        assert "resuming from step" in resumed[1][0].read_text()
        finish(*one)
    finally:
        stop(one[0] + two[0])
    return root


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_two_processes_equal_one_process_of_four_devices(runs, layout):
    """Padded: an uninterrupted job. Packed: a job killed and resumed, which so also
    ends where an uninterrupted run ends."""
    one, two = runs / "one" / layout, runs / "two" / layout
    step_one, state_one = latest_state(one)
    step_two, state_two = latest_state(two)
    assert step_one == step_two == STEPS
    assert max_diff(state_one["params"], state_two["params"]) < 1e-5
    assert max_diff(state_one["opt_state"], state_two["opt_state"]) < 1e-5
    # Process 0 writes the events: one file per run of the job (the packed job ran twice).
    losses_one, losses_two = train_losses(one), train_losses(two, writers=2 if layout == "packed" else 1)
    assert sorted(losses_one) == list(range(1, STEPS + 1)) and np.all(np.isfinite(list(losses_one.values())))
    assert set(losses_two) >= set(range(3, STEPS + 1))  # at least the steps after the resume at step 2
    for step, loss in losses_two.items():
        assert loss == pytest.approx(losses_one[step], abs=1e-5), step
    # Evaluation gathered every process's predictions: metrics over the whole split.
    m_one, m_two = (json.loads((r / "metrics.json").read_text()) for r in (one, two))
    for split, size in zip(("train", "validation", "test"), SPLIT_SIZES):
        assert np.sum(m_two["audio"][split]["confusion"]) == size
        assert m_two["audio"][split]["wa"] == pytest.approx(m_one["audio"][split]["wa"])
        assert m_two["final"][split] == pytest.approx(m_one["final"][split])


# One process of a two-process experiment: in-split fold 0 and leave-one-engine-out.
EXPERIMENT = textwrap.dedent("""
    import logging, sys
    from pathlib import Path
    from configs.experiments import base
    from hmaf import experiment

    logging.basicConfig(level=logging.INFO)  # the log names each process's place in the job

    data, workdir, coordinator, process_id = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    config = base.experiment("views", data, models=("audio_only",), num_folds=3)
    config.folds = "0"
    config.train.model.update(hidden=4, attention_dim=4, fusion_dim=4, filters=4, widths=(2,))
    config.train.batch_size = 2  # one example per process
    config.branch_train_steps = 2
    config.train.update(eval_every=2, log_every=1)
    config.source.update(bucket=False, pad_words_to=16, pad_frames_to=16)
    config.generalisation.update(views="in_split,loeo")
    config.train.distributed.update(coordinator=coordinator, num_processes=2, process_id=process_id)
    written = []  # the experiment's own files this process writes (process 0's job alone)

    def recording(write):
        def wrapped(path, *args, **kwargs):
            written.append(str(path))
            return write(path, *args, **kwargs)
        return wrapped

    experiment.atomic_write_text = recording(experiment.atomic_write_text)
    experiment.splits_lib.write_split = recording(experiment.splits_lib.write_split)
    experiment.run_experiment(config, Path(workdir))
    print("WRITTEN", len(written))
""")


def test_experiment_runs_under_two_processes(tmp_path):
    """``hmaf.experiment`` under ``jax.distributed``: both processes join one job, only
    process 0 writes the split files, records, predictions and reports (and they are
    there before the other process reads them), every
    prediction covers the WHOLE test split (not one process's share) and agrees with the
    gathered test metrics, and the reports are written."""
    sys.path.insert(0, str(REPO / "tests"))
    from experiment_helpers import fake_corpus_with_utterances

    data = fake_corpus_with_utterances(tmp_path)
    workdir = tmp_path / "run"
    coordinator = f"127.0.0.1:{free_port()}"
    logs = [tmp_path / f"process{i}.log" for i in range(2)]
    procs = [start(["-c", EXPERIMENT, str(data), str(workdir), coordinator, str(i)], 1, log)
             for i, log in enumerate(logs)]
    finish(procs, logs)
    for i, log in enumerate(logs):
        text = log.read_text()
        assert f"jax.distributed: process {i} of 2, 1 local of 2 global devices" in text
        written = int(text.split("WRITTEN ")[-1].split()[0])
        assert (written > 0) if i == 0 else (written == 0), (i, written)  # files written once
    general = json.loads((workdir / "generalisation.json").read_text())
    assert set(general["views"]["loeo"]["settings"]) == {"e0 → e1", "e1 → e0"}
    runs = [workdir / "fold0" / "seed0"] + [workdir / "loeo" / d / "seed0" for d in ("e0_to_e1", "e1_to_e0")]
    for run in runs:
        metrics = json.loads((run / "audio_only" / "metrics.json").read_text())["audio"]["test"]
        rows = [json.loads(line) for line in (run / "audio_only" / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == metrics["num_examples"]
        assert np.mean([r["label"] == r["predicted"] for r in rows]) == pytest.approx(metrics["wa"])
    for direction in ("e0_to_e1", "e1_to_e0"):
        split = json.loads((workdir / "splits" / f"loeo-{direction}.json").read_text())
        rows = (workdir / "loeo" / direction / "seed0" / "audio_only" / "predictions.jsonl").read_text().splitlines()
        assert sorted(json.loads(r)["id"] for r in rows) == sorted(split["test"])
    assert "### Leave one engine out" in (workdir / "results.md").read_text()
