"""The fast GRU forms equal the plain ones, and the PyTorch comparison is fair.

The fused :class:`BiGRU` (both directions in one scan) must give the outputs and
gradients of two separate scans and of Flax's ``nn.RNN(nn.GRUCell)``, with masks and
with the packed layout's resets. The PyTorch benchmark's padded form must compute
what its packed form computes, or the "faster of the two" would not be a fair pick.
"""

from __future__ import annotations

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hmaf.models.rnn import BiGRU

def _inputs(seed=0, lead=(2, 3), steps=9, feats=5):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(*lead, steps, feats)), jnp.float32)
    lengths = rng.integers(1, steps + 1, size=lead)
    lengths.flat[0] = steps  # one full-length sequence
    mask = jnp.asarray(np.arange(steps) < lengths[..., None])
    starts = jnp.asarray(rng.random((*lead, steps)) < 0.3)
    ends = jnp.asarray(rng.random((*lead, steps)) < 0.3)
    return x, mask, lengths, starts, ends


@pytest.mark.parametrize("hoist", [True, False])
@pytest.mark.parametrize("with_resets", [False, True])
def test_fused_bigru_equals_two_scans_outputs_and_gradients(hoist, with_resets):
    x, mask, _, starts, ends = _inputs()
    resets = (starts, ends) if with_resets else ()
    fused, plain = BiGRU(6, hoist_input=hoist, fused=True), BiGRU(6, hoist_input=hoist)
    params = plain.init(jax.random.key(0), x, mask)
    # same parameter tree (checkpoints of either form load in the other), same init
    fused_params = fused.init(jax.random.key(0), x, mask)
    assert jax.tree.structure(fused_params) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(fused_params), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)

    def loss(module, p, x):
        out = module.apply(p, x, mask, *resets)
        return (out * jnp.arange(out.shape[-1])).sum(), out

    def grads(module):
        return jax.jit(jax.value_and_grad(lambda p, x: loss(module, p, x), argnums=(0, 1), has_aux=True))(params, x)

    (_, out_f), grads_f = grads(fused)
    (_, out_p), grads_p = grads(plain)
    np.testing.assert_allclose(out_f, out_p, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(out_f)[~np.asarray(mask)] == 0)
    for g_f, g_p in zip(jax.tree.leaves(grads_f), jax.tree.leaves(grads_p)):
        np.testing.assert_allclose(g_f, g_p, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_bigru_matches_flax_gru_cell_both_directions(fused):
    x, mask, lengths, _, _ = _inputs(seed=1)
    gru = BiGRU(4, fused=fused)
    params = gru.init(jax.random.key(2), x, mask)["params"]
    ours = gru.apply({"params": params}, x, mask)
    refs = []
    for direction, reverse in (("forward", False), ("backward", True)):
        p = params[direction]
        kernel, bias, rec = p["input"]["kernel"], p["input"]["bias"], p["recurrent_kernel"]
        cell = {"ir": {"kernel": kernel[:, :4], "bias": bias[:4]}, "iz": {"kernel": kernel[:, 4:8], "bias": bias[4:8]},
                "in": {"kernel": kernel[:, 8:], "bias": bias[8:]}, "hr": {"kernel": rec[:, :4]},
                "hz": {"kernel": rec[:, 4:8]}, "hn": {"kernel": rec[:, 8:], "bias": p["recurrent_bias"]}}
        rnn = nn.RNN(nn.GRUCell(4), reverse=reverse, keep_order=True)
        refs.append(rnn.apply({"params": {"cell": cell}}, x, seq_lengths=jnp.asarray(lengths)))
    ref = jnp.where(mask[..., None], jnp.concatenate(refs, -1), 0)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_bigru_resets_make_packed_rows_equal_separate_sequences(fused):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 3))
    row = jnp.asarray(np.concatenate([a, b, np.zeros((2, 3))])[None], jnp.float32)  # two words, then padding
    mask = jnp.asarray(np.arange(9)[None] < 7)
    starts, ends = np.zeros((1, 9), bool), np.zeros((1, 9), bool)
    starts[0, [0, 4]] = True
    ends[0, [3, 6]] = True
    gru = BiGRU(5, fused=fused)
    params = gru.init(jax.random.key(0), row, mask)
    packed = np.asarray(gru.apply(params, row, mask, starts, ends)[0])
    alone = [np.asarray(gru.apply(params, jnp.asarray(s[None], jnp.float32), np.ones((1, len(s)), bool))[0])
             for s in (a, b)]
    np.testing.assert_allclose(packed[:7], np.concatenate(alone), rtol=1e-5, atol=1e-5)
    assert np.all(packed[7:] == 0)


