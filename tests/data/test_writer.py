import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hmaf.data import records
from hmaf.data.utterance import preprocess_utterance
from hmaf.data.writer import prepare
from crashing_worker import dying_process_row
from speech_synth import say

REPO = Path(__file__).resolve().parents[2]
SENTENCES = [
    ("I am so happy to see you", "pos", "s0", "en+m1"),
    ("this is the worst day of my life", "neg", "s1", "en+f2"),
    ("what a lovely surprise", "pos", "s2", "en+m3"),
    ("leave me alone right now", "neg", "s0", "en+m1"),
    ("the garden looks wonderful today", "pos", "s1", "en+f2"),
    ("I can't stand this noise anymore", "neg", "s2", "en+m3"),
    ("we won the final game", "pos", "s0", "en+m1"),
    ("nobody came to my party", "neg", "s1", "en+f2"),
]
REQUIRED_KEYS = {"name", "num_examples", "label_names", "label_counts", "speakers", "groups", "splits", "n_mels",
                 "sample_rate", "win_ms", "hop_ms", "l_max", "long_word_rule", "long_words", "embeddings",
                 "shards", "content_hash", "num_rejects", "audio_seconds", "timing", "hmaf_version"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A manifest of 8 good utterances and 4 bad rows (corrupt audio, "" transcript, bad JSON, no speaker)."""
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "wav").mkdir()
    lines = []
    for i, (text, label, speaker, voice) in enumerate(SENTENCES):
        say(text, folder / "wav" / f"u{i}.wav", voice=voice)
        lines.append({"audio": f"wav/u{i}.wav", "transcript": text, "label": label, "speaker": speaker,
                      "split": "test" if i >= 6 else "train"})
    (folder / "wav" / "corrupt.wav").write_bytes(b"RIFF....WAVEjunk" * 20)
    lines.insert(2, {"audio": "wav/corrupt.wav", "transcript": "hello", "label": "pos", "speaker": "s0"})
    lines.insert(5, {"audio": "wav/u0.wav", "transcript": "", "label": "pos", "speaker": "s0", "id": "blank"})
    text = "\n".join(json.dumps(line) for line in lines)
    text += "\n{broken json\n" + json.dumps({"audio": "wav/u1.wav", "label": "neg"}) + "\n"
    (folder / "manifest.jsonl").write_text(text)
    return folder


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "tiny"
    info = prepare(corpus / "manifest.jsonl", out, num_shards=2, num_workers=2, progress=False)
    return out, info


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_dataset_json(prepared):
    out, info = prepared
    assert json.loads((out / "dataset.json").read_text()) == info
    assert REQUIRED_KEYS <= set(info)
    assert info["num_examples"] == 8 and info["num_rejects"] == 4
    assert info["label_names"] == ["neg", "pos"] and info["label_counts"] == {"neg": 4, "pos": 4}
    assert info["speakers"] == info["groups"] == {"s0": 3, "s1": 3, "s2": 2}
    assert info["splits"] == {"train": 6, "test": 2}
    assert (info["n_mels"], info["sample_rate"], info["win_ms"], info["hop_ms"]) == (64, 16000, 25, 10)
    assert info["shards"] == ["tiny-00000-of-00002.tfrecord", "tiny-00001-of-00002.tfrecord"]
    assert info["embeddings"]["spec"] == "glove6b50" and info["embeddings"]["dim"] == 50
    assert 0 <= info["embeddings"]["unknown_share"] < 0.5
    assert set(info["timing"]) >= {"decode_s", "asr_s", "align_s", "features_s", "write_s"}
    assert info["audio_seconds"] > 8
    assert info["aligner"] == "auto" and info["aligned_by"] == {"pocketsphinx": 8} and info["align_fallbacks"] == 0
    assert _temporaries(out) == []


def test_rejects_jsonl(prepared, corpus):
    out, _ = prepared
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejects] == ["unreadable_audio", "empty_transcript", "bad_row", "bad_row"]
    assert all(set(r) == {"id", "audio", "reason", "detail"} for r in rejects)
    assert rejects[0]["id"] == "wav/corrupt" and rejects[0]["audio"] == str(corpus / "wav" / "corrupt.wav")
    assert rejects[1]["id"] == "blank"
    assert "manifest.jsonl:11" in rejects[2]["detail"] and "speaker" in rejects[3]["detail"]


def test_records_vocab_embeddings(prepared, corpus):
    out, info = prepared
    vocab = (out / "vocab.txt").read_text().splitlines()
    assert vocab[:2] == ["<pad>", "<unk>"] and "can't" in vocab
    matrix = np.load(out / "embeddings.npy")
    assert matrix.shape == (len(vocab), 50) and matrix.dtype == np.float32 and not matrix[0].any()
    import tensorflow as tf

    examples = {}
    for shard in info["shards"]:
        for raw in tf.data.TFRecordDataset(str(out / "records" / shard)).as_numpy_iterator():
            ex = records.decode_example(raw)
            examples[ex["utt_id"]] = ex
    assert sorted(examples) == [f"wav/u{i}" for i in range(8)]
    ex = examples["wav/u5"]
    utt = preprocess_utterance(corpus / "wav" / "u5.wav", SENTENCES[5][0])
    assert ex["words"] == utt.words == ["i", "can't", "stand", "this", "noise", "anymore"]
    assert (ex["label_name"], ex["label"], ex["speaker"], ex["group"], ex["split"]) == ("neg", 0, "s2", "s2", "train")
    assert ex["transcript"] == SENTENCES[5][0] and ex["transcript_auto"] is False
    for got, want in zip(ex["frames"], utt.frames):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(ex["word_start"], utt.word_start, atol=1e-6)


def _word_starts(out: Path, info: dict) -> dict[str, np.ndarray]:
    import tensorflow as tf

    return {ex["utt_id"]: ex["word_start"] for shard in info["shards"]
            for ex in map(records.decode_example, tf.data.TFRecordDataset(str(out / "records" / shard)).as_numpy_iterator())}


def test_boundaries_are_a_setting_of_the_corpus_and_of_its_cache(corpus, prepared, tmp_path):
    """``boundaries``: recorded in dataset.json, other word times, and cache entries of its
    own, so switching it in a prepared folder never serves the other setting's times."""
    import shutil

    from hmaf.data.align import BOUNDARIES, DEFAULT_BOUNDARIES

    out, info = prepared
    assert info["boundaries"] == DEFAULT_BOUNDARIES
    other, = set(BOUNDARIES) - {DEFAULT_BOUNDARIES}
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)  # with the default's cache
    switched = prepare(corpus / "manifest.jsonl", moved, num_shards=2, num_workers=1, progress=False,
                       boundaries=other)
    assert switched["boundaries"] == other and switched["num_examples"] == 8 and switched["cached_utterances"] == 0
    before, after = _word_starts(out, info), _word_starts(moved, switched)
    shifts = np.concatenate([after[k] - before[k] for k in before])
    assert np.abs(shifts).max() > 0.002 and np.abs(shifts).max() < 0.1  # moved, by milliseconds
    again = prepare(corpus / "manifest.jsonl", moved, num_shards=2, num_workers=1, progress=False)
    assert again["boundaries"] == DEFAULT_BOUNDARIES and again["cached_utterances"] == 8  # still cached
    restored = _word_starts(moved, again)
    assert all(np.array_equal(restored[k], before[k]) for k in before)
    with pytest.raises(ValueError, match="boundaries must be one of"):
        prepare(corpus / "manifest.jsonl", tmp_path / "bad", progress=False, boundaries="frames")


