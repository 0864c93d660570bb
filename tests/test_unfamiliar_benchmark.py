"""benchmarks.unfamiliar_input: flagged shares of new voices and of other corpora."""

import json
import os

import numpy as np
import tensorflow as tf

from benchmarks import unfamiliar_input
from hmaf.data import records
from hmaf.data.features import FRAME_DIM, N_MELS
from hmaf.data.fake_corpus import write_fake_corpus


def _tilted_copy(out_dir, examples, tilt):
    """Rewrites a fake corpus's records with a spectral tilt added to every frame (a
    channel that boosts the high bands by ``tilt`` over the lowest), same ids, speakers
    and shards."""
    shard_dir = os.path.join(out_dir, "records")
    names = sorted(os.listdir(shard_dir))
    writers = [tf.io.TFRecordWriter(os.path.join(shard_dir, name)) for name in names]
    for i, ex in enumerate(examples.values()):
        ramp = np.zeros(FRAME_DIM, np.float32)  # the bands tilt; the prosody columns stay
        ramp[:N_MELS] = np.linspace(0.0, tilt, N_MELS, dtype=np.float32)
        moved = dict(ex, frames=[np.asarray(f) + ramp for f in ex["frames"]])
        writers[i % len(writers)].write(records.serialize_example(**moved))
    for writer in writers:
        writer.close()


def test_flags_a_tilted_channel_and_few_of_a_same_source_corpus(tmp_path, capsys):
    train = tmp_path / "train"
    write_fake_corpus(train, num_speakers=6, per_speaker=9, seed=0)
    same = tmp_path / "same"
    write_fake_corpus(same, num_speakers=4, per_speaker=9, seed=1)
    tilted = tmp_path / "tilted"
    _tilted_copy(tilted, write_fake_corpus(tilted, num_speakers=4, per_speaker=9, seed=2), 10.0)
    out = tmp_path / "unfamiliar.jsonl"
    args = ["--data", str(train), "--folds", "3", "--other", f"same={same}", "--other", f"tilted={tilted}:s1",
            "--out", str(out)]
    assert unfamiliar_input.main(args) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    folds, summary = lines[:3], lines[3]
    assert [r["fold"] for r in folds] == [0, 1, 2]
    for record in folds:
        assert set(record["train_voices"]).isdisjoint(record["validation_voices"])
        assert record["input_dims"] == 3 * 13 + 2
        for rule in ("validation", "validation_and_loso_train"):
            part = record[rule]
            assert part["tilted"]["flagged"] == 1.0 and part["tilted"]["n"] == 9  # speaker s1 only
            assert list(part["tilted"]["per_voice"]) == ["s1"]
            assert part["same"]["flagged"] < 0.5 and part["same"]["n"] == 36
            assert 0.0 <= part["test"]["flagged"] <= 1.0 and part["test"]["n"] == 18
    means = summary["summary"]
    assert means["validation/tilted"]["mean"] == 1.0 and len(means["validation/test"]["per_fold"]) == 3
    assert "validation/same" in capsys.readouterr().out
    assert unfamiliar_input.main(args) == 0  # appends, as the other benchmarks' results files
    assert len(out.read_text().splitlines()) == 8


def test_a_prefix_no_speaker_has_is_an_error(tmp_path):
    write_fake_corpus(tmp_path / "c", num_speakers=6, per_speaker=4)
    try:
        unfamiliar_input.main(["--data", str(tmp_path / "c"), "--other", f"x={tmp_path / 'c'}:nobody"])
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("an --other prefix matching no speaker must fail")


def test_human_statistics_cover_every_sonnet_line():
    from hmaf.unfamiliar import input_statistics

    stats, names = unfamiliar_input.human_statistics()
    assert int((names == "sonnet").sum()) == 14  # the title line left out
    assert set(names) <= {"sonnet", "alsa"}
    width = input_statistics(np.zeros((1, 1, 2, 64)), np.ones((1, 1, 2), bool), np.ones((1, 1), bool)).shape[1]
    assert stats.shape == (len(names), width) and np.all(np.isfinite(stats))
