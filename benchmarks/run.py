"""Benchmark harness: train/inference throughput, compile time, memory, FLOPs.

    python -m benchmarks.run [--quick] [--sections nested,train,infer,latency]
                             [--shapes 8x24x64,...] [--dtype float32|bfloat16]
                             (sections: nested, train, infer, latency, rnn)
                             [--profile DIR] [--out FILE.jsonl]

Every measurement is one JSON line (stdout, and appended to ``--out``) naming the
backend, device kind, jax version and CPU count. Timings are medians over
``repeats`` calls after ``warmup`` calls, each ended with ``block_until_ready``.
Batches follow the benchmark protocol of issue 5 (:func:`hmaf.data.toy.random_batch`
with a fixed seed: words per utterance uniform in [N/2, N], frames per word in
[L/4, L]).

Sections:
  nested   the audio branch alone (frame BiGRU + attention vmapped/packed, word
           BiGRU), forward + backward, for the variants of :data:`NESTED_VARIANTS`
  train    full train step (loss, gradients, Adam) of HF, VF, FAF
  infer    eval step (forward only) of HF, VF, FAF
  latency  one utterance of 12 words, warm forward pass (features excluded)
  rnn      the frame-level BiGRU alone on the packed rows (forward, and forward +
           backward), both directions in two scans or fused into one
           (:data:`RNN_VARIANTS`); not in the default sections

Fields: ``examples_per_s``, ``step_ms`` (median), ``lower_s``/``compile_s`` (jit
lowering and XLA compilation, timed separately), ``flops`` (XLA cost analysis of
the lowered step with every scan unrolled, so loop bodies count once per step;
``flops_xla_compiled`` is the compiled executable's own figure, which counts each
loop body once), ``flops_per_s`` (``flops`` / step time), ``memory_compiled_bytes``
(arguments + outputs + temporaries of the executable), ``peak_memory_bytes`` with
``peak_memory_source`` (device ``peak_bytes_in_use`` where the backend reports it,
else the process's peak RSS from ``getrusage``, which covers the whole process so
far), and ``real_frame_share`` (real frames / frames the frame BiGRU computes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any, Callable, Iterable

import flax
import jax
import jax.numpy as jnp
import numpy as np

from hmaf import cli
from hmaf.batch import N_MELS
from hmaf.data.toy import random_batch
from hmaf.models import build_model
from hmaf.models.encoders import AudioAttention
from hmaf.models.packing import pack_batch, real_frame_share, rows_for
from hmaf.models.rnn import BiGRU
from hmaf.training.steps import create_train_state, make_eval_step, make_train_step

SHAPES = ((8, 24, 64), (32, 24, 64), (8, 48, 128))
QUICK_SHAPES = ((4, 8, 16),)
MODELS = ("hf", "vf", "faf")
PAPER_SIZES = dict(hidden=100, attention_dim=200, fusion_dim=200, filters=300, widths=(2, 3, 4, 5))
QUICK_SIZES = dict(hidden=16, attention_dim=16, fusion_dim=16, filters=16, widths=(2, 3))
VOCAB, EMBED, CLASSES = 1000, 50, 4
SEED = 0
# name -> (packed, hoist_input, unroll); dtype comes from --dtype
NESTED_VARIANTS = {
    "padded_unhoisted": (False, False, 1),  # Flax GRUCell style: projections inside the scan
    "padded": (False, True, 1),
    "packed_unhoisted": (True, False, 1),
    "packed": (True, True, 1),
    "packed_unroll2": (True, True, 2),
    "packed_unroll4": (True, True, 4),
}
QUICK_NESTED = ("packed",)
# name -> (fused directions, unroll): hmaf.models.rnn.BiGRU on the packed frame rows
RNN_VARIANTS = {"two_scans": (False, 1), "fused": (True, 1), "two_scans_unroll4": (False, 4),
                "fused_unroll4": (True, 4)}
SECTIONS = ("nested", "train", "infer", "latency", "rnn")


def environment() -> dict[str, Any]:
    device = jax.devices()[0]
    return {
        "backend": jax.default_backend(), "device_kind": device.device_kind,
        "device_count": jax.device_count(), "jax_version": jax.__version__,
        "flax_version": flax.__version__, "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "python": platform.python_version(),
        "machine": platform.machine(), "processor": _cpu_model(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor()


def peak_memory() -> tuple[int, str]:
    """Peak memory so far: the device's own counter, or the process's peak RSS."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device_peak_bytes_in_use"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process_peak_rss"


