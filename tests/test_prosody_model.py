"""The model side of the prosody columns (config.model.prosody, hmaf.models.frontend)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from hmaf.batch import FRAME_DIM, N_MELS, validate
from hmaf.data.toy import random_batch
from hmaf.models import build_model
from hmaf.models.frontend import frame_columns, normalise_frames, spec_augment_mask

SMALL = dict(hidden=7, attention_dim=6, fusion_dim=5, filters=4, widths=(2, 3), dropout=0.0, fused_dropout=0.0)


def batch_of(width: int, seed: int = 0) -> dict:
    batch = dict(random_batch(np.random.default_rng(seed), 3, 5, 6, vocab_size=20, num_classes=3,
                              min_words=1, min_frames=1, frame_dim=width))
    validate(batch)
    return batch


def logits(model, variables, batch):
    return np.asarray(model.apply(variables, batch, train=False).logits)


@pytest.mark.parametrize("name", ["audio_only", "faf", "ul_fusion"])
def test_prosody_columns_reach_the_model_only_when_asked(name):
    batch = batch_of(FRAME_DIM)
    changed = {**batch, "frames": batch["frames"].copy()}
    noise = np.random.default_rng(7).normal(0, 2.0, changed["frames"][..., N_MELS:].shape)
    changed["frames"][..., N_MELS:] += noise * batch["frame_mask"][..., None]  # prosody columns only
    for prosody in (False, True):
        model = build_model(name, num_classes=3, vocab_size=20, embed_dim=8, audio_norm="utterance",
                            prosody=prosody, **SMALL)
        variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, batch, train=False)
        moved = np.abs(logits(model, variables, changed) - logits(model, variables, batch)).max()
        if prosody:
            assert moved > 1e-4
        else:
            assert moved == 0.0


def test_a_model_without_prosody_equals_one_fed_the_bands_alone():
    wide = batch_of(FRAME_DIM)
    narrow = {**wide, "frames": wide["frames"][..., :N_MELS]}
    model = build_model("audio_only", num_classes=3, vocab_size=20, embed_dim=8, audio_norm="utterance", **SMALL)
    variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, narrow, train=False)
    np.testing.assert_array_equal(logits(model, variables, wide), logits(model, variables, narrow))


def test_prosody_on_an_old_corpus_says_what_to_do():
    batch = batch_of(N_MELS)
    model = build_model("audio_only", num_classes=3, vocab_size=20, embed_dim=8, prosody=True, **SMALL)
    with pytest.raises(ValueError, match="prepared before the prosody columns"):
        model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, batch, train=False)


def test_speaker_statistics_normalise_the_prosody_columns_too():
    batch = batch_of(FRAME_DIM, seed=3)
    rng = np.random.default_rng(4)
    stats = {"band_mean": rng.normal(size=(3, FRAME_DIM)).astype(np.float32),
             "band_std": rng.uniform(0.5, 2.0, (3, FRAME_DIM)).astype(np.float32)}
    frames, kept = frame_columns(batch["frames"], stats, prosody=True)
    out = np.asarray(normalise_frames(frames, batch["frame_mask"], "speaker", train=False, band_stats=kept))
    expected = (batch["frames"] - stats["band_mean"][:, None, None]) / stats["band_std"][:, None, None]
    expected = np.where(batch["frame_mask"][..., None], expected, 0.0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    frames, kept = frame_columns(batch["frames"], stats, prosody=False)
    assert frames.shape[-1] == N_MELS and kept["band_mean"].shape == (3, N_MELS)
    np.testing.assert_array_equal(kept["band_std"], stats["band_std"][:, :N_MELS])


def test_band_masks_never_fall_on_the_prosody_columns():
    batch = batch_of(FRAME_DIM, seed=1)
    hits = np.zeros(FRAME_DIM, bool)
    for seed in range(40):
        masked = np.asarray(spec_augment_mask(jax.random.key(seed), batch["frame_mask"], FRAME_DIM, time_masks=0,
                                              time_width=0, band_masks=2, band_width=12))
        hits |= masked.any((0, 1, 2))
    assert hits[N_MELS - 3:N_MELS].any()  # the top bands are reachable
    assert not hits[N_MELS:].any()
    masked = np.asarray(spec_augment_mask(jax.random.key(0), batch["frame_mask"], FRAME_DIM, time_masks=1,
                                          time_width=4, band_masks=0, band_width=0))
    # a time mask covers whole frames, prosody columns included
    np.testing.assert_array_equal(masked[..., N_MELS:], np.repeat(masked[..., :1], FRAME_DIM - N_MELS, -1))
