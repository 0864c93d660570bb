"""Phase 2's record shards: cached utterances -> ``records/NAME-0000i-of-0000N.tfrecord``.

Example i (in manifest order, among the good ones) goes to shard ``i % num_shards``. A
shard is written atomically (:mod:`hmaf.io`), then a ``.NAME.done`` marker records the
hash of what it holds (and its examples' digests); a rerun skips shards whose marker
matches, so only shards a kill interrupted are rewritten.

The corpus ``content_hash`` is a sha256 over the label names, the vocabulary and every
example's digest (fields and frames), examples sorted by id: identical inputs give
identical hashes whatever the shard count, worker count or number of interruptions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from hmaf.data import cache
from hmaf.data import features as features_lib
from hmaf.data.manifest import ManifestRow
from hmaf.data.text import word_marks
from hmaf.io import atomic_path, atomic_write_json

# "2": records carry word_marks (a rerun rewrites shards of version 1).
_SHARD_FORMAT_VERSION = "2"
_TARGET_SHARD_BYTES = 64 * 2**20

# One example to write: its manifest row, its cache key and its class index.
ShardItem = tuple[ManifestRow, str, int]


def _example_fields(row: ManifestRow, utt: dict[str, Any], label: int) -> dict[str, Any]:
    return {"utt_id": row.id, "speaker": row.speaker, "group": row.group, "split": row.split,
            "label": label, "label_name": row.label, "words": utt["words"], "frames": utt["frames"],
            "word_start": utt["word_start"], "word_end": utt["word_end"], "transcript": utt["transcript"],
            "transcript_auto": utt["transcript_auto"], "augment": row.augment,
            # From the cached words and transcript: the phase-1 cache needs no change.
            "word_marks": word_marks(utt["words"], utt["transcript"], utt["transcript_auto"])}


def _example_digest(ex: dict[str, Any]) -> bytes:
    h = hashlib.sha256()
    meta = {k: ex[k] for k in ("utt_id", "speaker", "group", "split", "label", "label_name", "words",
                               "transcript", "transcript_auto", "augment", "word_marks")}
    h.update(json.dumps(meta, sort_keys=True, ensure_ascii=False).encode())
    h.update(np.asarray([len(f) for f in ex["frames"]], dtype="<i8").tobytes())
    h.update(np.concatenate(ex["frames"]).astype("<f4").tobytes())
    # Records store boundaries as float32: hash what a reader gets back.
    h.update(np.asarray(ex["word_start"], dtype="<f4").tobytes())
    h.update(np.asarray(ex["word_end"], dtype="<f4").tobytes())
    return h.digest()


def _write_shard(path: str, examples: Sequence[ShardItem], cache_dir: str) -> dict[bytes, str]:
    """Writes one shard atomically; returns {example digest: utt_id}."""
    # deferred: only phase 2 writes TFRecords; records first, for its lighter TensorFlow import
    from hmaf.data.records import serialize_example, tf

    digests = {}
    with atomic_path(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for row, key, label in examples:
            ex = _example_fields(row, cache.load_utterance(cache.utterance_path(cache_dir, key)), label)
            digests[_example_digest(ex)] = row.id
            writer.write(serialize_example(**ex))
    return digests


def _shard_key(examples: Sequence[ShardItem]) -> str:
    h = hashlib.sha256(_SHARD_FORMAT_VERSION.encode())
    for row, key, label in examples:
        h.update(json.dumps([key, row.id, row.speaker, row.group, row.split, row.label, label]).encode())
    return h.hexdigest()


def default_num_shards(total_frames: int, num_examples: int) -> int:
    """About one shard per 64 MiB of float32 frames, at most one per example."""
    return max(1, min(num_examples, math.ceil(total_frames * features_lib.FRAME_DIM * 4 / _TARGET_SHARD_BYTES)))


@dataclasses.dataclass
class ShardsWritten:
    """What :func:`write_shards` did: shard file names, digests by utt_id, shards reused."""

    names: list[str]
    digests: dict[bytes, str]
    skipped: int


def write_shards(records_dir: str, cache_dir: str, name: str, items: Sequence[ShardItem], num_shards: int,
                 progress: bool) -> ShardsWritten:
    """Writes (or reuses) the shards of ``items``; removes files of another layout."""
    from tqdm.auto import tqdm

    names = [f"{name}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    for entry in os.listdir(records_dir):  # shards of an earlier run with another layout
        if entry.removeprefix(".").removesuffix(".done") not in names:
            os.remove(os.path.join(records_dir, entry))
    assignment: list[list[ShardItem]] = [[] for _ in range(num_shards)]
    for i, item in enumerate(items):
        assignment[i % num_shards].append(item)

    digests: dict[bytes, str] = {}
    skipped = 0
    for shard_name, examples in tqdm(list(zip(names, assignment)), desc="write", unit="shard",
                                     disable=not progress):
        path = os.path.join(records_dir, shard_name)
        done_path = os.path.join(records_dir, f".{shard_name}.done")
        key = _shard_key(examples)
        done = None
        if os.path.exists(path) and os.path.exists(done_path):
            with open(done_path, encoding="utf-8") as f:
                done = json.load(f)
        if done is not None and done.get("key") == key and done.get("sha256") == cache.file_sha256(path):
            digests.update({bytes.fromhex(d): utt_id for d, utt_id in done["examples"]})
            skipped += 1
            continue
        with contextlib.suppress(FileNotFoundError):
            os.remove(done_path)
        shard_digests = _write_shard(path, examples, cache_dir)
        digests.update(shard_digests)
        atomic_write_json(done_path, {"key": key, "sha256": cache.file_sha256(path),
                                      "examples": [[d.hex(), utt_id] for d, utt_id in shard_digests.items()]})
    return ShardsWritten(names=names, digests=digests, skipped=skipped)


def content_hash(label_names: Sequence[str], vocab_words: Sequence[str], digests: dict[bytes, str]) -> str:
    """sha256 of labels, vocabulary and example digests in utt_id order (see the module docstring)."""
    content = hashlib.sha256()
    content.update(json.dumps({"label_names": list(label_names), "vocab": list(vocab_words)},
                              ensure_ascii=False).encode())
    for digest in sorted(digests, key=lambda d: (digests[d], d)):
        content.update(digest)
    return content.hexdigest()
