"""The phase-1 cache of corpus preparation: one file per preprocessed manifest row.

``cache/<key>.npz`` holds a finished utterance, ``cache/<key>.reject.json`` a bad one. The
key hashes the audio file's bytes, the transcript, the word timings and the preprocessing
settings, so a rerun (after a crash, a kill, or with more rows) skips finished work and a
changed file or setting is redone. Files are written atomically (:mod:`hmaf.io`).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

from hmaf.data.align import DEFAULT_BOUNDARIES
from hmaf.data.manifest import ManifestRow
from hmaf.data.utterance import Utterance
from hmaf.io import atomic_open, atomic_write_json

# Bump when preprocessing output changes for the same input, to invalidate caches.
PREPROCESS_VERSION = "4"


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(row: ManifestRow, l_max: int, long_word_rule: str, aligner: str = "auto",
              boundaries: str = DEFAULT_BOUNDARIES) -> str | None:
    """Hash of everything the utterance's preprocessing depends on; None if the audio is unreadable."""
    try:
        audio_hash = file_sha256(row.audio)
    except OSError:
        return None
    spec = {"version": PREPROCESS_VERSION, "audio": audio_hash, "transcript": row.transcript,
            "word_timings": row.word_timings, "l_max": l_max, "long_word_rule": long_word_rule}
    if row.word_timings is None:  # given timings bypass the aligner: same key whatever it is
        spec["aligner"] = aligner
        if boundaries != "hmm" and aligner != "aeneas":  # "hmm": the keys made before the setting existed
            spec["boundaries"] = boundaries
    if row.augment:  # augmented copy: its spec and its babble sources' bytes (originals keep their keys)
        from hmaf.data.augment import cache_fields

        spec.update(cache_fields(row))
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def save_utterance(path: str, utt: Utterance) -> None:
    with atomic_open(path) as f:
        np.savez(
            f, words=np.asarray(utt.words, dtype=str),
            frames=np.concatenate(utt.frames, axis=0).astype(np.float32),
            num_frames=np.asarray([len(x) for x in utt.frames], dtype=np.int64),
            word_start=utt.word_start.astype(np.float64), word_end=utt.word_end.astype(np.float64),
            transcript=np.asarray(utt.transcript), transcript_auto=np.asarray(utt.transcript_auto),
            long_words=np.asarray(utt.long_words), audio_seconds=np.asarray(utt.audio_seconds),
            timing=np.asarray(json.dumps(utt.timing)), aligner=np.asarray(utt.aligner),
            align_fallback=np.asarray(utt.align_fallback))


def load_utterance(path: str) -> dict[str, Any]:
    """A cached utterance: words, frames (list of ``[n_i, M]``), boundaries and metadata."""
    with np.load(path, allow_pickle=False) as z:
        num_frames = z["num_frames"]
        frames = np.split(z["frames"], np.cumsum(num_frames)[:-1])
        return {"words": [str(w) for w in z["words"]], "frames": frames, "num_frames": num_frames,
                "word_start": z["word_start"], "word_end": z["word_end"], "transcript": str(z["transcript"]),
                "transcript_auto": bool(z["transcript_auto"]), "long_words": int(z["long_words"]),
                "audio_seconds": float(z["audio_seconds"]), "timing": json.loads(str(z["timing"])),
                "aligner": str(z["aligner"]), "align_fallback": str(z["align_fallback"])}


def utterance_path(cache_dir: str, key: str) -> str:
    return os.path.join(cache_dir, f"{key}.npz")


def _summary(key: str, utt: dict[str, Any], cached: bool) -> dict[str, Any]:
    """What phase 2 needs in memory about an utterance (its frames stay in the cache)."""
    return {"status": "ok", "key": key, "cached": cached, "words": utt["words"],
            "frames_total": int(np.sum(utt["num_frames"])), "max_frames": int(np.max(utt["num_frames"])),
            "long_words": utt["long_words"], "audio_seconds": utt["audio_seconds"],
            "transcript_auto": utt["transcript_auto"], "timing": utt["timing"], "aligner": utt["aligner"],
            "align_fallback": utt["align_fallback"]}


def cached_result(key: str | None, cache_dir: str) -> dict[str, Any] | None:
    """The cached outcome of an utterance (a summary or a reject), None when not cached."""
    if key is None:
        return None
    npz = utterance_path(cache_dir, key)
    if os.path.exists(npz):
        return _summary(key, load_utterance(npz), cached=True)
    reject_path = os.path.join(cache_dir, f"{key}.reject.json")
    if os.path.exists(reject_path):
        with open(reject_path, encoding="utf-8") as f:
            return {"status": "reject", "cached": True, **json.load(f)}
    return None


def cache_utterance(key: str, utt: Utterance, cache_dir: str) -> dict[str, Any]:
    """Stores a finished utterance under its cache key; returns the summary phase 2 needs."""
    save_utterance(utterance_path(cache_dir, key), utt)
    return _summary(key, {"words": utt.words, "num_frames": np.asarray([len(x) for x in utt.frames]),
                          "long_words": utt.long_words, "audio_seconds": utt.audio_seconds,
                          "transcript_auto": utt.transcript_auto, "timing": utt.timing, "aligner": utt.aligner,
                          "align_fallback": utt.align_fallback}, cached=False)


def cache_reject(key: str, reject: dict[str, str], cache_dir: str) -> None:
    """Remembers a bad file (keyed by its bytes): a rerun rejects it without redoing the work."""
    atomic_write_json(os.path.join(cache_dir, f"{key}.reject.json"), reject)
