"""A random prepared corpus (records, vocab.txt, embeddings.npy, dataset.json) for tests
and input-pipeline benchmarks: the layout ``python -m hmaf.prepare`` writes, without audio.

Frames are random with magnitude in [1, 2], so padding zeros are told apart from real
frames. Every speaker's first utterance starts with :data:`OOV_WORD`, which is left
out of ``vocab.txt`` (it must map to ``<unk>``).
"""

from __future__ import annotations

import collections
import json
import os

import numpy as np

from hmaf.batch import MARK_NAMES, NUM_MARKS
from hmaf.data import records  # imports TensorFlow with GPUs hidden
from hmaf.data.features import FRAME_DIM, N_MELS
from hmaf.data.normalize import write_speaker_stats
from hmaf.data.vocab import Vocab

import tensorflow as tf

OOV_WORD = "zzrare"
MANIFEST_SPLITS = ("train", "train", "train", "dev", "test")
LABELS = ("angry", "happy", "neutral")


def _lengths(rng: np.random.Generator, lengths: str, max_words: int, max_frames: int) -> tuple[int, list[int]]:
    if lengths == "uniform":
        n = int(rng.integers(1, max_words + 1))
        return n, [int(v) for v in rng.integers(1, max_frames + 1, size=n)]
    if lengths == "speech":
        # Roughly spoken-dialogue statistics: a median of 11 words with a long tail, and
        # about 240 ms (24 frames) per word, skewed, capped at max_frames like l_max.
        n = int(np.clip(round(np.exp(rng.normal(np.log(11), 0.6))), 1, max_words))
        return n, [int(v) for v in np.clip(np.round(rng.gamma(3.0, 8.0, size=n)), 1, max_frames)]
    raise ValueError(f"lengths must be 'uniform' or 'speech', got {lengths!r}")


def write_fake_corpus(out_dir: str | os.PathLike, *, labels: tuple[str, ...] = LABELS,
                      num_speakers: int = 6, per_speaker: int = 9, seed: int = 0, num_shards: int = 2,
                      lengths: str = "uniform", max_words: int = 14, max_frames: int = 30,
                      embedding_dim: int = 6, word_marks: bool = False) -> dict[str, dict]:
    """Writes a random corpus to ``out_dir``.

    Speaker s's k-th utterance has id ``"s{s}-{k}"``, group = speaker, label
    ``(s + k) % len(labels)`` and manifest split ``MANIFEST_SPLITS[k % 5]``.

    Args:
      lengths: "uniform" (words per utterance uniform in [1, max_words], frames per word
        uniform in [1, max_frames]) or "speech" (log-normal words, gamma frames).
      max_frames: also written as ``l_max``.
      word_marks: give every word a random punctuation mark (records field ``word_marks``,
        listed in ``dataset.json`` as ``hmaf.prepare`` does); drawn from a generator of
        their own, so the rest of the corpus is the same either way.

    Returns:
      The examples by utt_id, as the keyword arguments given to
      :func:`hmaf.data.records.serialize_example`.
    """
    out_dir = os.fspath(out_dir)
    rng = np.random.default_rng(seed)
    lexicon = [f"w{i}" for i in range(25 if lengths == "uniform" else 2000)]
    examples: dict[str, dict] = {}
    for s in range(num_speakers):
        speaker = f"s{s}"
        for k in range(per_speaker):
            label = (s + k) % len(labels)
            n, num_frames = _lengths(rng, lengths, max_words, max_frames)
            words = [str(w) for w in rng.choice(lexicon, size=n)]
            if k == 0:
                words[0] = OOV_WORD
            frames = [(rng.uniform(1, 2, (m, FRAME_DIM)) * rng.choice([-1, 1])).astype(np.float32)
                      for m in num_frames]
            start = np.cumsum(rng.uniform(0.1, 0.4, n))
            examples[f"{speaker}-{k}"] = dict(
                utt_id=f"{speaker}-{k}", speaker=speaker, group=speaker,
                split=MANIFEST_SPLITS[k % len(MANIFEST_SPLITS)], label=label, label_name=labels[label],
                words=words, frames=frames, word_start=start, word_end=start + 0.05)

    if word_marks:
        marks_rng = np.random.default_rng([seed, 1])
        for ex in examples.values():
            ex["word_marks"] = [int(m) for m in marks_rng.integers(0, NUM_MARKS, len(ex["words"]))]
    os.makedirs(os.path.join(out_dir, "records"), exist_ok=True)
    shards = [f"fake-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(os.path.join(out_dir, "records", name)) for name in shards]
    for i, ex in enumerate(examples.values()):
        writers[i % num_shards].write(records.serialize_example(**ex))
    for writer in writers:
        writer.close()
    vocab = Vocab.build([[w for w in ex["words"] if w != OOV_WORD] for ex in examples.values()])
    vocab.save(os.path.join(out_dir, "vocab.txt"))
    matrix = np.random.default_rng(seed).standard_normal((len(vocab), embedding_dim)).astype(np.float32)
    matrix[0] = 0
    np.save(os.path.join(out_dir, "embeddings.npy"), matrix)
    count = lambda key: dict(sorted(collections.Counter(ex[key] for ex in examples.values()).items()))
    meta = {
        "name": "fake", "num_examples": len(examples), "label_names": list(labels),
        "label_counts": count("label_name"), "speakers": count("speaker"), "groups": count("group"),
        "splits": count("split"), "n_mels": N_MELS, "frame_dim": FRAME_DIM, "sample_rate": 16000, "win_ms": 25,
        "hop_ms": 10, "l_max": max_frames, "long_word_rule": "subsample", "long_words": 0,
        "embeddings": {"spec": "random", "dim": embedding_dim, "vocab_size": len(vocab), "unknown_share": 0.0},
        "shards": shards, "num_rejects": 0,
        **({"word_marks": list(MARK_NAMES)} if word_marks else {}),
    }
    with open(os.path.join(out_dir, "dataset.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    # As hmaf.prepare does: models with audio_norm="speaker" read these statistics.
    write_speaker_stats(out_dir, [os.path.join(out_dir, "records", name) for name in shards])
    return examples
