"""The default audio normalisation (speaker statistics) reaches the batches of any corpus."""

from __future__ import annotations

import numpy as np


def test_default_config_batches_carry_each_speakers_statistics(tmp_path):
    from configs import default
    from hmaf.data.fake_corpus import write_fake_corpus
    from hmaf.data.normalize import load_speaker_stats
    from hmaf.data.source import from_config

    examples = write_fake_corpus(tmp_path, num_speakers=5, per_speaker=3, max_words=5, max_frames=6)
    config = default.get_config()
    assert config.model.audio_norm == "speaker"
    config.data.dir, config.batch_size = str(tmp_path), 4
    stats = load_speaker_stats(tmp_path)
    assert sorted(stats) == ["s0", "s1", "s2", "s3", "s4"]
    # The statistics are the speaker's own: band means over all its real frames.
    frames = np.concatenate([f for ex in examples.values() if ex["speaker"] == "s1" for f in ex["frames"]])
    np.testing.assert_allclose(stats["s1"][0], frames.mean(0), rtol=1e-4, atol=1e-4)
    batch = next(iter(from_config(config).eval_batches("all")))
    for i, speaker in enumerate(batch["speaker"]):
        speaker = speaker.decode() if isinstance(speaker, bytes) else str(speaker)
        if not speaker:  # a padded row of the last batch
            continue
        np.testing.assert_array_equal(batch["band_mean"][i], stats[speaker][0])
        np.testing.assert_array_equal(batch["band_std"][i], stats[speaker][1])


def test_a_corpus_without_speaker_statistics_is_a_clear_error(tmp_path):
    import pytest

    from configs import default
    from hmaf.data.fake_corpus import write_fake_corpus
    from hmaf.data.source import CorpusError, from_config

    write_fake_corpus(tmp_path, num_speakers=5, per_speaker=3, max_words=5, max_frames=6)
    (tmp_path / "speaker_stats.json").unlink()  # a corpus prepared before the statistics existed
    config = default.get_config()
    config.data.dir, config.batch_size = str(tmp_path), 4
    with pytest.raises(CorpusError, match="speaker_stats.json not found.*hmaf.data.normalize"):
        next(iter(from_config(config).eval_batches("all")))
