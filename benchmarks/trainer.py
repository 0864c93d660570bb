"""Trainer benchmark: examples/s of ``hmaf.train``'s own loop against the isolated train
step on the same batches (issue 11: the loop should reach >= 90 % of the step).

    python -m benchmarks.trainer --data data/synthetic [--model faf] [--steps 60] [--rounds 3]
    python -m benchmarks.trainer --fake   # a random speech-like corpus written on the fly

Both sides train the same model (the config's sizes, one stage, no branches) on the
first ``warmup + steps`` batches of :func:`hmaf.data.source.from_config`, in
``rounds`` interleaved rounds (one loop run, then one pass of the isolated step), so
that both sides of a round see the same load on a shared machine:

* loop: ``train_and_evaluate`` with validation only at the end; its steady-state
  speed is the median of the ``train/examples_per_s`` windows it writes to TensorBoard
  (each window: wall time of ``log_every`` steps, host input work included, the
  windows within the warmup steps left out). Compilations after the first round come
  from a persistent compilation cache, as in ``hmaf.experiment``;
* step: the jitted step alone (compiled once), over the same batches already on the
  device.

The figure is the median over rounds of each round's loop / step ratio. Beside it, the
same ratio in CPU time (the process's, every thread, per example: the loop's
``train/cpu_ms_per_example`` windows against the isolated passes), which measures the
loop's own extra work even where other jobs share the cores and make wall time noisy. Prints one
JSON line (machine and load average named) and appends it to ``--out`` when given.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from hmaf import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def loop_windows(stage_dir: str, tag: str = "train/examples_per_s") -> list[float]:
    """The ``tag`` windows the trainer wrote to TensorBoard, in step order."""
    import tensorflow as tf

    values = []
    for path in sorted(glob.glob(os.path.join(stage_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values.append((event.step, float(tf.make_ndarray(value.tensor))))
    return [v for _, v in sorted(values)]


def machine() -> str:
    """The CPU model and core count (``/proc/cpuinfo`` where there is one)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> dict:
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="a prepared corpus directory")
    parser.add_argument("--fake", action="store_true", help="write a random speech-like corpus instead")
    parser.add_argument("--model", default="faf")
    parser.add_argument("--tiny", action="store_true", help="the :tiny model sizes (a smoke run)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps")
    parser.add_argument("--warmup", type=int, default=10, help="steps before timing (compilation)")
    parser.add_argument("--log_every", type=int, default=10, help="the loop's measurement window")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of loop and isolated step")
    parser.add_argument("--prefetch_nice", type=int, default=None,
                        help="config.prefetch_nice for the loop (default: the config's)")
    parser.add_argument("--out", help="append the JSON line to this file")
    args = parser.parse_args(argv)
    if bool(args.data) == bool(args.fake):
        parser.error("give exactly one of --data or --fake")
    if args.warmup < 1 or args.steps < args.log_every or args.rounds < 1:
        parser.error("need --warmup >= 1, --steps >= --log_every and --rounds >= 1")
    sys.path.insert(0, os.getcwd())
    import jax

    from configs import default
    from hmaf.data.source import from_config
    from hmaf.models import build_model
    from hmaf.training.steps import create_train_state, init_variables, make_optimizer, make_train_step
    from hmaf.training.trainer import BatchPreparer, model_spec, train_and_evaluate

    data_dir = args.data
    scratch = tempfile.TemporaryDirectory(prefix="hmaf-bench-")
    if args.fake:
        from hmaf.data.fake_corpus import write_fake_corpus

        data_dir = os.path.join(scratch.name, "corpus")
        write_fake_corpus(data_dir, num_speakers=10, per_speaker=40, lengths="speech", max_words=40,
                          max_frames=100, embedding_dim=50)
    # Every round's loop compiles the same functions: from the cache after the first.
    jax.config.update("jax_compilation_cache_dir", os.path.join(scratch.name, "jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    config = default.get_config("tiny" if args.tiny else None, model=args.model)
    config.data.update(source="corpus", dir=data_dir)
    config.update(staged=False, num_train_steps=args.warmup + args.steps, eval_every=10 ** 9,
                  log_every=args.log_every, patience=10 ** 6)
    if args.prefetch_nice is not None:
        config.prefetch_nice = args.prefetch_nice
    source = from_config(config)
    total = args.warmup + args.steps
    stage = "fusion" if args.model not in ("text_only", "audio_only") else args.model.split("_")[0]

    batches = list(itertools.islice(source.train_batches(), total))
    spec = model_spec(config, args.model, source)
    model = build_model(**{**spec, "embedding_matrix": source.embeddings()})
    place = BatchPreparer(config)
    placed = [place(b) for b in batches]
    variables = init_variables(model, placed[0], config.seed)
    tx = make_optimizer(config, total_steps=total)
    state = create_train_state(model, placed[0], variables=variables, tx=tx)
    step, rng = make_train_step(model), jax.random.key(config.seed)
    for batch in placed[:args.warmup]:
        state, metrics = step(state, batch, rng)
    jax.block_until_ready(metrics)
    examples = sum(len(b["label"]) for b in batches[args.warmup:])

    loop_speeds, step_speeds, loop_cpu, step_cpu, windows = [], [], [], [], []
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="hmaf-bench-run-") as workdir:
            train_and_evaluate(config, workdir, source)
            speeds = loop_windows(os.path.join(workdir, stage))
            cpu = loop_windows(os.path.join(workdir, stage), "train/cpu_ms_per_example")
        # Windows fully after the warmup steps (the first also holds compilation's aftermath).
        skip = args.warmup // args.log_every
        steady = speeds[skip:] or speeds
        windows.append([round(w, 2) for w in steady])
        loop_speeds.append(statistics.median(steady))
        loop_cpu.append(statistics.median(cpu[skip:] or cpu))
        start, cpu_start = time.perf_counter(), time.process_time()
        for batch in placed[args.warmup:]:
            state, metrics = step(state, batch, rng)
        jax.block_until_ready(metrics)
        step_speeds.append(examples / (time.perf_counter() - start))
        step_cpu.append(1000.0 * (time.process_time() - cpu_start) / examples)
        load.append(os.getloadavg()[0])
    ratios = [loop / isolated for loop, isolated in zip(loop_speeds, step_speeds)]
    cpu_ratios = [isolated / loop for loop, isolated in zip(loop_cpu, step_cpu)]
    record = {
        "benchmark": "trainer", "model": args.model, "tiny": args.tiny, "data": data_dir,
        "batch_size": config.batch_size, "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
        "pack_frames": bool(config.pack_frames), "prefetch": int(config.prefetch),
        "prefetch_nice": int(config.get("prefetch_nice", 0)),
        "loop_examples_per_s": round(statistics.median(loop_speeds), 2),
        "step_examples_per_s": round(statistics.median(step_speeds), 2),
        "loop_over_step": round(statistics.median(ratios), 3),
        "round_ratios": [round(r, 3) for r in ratios],
        "loop_cpu_ms_per_example": round(statistics.median(loop_cpu), 2),
        "step_cpu_ms_per_example": round(statistics.median(step_cpu), 2),
        "cpu_step_over_loop": round(statistics.median(cpu_ratios), 3),
        "round_cpu_ratios": [round(r, 3) for r in cpu_ratios],
        "round_loop_examples_per_s": [round(s, 2) for s in loop_speeds],
        "round_step_examples_per_s": [round(s, 2) for s in step_speeds],
        "loop_windows": windows, "load_average_1min": [round(x, 2) for x in load],
        "machine": machine(),
        "device_kind": jax.devices()[0].device_kind, "backend": jax.default_backend(),
        "jax_version": jax.__version__,
    }
    scratch.cleanup()
    line = json.dumps(record)
    print(line)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return record


if __name__ == "__main__":
    main()
