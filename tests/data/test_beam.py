"""The Beam path of corpus preparation (hmaf.data.beam) on the DirectRunner, against the normal path."""

import json
from pathlib import Path

import numpy as np
import pytest

import apache_beam as beam  # the test extra installs it
import tensorflow_datasets as tfds

from hmaf import prepare as prepare_cli
from hmaf.corpora.synthetic import generate
from hmaf.data import beam as beam_lib
from hmaf.data import pool, writer
from hmaf.data.manifest import read_manifest
from hmaf.data.source import CorpusSource

NUM_GOOD = 8
BEAM_OPTIONS = "--runner=DirectRunner --direct_num_workers=2"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """8 synthetic utterances, a corrupt audio file and an empty transcript between them."""
    folder = tmp_path_factory.mktemp("beam_corpus")
    generate(str(folder), size=NUM_GOOD, seed=0, workers=1)
    path = folder / "source" / "manifest.jsonl"
    lines = path.read_text().splitlines()
    (folder / "source" / "corrupt.wav").write_bytes(b"RIFF....WAVEjunk" * 20)
    lines.insert(3, json.dumps({"audio": "corrupt.wav", "id": "corrupt", "transcript": "hello there",
                                "label": "sad", "speaker": "x"}))
    first = json.loads(lines[0])
    lines.insert(6, json.dumps({**first, "id": "blank", "transcript": ""}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def normal(manifest, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("normal") / "tiny"
    return out, writer.prepare(manifest, out, num_shards=2, num_workers=1, progress=False)


@pytest.fixture(scope="module")
def beam_run(manifest, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("beam") / "tiny"
    status = prepare_cli.main(["--manifest", str(manifest), "--out", str(out), "--num_shards", "2",
                               "--no_progress", "--beam", f"--beam_options={BEAM_OPTIONS}"])
    assert status == 0
    return out, json.loads((out / "dataset.json").read_text())


def test_beam_path_writes_the_normal_corpus(normal, beam_run):
    (normal_dir, normal_info), (beam_dir, beam_info) = normal, beam_run
    assert beam_info["num_examples"] == normal_info["num_examples"] == NUM_GOOD
    assert beam_info["content_hash"] == normal_info["content_hash"]
    for key in ("label_names", "label_counts", "speakers", "groups", "splits", "shards", "num_words",
                "long_words", "max_word_frames", "audio_seconds", "embeddings", "reject_reasons"):
        assert beam_info[key] == normal_info[key], key
    for shard in beam_info["shards"]:  # byte for byte: same examples, same order, same shard
        assert (beam_dir / "records" / shard).read_bytes() == (normal_dir / "records" / shard).read_bytes()
    assert (beam_dir / "vocab.txt").read_text() == (normal_dir / "vocab.txt").read_text()
    np.testing.assert_array_equal(np.load(beam_dir / "embeddings.npy"), np.load(normal_dir / "embeddings.npy"))


def test_bad_rows_are_rejected_and_counted(normal, beam_run):
    (normal_dir, _), (beam_dir, beam_info) = normal, beam_run
    rejects = [json.loads(line) for line in (beam_dir / "rejects.jsonl").read_text().splitlines()]
    assert [(r["id"], r["reason"]) for r in rejects] == [("corrupt", "unreadable_audio"),
                                                          ("blank", "empty_transcript")]
    assert "corrupt.wav" in rejects[0]["detail"]
    assert (beam_dir / "rejects.jsonl").read_text() == (normal_dir / "rejects.jsonl").read_text()
    assert beam_info["beam_counters"] == {"examples": NUM_GOOD, "rejected_empty_transcript": 1,
                                          "rejected_unreadable_audio": 1}
    assert beam_info["num_rejects"] == 2 and beam_info["beam_options"] == BEAM_OPTIONS
    assert beam_info["beam_data_dir"] == str(beam_dir / "tfds")


def test_tfds_dataset_holds_the_utterances(beam_run):
    beam_dir, info = beam_run
    builder = tfds.builder_from_directory(str(beam_dir / "tfds" / "hmaf_corpus" / "manifest" / "1.0.0"))
    rows, _ = read_manifest(info["manifest"])
    # The ClassLabel names every label of the manifest, the rejected rows' ("sad") included.
    assert builder.info.features["label"].names == sorted({r.label for r in rows})
    assert "sad" in builder.info.features["label"].names
    assert builder.info.features["frames"].shape == (None, 67)  # 64 log-mel bands + 3 prosody columns
    examples = list(tfds.as_numpy(builder.as_dataset(split=beam_lib.SPLIT, shuffle_files=False)))
    assert len(examples) == NUM_GOOD
    good_ids = [r.id for r in rows if r.id not in ("corrupt", "blank")]
    assert [ex["utt_id"].decode() for ex in examples] == good_ids  # manifest order
    for ex in examples:
        n = len(ex["words"])
        assert ex["frames"].dtype == np.float32 and ex["frames"].shape == (ex["num_frames"].sum(), 67)
        assert ex["num_frames"].shape == ex["word_start"].shape == ex["word_end"].shape == (n,)
        assert np.all(ex["num_frames"] >= 1) and np.all(ex["word_end"] >= ex["word_start"])


def test_corpus_source_reads_the_beam_corpus(beam_run):
    beam_dir, info = beam_run
    source = CorpusSource(beam_dir, split_mode="manifest", batch_size=4)
    splits = [s for s in ("train", "validation", "test") if s in info["splits"]]
    seen = [u for split in splits for batch in source.eval_batches(split) for u in batch["utt_id"]]
    assert len(seen) == len(set(seen)) == sum(info["splits"][s] for s in splits) == info["num_examples"]
    assert source.info.num_classes == len(info["label_names"])


def test_a_failing_row_becomes_an_internal_error_reject(manifest, monkeypatch):
    """A bug in preprocessing costs its row, not the pipeline."""
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pool, "preprocess_utterance", broken)
    rows, _ = read_manifest(manifest)
    outputs = list(beam_lib._Preprocess(100, "subsample", ["angry", "happy", "neutral", "sad"]).process(rows[0]))
    assert len(outputs) == 1 and isinstance(outputs[0], beam.pvalue.TaggedOutput)
    assert outputs[0].tag == "rejects"
    reject = json.loads(outputs[0].value)
    assert reject["reason"] == "internal_error" and "boom" in reject["detail"] and reject["id"] == rows[0].id


def test_beam_options_need_beam(manifest, tmp_path, capsys):
    assert prepare_cli.main(["--manifest", str(manifest), "--out", str(tmp_path / "x"),
                             "--beam_options=--runner=DirectRunner"]) == 1
    assert "need --beam" in capsys.readouterr().err


def test_rerun_rebuilds_the_pipeline_output(beam_run, manifest):
    """A second run into the same folder replaces the earlier tfds build and writes the same corpus."""
    beam_dir, info = beam_run
    again = beam_lib.prepare_beam(manifest, beam_dir, beam_options="--runner=DirectRunner", num_shards=2,
                                  progress=False)
    assert again["content_hash"] == info["content_hash"] and again["beam_counters"] == info["beam_counters"]
    assert len(list((beam_dir / "tfds" / "rejects").iterdir())) == 1