def test_cache_keys_name_the_boundaries_only_where_they_change_the_times(corpus):
    """"hmm" keys are those made before the setting existed; "signal" keys differ, except
    where pocketsphinx does not time the words (aeneas, given word timings)."""
    import dataclasses

    from hmaf.data import cache
    from hmaf.data.manifest import ManifestRow

    row = ManifestRow(line=1, id="u0", audio=str(corpus / "wav" / "u0.wav"), transcript="hello", label="pos",
                      speaker="s0", group="s0", split="train", word_timings=None)
    timed = dataclasses.replace(row, word_timings=(("hello", 0.1, 0.5),))
    key = lambda r, aligner, boundaries: cache.cache_key(r, 100, "subsample", aligner, boundaries)
    assert key(row, "auto", "signal") != key(row, "auto", "hmm") != key(row, "aeneas", "hmm")
    assert key(row, "pocketsphinx", "signal") != key(row, "pocketsphinx", "hmm")
    assert key(row, "aeneas", "signal") == key(row, "aeneas", "hmm")
    assert key(timed, "auto", "signal") == key(timed, "auto", "hmm")


def test_labels_order_and_unknown_labels(corpus, tmp_path):
    info = prepare(corpus / "manifest.jsonl", tmp_path / "two", labels=["pos"], embeddings="train:dim=8",
                   num_workers=1, progress=False)
    assert info["label_names"] == ["pos"] and info["num_examples"] == 4
    assert info["reject_reasons"]["unknown_label"] == 4 and info["embeddings"]["dim"] == 8
    # word2vec learnt from the train split only: the words of the test sentence ("we won the
    # final game") have no trained vector, the train words do.
    unknown = set(info["embeddings"]["unknown_examples"])
    assert {"won", "final", "game"} <= unknown and not {"happy", "lovely", "garden", "the"} & unknown


