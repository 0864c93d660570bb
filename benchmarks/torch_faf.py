"""Optional extra: FAF train and eval steps, JAX (hmaf) against a plain PyTorch version.

    python -m benchmarks.torch_faf [--threads 2] [--shapes 8x24x64,32x24x64,8x48x128]
                                   [--device cpu|cuda] [--rounds 7] [--calls 3] [--quick] [--out FILE.jsonl]

Needs ``torch`` (the ``torch`` extra of pyproject.toml; not a dependency of hmaf).

For every shape it times, in ONE process and interleaved round by round (so other load
on the machine hits every contestant alike), six steps on the same batch:

* JAX train step and eval step (hmaf, the packed layout the trainer uses by default);
* PyTorch train step and eval step in two forms, ``packed`` (``pack_padded_sequence``
  into ``nn.GRU(bidirectional=True)``) and ``padded`` (every sequence run to the
  longest length, the backward direction over each sequence reversed within its own
  length so padding never enters the real outputs). PyTorch's packed form skips the
  padding but pays for sorting and per-step batch sizes; its padded form computes the
  padding but runs plain batched steps: which one is faster depends on the shape, so
  the comparison is against the FASTER of the two at each shape and mode.

Both forms are the architecture of :class:`hmaf.models.classifiers.WordFusionModel`
with FAF fusion, written as a PyTorch user would: frame-level BiGRU over the real
words only, frame attention, word-level BiGRU and attention, text embedding, BiGRU
and attention, FAF (eq. 9-10), the CNN decision with batch norm and dropout,
cross-entropy, Adam; eval runs under ``torch.inference_mode`` in ``eval()`` mode.

On CPU (``--device cpu``) the process is pinned to ``--threads`` CPUs
(``sched_setaffinity``) before either framework starts its thread pool; PyTorch gets
``torch.set_num_threads(threads)`` and XLA's CPU pool, which sizes itself from the
affinity, the same CPUs (its flags are recorded). ``OMP_WAIT_POLICY`` defaults to
``PASSIVE`` (recorded): spinning OpenMP threads collapse PyTorch on shared cores.
With ``--device cuda`` both run on the first GPU (PyTorch with cuDNN's GRU); without
a GPU that run prints one JSON line with ``"skipped"`` and the reason, and exits 0.
Each round times ``--calls`` consecutive calls of each contestant and keeps their
mean: the steady state of a loop that runs one step after another, as training and
evaluation do. With ``--calls 1`` every timed call follows another contestant's, so
it also pays for caches and freed memory that a different program left (on CPU the
first JAX eval step after a train step ran 1.45x slower than the next ones). Medians
over ``--rounds`` are reported; ``ratio_{train,infer}`` = PyTorch's best wall
time / JAX's wall time; ``ratio_*_cpu`` PyTorch's smaller CPU time per step (either form) / JAX's,
counting the whole process (on a loaded machine wall time mostly measures the
scheduler; CPU time measures the work, plus any time threads spin while waiting).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Callable
from benchmarks.run import parse_shape
from hmaf import cli

FORMS = ("packed", "padded")


def _pin(threads: int) -> list[int]:
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cpus)
    return cpus


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for each framework (CPU only)")
    parser.add_argument("--shapes", default="8x24x64,32x24x64,8x48x128",
                        type=lambda s: [parse_shape(x) for x in s.split(",") if x])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3,
                        help="consecutive calls of each contestant per round, timed together (their mean)")
    parser.add_argument("--quick", action="store_true", help="tiny model sizes (smoke test)")
    parser.add_argument("--out", default=None, help="append JSON lines to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpus = None
    if args.device == "cpu":
        cpus = _pin(args.threads)  # before jax/torch start their thread pools
        os.environ["JAX_PLATFORMS"] = "cpu"
        # PyTorch's OpenMP threads spin at barriers; on cores shared with other work that
        # collapses its 2-thread speed (a bare 2-thread nn.GRU measured 388 ms spinning,
        # 56 ms passive, under load 8). Passive waiting is the fair setting for it here.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        _emit({"section": "torch_comparison", "device": "cuda", "skipped": "no CUDA device visible to PyTorch"},
              args.out)
        return 0
    import jax

    if args.device == "cuda" and jax.default_backend() != "gpu":
        _emit({"section": "torch_comparison", "device": "cuda",
               "skipped": f"JAX has no GPU backend (default backend {jax.default_backend()!r})"}, args.out)
        return 0
    from benchmarks.run import PAPER_SIZES, QUICK_SIZES, environment, protocol_batch, protocol_rows

    sizes = QUICK_SIZES if args.quick else PAPER_SIZES
    device = torch.device(args.device)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    env = {**environment(), "threads": args.threads if args.device == "cpu" else None, "cpus": cpus,
           "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
           "torch_device": str(device), "cudnn": (torch.backends.cudnn.version() if args.device == "cuda" else None),
           "torch_device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "loadavg_start": os.getloadavg()[0],
           "quick": args.quick}
    for b, n, l in args.shapes:
        batch = protocol_batch(b, n, l)
        steps, params = _contestants(batch, protocol_rows(b, n, l), sizes, device)
        for fn in steps.values():  # compile and warm caches, twice each
            fn()
            fn()
        times: dict[str, list[float]] = {name: [] for name in steps}
        cpu_times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, fn in steps.items():
                cpu_start, start = time.process_time(), time.perf_counter()
                for _ in range(args.calls):
                    fn()
                times[name].append((time.perf_counter() - start) / args.calls)
                cpu_times[name].append((time.process_time() - cpu_start) / args.calls)
        med = {name: statistics.median(t) for name, t in times.items()}
        cpu = {name: statistics.median(t) for name, t in cpu_times.items()}
        record: dict[str, Any] = {"section": "torch_comparison", "model": "faf", "batch_size": b, "max_words": n,
                                  "max_frames": l, "rounds": args.rounds, "calls": args.calls, "jax_layout": "packed", **params}
        for mode in ("train", "infer"):
            best = min(FORMS, key=lambda f: med[f"torch_{f}_{mode}"])
            record[f"jax_{mode}_ms"] = 1e3 * med[f"jax_{mode}"]
            record[f"jax_{mode}_examples_per_s"] = b / med[f"jax_{mode}"]
            for form in FORMS:
                record[f"torch_{form}_{mode}_ms"] = 1e3 * med[f"torch_{form}_{mode}"]
                record[f"torch_{form}_{mode}_examples_per_s"] = b / med[f"torch_{form}_{mode}"]
            record[f"torch_best_{mode}_form"] = best
            record[f"torch_best_{mode}_examples_per_s"] = b / med[f"torch_{best}_{mode}"]
            record[f"ratio_{mode}"] = med[f"torch_{best}_{mode}"] / med[f"jax_{mode}"]
            # CPU seconds of the whole process per step: the work done, less sensitive
            # than wall time to other load (but it counts threads that spin while waiting)
            record[f"jax_{mode}_cpu_ms"] = 1e3 * cpu[f"jax_{mode}"]
            for form in FORMS:
                record[f"torch_{form}_{mode}_cpu_ms"] = 1e3 * cpu[f"torch_{form}_{mode}"]
            record[f"ratio_{mode}_cpu"] = min(cpu[f"torch_{form}_{mode}"] for form in FORMS) / cpu[f"jax_{mode}"]
        record.update(env)
        record["loadavg_end"] = os.getloadavg()[0]
        record["time"] = time.time()
        _emit(record, args.out)
    return 0


def _emit(record: dict[str, Any], out: str | None) -> None:
    line = json.dumps(record, sort_keys=True)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def _contestants(batch, rows: int, sizes: dict, device) -> tuple[dict[str, Callable[[], Any]], dict[str, int]]:
    """The six timed callables (each returns when its result is ready) and parameter counts."""
    import jax
    import numpy as np
    import torch

    from benchmarks.run import CLASSES, EMBED, VOCAB
    from hmaf.models import build_model
    from hmaf.models.packing import pack_batch
    from hmaf.training.steps import create_train_state, make_eval_step, make_train_step

    packed = jax.device_put(pack_batch(batch, rows=rows))
    model = build_model("faf", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED, **sizes)
    holder = {"state": create_train_state(model, packed)}
    train_step, eval_step = make_train_step(model), make_eval_step(model)
    # a copy: the train step donates (deletes) the state's buffers
    variables = jax.tree.map(lambda x: x.copy(), {"params": holder["state"].params,
                                                  "batch_stats": holder["state"].batch_stats})
    rng = jax.random.key(1)

    def jax_train():
        holder["state"], metrics = train_step(holder["state"], packed, rng)
        return jax.block_until_ready(metrics["loss"])

    def jax_infer():
        return jax.block_until_ready(eval_step(variables, packed)["probs"])

    tensors = {k: torch.from_numpy(np.asarray(v)).to(device) for k, v in batch.items()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    steps: dict[str, Callable[[], Any]] = {"jax_train": jax_train, "jax_infer": jax_infer}
    params = {"jax_params": int(sum(x.size for x in jax.tree.leaves(holder["state"].params)))}
    for form in FORMS:
        torch.manual_seed(0)
        net = _torch_model_class()(VOCAB, EMBED, CLASSES, form=form, **sizes).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def torch_train(net=net, opt=opt):
            net.train()
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(tensors), tensors["label"].long())
            loss.backward()
            opt.step()
            sync()
            return loss.detach().item()

        def torch_infer(net=net):
            net.eval()
            with torch.inference_mode():
                probs = torch.softmax(net(tensors), -1)
            sync()
            return probs

        steps[f"torch_{form}_train"], steps[f"torch_{form}_infer"] = torch_train, torch_infer
        params[f"torch_{form}_params"] = int(sum(p.numel() for p in net.parameters()))
    return steps, params


def _torch_model_class():
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    def masked_softmax(scores, mask):
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.nan_to_num(weights, nan=0.0)  # rows without a real position

    class Attention(nn.Module):
        def __init__(self, dim_in, dim):
            super().__init__()
            self.energy = nn.Linear(dim_in, dim)
            self.context = nn.Linear(dim, 1, bias=False)

        def forward(self, h, mask):
            return masked_softmax(self.context(torch.tanh(self.energy(h))).squeeze(-1), mask)

    class PackedBiGRU(nn.Module):
        """``[S, T, F]`` with lengths ``[S]`` (each >= 1) -> ``[S, T, 2H]``, zero at padding."""

        def __init__(self, dim_in, hidden):
            super().__init__()
            self.gru = nn.GRU(dim_in, hidden, batch_first=True, bidirectional=True)

        def forward(self, x, lengths):
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.gru(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            return out

    class PaddedBiGRU(nn.Module):
        """The same on the padded tensor: the forward GRU runs through the padding
        (after the real steps, so they are unaffected); the backward one runs over
        each sequence reversed within its length. Outputs at padding are zeroed."""

        def __init__(self, dim_in, hidden):
            super().__init__()
            self.fwd = nn.GRU(dim_in, hidden, batch_first=True)
            self.bwd = nn.GRU(dim_in, hidden, batch_first=True)

        def forward(self, x, lengths):
            steps = torch.arange(x.shape[1], device=x.device)
            mask = steps[None] < lengths[:, None]  # [S, T]
            rev = torch.where(mask, lengths[:, None] - 1 - steps[None], steps[None])  # within-length reversal
            gather = rev[..., None].expand(-1, -1, x.shape[-1])
            fwd, _ = self.fwd(x)
            bwd, _ = self.bwd(torch.gather(x, 1, gather))
            bwd = torch.gather(bwd, 1, rev[..., None].expand(-1, -1, bwd.shape[-1]))
            return torch.cat([fwd, bwd], -1) * mask[..., None]

    class TorchFAF(nn.Module):
        def __init__(self, vocab_size, embed_dim, num_classes, *, form, hidden, attention_dim, fusion_dim, filters,
                     widths, dropout=0.5):
            super().__init__()
            gru = {"packed": PackedBiGRU, "padded": PaddedBiGRU}[form]
            self.embedding = nn.Embedding(vocab_size, embed_dim)
            self.text_gru, self.text_att = gru(embed_dim, hidden), Attention(2 * hidden, attention_dim)
            self.frame_gru, self.frame_att = gru(64, hidden), Attention(2 * hidden, attention_dim)
            self.word_gru, self.word_att = gru(2 * hidden, hidden), Attention(2 * hidden, attention_dim)
            self.fusion = nn.Linear(4 * hidden, fusion_dim)
            self.fine_tune = Attention(fusion_dim, attention_dim)
            self.widths = widths
            self.convs = nn.ModuleList(nn.Conv1d(fusion_dim, filters, k) for k in widths)
            self.norm = nn.BatchNorm1d(filters * len(widths))
            self.dropout = nn.Dropout(dropout)
            self.logits = nn.Linear(filters * len(widths), num_classes)
            self.hidden = hidden

        def forward(self, batch):
            word_mask, frame_mask = batch["word_mask"], batch["frame_mask"]
            b, n, l, m = batch["frames"].shape
            n_words = word_mask.sum(-1)
            # text branch (eq. 1-4)
            t_h = self.text_gru(self.embedding(batch["word_ids"].long()), n_words)
            t_alpha = self.text_att(t_h, word_mask)
            # audio branch: frame level over the real words only (eq. 5-6)
            real = word_mask.reshape(-1)
            frames = batch["frames"].reshape(b * n, l, m)[real]
            f_mask = frame_mask.reshape(b * n, l)[real]
            f_h = self.frame_gru(frames, f_mask.sum(-1))
            f_alpha = self.frame_att(f_h, f_mask)
            f_v = torch.zeros(b * n, 2 * self.hidden, device=f_h.device, dtype=f_h.dtype)
            f_v[real] = torch.einsum("wt,wtd->wd", f_alpha, f_h)
            w_h = self.word_gru(f_v.reshape(b, n, -1), n_words)
            w_alpha = self.word_att(w_h, word_mask)
            # FAF (eq. 9-10)
            h = torch.relu(self.fusion(torch.cat([t_h, w_h], -1)))
            u_alpha = (self.fine_tune(h, word_mask) + 0.5 * (t_alpha + w_alpha)) * word_mask
            v = self.dropout(u_alpha.unsqueeze(-1) * h)  # [B, N, D], zero at padding
            # CNN decision (eq. 11-12): only windows inside the real words
            pooled = []
            for k, conv in zip(self.widths, self.convs):
                f = torch.tanh(conv(nn.functional.pad(v, (0, 0, 0, k - 1)).transpose(1, 2)))  # [B, F, N]
                start = torch.arange(n, device=v.device)
                valid = (start[None] + k <= n_words[:, None]) | (start[None] == 0)
                pooled.append(f.masked_fill(~valid[:, None], float("-inf")).amax(-1))
            c = self.dropout(self.norm(torch.cat(pooled, -1)))
            return self.logits(c)

    return TorchFAF


if __name__ == "__main__":
    sys.exit(main())
