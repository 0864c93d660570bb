"""Corpus preparation: manifest -> prepared corpus directory (records, vocab, embeddings).

Layout written under ``out_dir`` (see the common brief):

    dataset.json, vocab.txt, embeddings.npy, rejects.jsonl,
    records/NAME-00000-of-000NN.tfrecord ...,
    cache/<key>.npz   one finished utterance (or cache/<key>.reject.json, a bad one)

:func:`prepare` runs the two phases:

1. every manifest row preprocessed in a process pool and cached (:mod:`hmaf.data.pool`,
   :mod:`hmaf.data.cache`); ``python -m hmaf.prepare --beam`` runs this phase as an Apache
   Beam pipeline instead (:mod:`hmaf.data.beam`);
2. :func:`write_corpus`, shared by both: rejects.jsonl, vocabulary, embedding matrix, the
   record shards (:mod:`hmaf.data.shards`) and dataset.json.

Every file is written atomically (:mod:`hmaf.io`), so a killed run never leaves a
half-written file behind; a rerun removes stray temporaries and resumes.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import time
from typing import Any, Sequence

import numpy as np

from hmaf.batch import MARK_NAMES
from hmaf.data import features as features_lib
from hmaf.data import prosody as prosody_lib
from hmaf.data import shards as shards_lib
from hmaf.data.cache import cache_key, cache_utterance, load_utterance, utterance_path  # noqa: F401  (cache_key, cache_utterance: phase-1 names the Beam path uses)
from hmaf.data.manifest import ManifestRow, RowReject, read_manifest
from hmaf.data.pool import preprocess_row, run_phase1  # noqa: F401
from hmaf.data.settings import PrepareSettings
from hmaf.io import atomic_open, atomic_write_json, remove_temporaries

log = logging.getLogger(__name__)

# One reject so far: (manifest line, rejects.jsonl entry).
Reject = tuple[int, dict[str, str]]


def prepare(manifest: str | os.PathLike, out_dir: str | os.PathLike, settings: PrepareSettings | None = None, *,
            num_workers: int | None = None, **values: Any) -> dict[str, Any]:
    """Prepares a corpus directory from a manifest (resumable; see the module docstring).

    Args:
      manifest: JSONL or CSV manifest (:mod:`hmaf.data.manifest`).
      out_dir: the corpus directory (created; an earlier run's cache there is reused).
      settings: how (:class:`hmaf.data.settings.PrepareSettings`); or give its fields as
        keyword ``values`` (``l_max=50, labels=["neg", "pos"]``), not both.
      num_workers: preprocessing processes; default ``os.cpu_count()``; 1 runs in-process.

    Returns:
      The content of ``dataset.json``.

    Raises:
      hmaf.data.manifest.ManifestError: the manifest cannot be read.
      ValueError: bad arguments, or no usable example at all (``rejects.jsonl`` is still written).
    """
    if settings is not None and values:
        raise ValueError(f"give settings or its fields, not both: {sorted(values)}")
    settings = settings or PrepareSettings(**values)
    t_start = time.perf_counter()
    out_dir, name, rows, rejects = read_inputs(manifest, out_dir, settings)
    t1 = time.perf_counter()
    cache_dir, workers = os.path.join(out_dir, "cache"), num_workers or os.cpu_count() or 1
    results = run_phase1(rows, cache_dir, settings, workers)
    if settings.augment:  # copies of the good rows, given their originals' clean word timings (aligned once)
        from hmaf.data.augment import expand_rows

        copies = expand_rows(rows, settings.augment, _clean_timings(results, cache_dir))
        rows, results = list(rows) + copies, results + run_phase1(copies, cache_dir, settings, workers)
    return write_corpus(manifest, out_dir, name, rows, results, rejects, settings,
                        phase1_s=time.perf_counter() - t1, t_start=t_start,
                        extra={"augment": settings.augment} if settings.augment else None)


def _clean_timings(results: Sequence[dict[str, Any]], cache_dir: str) -> list[tuple | None]:
    """Per phase-1 result: the utterance's ((word, start_s, end_s), ...) from the cache; None if rejected."""
    timings: list[tuple | None] = []
    for result in results:
        if result["status"] != "ok":
            timings.append(None)
            continue
        utt = load_utterance(utterance_path(cache_dir, result["key"]))
        spans = zip(utt["words"], utt["word_start"], utt["word_end"])
        timings.append(tuple((word, float(start), float(end)) for word, start, end in spans))
    return timings


def read_inputs(manifest: str | os.PathLike, out_dir: str | os.PathLike, settings: PrepareSettings
                ) -> tuple[str, str, list[ManifestRow], list[Reject]]:
    """Checks the settings, makes the output folders and reads the manifest (before phase 1).

    Returns:
      (absolute out_dir, corpus name, the rows to preprocess, rejects so far as
      (manifest line, rejects.jsonl entry): malformed rows and unknown labels).
    """
    settings.check()
    out_dir = os.path.abspath(os.fspath(out_dir))
    name = settings.name or os.path.basename(out_dir.rstrip(os.sep)) or "corpus"
    for folder in (out_dir, os.path.join(out_dir, "cache"), os.path.join(out_dir, "records")):
        os.makedirs(folder, exist_ok=True)
        remove_temporaries(folder)

    rows, manifest_rejects = read_manifest(manifest)
    rejects: list[Reject] = [(r.line, r.to_json()) for r in manifest_rejects]
    if settings.labels is not None:
        allowed = set(settings.labels)
        for row in [r for r in rows if r.label not in allowed]:
            rejects.append((row.line, RowReject(
                row.line, row.id, row.audio, "unknown_label",
                f"{row.audio}: label {row.label!r} is not one of {list(settings.labels)}").to_json()))
        rows = [r for r in rows if r.label in allowed]
    return out_dir, name, rows, rejects


def _write_rejects(out_dir: str, rejects: list[Reject]) -> collections.Counter:
    rejects.sort(key=lambda item: item[0])
    with atomic_open(os.path.join(out_dir, "rejects.jsonl"), "w") as f:
        for _, reject in rejects:
            f.write(json.dumps(reject, ensure_ascii=False) + "\n")
    for _, reject in rejects:
        log.warning("rejected %s: %s", reject["id"] or reject["audio"], reject["detail"])
    return collections.Counter(r["reason"] for _, r in rejects)


def _hmaf_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("hmaf")
    except metadata.PackageNotFoundError:
        return "unknown"


def write_corpus(manifest: str | os.PathLike, out_dir: str, name: str, rows: Sequence[ManifestRow],
                 results: Sequence[dict[str, Any]], rejects: list[Reject], settings: PrepareSettings, *,
                 phase1_s: float, t_start: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Phase 2: rejects.jsonl, vocabulary, embeddings, shards and dataset.json.

    ``results[i]`` is row i's phase-1 outcome, from either source (the process pool or the
    Beam pipeline of :mod:`hmaf.data.beam`): a summary from
    :func:`hmaf.data.cache.cache_utterance` (its frames in ``out_dir/cache/<key>.npz``) or
    ``{"status": "reject", "reason", "detail"}``. ``extra`` adds keys to dataset.json.
    """
    from hmaf.data.embeddings import build_matrix, pretrained_words
    from hmaf.data.vocab import Vocab

    rejects = list(rejects)
    good: list[tuple[ManifestRow, dict[str, Any]]] = []
    for row, result in zip(rows, results, strict=True):
        if result["status"] == "ok":
            good.append((row, result))
        else:
            rejects.append((row.line, {"id": row.id, "audio": row.audio, "reason": result["reason"],
                                       "detail": result["detail"]}))
    reason_counts = _write_rejects(out_dir, rejects)
    if not good:
        raise ValueError(f"{manifest}: no usable example ({len(rejects)} rejected: {dict(reason_counts)}); "
                         f"see {os.path.join(out_dir, 'rejects.jsonl')}")

    label_names = list(settings.labels) if settings.labels is not None else sorted({row.label for row, _ in good})
    label_index = {label: i for i, label in enumerate(label_names)}
    sentences = [result["words"] for _, result in good]
    vocab = Vocab.build(sentences)
    if settings.vocab_extra:  # an open vocabulary: the corpus's words first, then the pretrained ones
        known = set(vocab.words)
        vocab = Vocab(vocab.words + [w for w in pretrained_words(settings.embeddings, settings.vocab_extra)
                                     if w not in known])
    elif not settings.embeddings.startswith("train"):
        # The paper's closed vocabulary: easy to choose by accident, and a model trained on it
        # reads every new sentence's unfamiliar words as <unk> (docs/experiments.md).
        log.info("vocabulary: the corpus's %d words only (vocab_extra 0, the paper's); words outside it are <unk> "
                 "at predict time; --vocab_extra 50000 keeps the pretrained vectors of new words",
                 len(vocab.words) - 2)
    vocab.save(os.path.join(out_dir, "vocab.txt"))
    # Vectors trained here (`train:`) learn only from the text outside a manifest's test
    # split, or the test sentences would leak into training through them; their words get
    # the unknown-word initialisation, as any new sentence's would. (Speaker folds are
    # chosen at training time, so a corpus without manifest splits trains on all its text.)
    seen = [result["words"] for row, result in good if row.split != "test"] or sentences
    matrix, emb_info = build_matrix(settings.embeddings, vocab.words, seen, seed=settings.seed)
    with atomic_open(os.path.join(out_dir, "embeddings.npy")) as f:
        np.save(f, matrix.astype(np.float32))

    total_frames = sum(result["frames_total"] for _, result in good)
    num_shards = settings.num_shards or shards_lib.default_num_shards(total_frames, len(good))
    t2 = time.perf_counter()
    written = shards_lib.write_shards(
        os.path.join(out_dir, "records"), os.path.join(out_dir, "cache"), name,
        [(row, result["key"], label_index[row.label]) for row, result in good], num_shards, settings.progress)
    write_s = time.perf_counter() - t2

    timing = {step: round(sum(result["timing"][step] for _, result in good), 3)
              for step in ("decode_s", "asr_s", "align_s", "features_s")}
    timing["write_s"] = round(write_s, 3)
    timing["phase1_wall_s"] = round(phase1_s, 3)
    timing["total_wall_s"] = round(time.perf_counter() - t_start, 3)
    long_words = sum(result["long_words"] for _, result in good)
    num_words = sum(len(result["words"]) for _, result in good)
    info = {
        "name": name,
        "num_examples": len(good),
        "label_names": label_names,
        "label_counts": dict(sorted(collections.Counter(row.label for row, _ in good).items())),
        "speakers": dict(sorted(collections.Counter(row.speaker for row, _ in good).items())),
        "groups": dict(sorted(collections.Counter(row.group for row, _ in good).items())),
        "splits": dict(sorted(collections.Counter(row.split for row, _ in good).items())),
        "n_mels": features_lib.N_MELS,
        # each frame: the n_mels log-mel bands, then these columns (hmaf.data.prosody)
        "frame_dim": features_lib.FRAME_DIM,
        "prosody_columns": list(prosody_lib.COLUMNS),
        "prosody": {"f0_min": prosody_lib.F0_MIN, "f0_max": prosody_lib.F0_MAX,
                    "frame_length": prosody_lib.FRAME_LENGTH, "threshold": prosody_lib.THRESHOLD,
                    "voiced_aperiodicity": prosody_lib.VOICED_APERIODICITY},
        "sample_rate": features_lib.SAMPLE_RATE,
        "win_ms": 25,
        "hop_ms": 10,
        "n_fft": features_lib.N_FFT,
        "fmin": features_lib.FMIN,
        "fmax": features_lib.FMAX,
        "log_floor": features_lib.LOG_FLOOR,
        "aligner": settings.aligner,
        "boundaries": settings.boundaries,  # where pocketsphinx's word boundaries end up
        # what timed the words of the good examples (aligner or "manifest"), and how often
        # "auto" fell back to its second aligner
        "aligned_by": dict(sorted(collections.Counter(result.get("aligner", "") for _, result in good).items())),
        "align_fallbacks": sum(bool(result.get("align_fallback")) for _, result in good),
        "l_max": settings.l_max,
        "long_word_rule": settings.long_word_rule,
        "long_words": long_words,
        "num_words": num_words,
        "max_word_frames": max(result["max_frames"] for _, result in good),
        "num_transcript_auto": sum(bool(result["transcript_auto"]) for _, result in good),
        # records carry word_marks (config.model.punctuation needs them): the mark classes
        "word_marks": list(MARK_NAMES),
        "embeddings": {"spec": settings.embeddings, "dim": int(matrix.shape[1]), "vocab_size": len(vocab),
                       "vocab_extra": settings.vocab_extra,
                       "unknown_share": emb_info["unknown_share"],
                       **{k: v for k, v in emb_info.items() if k not in ("spec", "dim", "vocab_size", "unknown_share")}},
        "shards": written.names,
        "content_hash": shards_lib.content_hash(label_names, vocab.words, written.digests),
        "num_rejects": len(rejects),
        "reject_reasons": dict(sorted(reason_counts.items())),
        "audio_seconds": round(sum(result["audio_seconds"] for _, result in good), 3),
        "timing": timing,
        "cached_utterances": sum(bool(result["cached"]) for _, result in good),
        "skipped_shards": written.skipped,
        "manifest": os.path.abspath(os.fspath(manifest)),
        "hmaf_version": _hmaf_version(),
        **(extra or {}),
    }
    from hmaf.data.normalize import write_speaker_stats

    write_speaker_stats(out_dir, [os.path.join(out_dir, "records", shard) for shard in written.names])
    atomic_write_json(os.path.join(out_dir, "dataset.json"), info)
    log.info("%d examples, %d rejected; unknown words: %.1f%% of the vocabulary; "
             "long words (> %d frames, %s): %d of %d (%.2f%%)", len(good), len(rejects),
             100 * emb_info["unknown_share"], settings.l_max, settings.long_word_rule, long_words, num_words,
             100 * long_words / max(num_words, 1))
    return info