def test_an_open_vocabulary_adds_the_pretrained_words_with_their_vectors(corpus, prepared, tmp_path, caplog):
    from hmaf.data.embeddings import load_glove6b50, pretrained_words

    out = tmp_path / "open"
    with caplog.at_level("INFO", logger="hmaf.data.writer"):
        info = prepare(corpus / "manifest.jsonl", out, vocab_extra=300, num_workers=1, progress=False)
    assert "vocab_extra 0" not in caplog.text  # the closed-vocabulary note is for closed ones only
    closed = (prepared[0] / "vocab.txt").read_text().splitlines()
    words = (out / "vocab.txt").read_text().splitlines()
    extra = [w for w in pretrained_words("glove6b50", 300) if w not in set(closed)]
    assert words == closed + extra and info["embeddings"]["vocab_size"] == len(words)
    assert info["embeddings"]["vocab_extra"] == 300 and len(extra) < 300  # "the" etc. were the corpus's already
    vectors, index = load_glove6b50()
    matrix = np.load(out / "embeddings.npy")
    for word in extra[:20]:
        np.testing.assert_array_equal(matrix[words.index(word)], vectors[index[word]])
    # the records (words, frames) do not depend on the vocabulary
    assert info["num_examples"] == prepared[1]["num_examples"]
    caplog.clear()
    with caplog.at_level("INFO", logger="hmaf.data.writer"):  # the same folder closed again: phase 2 only
        prepare(corpus / "manifest.jsonl", out, num_workers=1, progress=False)
    assert f"the corpus's {len(closed) - 2} words only (vocab_extra 0" in caplog.text
    assert (out / "vocab.txt").read_text().splitlines() == closed
    with pytest.raises(ValueError, match="pretrained"):
        prepare(corpus / "manifest.jsonl", tmp_path / "bad", vocab_extra=10, embeddings="train:dim=8",
                num_workers=1, progress=False)


def test_a_dying_worker_rejects_rows_instead_of_stopping_the_run(corpus, tmp_path, monkeypatch):
    from hmaf.data import pool

    monkeypatch.setattr(pool, "process_row", dying_process_row)
    with pytest.raises(ValueError, match="no usable example"):
        prepare(corpus / "manifest.jsonl", tmp_path / "dying", num_workers=2, progress=False)
    rejects = [json.loads(line) for line in (tmp_path / "dying" / "rejects.jsonl").read_text().splitlines()]
    assert sum(r["reason"] == "worker_crashed" for r in rejects) == 10  # every row that passed the manifest
    assert all("rerun to retry" in r["detail"] for r in rejects if r["reason"] == "worker_crashed")

