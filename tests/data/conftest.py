"""A tiny prepared corpus written directly with records.serialize_example.

Layout as hmaf.prepare writes it: dataset.json, vocab.txt, embeddings.npy,
records/tiny-0000i-of-00002.tfrecord. Frames are random; every frame value is
>= 1 in magnitude offset so that padding zeros can be told apart from real frames.
"""

import collections
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from hmaf.data import records
from hmaf.data.vocab import Vocab

LABELS = ("angry", "happy", "neutral")
SPEAKERS = ("s0", "s1", "s2", "s3", "s4", "s5")
OOV_WORD = "zzrare"  # appears in the records but not in vocab.txt


def write_corpus(out_dir, *, per_speaker=9, seed=0, num_shards=2, max_words=14, max_frames=30):
    """Writes the corpus; returns a dict of the written examples by utt_id."""
    rng = np.random.default_rng(seed)
    lexicon = [f"w{i}" for i in range(25)]
    examples = {}
    for s, speaker in enumerate(SPEAKERS):
        for k in range(per_speaker):
            label = (s + k) % len(LABELS)
            n = int(rng.integers(1, max_words + 1))
            words = [str(w) for w in rng.choice(lexicon, size=n)]
            if k == 0:
                words[0] = OOV_WORD
            frames = [(rng.uniform(1, 2, (int(rng.integers(1, max_frames + 1)), 64))
                       * rng.choice([-1, 1])).astype(np.float32) for _ in words]
            start = np.cumsum(rng.uniform(0.1, 0.4, n))
            examples[f"{speaker}-{k}"] = dict(
                utt_id=f"{speaker}-{k}", speaker=speaker, group=speaker,
                split=("train", "train", "train", "dev", "test")[k % 5], label=label,
                label_name=LABELS[label], words=words, frames=frames, word_start=start,
                word_end=start + 0.05)
    os.makedirs(os.path.join(out_dir, "records"), exist_ok=True)
    shards = [f"tiny-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(os.path.join(out_dir, "records", name)) for name in shards]
    for i, ex in enumerate(examples.values()):
        writers[i % num_shards].write(records.serialize_example(**ex))
    for w in writers:
        w.close()
    sentences = [[w for w in ex["words"] if w != OOV_WORD] for ex in examples.values()]
    vocab = Vocab.build(sentences)
    vocab.save(os.path.join(out_dir, "vocab.txt"))
    dim = 6
    matrix = np.random.default_rng(seed).standard_normal((len(vocab), dim)).astype(np.float32)
    matrix[0] = 0
    np.save(os.path.join(out_dir, "embeddings.npy"), matrix)
    count = lambda key: dict(collections.Counter(ex[key] for ex in examples.values()))
    meta = {
        "name": "tiny", "num_examples": len(examples), "label_names": list(LABELS),
        "label_counts": count("label_name"), "speakers": count("speaker"),
        "groups": count("group"), "splits": count("split"), "n_mels": 64,
        "sample_rate": 16000, "win_ms": 25, "hop_ms": 10, "l_max": max_frames,
        "long_word_rule": "subsample", "long_words": 0,
        "embeddings": {"spec": "test", "dim": dim, "vocab_size": len(vocab), "unknown_share": 0.0},
        "shards": shards, "num_rejects": 0,
    }
    with open(os.path.join(out_dir, "dataset.json"), "w") as f:
        json.dump(meta, f)
    return examples


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """(corpus directory, examples by utt_id), shared by the tests of a session."""
    out_dir = tmp_path_factory.mktemp("tiny_corpus")
    examples = write_corpus(str(out_dir))
    return str(out_dir), examples
