"""Model tests: shapes, padding invisibility, attention sums, equations of the paper."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hmaf.batch import N_MELS, validate
from hmaf.data.toy import random_batch
from hmaf.models import BRANCHES, MODELS, build_model
from hmaf.models.attention import masked_softmax
from hmaf.models.fusion import FineTuningAttentionFusion
from hmaf.models.rnn import GRU

SMALL = dict(hidden=7, attention_dim=6, fusion_dim=5, filters=4, widths=(2, 3))
VOCAB, EMBED, CLASSES = 20, 8, 3


def small_batch(seed=0, b=3, n=5, l=6):
    batch = random_batch(np.random.default_rng(seed), b, n, l, vocab_size=VOCAB, num_classes=CLASSES,
                         min_words=1, min_frames=1)
    validate(batch)
    return batch


def apply(model, variables, batch):
    out, state = model.apply(variables, batch, train=False, mutable=["intermediates"])
    inter = {k: v[0] for k, v in state["intermediates"].items()}
    return out, inter


def init(model, batch):
    return jax.jit(lambda b: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                                         b, train=False))(batch)


def pad_batch(batch, extra_words=3, extra_frames=4, seed=9):
    """Adds padded words and frames filled with garbage: the masks must hide them."""
    rng = np.random.default_rng(seed)
    b, n, l, m = batch["frames"].shape
    word_mask = np.pad(batch["word_mask"], ((0, 0), (0, extra_words)))
    frame_mask = np.pad(batch["frame_mask"], ((0, 0), (0, extra_words), (0, extra_frames)))
    frames = rng.normal(size=(b, n + extra_words, l + extra_frames, m)).astype(np.float32)
    frames[:, :n, :l] = np.where(batch["frame_mask"][..., None], batch["frames"], frames[:, :n, :l])
    return dict(word_ids=np.pad(batch["word_ids"], ((0, 0), (0, extra_words))), word_mask=word_mask,
                frames=frames, frame_mask=frame_mask, label=batch["label"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shapes_and_attentions(name):
    batch = small_batch()
    model = build_model(name, num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED, **SMALL)
    variables = init(model, batch)
    assert set(BRANCHES[name]) <= set(variables["params"])  # staged training copies these scopes
    out, inter = apply(model, variables, batch)
    assert out.logits.shape == (3, CLASSES)
    assert all(h.shape == (3, CLASSES) for h in out.head_logits)
    assert np.all(np.isfinite(out.logits))
    wm, fm = batch["word_mask"], batch["frame_mask"]
    expected = {"text_only": {"t_alpha"}, "audio_only": {"w_alpha", "f_alpha"},
                "vf": {"t_alpha", "w_alpha", "f_alpha", "s_alpha"},
                "faf": {"t_alpha", "w_alpha", "f_alpha", "s_alpha", "u_alpha"},
                "ul_fusion_frames": {"t_alpha", "uf_alpha"}}
    assert set(inter) == expected.get(name, {"t_alpha", "w_alpha", "f_alpha"})
    for key in ("t_alpha", "w_alpha", "s_alpha"):
        if key in inter:
            np.testing.assert_allclose(np.asarray(inter[key]).sum(-1), 1.0, rtol=1e-5)
            assert np.all(np.asarray(inter[key])[~wm] == 0)
    if "f_alpha" in inter:
        f_alpha = np.asarray(inter["f_alpha"])
        np.testing.assert_allclose(f_alpha.sum(-1)[wm], 1.0, rtol=1e-5)
        assert np.all(f_alpha[~fm] == 0)
    if "uf_alpha" in inter:  # one attention over all real frames of the utterance
        uf_alpha = np.asarray(inter["uf_alpha"])
        np.testing.assert_allclose(uf_alpha.sum((1, 2)), 1.0, rtol=1e-5)
        assert np.all(uf_alpha[~fm] == 0)
    if "u_alpha" in inter:  # eq. 10: a softmax plus s_alpha sums to 2
        np.testing.assert_allclose(np.asarray(inter["u_alpha"]).sum(-1), 2.0, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_padding_is_invisible(name):
    batch = small_batch(seed=1)
    model = build_model(name, num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED, **SMALL)
    variables = init(model, batch)
    out, inter = apply(model, variables, batch)
    out_p, inter_p = apply(model, variables, pad_batch(batch))
    np.testing.assert_allclose(out_p.logits, out.logits, rtol=1e-5, atol=1e-6)
    n, l = batch["frames"].shape[1:3]
    for key, alpha in inter.items():
        padded = np.asarray(inter_p[key])
        np.testing.assert_allclose(padded[:, :n, :l] if key in ("f_alpha", "uf_alpha") else padded[:, :n], alpha,
                                   rtol=1e-5, atol=1e-7)
        assert np.all(padded[:, n:] == 0)


def test_utterance_shorter_than_filter_width():
    batch = small_batch(seed=2, n=1)
    model = build_model("faf", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED,
                        **{**SMALL, "widths": (2, 3, 4, 5)})
    variables = init(model, batch)
    out, _ = apply(model, variables, batch)
    out_p, _ = apply(model, variables, pad_batch(batch, extra_words=6))
    assert np.all(np.isfinite(out.logits))
    np.testing.assert_allclose(out_p.logits, out.logits, rtol=1e-5, atol=1e-6)


def test_masked_softmax_rows_without_positions_are_zero_and_differentiable():
    scores = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = jnp.array([[True, True, False], [False, False, False]])
    out = masked_softmax(scores, mask)
    np.testing.assert_allclose(out[0], [np.exp(1) / (np.exp(1) + np.e ** 2), np.e ** 2 / (np.e + np.e ** 2), 0],
                               rtol=1e-6)
    assert np.all(out[1] == 0)
    grad = jax.grad(lambda s: masked_softmax(s, mask)[0, 0])(scores)
    assert np.all(np.isfinite(grad))


def test_faf_matches_equations_9_and_10_by_hand():
    rng = np.random.default_rng(3)
    b, n, d = 2, 4, 3
    t_h, w_h = rng.normal(size=(b, n, d)), rng.normal(size=(b, n, d))
    word_mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    t_alpha = np.where(word_mask, rng.random((b, n)), 0)
    t_alpha /= t_alpha.sum(-1, keepdims=True)
    w_alpha = np.where(word_mask, rng.random((b, n)), 0)
    w_alpha /= w_alpha.sum(-1, keepdims=True)
    fusion = FineTuningAttentionFusion(dim=5, attention_dim=4)
    args = [jnp.asarray(x, jnp.float32) for x in (t_h, t_alpha, w_h, w_alpha)] + [jnp.asarray(word_mask)]
    params = fusion.init(jax.random.key(0), *args)["params"]
    v, alphas = fusion.apply({"params": params}, *args)

    p = jax.tree.map(np.asarray, params)
    h = np.maximum(np.concatenate([t_h, w_h], -1) @ p["dense"]["kernel"] + p["dense"]["bias"], 0)
    u_e = np.tanh(h @ p["fine_tune"]["energy"]["kernel"] + p["fine_tune"]["energy"]["bias"])  # eq. 9
    score = (u_e @ p["fine_tune"]["context"]["kernel"])[..., 0]
    s_alpha = (t_alpha + w_alpha) / 2
    expo = np.where(word_mask, np.exp(score), 0)
    u_alpha = np.where(word_mask, expo / expo.sum(-1, keepdims=True) + s_alpha, 0)  # eq. 10
    np.testing.assert_allclose(alphas["u_alpha"], u_alpha, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(alphas["s_alpha"], s_alpha, rtol=1e-6)
    np.testing.assert_allclose(v, u_alpha[..., None] * h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hoist", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
def test_gru_matches_flax_gru_cell(reverse, hoist):
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(3, 2, 6, 5)), jnp.float32)
    lengths = np.array([[6, 3], [1, 4], [2, 6]])
    mask = jnp.asarray(np.arange(6)[None, None] < lengths[..., None])
    gru = GRU(4, reverse=reverse, hoist_input=hoist)
    params = gru.init(jax.random.key(0), x, mask)["params"]
    ours = gru.apply({"params": params}, x, mask)

    kernel, bias = params["input"]["kernel"], params["input"]["bias"]
    rec = params["recurrent_kernel"]
    cell_params = {
        "ir": {"kernel": kernel[:, :4], "bias": bias[:4]}, "iz": {"kernel": kernel[:, 4:8], "bias": bias[4:8]},
        "in": {"kernel": kernel[:, 8:], "bias": bias[8:]},
        "hr": {"kernel": rec[:, :4]}, "hz": {"kernel": rec[:, 4:8]},
        "hn": {"kernel": rec[:, 8:], "bias": params["recurrent_bias"]},
    }
    rnn = nn.RNN(nn.GRUCell(4), reverse=reverse, keep_order=True)
    ref = rnn.apply({"params": {"cell": cell_params}}, x, seq_lengths=jnp.asarray(lengths))
    ref = jnp.where(mask[..., None], ref, 0)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_audio_input_norm_statistics_ignore_padding_in_training():
    batch = small_batch(seed=5)
    model = build_model("audio_only", num_classes=CLASSES, vocab_size=VOCAB, embed_dim=EMBED,
                        **{**SMALL, "dropout": 0.0, "fused_dropout": 0.0})
    variables = init(model, batch)

    def train_apply(b):
        out, state = model.apply(variables, b, train=True, mutable=["batch_stats", "intermediates"])
        return out.logits, state["batch_stats"]["audio"]["input_norm"]

    logits, stats = train_apply(batch)
    logits_p, stats_p = train_apply(pad_batch(batch))
    real = batch["frames"][batch["frame_mask"]][:, :N_MELS]  # [real frames, 64]: prosody=False reads the bands
    momentum = 0.99  # flax default: running = momentum * running + (1 - momentum) * batch mean
    np.testing.assert_allclose(stats["mean"], (1 - momentum) * real.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats_p["mean"], stats["mean"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats_p["var"], stats["var"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(logits_p, logits, rtol=1e-4, atol=1e-5)