def _prepare_cmd(corpus: Path, out: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "hmaf.prepare", "--manifest", str(corpus / "manifest.jsonl"), "--out", str(out),
            "--num_shards", "3", "--workers", str(workers), "--no_progress"]


def test_killed_run_resumes_to_identical_output(corpus, prepared, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(_prepare_cmd(corpus, out, workers=1), cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((out / "cache").glob("*.npz"))) < 2:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: no orphaned workers
    proc.wait()
    done_before = len(list((out / "cache").glob("*.npz")))
    assert 2 <= done_before < 8, "the kill should land in phase 1"
    assert not (out / "dataset.json").exists()

    result = subprocess.run(_prepare_cmd(corpus, out, workers=2), cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads((out / "dataset.json").read_text())
    assert info["cached_utterances"] >= done_before
    assert f"content_hash {info['content_hash']}" in result.stdout  # the CLI's summary
    assert "8 examples" in result.stdout and "4 rejected" in result.stdout
    # same corpus as the uninterrupted in-process run (2 shards, other worker count)
    assert info["content_hash"] == prepared[1]["content_hash"]
    assert info["num_examples"] == 8 and sorted(os.listdir(out / "records")) == sorted(
        info["shards"] + [f".{s}.done" for s in info["shards"]])
    assert _temporaries(out) == []
    first_shard = (out / "records" / info["shards"][0]).read_bytes()

    # A kill while writing a shard leaves a temp file and no marker: the rerun cleans and rewrites.
    (out / "records" / f".{info['shards'][0]}.tmp-killed").write_bytes(b"half a shard")
    (out / "records" / f".{info['shards'][0]}.done").unlink()
    (out / "records" / info["shards"][0]).write_bytes(first_shard[:100])
    (out / "cache" / ".0123.npz.tmp-killed").write_bytes(b"half an utterance")
    again = prepare(corpus / "manifest.jsonl", out, num_shards=3, num_workers=2, progress=False)
    assert again["content_hash"] == info["content_hash"]
    assert again["skipped_shards"] == 2 and again["cached_utterances"] == 8
    assert (out / "records" / info["shards"][0]).read_bytes() == first_shard
    assert _temporaries(out) == []


def _session_processes(session: int) -> list[int]:
    """Pids of the live processes in a session (orphans keep their session when re-parented)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == session and fields[0] != "Z":
                pids.append(int(entry))
    return pids


_BLOCKED_POOL = """
import sys
from hmaf.data import pool
from hmaf.data.manifest import ManifestRow
from hmaf.data.settings import PrepareSettings
from crashing_worker import sleeping_process_row

pool.process_row = sleeping_process_row
rows = [ManifestRow(i, f"u{i}", f"/nonexistent/u{i}.wav", "hi", "l", "s", "s", "", None) for i in range(4)]
pool.run_phase1(rows, sys.argv[1], PrepareSettings(progress=False), num_workers=2)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_busy_pool_workers_die_with_a_killed_parent(tmp_path):
    """kill -9 of the parent while both workers are busy: no worker (or child of one) survives it."""
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "data")]),
           "HMAF_TEST_MARKS": str(marks)}
    proc = subprocess.Popen([sys.executable, "-c", _BLOCKED_POOL, str(tmp_path)], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(os.listdir(marks)) < 2:
            time.sleep(0.01)
        assert proc.poll() is None and len(os.listdir(marks)) == 2, "both workers should be busy"
        os.kill(proc.pid, signal.SIGKILL)  # only the parent: its workers must follow on their own
        proc.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _session_processes(proc.pid):
            time.sleep(0.05)
        assert _session_processes(proc.pid) == []
    finally:
        for pid in _session_processes(proc.pid):
            os.kill(pid, signal.SIGKILL)