def test_torch_padded_form_equals_packed_form():
    torch = pytest.importorskip("torch", reason="torch is the optional `torch` extra; the comparison needs it")
    from benchmarks.torch_faf import _torch_model_class
    from benchmarks.run import protocol_batch

    torch.manual_seed(0)
    cls = _torch_model_class()
    sizes = dict(hidden=5, attention_dim=4, fusion_dim=6, filters=3, widths=(2, 3))
    packed, padded = cls(30, 7, 3, form="packed", **sizes), cls(30, 7, 3, form="padded", **sizes)
    state = {}
    for name, value in packed.state_dict().items():  # nn.GRU(bidirectional) -> two one-way GRUs
        if ".gru." in name:
            module, param = name.split(".gru.")
            direction = "bwd" if param.endswith("_reverse") else "fwd"
            state[f"{module}.{direction}.{param.removesuffix('_reverse')}"] = value
        else:
            state[name] = value
    padded.load_state_dict(state)
    batch = protocol_batch(3, 6, 10)
    batch["word_ids"] = batch["word_ids"] % 30
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}
    packed.eval(), padded.eval()
    with torch.inference_mode():
        np.testing.assert_allclose(padded(tensors).numpy(), packed(tensors).numpy(), rtol=1e-5, atol=1e-5)


def test_torch_comparison_quick_run_and_cuda_skip(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is the optional `torch` extra; the comparison needs it")
    from benchmarks import torch_faf

    out = tmp_path / "cmp.jsonl"
    affinity = os.sched_getaffinity(0)
    try:  # in this process: a subprocess would import jax and torch again (slow on 2 cores)
        assert torch_faf.main(["--quick", "--shapes", "2x4x8", "--rounds", "2", "--calls", "2", "--out", str(out)]) == 0
    finally:
        os.sched_setaffinity(0, affinity)  # the benchmark pins itself to --threads CPUs
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["calls"] == 2 and record["rounds"] == 2
    for mode in ("train", "infer"):
        assert record[f"torch_best_{mode}_form"] in ("packed", "padded")
        best = record[f"torch_best_{mode}_examples_per_s"]
        assert best == max(record[f"torch_packed_{mode}_examples_per_s"], record[f"torch_padded_{mode}_examples_per_s"])
        assert record[f"ratio_{mode}"] == pytest.approx(record[f"jax_{mode}_examples_per_s"] / best)
        assert record[f"jax_{mode}_cpu_ms"] > 0 and record[f"ratio_{mode}_cpu"] > 0
    assert record["threads"] == 2 and record["torch_threads"] == 2 and record["omp_wait_policy"]
    if torch.cuda.is_available():
        return  # the CUDA path runs for real on a GPU machine (benchmarks/gpu.sh)
    assert torch_faf.main(["--device", "cuda", "--out", str(out)]) == 0
    skipped = json.loads(out.read_text().splitlines()[-1])
    assert skipped["device"] == "cuda" and "no CUDA device" in skipped["skipped"]


def test_rnn_section_times_both_forms(tmp_path):
    from benchmarks import run

    out = tmp_path / "rnn.jsonl"
    assert run.main(["--quick", "--sections", "rnn", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["variant"], r["model"]) for r in records} == {
        (v, m) for v in ("two_scans", "fused") for m in ("forward", "forward_backward")}
    assert all(r["section"] == "rnn" and r["step_ms"] > 0 and r["compile_s"] > 0 for r in records)
