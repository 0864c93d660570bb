"""Generalisation options of the models: input norms, SpecAugment, boundary jitter, modality dropout,
the modality gate, frozen branches and text-branch dropout, checked against hand
computation and against padding."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hmaf.batch import FRAME_DIM, UNK_ID, BatchError, validate
from hmaf.data.toy import random_batch
from hmaf.models import build_model
from hmaf.models.encoders import _position_bernoulli
from hmaf.models.frontend import (jitter_boundaries, normalise_frames, spec_augment_mask, stats_dropout_draws,
                                  utterance_band_stats, with_stats_indicator)
from hmaf.models.fusion import drop_modality
from hmaf.models.packing import pack_batch

TINY = dict(hidden=3, attention_dim=3, fusion_dim=3, filters=2, widths=(2,))
VOCAB, EMBED, CLASSES = 12, 4, 3
QUIET = dict(dropout=0.0, fused_dropout=0.0)  # no ordinary dropout: train mode is deterministic


def small_batch(seed=0, b=4, n=4, l=5):
    batch = random_batch(np.random.default_rng(seed), b, n, l, vocab_size=VOCAB, num_classes=CLASSES,
                         min_words=1, min_frames=1)
    validate(batch)
    return batch


def pad_batch(batch, extra_words=2, extra_frames=3, seed=9):
    """Adds padded words and frames filled with garbage."""
    rng = np.random.default_rng(seed)
    b, n, l, m = batch["frames"].shape
    frames = rng.normal(size=(b, n + extra_words, l + extra_frames, m)).astype(np.float32) * 50
    frames[:, :n, :l] = np.where(batch["frame_mask"][..., None], batch["frames"], frames[:, :n, :l])
    out = dict(batch, frames=frames,
               word_ids=np.pad(batch["word_ids"], ((0, 0), (0, extra_words))),
               word_mask=np.pad(batch["word_mask"], ((0, 0), (0, extra_words))),
               frame_mask=np.pad(batch["frame_mask"], ((0, 0), (0, extra_words), (0, extra_frames))))
    return out


def model_and_vars(name, batch, **options):
    model = build_model(name, num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED, **{**TINY, **options})
    variables = jax.jit(lambda b: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                                             b, train=False))(batch)
    return model, variables


@functools.cache
def _jitted_apply(model, train):
    def apply(variables, batch, key):
        out, state = model.apply(variables, batch, train=train, rngs={"dropout": key},
                                 mutable=["intermediates", "batch_stats"])
        return out.logits, state["intermediates"]
    return jax.jit(apply)


def run(model, variables, batch, *, train, seed=3):
    """Logits and sown intermediates; train mode with a fixed dropout key."""
    logits, inter = _jitted_apply(model, train)(variables, batch, jax.random.key(seed))
    return np.asarray(logits), {k: np.asarray(v[0]) for k, v in inter.items()}


# --- audio input normalisation -----------------------------------------------------------------

def test_utterance_norm_gives_zero_mean_unit_variance_bands_over_real_frames():
    batch = small_batch(seed=1)
    frames = batch["frames"] * 3.0 - 7.5  # log-mel-like offset and scale
    out = np.asarray(normalise_frames(jnp.asarray(frames), batch["frame_mask"], "utterance", train=False))
    for u in range(len(frames)):
        real = out[u][batch["frame_mask"][u]]  # [frames, M]
        np.testing.assert_allclose(real.mean(0), 0.0, atol=5e-5)  # float32 rounding of ~20 frames
        raw_var = frames[u][batch["frame_mask"][u]].var(0)
        np.testing.assert_allclose(real.var(0), raw_var / (raw_var + 1e-5), rtol=1e-4)  # 1 up to eps
        assert len(real) == 1 or np.all(real.var(0) > 0.99)
    assert np.all(out[~batch["frame_mask"]] == 0)
    padded = pad_batch(dict(batch, frames=frames.astype(np.float32)))
    out_p = np.asarray(normalise_frames(padded["frames"], padded["frame_mask"], "utterance", train=False))
    n, l = frames.shape[1:3]
    np.testing.assert_allclose(out_p[:, :n, :l], out, rtol=1e-5, atol=1e-5)


def test_speaker_norm_uses_the_given_statistics_and_falls_back_to_the_utterance():
    batch = small_batch(seed=2)
    rng = np.random.default_rng(0)
    stats = {"band_mean": rng.normal(size=(4, FRAME_DIM)).astype(np.float32),
             "band_std": rng.uniform(0.5, 2.0, size=(4, FRAME_DIM)).astype(np.float32)}
    out = np.asarray(normalise_frames(batch["frames"], batch["frame_mask"], "speaker", train=False,
                                      band_stats=stats))
    by_hand = (batch["frames"] - stats["band_mean"][:, None, None]) / stats["band_std"][:, None, None]
    np.testing.assert_allclose(out, np.where(batch["frame_mask"][..., None], by_hand, 0), rtol=1e-5, atol=1e-6)
    validate(dict(batch, **stats))
    with pytest.raises(BatchError, match="needs both"):
        validate(dict(batch, band_mean=stats["band_mean"]))
    with pytest.raises(BatchError, match="positive"):
        validate({**batch, **stats, "band_std": np.zeros((4, FRAME_DIM), np.float32)})
    with pytest.raises(BatchError, match="band_mean"):
        validate({**batch, **stats, "band_mean": stats["band_mean"][:, :10]})
    fallback = normalise_frames(batch["frames"], batch["frame_mask"], "speaker", train=False)
    own = normalise_frames(batch["frames"], batch["frame_mask"], "utterance", train=False)
    np.testing.assert_array_equal(fallback, own)


def test_speaker_stats_dropout_swaps_in_each_utterance_s_own_statistics_in_training_only():
    batch = small_batch(seed=4, b=16)
    rng = np.random.default_rng(1)
    stats = {"band_mean": rng.normal(size=(16, FRAME_DIM)).astype(np.float32),
             "band_std": rng.uniform(0.5, 2.0, size=(16, FRAME_DIM)).astype(np.float32)}
    frames, mask = batch["frames"], batch["frame_mask"]
    speaker = np.asarray(normalise_frames(frames, mask, "speaker", train=False, band_stats=stats))
    own = np.asarray(normalise_frames(frames, mask, "utterance", train=False))
    draws = np.asarray(stats_dropout_draws(jax.random.key(0), 0.5, 16))
    assert 0 < draws.sum() < 16
    assert not np.array_equal(np.asarray(stats_dropout_draws(jax.random.key(1), 0.5, 16)), draws)  # drawn per key
    assert np.asarray(stats_dropout_draws(jax.random.key(0), 1.0, 16)).all()
    assert not np.asarray(stats_dropout_draws(jax.random.key(0), 0.0, 16)).any()
    half = np.asarray(normalise_frames(frames, mask, "speaker", train=True, band_stats=stats, own=draws))
    for u in range(16):  # each utterance one or the other, as drawn
        if draws[u]:
            np.testing.assert_allclose(half[u], own[u], rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(half[u], speaker[u])
    with pytest.raises(ValueError, match=r"speaker_stats_dropout=1.5: a rate must lie in \[0, 1\]"):
        build_model("audio_only", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED, **TINY,
                    speaker_stats_dropout=1.5)
    # Through the model: rate 1 in training equals the utterance norm, at evaluation the
    # speaker norm; the dropout RNG decides nothing else in a model without ordinary dropout.
    with_stats = dict(batch, **stats)
    model, variables = model_and_vars("audio_only", batch, audio_norm="speaker", speaker_stats_dropout=1.0, **QUIET)
    utt_model = build_model("audio_only", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED,
                            **TINY, **QUIET, audio_norm="utterance")
    spk_model = build_model("audio_only", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED,
                            **TINY, **QUIET, audio_norm="speaker")
    np.testing.assert_allclose(run(model, variables, with_stats, train=True)[0],
                               run(utt_model, variables, batch, train=True)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(run(model, variables, with_stats, train=False)[0],
                                  run(spk_model, variables, with_stats, train=False)[0])


def test_stats_indicator_tells_the_model_which_statistics_normalised_the_utterance():
    batch = small_batch(seed=6, b=6)
    mask = np.asarray(batch["frame_mask"])
    from_speaker = np.array([True, False, True, True, False, False])
    marked = np.asarray(with_stats_indicator(jnp.asarray(batch["frames"]), mask, jnp.asarray(from_speaker)))
    assert marked.shape == batch["frames"].shape[:-1] + (batch["frames"].shape[-1] + 1,)
    np.testing.assert_array_equal(marked[..., :-1], batch["frames"])
    np.testing.assert_array_equal(marked[..., -1], mask & from_speaker[:, None, None])  # 0 at padding
    # Speaker statistics equal to the utterance's own: without the indicator the model
    # cannot tell them from the own-statistics path; with it, it can (both audio encoders).
    mean, std = utterance_band_stats(jnp.asarray(batch["frames"]), mask)
    as_own = dict(batch, band_mean=np.asarray(mean), band_std=np.asarray(std))
    for name in ("audio_only", "ul_fusion"):
        for indicator in (False, True):
            model, variables = model_and_vars(name, batch, audio_norm="speaker", stats_indicator=indicator, **QUIET)
            gap = np.abs(run(model, variables, as_own, train=False)[0] - run(model, variables, batch, train=False)[0])
            assert (gap.max() > 1e-3) == indicator, (name, indicator, gap.max())
    # In training with every utterance dropped to its own statistics, the indicator says so.
    model, variables = model_and_vars("audio_only", batch, audio_norm="speaker", stats_indicator=True,
                                      speaker_stats_dropout=1.0, **QUIET)
    np.testing.assert_allclose(run(model, variables, as_own, train=True)[0],
                               run(model, variables, batch, train=True)[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="stats_indicator=True .* needs audio_norm='speaker', not 'batch'"):
        build_model("audio_only", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED, **TINY,
                    stats_indicator=True)


def test_speaker_norm_reaches_the_model_through_the_batch():
    batch = small_batch(seed=3)
    mean, std = utterance_band_stats(jnp.asarray(batch["frames"]), batch["frame_mask"])
    with_stats = dict(batch, band_mean=np.asarray(mean), band_std=np.asarray(std))
    model, variables = model_and_vars("audio_only", batch, audio_norm="speaker")
    utt_model = build_model("audio_only", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED,
                            **TINY, audio_norm="utterance")
    speaker_logits, _ = run(model, variables, with_stats, train=False)
    np.testing.assert_allclose(speaker_logits, run(utt_model, variables, batch, train=False)[0],
                               rtol=1e-5, atol=1e-6)
    shifted = dict(with_stats, band_mean=with_stats["band_mean"] + 1.0)
    assert not np.allclose(run(model, variables, shifted, train=False)[0], speaker_logits)
    none_model = build_model("audio_only", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED,
                             **TINY, audio_norm="none")
    assert "input_norm" not in variables.get("batch_stats", {}).get("audio", {})
    assert np.all(np.isfinite(run(none_model, variables, batch, train=False)[0]))


def test_unknown_options_are_rejected_by_name():
    with pytest.raises(ValueError, match="audio_norm"):
        build_model("faf", num_classes=3, vocab_size=5, embed_dim=2, audio_norm="global")
    with pytest.raises(ValueError, match="modality_dropout"):
        build_model("faf", num_classes=3, vocab_size=5, embed_dim=2, modality_dropout=1.5)
    with pytest.raises(ValueError, match="spec_time_masks"):
        build_model("faf", num_classes=3, vocab_size=5, embed_dim=2, spec_time_masks=-1)
    with pytest.raises(ValueError, match="boundary_jitter_frames"):
        build_model("faf", num_classes=3, vocab_size=5, embed_dim=2, boundary_jitter_frames=1.5)


# --- SpecAugment ---------------------------------------------------------------------------------

def _runs(row: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], row.astype(int), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def test_spec_masks_have_the_asked_size_in_utterance_time_and_ignore_padding():
    batch = small_batch(seed=4, b=6, n=5, l=6)
    fm = batch["frame_mask"]
    widest_time, widest_band = 0, 0
    for seed in range(12):
        masked = np.asarray(spec_augment_mask(jax.random.key(seed), fm, 64, time_masks=1, time_width=4,
                                              band_masks=1, band_width=7))
        assert not masked[~fm].any()
        for u in range(len(fm)):
            cells = masked[u][fm[u]]  # [real frames in utterance time, M]
            band = cells.all(0) if len(cells) > 1 else np.zeros(64, bool)
            time = (cells & ~band).any(1)
            band_runs, time_runs = _runs(band), _runs(time)
            assert len(band_runs) <= 1 and all(r <= 7 for r in band_runs)
            assert len(time_runs) <= 1 and all(r <= 4 for r in time_runs)
            if fm[u].sum() >= 8:
                widest_time = max(widest_time, *time_runs, 0)
            widest_band = max(widest_band, *band_runs, 0)
        padded = pad_batch(batch)
        masked_p = np.asarray(spec_augment_mask(jax.random.key(seed), padded["frame_mask"], 64, time_masks=1,
                                                time_width=4, band_masks=1, band_width=7))
        np.testing.assert_array_equal(masked_p[:, :5, :6], masked)
    assert widest_time == 4 and widest_band == 7  # the widest draws reach the asked size


def test_spec_augment_is_the_same_in_padded_and_packed_layouts_and_only_in_training():
    batch = small_batch(seed=5)
    spec = dict(spec_time_masks=2, spec_time_mask_frames=3, spec_band_masks=2, spec_band_mask_bands=8)
    model, variables = model_and_vars("audio_only", batch, **QUIET, audio_norm="utterance", **spec)
    plain = build_model("audio_only", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED, **TINY,
                        **QUIET, audio_norm="utterance")
    padded_logits, _ = run(model, variables, batch, train=True)
    packed_logits, _ = run(model, variables, pack_batch(batch), train=True)
    np.testing.assert_allclose(packed_logits, padded_logits, rtol=1e-4, atol=1e-5)
    assert not np.allclose(padded_logits, run(plain, variables, batch, train=True)[0], atol=1e-5)
    np.testing.assert_array_equal(run(model, variables, batch, train=False)[0],
                                  run(plain, variables, batch, train=False)[0])
    # Padding stays invisible in training too: the masks are drawn per utterance.
    np.testing.assert_allclose(run(model, variables, pad_batch(batch), train=True)[0], padded_logits,
                               rtol=1e-4, atol=1e-5)


# --- boundary jitter ---------------------------------------------------------------------------

def _timed_frames(batch):
    """The batch's frames replaced by each real frame's utterance time + 1 (0 at padding),
    in every column: a known signal whose values say where a frame came from."""
    fm = batch["frame_mask"]
    b, n, l = fm.shape
    time = (np.cumsum(fm.reshape(b, -1), axis=1).reshape(b, n, l)) * fm
    return np.broadcast_to(time[..., None], batch["frames"].shape).astype(np.float32)


def test_jitter_moves_each_word_window_by_one_drawn_shift_within_range():
    batch = small_batch(seed=11, b=6, n=5, l=6)
    fm = batch["frame_mask"]
    frames = _timed_frames(batch)
    seen = set()
    for seed in range(20):
        out = np.asarray(jitter_boundaries(jax.random.key(seed), jnp.asarray(frames), jnp.asarray(fm), 2))
        np.testing.assert_array_equal(out[~fm], 0)
        for u in range(len(fm)):
            total = fm[u].sum()
            for w in np.flatnonzero(fm[u].any(1)):
                source, got = frames[u, w][fm[u, w], 0], out[u, w][fm[u, w], 0]
                # One shift d for the whole word: every frame comes from d frames away in
                # utterance time, clipped to the utterance's first and last frame.
                shifts = [d for d in range(-2, 3) if np.array_equal(got, np.clip(source + d, 1, total))]
                assert shifts, (u, w, source, got)
                if source[0] + 2 <= total and source[-1] - 2 >= 1:  # every shift distinguishable
                    assert len(shifts) == 1
                    seen.add(shifts[0])
    assert seen == {-2, -1, 0, 1, 2}  # every shift in range is drawn, none beyond it


def test_jitter_of_zero_is_identity_and_padding_changes_no_draw():
    batch = small_batch(seed=12, b=5, n=4, l=6)
    frames, fm = jnp.asarray(batch["frames"]), jnp.asarray(batch["frame_mask"])
    np.testing.assert_array_equal(jitter_boundaries(jax.random.key(0), frames, fm, 0),
                                  np.where(batch["frame_mask"][..., None], batch["frames"], 0))
    padded = pad_batch(batch)
    for seed in range(5):
        plain = np.asarray(jitter_boundaries(jax.random.key(seed), frames, fm, 3))
        out = np.asarray(jitter_boundaries(jax.random.key(seed), jnp.asarray(padded["frames"]),
                                           jnp.asarray(padded["frame_mask"]), 3))
        np.testing.assert_array_equal(out[:, :4, :6], plain)
        np.testing.assert_array_equal(out[~padded["frame_mask"]], 0)


def test_jitter_is_the_same_in_padded_and_packed_layouts_and_only_in_training():
    batch = small_batch(seed=13)
    model, variables = model_and_vars("audio_only", batch, **QUIET, audio_norm="utterance", boundary_jitter_frames=2)
    plain = build_model("audio_only", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED, **TINY, **QUIET,
                        audio_norm="utterance")
    padded_logits, _ = run(model, variables, batch, train=True)
    np.testing.assert_allclose(run(model, variables, pack_batch(batch), train=True)[0], padded_logits,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run(model, variables, pad_batch(batch), train=True)[0], padded_logits,
                               rtol=1e-4, atol=1e-5)
    assert not np.allclose(padded_logits, run(plain, variables, batch, train=True)[0], atol=1e-5)
    np.testing.assert_array_equal(run(model, variables, batch, train=False)[0],
                                  run(plain, variables, batch, train=False)[0])


# --- modality dropout, gate, frozen branches ----------------------------------------------------

def test_drop_modality_drops_one_side_and_rescales_as_dropout():
    text, audio = jnp.ones((400, 2, 3)), 2 * jnp.ones((400, 3))
    t, a, dropped = (np.asarray(x) for x in drop_modality(jax.random.key(0), 1.0, text, audio))
    assert set(np.unique(dropped)) == {1, 2}  # p = 1: every utterance loses exactly one side
    np.testing.assert_array_equal(t[dropped == 1], 0)
    np.testing.assert_array_equal(t[dropped == 2], 2.0)  # kept side scaled by 1 / (1 - p/2)
    np.testing.assert_array_equal(a[dropped == 2], 0)
    np.testing.assert_array_equal(a[dropped == 1], 4.0)
    t, a, dropped = (np.asarray(x) for x in drop_modality(jax.random.key(1), 0.4, text, audio))
    assert 0.3 < np.mean(dropped > 0) < 0.5
    np.testing.assert_allclose(t.mean(), 1.0, atol=0.1)  # expectation kept
    np.testing.assert_array_equal(t[dropped == 0], 1 / 0.8)


def test_modality_dropout_and_gate_in_faf():
    """One gated FAF model with p = 1: the dropped modality is invisible, the gate's
    weights lie in [0, 1], and padding stays invisible at inference."""
    batch = small_batch(seed=6, b=8)
    model, variables = model_and_vars("faf", batch, **QUIET, audio_norm="utterance", modality_dropout=1.0,
                                      gate=True)
    logits, inter = run(model, variables, batch, train=True)
    dropped = inter["modality_dropped"]
    assert set(np.unique(dropped)) == {1, 2}
    text_gone, audio_gone = dropped == 1, dropped == 2
    # The shared attention becomes the kept modality's (eq. of VF with t_alpha := w_alpha).
    np.testing.assert_allclose(inter["s_alpha"][text_gone], inter["w_alpha"][text_gone], rtol=1e-6)
    np.testing.assert_allclose(inter["s_alpha"][audio_gone], inter["t_alpha"][audio_gone], rtol=1e-6)
    np.testing.assert_allclose(inter["u_alpha"].sum(-1), 2.0, rtol=1e-5)
    # New words where the text was dropped and new frames where the audio was dropped change nothing.
    rng = np.random.default_rng(0)
    changed = dict(batch)
    changed["word_ids"] = np.where(text_gone[:, None] & batch["word_mask"],
                                   rng.integers(2, VOCAB, batch["word_ids"].shape), batch["word_ids"]).astype(np.int32)
    changed["frames"] = np.where(audio_gone[:, None, None, None],
                                 rng.normal(size=batch["frames"].shape), batch["frames"]).astype(np.float32)
    np.testing.assert_allclose(run(model, variables, changed, train=True)[0], logits, rtol=1e-5, atol=1e-6)
    # Inference drops nothing; the gate is in [0, 1]; padding is invisible.
    logits, inter = run(model, variables, batch, train=False)
    assert "modality_dropped" not in inter
    assert inter["gate"].shape == (8, 2) and np.all((inter["gate"] >= 0) & (inter["gate"] <= 1))
    logits_p, inter_p = run(model, variables, pad_batch(batch), train=False)
    np.testing.assert_allclose(logits_p, logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inter_p["gate"], inter["gate"], rtol=1e-5, atol=1e-6)


def test_ul_fusion_frames_gate_and_padding_with_every_option():
    batch = small_batch(seed=7)
    options = dict(gate=True, modality_dropout=0.3, word_dropout=0.2, embedding_dropout=0.2,
                   spec_time_masks=1, spec_time_mask_frames=2, audio_norm="utterance")
    model, variables = model_and_vars("ul_fusion_frames", batch, **options)
    assert set(variables["params"]) == {"text", "audio_utt", "modality_gate", "head"}
    logits, inter = run(model, variables, batch, train=False)
    assert inter["gate"].shape == (4, 2)
    assert np.all((inter["gate"] >= 0) & (inter["gate"] <= 1))
    logits_p, inter_p = run(model, variables, pad_batch(batch), train=False)
    np.testing.assert_allclose(logits_p, logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inter_p["gate"], inter["gate"], rtol=1e-5, atol=1e-6)


def test_frozen_branches_run_as_in_inference_and_get_no_gradient():
    batch = small_batch(seed=8)
    options = dict(freeze_branches=True, word_dropout=0.5, embedding_dropout=0.5, audio_norm="batch",
                   spec_time_masks=2, spec_time_mask_frames=3)
    model, variables = model_and_vars("faf", batch, **options)
    variables = {**variables, "params": variables["params"]}
    _, train_inter = run(model, variables, batch, train=True)
    _, eval_inter = run(model, variables, batch, train=False)
    for key in ("t_alpha", "w_alpha", "f_alpha"):
        np.testing.assert_array_equal(train_inter[key], eval_inter[key])

    def loss(params):
        out, _ = model.apply({**variables, "params": params}, batch, train=True,
                             rngs={"dropout": jax.random.key(0)}, mutable=["batch_stats"])
        return out.logits.sum()

    grads = jax.grad(loss)(variables["params"])
    for branch in ("text", "audio"):
        assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads[branch]))
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads["fusion"]))
    _, state = model.apply(variables, batch, train=True, rngs={"dropout": jax.random.key(0)},
                           mutable=["batch_stats"])
    np.testing.assert_array_equal(state["batch_stats"]["audio"]["input_norm"]["mean"],
                                  variables["batch_stats"]["audio"]["input_norm"]["mean"])


# --- text branch ---------------------------------------------------------------------------------

def test_word_dropout_replaces_real_words_by_unk_and_ignores_padding():
    batch = small_batch(seed=9)
    model, variables = model_and_vars("text_only", batch, **QUIET, word_dropout=1.0)
    unk = dict(batch, word_ids=np.where(batch["word_mask"], UNK_ID, 0).astype(np.int32))
    np.testing.assert_allclose(run(model, variables, batch, train=True)[0],
                               run(model, variables, unk, train=True)[0], rtol=1e-6)
    assert not np.allclose(run(model, variables, batch, train=False)[0], run(model, variables, unk, train=False)[0])
    draws = np.asarray(_position_bernoulli(jax.random.key(0), 0.5, (3, 6)))
    draws_padded = np.asarray(_position_bernoulli(jax.random.key(0), 0.5, (3, 9)))
    np.testing.assert_array_equal(draws_padded[:, :6], draws)
