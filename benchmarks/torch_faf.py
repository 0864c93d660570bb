"""Optional extra: FAF train step, JAX (hmaf) against a straightforward PyTorch version.

    python -m benchmarks.torch_faf [--threads 2] [--shapes 8x24x64,32x24x64] [--out FILE.jsonl]

Needs ``torch`` (not a dependency of hmaf). Both run in this one process, pinned to
the same CPUs (``sched_setaffinity``) with the same thread count
(``torch.set_num_threads`` and XLA's CPU thread pool, which follows the affinity),
on the same batch, and the JAX and PyTorch steps alternate round by round so that
other load on the machine hits both alike. Medians of the rounds are reported.

The PyTorch model is the architecture of :class:`hmaf.models.classifiers.WordFusionModel`
with FAF fusion, written as a PyTorch user would: ``nn.GRU(bidirectional=True)``
over ``pack_padded_sequence`` (frame level over the real words only, then word
level, then text), additive attention with masked softmax, the CNN decision with
batch norm and dropout, cross-entropy, Adam.
"""

from __future__ import annotations

import argparse
import os
import sys


def _pin(threads: int) -> list[int]:
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cpus)
    return cpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--shapes", default="8x24x64,32x24x64")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    cpus = _pin(args.threads)  # before jax/torch start their thread pools
    import json
    import statistics
    import time

    import jax
    import numpy as np
    import torch

    from benchmarks.run import CLASSES, EMBED, PAPER_SIZES, VOCAB, environment, protocol_batch, protocol_rows
    from hmaf.models import build_model
    from hmaf.models.packing import pack_batch
    from hmaf.training.steps import create_train_state, make_train_step

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    env = {**environment(), "threads": args.threads, "cpus": cpus, "torch_version": torch.__version__,
           "torch_threads": torch.get_num_threads()}
    out = open(args.out, "a") if args.out else None
    for text in args.shapes.split(","):
        b, n, l = (int(x) for x in text.split("x"))
        batch = protocol_batch(b, n, l)
        packed = pack_batch(batch, rows=protocol_rows(b, n, l))

        model = build_model("faf", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED, **PAPER_SIZES)
        holder = {"state": create_train_state(model, batch)}
        step = make_train_step(model)
        rng = jax.random.key(1)

        def jax_step():
            holder["state"], metrics = step(holder["state"], packed, rng)
            return jax.block_until_ready(metrics["loss"])

        net = _torch_model_classes()(VOCAB, EMBED, CLASSES, **PAPER_SIZES)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}

        def torch_step():
            net.train()
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(tensors), tensors["label"].long())
            loss.backward()
            opt.step()
            return loss.detach().item()

        for fn in (jax_step, torch_step, jax_step, torch_step):  # compile, warm caches
            fn()
        times = {"jax": [], "torch": []}
        for _ in range(args.rounds):
            for name, fn in (("jax", jax_step), ("torch", torch_step)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        medians = {k: statistics.median(v) for k, v in times.items()}
        record = {"section": "torch_comparison", "model": "faf", "batch_size": b, "max_words": n,
                  "max_frames": l, "rounds": args.rounds,
                  "jax_step_ms": 1e3 * medians["jax"], "torch_step_ms": 1e3 * medians["torch"],
                  "jax_examples_per_s": b / medians["jax"], "torch_examples_per_s": b / medians["torch"],
                  "speedup_jax_over_torch": medians["torch"] / medians["jax"],
                  "jax_params": int(sum(x.size for x in jax.tree.leaves(holder["state"].params))),
                  "torch_params": int(sum(p.numel() for p in net.parameters())), **env, "time": time.time()}
        line = json.dumps(record, sort_keys=True)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()
    return 0


def _torch_model_classes():
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

    class BiGRU(nn.Module):
        """``[S, T, F]`` with lengths ``[S]`` (each >= 1) -> ``[S, T, 2H]``, zero at padding."""

        def __init__(self, dim_in, hidden):
            super().__init__()
            self.gru = nn.GRU(dim_in, hidden, batch_first=True, bidirectional=True)

        def forward(self, x, lengths):
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.gru(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            return out

    class TorchFAF(nn.Module):
        def __init__(self, vocab_size, embed_dim, num_classes, *, hidden, attention_dim, fusion_dim, filters,
                     widths, dropout=0.5):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, embed_dim)
            self.text_gru, self.text_att = BiGRU(embed_dim, hidden), Attention(2 * hidden, attention_dim)
            self.frame_gru, self.frame_att = BiGRU(64, hidden), Attention(2 * hidden, attention_dim)
            self.word_gru, self.word_att = BiGRU(2 * hidden, hidden), Attention(2 * hidden, attention_dim)
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
            f_v = torch.zeros(b * n, 2 * self.hidden)
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
                start = torch.arange(n)
                valid = (start[None] + k <= n_words[:, None]) | (start[None] == 0)
                pooled.append(f.masked_fill(~valid[:, None], float("-inf")).amax(-1))
            c = self.dropout(self.norm(torch.cat(pooled, -1)))
            return self.logits(c)

    return TorchFAF


if __name__ == "__main__":
    sys.exit(main())
