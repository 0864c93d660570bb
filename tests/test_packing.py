"""Frame packing: the placement, the index arrays, and equality with the padded layout."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hmaf.data.toy import random_batch
from hmaf.models import build_model
from hmaf.models.packing import (PACK_KEYS, first_fit_decreasing, pack_batch, packed_inputs,
                                 real_frame_share, rows_for)
from hmaf.models.encoders import FrameAttention, packed_frame_attention
from hmaf.models.rnn import BiGRU, hoists, recomputes
from hmaf.training.distributed import pack_per_device

SMALL = dict(hidden=7, attention_dim=6, fusion_dim=5, filters=4, widths=(2, 3))
VOCAB, EMBED, CLASSES = 20, 8, 3


def batch_of(seed=0, b=3, n=6, l=10):
    return random_batch(np.random.default_rng(seed), b, n, l, vocab_size=VOCAB, num_classes=CLASSES,
                        min_words=1, min_frames=1)


def test_first_fit_decreasing_places_every_item_without_overlap():
    lengths = np.random.default_rng(0).integers(1, 11, size=40)
    row, offset, used = first_fit_decreasing(lengths, 10)
    occupied = np.zeros((used, 10), int)
    for r, o, n in zip(row, offset, lengths):
        occupied[r, o:o + n] += 1
    assert occupied.max() == 1 and occupied.sum() == lengths.sum()
    assert used < len(lengths) and used >= -(-lengths.sum() // 10)
    again = first_fit_decreasing(lengths, 10)
    assert all(np.array_equal(a, b) for a, b in zip((row, offset), again[:2]))
    with pytest.raises(ValueError, match="lengths"):
        first_fit_decreasing(np.array([3, 11]), 10)


def test_pack_batch_index_arrays_round_trip():
    batch = batch_of()
    packed = pack_batch(batch, row_multiple=1)
    frames, mask = batch["frames"], batch["frame_mask"]
    b, n, l, m = frames.shape
    rows = frames.reshape(-1, m)[packed["pack_src"]]  # [P, R, M]
    real = packed["pack_mask"]
    assert real.sum() == mask.sum()
    # every real frame lands exactly once, and unpack_index brings it back
    np.testing.assert_array_equal(np.sort(packed["pack_src"][real]), np.flatnonzero(mask.ravel()))
    back = rows.reshape(-1, m)[packed["unpack_index"]]
    np.testing.assert_array_equal(back[mask], frames[mask])
    # one start and one end per real word, and the words are contiguous runs
    assert packed["pack_start"].sum() == packed["pack_end"].sum() == batch["word_mask"].sum()
    assert not np.any(packed["pack_start"] & ~real) and not np.any(packed["pack_end"] & ~real)
    src = packed["pack_src"][real]
    word = src // l
    starts = packed["pack_start"][real]
    assert np.all(starts[1:] == (word[1:] != word[:-1]) | starts[1:])
    assert real_frame_share(packed) > real_frame_share(batch)
    assert real_frame_share(batch) == pytest.approx(mask.mean())


def test_pack_batch_fixed_rows_and_growth(caplog):
    batch = batch_of(seed=1)
    need = pack_batch(batch, row_multiple=1)["pack_mask"].shape[0]
    assert pack_batch(batch, rows=need + 5)["pack_mask"].shape == (need + 5, 10)
    with caplog.at_level(logging.WARNING, logger="hmaf.models.packing"):
        grown = pack_batch(batch, rows=need - 1, row_multiple=4)
    assert grown["pack_mask"].shape[0] == -(-need // 4) * 4
    assert "rows" in caplog.text
    assert pack_batch(batch, row_len=25)["pack_mask"].shape[1] == 25


def test_pack_batch_rejects_bad_masks():
    batch = batch_of()
    holes = dict(batch, frame_mask=batch["frame_mask"].copy())
    holes["frame_mask"][0, 0, 0] = False
    holes["frame_mask"][0, 0, 1] = True
    with pytest.raises(ValueError, match="real frames first"):
        pack_batch(holes)
    with pytest.raises(ValueError, match="row_len"):
        pack_batch(batch, row_len=5)
    partial = {k: v for k, v in pack_batch(batch).items() if k != "pack_end"}
    with pytest.raises(ValueError, match="pack_end"):
        packed_inputs(partial)
    assert packed_inputs(batch) is None


def test_rows_for_is_a_multiple_and_capped():
    assert rows_for(8, 24, 64, mean_frames=40, mean_words=18) % 8 == 0
    assert rows_for(8, 24, 64, mean_frames=64, margin=2.0) == 8 * 24


def test_bigru_with_resets_equals_separate_sequences():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    gru = BiGRU(6)
    mask = np.ones((1, 8), bool)
    starts, ends = np.zeros((1, 8), bool), np.zeros((1, 8), bool)
    starts[0, [0, 3]] = True
    ends[0, [2, 7]] = True
    row = jnp.asarray(np.concatenate([a, b])[None], jnp.float32)
    params = gru.init(jax.random.key(0), row, mask)
    packed = gru.apply(params, row, mask, starts, ends)[0]
    alone_a = gru.apply(params, jnp.asarray(a[None], jnp.float32), np.ones((1, 3), bool))[0]
    alone_b = gru.apply(params, jnp.asarray(b[None], jnp.float32), np.ones((1, 5), bool))[0]
    np.testing.assert_allclose(packed, np.concatenate([alone_a, alone_b]), rtol=1e-5, atol=1e-6)


def test_unhoisted_gru_equals_hoisted():
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(4, 7, 5)), jnp.float32)
    mask = jnp.asarray(np.arange(7)[None] < np.array([[7], [3], [1], [5]]))
    params = BiGRU(6).init(jax.random.key(1), x, mask)
    np.testing.assert_allclose(BiGRU(6, hoist_input=False).apply(params, x, mask),
                               BiGRU(6, hoist_input=True).apply(params, x, mask), rtol=1e-5, atol=1e-6)
    assert hoists(None) is (jax.default_backend() != "cpu") and hoists(True) and not hoists(False)


@pytest.mark.parametrize("fused", [False, True])
def test_recomputed_gru_gradients_equal_saved(fused):
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(4, 7, 5)), jnp.float32)
    mask = jnp.asarray(np.arange(7)[None] < np.array([[7], [3], [1], [5]]))
    starts = jnp.asarray(np.arange(7)[None] == np.array([[0], [2], [0], [4]]))
    params = BiGRU(6, fused=fused).init(jax.random.key(1), x, mask)

    def grads(recompute):
        def loss(p, x):
            return (BiGRU(6, fused=fused, recompute=recompute).apply(p, x, mask, starts) ** 2).sum()
        return jax.grad(loss, argnums=(0, 1))(params, x)

    for a, b in zip(jax.tree.leaves(grads(True)), jax.tree.leaves(grads(False))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert recomputes(None) is (jax.default_backend() == "cpu") and recomputes(True) and not recomputes(False)


def test_time_major_bigru_equals_batch_major():
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(4, 7, 5)), jnp.float32)  # [S, T, F]
    mask = jnp.asarray(np.arange(7)[None] < np.array([[7], [3], [1], [5]]))
    starts = jnp.asarray(np.arange(7)[None] == np.array([[0], [2], [0], [4]]))
    ends = jnp.asarray(np.arange(7)[None] == np.array([[3], [1], [0], [6]]))
    params = BiGRU(6).init(jax.random.key(1), x, mask)
    batch_major = BiGRU(6).apply(params, x, mask, starts, ends)
    time_major = BiGRU(6, time_major=True).apply(params, x.swapaxes(0, 1), mask.T, starts.T, ends.T)
    np.testing.assert_allclose(time_major.swapaxes(0, 1), batch_major, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="fused"):
        BiGRU(6, fused=True, time_major=True).init(jax.random.key(1), x, mask)


@pytest.mark.parametrize("groups", [1, 2])
def test_packed_pooling_in_rows_equals_pooling_after_unpacking(groups):
    """Eq. 6 summed in the packed rows (eval) and after unpacking (training): the same
    f_alpha, f_v and gradients, also with per-device packing groups."""
    batch = batch_of(seed=6, b=4, n=5, l=9)
    if groups == 1:
        packing = {k: jnp.asarray(v) for k, v in pack_batch(batch, row_multiple=2).items() if k in PACK_KEYS}
    else:
        class Layout:
            row_multiple = 2

            def rows(self, b, n, l):
                return 4
        local = pack_per_device(batch, Layout(), groups, 0, groups)
        packing = {k: jnp.asarray(local[k]) for k in PACK_KEYS}
    frames = jnp.asarray(batch["frames"])
    frame_mask = jnp.asarray(batch["frame_mask"])
    frame = FrameAttention(5, 4, time_major=True)
    row_shape = packing["pack_mask"].shape[-2:]
    rows = jnp.zeros((row_shape[1], groups * row_shape[0], frames.shape[-1]))
    params = frame.init(jax.random.key(2), rows, jnp.ones(rows.shape[:2], bool))

    def run(pool_packed):
        def loss(p, x):
            f_alpha, f_v = packed_frame_attention(frame.bind(p), x, frame_mask, packing, pool_packed=pool_packed)
            return (f_v ** 2).sum(), (f_alpha, f_v)
        (_, outs), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, frames)
        return outs, grads

    (alpha_rows, v_rows), grads_rows = run(True)
    (alpha_unpacked, v_unpacked), grads_unpacked = run(False)
    np.testing.assert_allclose(alpha_rows, alpha_unpacked, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(v_rows, v_unpacked, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(grads_rows), jax.tree.leaves(grads_unpacked)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # every real word has its attention summing to one, padded words none
    real = np.asarray(frame_mask).any(-1)
    np.testing.assert_allclose(np.asarray(alpha_rows).sum(-1)[real], 1.0, rtol=1e-5)
    assert np.all(np.asarray(v_rows)[~real] == 0) and np.all(np.abs(np.asarray(v_rows)[real]).sum(-1) > 0)


@pytest.mark.parametrize("name", ["faf", "audio_only"])
def test_packed_model_equals_padded_model_outputs_and_gradients(name):
    batch = batch_of(seed=3, b=4, n=6, l=12)
    packed = pack_batch(batch, row_multiple=4)
    assert set(PACK_KEYS) <= set(packed)
    model = build_model(name, num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED, **SMALL)
    variables = jax.jit(lambda b: model.init(jax.random.key(0), b))(batch)

    @jax.jit
    def run(params, b):
        def loss(p):
            out, state = model.apply({**variables, "params": p}, b, mutable=["intermediates"])
            return out.logits.sum(), (out.logits, state["intermediates"])
        (_, (logits, inter)), grads = jax.value_and_grad(loss, has_aux=True)(params)
        return logits, {k: v[0] for k, v in inter.items()}, grads

    logits, inter, grads = run(variables["params"], batch)
    logits_p, inter_p, grads_p = run(variables["params"], packed)
    np.testing.assert_allclose(logits_p, logits, rtol=1e-5, atol=1e-5)
    for key in inter:
        np.testing.assert_allclose(inter_p[key], inter[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert np.all(np.asarray(inter_p["f_alpha"])[~batch["frame_mask"]] == 0)
    for (path, g), g_p in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(grads_p)):
        np.testing.assert_allclose(g_p, g, rtol=1e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path))


def test_packed_pipeline_batches_give_the_padded_results(tmp_path):
    """Packing inside the input pipeline (static rows per shape) changes no prediction."""
    from configs import default
    from hmaf.data.fake_corpus import write_fake_corpus
    from hmaf.data.source import from_config
    from hmaf.eval_step import make_eval_step, model_inputs
    from hmaf.training.steps import init_variables

    write_fake_corpus(tmp_path, num_speakers=5, per_speaker=4, max_words=10, max_frames=20)
    config = default.get_config()
    config.data.dir, config.batch_size = str(tmp_path), 4
    config.pack_frames = False
    source = from_config(config)
    padded = list(source.eval_batches("all"))
    config.pack_frames = True
    packed = list(from_config(config).eval_batches("all"))
    assert all(packed_inputs(b) is not None for b in packed) and packed_inputs(padded[0]) is None
    model = build_model("faf", num_classes=source.info.num_classes, vocab_size=source.info.vocab_size,
                        embed_dim=source.info.embedding_dim, **SMALL)
    variables = init_variables(model, model_inputs(padded[0]))
    step = make_eval_step(model)
    for a, b in zip(padded, packed):
        np.testing.assert_array_equal(a["utt_id"], b["utt_id"])
        np.testing.assert_allclose(step(variables, model_inputs(a))["logits"],
                                   step(variables, model_inputs(b))["logits"], rtol=1e-5, atol=1e-5)