def protocol_batch(b: int, n: int, l: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """The protocol's batch: the paper's 64 log-mel bands per frame (models built here
    keep ``prosody=False``), as PyTorch's side of the comparison gets."""
    return random_batch(np.random.default_rng([seed, b, n, l]), b, n, l, vocab_size=VOCAB, num_classes=CLASSES,
                        frame_dim=N_MELS)


def protocol_rows(b: int, n: int, l: int) -> int:
    """Static packed-row count for the protocol's length distribution (means of the
    uniform word and frame counts), as a training run would fix it once."""
    return rows_for(b, n, l, mean_frames=(l // 4 + l) / 2, mean_words=(max(1, n // 2) + n) / 2)


def compile_timed(jitted: Callable, *args) -> tuple[Any, float, float]:
    start = time.perf_counter()
    lowered = jitted.lower(*args)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    return compiled, lowered_at - start, time.perf_counter() - lowered_at


def _flops(cost: Any) -> float | None:
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


def unrolled_flops(jitted: Callable, *args) -> float | None:
    """FLOPs of one call: XLA's cost analysis of the (unoptimised) lowering, which
    is exact when every scan is unrolled (see :func:`_unrolled`)."""
    return _flops(jitted.lower(*args).cost_analysis())


def time_calls(call: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        jax.block_until_ready(call())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
    return times


def summarise(times: list[float], batch_size: int) -> dict[str, float]:
    median = statistics.median(times)
    return {"step_ms": 1e3 * median, "step_ms_min": 1e3 * min(times), "step_ms_max": 1e3 * max(times),
            "repeats": len(times), "examples_per_s": batch_size / median}


class Harness:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.env = environment()
        self.sizes = QUICK_SIZES if args.quick else PAPER_SIZES
        self.warmup, self.repeats = (1, 3) if args.quick else (2, args.repeats)
        self.out = open(args.out, "a") if args.out else None

    def emit(self, record: dict[str, Any]) -> None:
        memory, source = peak_memory()
        record = {**record, "peak_memory_bytes": memory, "peak_memory_source": source,
                  "dtype": self.args.dtype, "quick": self.args.quick, **self.env, "time": time.time()}
        line = json.dumps(record, sort_keys=True)
        print(line, flush=True)
        if self.out:
            self.out.write(line + "\n")
            self.out.flush()

    def model(self, name: str, *, unroll: int = 1):
        return build_model(name, num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED,
                           unroll=unroll, dtype=self.args.dtype, **self.sizes)

    def batches(self, shape: tuple[int, int, int]) -> dict[str, dict[str, np.ndarray]]:
        batch = protocol_batch(*shape)
        return {"padded": batch, "packed": pack_batch(batch, rows=protocol_rows(*shape))}

    # -- sections ---------------------------------------------------------------------
    def nested(self, shape: tuple[int, int, int]) -> None:
        batches = self.batches(shape)
        variants = self.args.variants or (QUICK_NESTED if self.args.quick else tuple(NESTED_VARIANTS))
        dtype = jnp.dtype(self.args.dtype)
        for variant in variants:
            packed, hoist, unroll = NESTED_VARIANTS[variant]
            batch = batches["packed" if packed else "padded"]
            module = AudioAttention(self.sizes["hidden"], self.sizes["attention_dim"], unroll, dtype, hoist)
            flops_module = AudioAttention(self.sizes["hidden"], self.sizes["attention_dim"], _FULL_UNROLL, dtype,
                                          hoist)
            inputs = _audio_inputs(batch)
            params = jax.jit(lambda x: module.init(jax.random.key(0), *x))(inputs)

            def make(mod):
                def loss(p, x):
                    w_h, w_alpha, _ = mod.apply(p, *x)
                    return (w_h.astype(jnp.float32) ** 2).mean() + w_alpha.astype(jnp.float32).mean()
                return jax.jit(jax.value_and_grad(loss))

            step = make(module)
            compiled, lower_s, compile_s = compile_timed(step, params, inputs)
            times = time_calls(lambda: compiled(params, inputs), self.warmup, self.repeats)
            self.emit(self._record("nested", "audio_branch", variant, shape, batch, compiled, lower_s,
                                   compile_s, times, unrolled_flops(make(flops_module), params, inputs)))

    def rnn(self, shape: tuple[int, int, int]) -> None:
        """The frame BiGRU alone: ``[P, R, 64]`` packed rows with word resets."""
        batch = self.batches(shape)["packed"]
        rows = jnp.asarray(batch["frames"].reshape(-1, batch["frames"].shape[-1])[batch["pack_src"]])
        args = (rows, batch["pack_mask"], batch["pack_start"], batch["pack_end"])
        dtype = jnp.dtype(self.args.dtype)
        for variant in ("two_scans", "fused") if self.args.quick else tuple(RNN_VARIANTS):
            fused, unroll = RNN_VARIANTS[variant]
            module = BiGRU(self.sizes["hidden"], unroll=unroll, dtype=dtype, fused=fused)
            params = jax.jit(module.init)(jax.random.key(0), *args)
            forward = jax.jit(module.apply)
            backward = jax.jit(jax.grad(lambda p, *a: (module.apply(p, *a).astype(jnp.float32) ** 2).mean()))
            for name, fn in (("forward", forward), ("forward_backward", backward)):
                compiled, lower_s, compile_s = compile_timed(fn, params, *args)
                times = time_calls(lambda: compiled(params, *args), self.warmup, self.repeats)
                self.emit(self._record("rnn", name, variant, shape, batch, compiled, lower_s, compile_s, times,
                                       None))

    def train(self, shape: tuple[int, int, int]) -> None:
        batches = self.batches(shape)
        layouts = ("packed", "padded") if not self.args.quick else ("packed",)
        for name in self.args.models:
            for layout in layouts:
                if layout == "padded" and name != "faf":
                    continue  # the layout comparison on the full step: FAF only
                batch, model = batches[layout], self.model(name)
                state = create_train_state(model, batch)
                step = make_train_step(model)
                rng = jax.random.key(1)
                compiled, lower_s, compile_s = compile_timed(step, state, batch, rng)
                flops = unrolled_flops(make_train_step(self.model(name, unroll=_FULL_UNROLL), donate=False),
                                       state, batch, rng)
                holder = {"state": state}

                def call():
                    holder["state"], metrics = compiled(holder["state"], batch, rng)
                    return metrics["loss"]

                with self._maybe_profile(f"train_{name}_{layout}_{_shape_name(shape)}"):
                    times = time_calls(call, self.warmup, self.repeats)
                self.emit(self._record("train", name, layout, shape, batch, compiled, lower_s, compile_s,
                                       times, flops))

    def infer(self, shape: tuple[int, int, int]) -> None:
        batches = self.batches(shape)
        for name in self.args.models:
            batch, model = batches["packed"], self.model(name)
            variables = _variables(model, batch)
            step = make_eval_step(model)
            compiled, lower_s, compile_s = compile_timed(step, variables, batch)
            flops = unrolled_flops(make_eval_step(self.model(name, unroll=_FULL_UNROLL)), variables, batch)
            times = time_calls(lambda: compiled(variables, batch), self.warmup, self.repeats)
            self.emit(self._record("infer", name, "packed", shape, batch, compiled, lower_s, compile_s, times,
                                   flops))

    def latency(self) -> None:
        """One utterance of 12 words (frames per word in [16, 64]); host-side packing
        counts in the packed figure. Features (MFSC) are excluded."""
        words, frames = (12, 64) if not self.args.quick else (6, 16)
        utterance = random_batch(np.random.default_rng(SEED), 1, words, frames, vocab_size=VOCAB,
                                 num_classes=CLASSES, min_words=words, frame_dim=N_MELS)
        model = self.model("faf")
        variables = _variables(model, utterance)
        step = make_eval_step(model)
        for layout in ("packed",) if self.args.quick else ("padded", "packed"):
            prepare = (lambda b: b) if layout == "padded" else (lambda b: pack_batch(b, row_multiple=1))
            batch = prepare(utterance)
            compiled, lower_s, compile_s = compile_timed(step, variables, batch)
            times = time_calls(lambda: compiled(variables, prepare(utterance)), self.warmup,
                               self.repeats * (1 if self.args.quick else 4))
            record = self._record("latency", "faf", layout, (1, words, frames), batch, compiled, lower_s,
                                  compile_s, times, None)
            record["latency_ms"] = record["step_ms"]
            self.emit(record)

    # -- helpers ----------------------------------------------------------------------
    def _record(self, section, model, variant, shape, batch, compiled, lower_s, compile_s, times, flops):
        stats = summarise(times, shape[0])
        memory = compiled.memory_analysis()
        compiled_bytes = None
        if memory is not None:
            compiled_bytes = int(memory.argument_size_in_bytes + memory.output_size_in_bytes
                                 + memory.temp_size_in_bytes - memory.alias_size_in_bytes)
        return {"section": section, "model": model, "variant": variant, "batch_size": shape[0],
                "max_words": shape[1], "max_frames": shape[2], **stats, "lower_s": lower_s,
                "compile_s": compile_s, "flops": flops, "flops_xla_compiled": _flops(compiled.cost_analysis()),
                "flops_per_s": flops / (stats["step_ms"] / 1e3) if flops else None,
                "memory_compiled_bytes": compiled_bytes, "real_frame_share": real_frame_share(batch),
                "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in self.sizes.items()}}

    def _maybe_profile(self, name: str):
        if not self.args.profile:
            return contextlib.nullcontext()
        return jax.profiler.trace(os.path.join(self.args.profile, name))

    def run(self) -> None:
        shapes = self.args.shapes or (QUICK_SHAPES if self.args.quick else SHAPES)
        for section in self.args.sections:
            if section == "latency":
                self.latency()
                continue
            for shape in shapes:
                getattr(self, section)(shape)


_FULL_UNROLL = 1 << 16  # any scan this long or shorter unrolls completely (FLOP counting only)


def _shape_name(shape: Iterable[int]) -> str:
    return "x".join(map(str, shape))


def _audio_inputs(batch):
    from hmaf.models.packing import packed_inputs
    return (batch["frames"], batch["frame_mask"], batch["word_mask"], packed_inputs(batch))


def _variables(model, batch):
    return jax.jit(lambda b: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, b))(batch)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"8x24x64"`` -> ``(8, 24, 64)``: batch, words, frames per word."""
    parts = tuple(int(x) for x in text.lower().split("x"))
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"shape {text!r} is not BxNxL")
    return parts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and shapes (smoke run, < 2 min on CPU)")
    parser.add_argument("--sections", default="nested,train,infer,latency",
                        type=lambda s: [x for x in s.split(",") if x])
    parser.add_argument("--models", default=",".join(MODELS), help="(--quick: faf only unless given)", type=lambda s: [x for x in s.split(",") if x])
    parser.add_argument("--shapes", default=None, type=lambda s: [parse_shape(x) for x in s.split(",")])
    parser.add_argument("--variants", default=None, type=lambda s: [x for x in s.split(",") if x],
                        help=f"nested variants, default all: {','.join(NESTED_VARIANTS)}")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", default=None, help="write jax.profiler traces of the train steps here")
    parser.add_argument("--out", default=None, help="append JSON lines to this file")
    args = parser.parse_args(argv)
    if args.quick and "--models" not in " ".join(argv if argv is not None else sys.argv):
        args.models = ["faf"]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    if args.variants and set(args.variants) - set(NESTED_VARIANTS):
        parser.error(f"unknown variants {sorted(set(args.variants) - set(NESTED_VARIANTS))}")
    return args


def main(argv: list[str] | None = None) -> int:
    Harness(parse_args(argv)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
