"""Corpus preparation: manifest -> prepared corpus directory (records, vocab, embeddings).

Layout written under ``out_dir`` (see the common brief):

    dataset.json, vocab.txt, embeddings.npy, rejects.jsonl,
    records/NAME-00000-of-000NN.tfrecord ...,
    cache/<key>.npz   one finished utterance (or cache/<key>.reject.json, a bad one)

Phase 1 preprocesses every manifest row with :func:`hmaf.data.utterance.preprocess_utterance`
in a process pool. Each result is cached under a key that hashes the audio file's bytes,
the transcript, the word timings and the preprocessing settings, so a rerun (after a crash,
a kill, or with more rows) skips finished work. Bad rows are collected in ``rejects.jsonl``;
they never stop the run. (``python -m hmaf.prepare --beam`` runs phase 1 as an Apache Beam
pipeline instead, :mod:`hmaf.data.beam`, and hands its utterances to the same phase 2,
:func:`write_corpus`.)

Phase 2 builds the vocabulary and embedding matrix and writes the shards. Example i (in
manifest order, among the good ones) goes to shard ``i % num_shards``. A shard is written
to a temporary name in ``records/`` and renamed into place, then a ``.NAME.done`` marker
records the hash of what it holds (and its examples' digests); a rerun skips shards whose marker matches. Every file is
written the same way (temp name in the same folder, then ``os.replace``), so a killed run
never leaves a half-written file behind, and a rerun removes stray temporaries.

``content_hash`` in ``dataset.json`` is a sha256 over the label names, the vocabulary and
every example's fields (frames included), examples sorted by id: identical inputs give
identical hashes whatever the shard count, worker count or number of interruptions.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import tempfile
import time
import traceback
from typing import Any, Iterator, Sequence

import numpy as np

from hmaf.data import features as features_lib
from hmaf.data.manifest import ManifestRow, RowReject, read_manifest
from hmaf.data.utterance import PreprocessError, Utterance, preprocess_utterance

log = logging.getLogger(__name__)

# Bump when preprocessing output changes for the same input, to invalidate caches.
PREPROCESS_VERSION = "1"
_SHARD_FORMAT_VERSION = "1"
_TARGET_SHARD_BYTES = 64 * 2**20
_TMP_MARK = ".tmp-"


# ---------------------------------------------------------------------------- files

def _temp_file(path: str) -> str:
    """A new empty temp file beside ``path``, with the permissions a plain ``open`` would give."""
    folder, base = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}{_TMP_MARK}", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files
    return tmp


@contextlib.contextmanager
def _atomic_open(path: str, mode: str = "wb") -> Iterator[io.IOBase]:
    """Opens a temp file beside ``path``; renames it onto ``path`` only if the block succeeds."""
    tmp = _temp_file(path)
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _write_json(path: str, obj: Any) -> None:
    with _atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")


def _remove_temporaries(folder: str) -> None:
    """Deletes temp files a killed run left in ``folder`` (they are never valid output)."""
    if os.path.isdir(folder):
        for entry in os.listdir(folder):
            if _TMP_MARK in entry:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, entry))


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- phase 1

def cache_key(row: ManifestRow, l_max: int, long_word_rule: str) -> str | None:
    """Hash of everything the utterance's preprocessing depends on; None if the audio is unreadable."""
    try:
        audio_hash = _file_sha256(row.audio)
    except OSError:
        return None
    spec = {"version": PREPROCESS_VERSION, "audio": audio_hash, "transcript": row.transcript,
            "word_timings": row.word_timings, "l_max": l_max, "long_word_rule": long_word_rule}
    if row.augment:  # augmented copy: its spec and its babble sources' bytes (originals keep their keys)
        from hmaf.data.augment import cache_fields

        spec.update(cache_fields(row))
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def _save_utterance(path: str, utt: Utterance) -> None:
    with _atomic_open(path) as f:
        np.savez(
            f, words=np.asarray(utt.words, dtype=str),
            frames=np.concatenate(utt.frames, axis=0).astype(np.float32),
            num_frames=np.asarray([len(x) for x in utt.frames], dtype=np.int64),
            word_start=utt.word_start.astype(np.float64), word_end=utt.word_end.astype(np.float64),
            transcript=np.asarray(utt.transcript), transcript_auto=np.asarray(utt.transcript_auto),
            long_words=np.asarray(utt.long_words), audio_seconds=np.asarray(utt.audio_seconds),
            timing=np.asarray(json.dumps(utt.timing)))


def _load_utterance(path: str) -> dict[str, Any]:
    """A cached utterance: words, frames (list of ``[n_i, 64]``), boundaries and metadata."""
    with np.load(path, allow_pickle=False) as z:
        num_frames = z["num_frames"]
        frames = np.split(z["frames"], np.cumsum(num_frames)[:-1])
        return {"words": [str(w) for w in z["words"]], "frames": frames, "num_frames": num_frames,
                "word_start": z["word_start"], "word_end": z["word_end"], "transcript": str(z["transcript"]),
                "transcript_auto": bool(z["transcript_auto"]), "long_words": int(z["long_words"]),
                "audio_seconds": float(z["audio_seconds"]), "timing": json.loads(str(z["timing"]))}


def _summary(key: str, utt: dict[str, Any], cached: bool) -> dict[str, Any]:
    """What phase 2 needs in memory about an utterance (its frames stay in the cache)."""
    return {"status": "ok", "key": key, "cached": cached, "words": utt["words"],
            "frames_total": int(np.sum(utt["num_frames"])), "max_frames": int(np.max(utt["num_frames"])),
            "long_words": utt["long_words"], "audio_seconds": utt["audio_seconds"],
            "transcript_auto": utt["transcript_auto"], "timing": utt["timing"]}


def _cached_result(key: str | None, cache_dir: str) -> dict[str, Any] | None:
    """The cached outcome of an utterance (a summary or a reject), None when not cached."""
    if key is None:
        return None
    npz = os.path.join(cache_dir, f"{key}.npz")
    if os.path.exists(npz):
        return _summary(key, _load_utterance(npz), cached=True)
    reject_path = os.path.join(cache_dir, f"{key}.reject.json")
    if os.path.exists(reject_path):
        with open(reject_path, encoding="utf-8") as f:
            return {"status": "reject", "cached": True, **json.load(f)}
    return None


def preprocess_row(row: ManifestRow, l_max: int, long_word_rule: str) -> Utterance | dict[str, str]:
    """The row's :class:`Utterance`, or a reject ``{"reason", "detail"}``. Never raises for a bad example.

    The one per-row step of phase 1, shared by the process pool here and the Beam
    pipeline (:mod:`hmaf.data.beam`), so both reject the same rows for the same reasons.
    """
    try:
        return preprocess_utterance(row.audio, row.transcript, l_max=l_max, long_word_rule=long_word_rule,
                                    word_timings=row.word_timings, augment=row.augment)
    except PreprocessError as e:
        return {"reason": e.reason, "detail": str(e)}
    except Exception as e:  # a bug must not cost the other examples
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        return {"reason": "internal_error", "detail": f"{row.audio}: {detail}"}


def _process_row(row: ManifestRow, key: str | None, cache_dir: str, l_max: int,
                 long_word_rule: str) -> dict[str, Any]:
    """Preprocesses one row and caches the outcome. Never raises for a bad example."""
    utt = preprocess_row(row, l_max, long_word_rule)
    if isinstance(utt, dict):
        # A bad file stays bad: remember it (keyed by its bytes). An internal error is not
        # cached, so a rerun retries it.
        if key is not None and utt["reason"] != "internal_error":
            _write_json(os.path.join(cache_dir, f"{key}.reject.json"), utt)
        return {"status": "reject", "cached": False, **utt}
    if key is None:  # the file appeared between hashing and decoding: do not cache under no key
        return {"status": "reject", "cached": False, "reason": "unreadable_audio",
                "detail": f"{row.audio}: could not be hashed"}
    return cache_utterance(key, utt, cache_dir)


def cache_utterance(key: str, utt: Utterance, cache_dir: str) -> dict[str, Any]:
    """Stores a finished utterance under its cache key; returns the summary phase 2 needs."""
    _save_utterance(os.path.join(cache_dir, f"{key}.npz"), utt)
    return _summary(key, {"words": utt.words, "num_frames": np.asarray([len(x) for x in utt.frames]),
                          "long_words": utt.long_words, "audio_seconds": utt.audio_seconds,
                          "transcript_auto": utt.transcript_auto, "timing": utt.timing}, cached=False)


def _warm_up() -> None:
    """Pays a worker's one-time costs (imports of soxr and aeneas, numpy FFT set-up) first.

    Then the per-utterance timings measure the work; the start-up shows in the wall time.
    """
    from hmaf.data import align  # noqa: F401  (aeneas)
    from hmaf.data.audio import resample

    samples = np.random.default_rng(0).normal(0, 0.1, 22050).astype(np.float32)
    features_lib.mfsc(resample(samples, 22050, features_lib.SAMPLE_RATE))


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Sets environment variables (inherited by processes started inside), then restores them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_phase1(rows: Sequence[ManifestRow], cache_dir: str, l_max: int, long_word_rule: str,
                num_workers: int, progress: bool) -> list[dict[str, Any]]:
    """Outcomes of all rows in row order: cached ones read here, the rest computed in a pool."""
    from tqdm.auto import tqdm

    keys = [cache_key(row, l_max, long_word_rule) for row in rows]
    results = [_cached_result(key, cache_dir) for key in keys]
    todo = [i for i, result in enumerate(results) if result is None]
    bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc="preprocess", unit="utt",
               disable=not progress)
    if todo and (num_workers <= 1 or len(todo) == 1):
        _warm_up()
        for i in todo:
            results[i] = _process_row(rows[i], keys[i], cache_dir, l_max, long_word_rule)
            bar.update()
    elif todo:
        # spawn: workers start clean even when the caller has imported TensorFlow or JAX
        # (their threads make fork unsafe).
        context = multiprocessing.get_context("spawn")
        # One BLAS/OpenMP thread per worker: the processes already fill the cores, and
        # competing OpenBLAS threads made small matrix products ~100x slower on 2 cores.
        with _environment(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"), \
                concurrent.futures.ProcessPoolExecutor(min(num_workers, len(todo)), mp_context=context,
                                                       initializer=_warm_up) as pool:
            futures = {pool.submit(_process_row, rows[i], keys[i], cache_dir, l_max, long_word_rule): i
                       for i in todo}
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                except concurrent.futures.process.BrokenProcessPool as e:
                    # A worker died (killed for memory, a crash in C code): the pool fails every
                    # unfinished row. Not cached, so rerunning retries exactly these rows.
                    results[i] = {"status": "reject", "cached": False, "reason": "worker_crashed",
                                  "detail": f"{rows[i].audio}: a preprocessing process died ({e}); rerun to retry"}
                bar.update()
    bar.close()
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------------------- phase 2

def _example_fields(row: ManifestRow, utt: dict[str, Any], label: int) -> dict[str, Any]:
    return {"utt_id": row.id, "speaker": row.speaker, "group": row.group, "split": row.split,
            "label": label, "label_name": row.label, "words": utt["words"], "frames": utt["frames"],
            "word_start": utt["word_start"], "word_end": utt["word_end"], "transcript": utt["transcript"],
            "transcript_auto": utt["transcript_auto"], "augment": row.augment}


def _example_digest(ex: dict[str, Any]) -> bytes:
    h = hashlib.sha256()
    meta = {k: ex[k] for k in ("utt_id", "speaker", "group", "split", "label", "label_name", "words",
                               "transcript", "transcript_auto", "augment")}
    h.update(json.dumps(meta, sort_keys=True, ensure_ascii=False).encode())
    h.update(np.asarray([len(f) for f in ex["frames"]], dtype="<i8").tobytes())
    h.update(np.concatenate(ex["frames"]).astype("<f4").tobytes())
    # Records store boundaries as float32: hash what a reader gets back.
    h.update(np.asarray(ex["word_start"], dtype="<f4").tobytes())
    h.update(np.asarray(ex["word_end"], dtype="<f4").tobytes())
    return h.digest()


def _write_shard(path: str, examples: Sequence[tuple[ManifestRow, str, int]], cache_dir: str) -> dict[bytes, str]:
    """Writes one shard atomically; returns {example digest: utt_id}."""
    import tensorflow as tf  # deferred: only phase 2 writes TFRecords

    from hmaf.data.records import serialize_example

    digests = {}
    tmp = _temp_file(path)
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for row, key, label in examples:
                ex = _example_fields(row, _load_utterance(os.path.join(cache_dir, f"{key}.npz")), label)
                digests[_example_digest(ex)] = row.id
                writer.write(serialize_example(**ex))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return digests


def _shard_key(examples: Sequence[tuple[ManifestRow, str, int]]) -> str:
    h = hashlib.sha256(_SHARD_FORMAT_VERSION.encode())
    for row, key, label in examples:
        h.update(json.dumps([key, row.id, row.speaker, row.group, row.split, row.label, label]).encode())
    return h.hexdigest()


def _default_num_shards(total_frames: int, num_examples: int) -> int:
    return max(1, min(num_examples, math.ceil(total_frames * features_lib.N_MELS * 4 / _TARGET_SHARD_BYTES)))


def _hmaf_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("hmaf")
    except metadata.PackageNotFoundError:
        return "unknown"


def _clean_timings(results: Sequence[dict[str, Any]], cache_dir: str) -> list[tuple | None]:
    """Per phase-1 result: the utterance's ((word, start_s, end_s), ...) from the cache; None if rejected."""
    timings: list[tuple | None] = []
    for result in results:
        if result["status"] != "ok":
            timings.append(None)
            continue
        utt = _load_utterance(os.path.join(cache_dir, f"{result['key']}.npz"))
        spans = zip(utt["words"], utt["word_start"], utt["word_end"])
        timings.append(tuple((word, float(start), float(end)) for word, start, end in spans))
    return timings


def prepare(manifest: str | os.PathLike, out_dir: str | os.PathLike, *, embeddings: str = "glove6b50",
            l_max: int = 100, long_word_rule: str = "subsample", num_shards: int | None = None,
            num_workers: int | None = None, labels: Sequence[str] | None = None, name: str | None = None,
            seed: int = 0, progress: bool = True, augment: str = "") -> dict[str, Any]:
    """Prepares a corpus directory from a manifest (resumable; see the module docstring).

    Args:
      manifest: JSONL or CSV manifest (:mod:`hmaf.data.manifest`).
      out_dir: the corpus directory (created; an earlier run's cache there is reused).
      embeddings: spec for :func:`hmaf.data.embeddings.build_matrix`.
      l_max: the most frames kept per word.
      long_word_rule: "subsample" or "truncate", for words longer than ``l_max`` frames.
      num_shards: TFRecord shards; default about one per 64 MiB of frames.
      num_workers: preprocessing processes; default ``os.cpu_count()``; 1 runs in-process.
      labels: label names in class-index order; rows with other labels are rejected
        ("unknown_label"). Default: the sorted labels of the good examples.
      name: the corpus name (shard file prefix); default the folder name of ``out_dir``.
      seed: seeds the embeddings of unknown words (and "train" embeddings).
      progress: show progress bars.
      augment: waveform augmentation spec (:mod:`hmaf.data.augment`): extra rows
        ``<id>~<name>`` per original; "" (default, the paper's setting) for none.

    Returns:
      The content of ``dataset.json``.

    Raises:
      hmaf.data.manifest.ManifestError: the manifest cannot be read.
      ValueError: bad arguments, or no usable example at all (``rejects.jsonl`` is still written).
    """
    t_start = time.perf_counter()
    out_dir, name, rows, rejects = read_inputs(manifest, out_dir, l_max=l_max, long_word_rule=long_word_rule,
                                               labels=labels, name=name)
    if augment:
        from hmaf.data.augment import expand_rows, parse_augment

        parse_augment(augment)  # a bad spec fails before any work
    # Phase 1: preprocess (parallel, cached).
    t1 = time.perf_counter()
    results = _run_phase1(rows, os.path.join(out_dir, "cache"), l_max, long_word_rule,
                          num_workers or os.cpu_count() or 1, progress)
    if augment:  # copies of the good rows, given their originals' clean word timings (aligned once)
        copies = expand_rows(rows, augment, _clean_timings(results, os.path.join(out_dir, "cache")))
        rows, results = list(rows) + copies, results + _run_phase1(
            copies, os.path.join(out_dir, "cache"), l_max, long_word_rule, num_workers or os.cpu_count() or 1, progress)
    return write_corpus(manifest, out_dir, name, rows, results, rejects, embeddings=embeddings, l_max=l_max,
                        long_word_rule=long_word_rule, num_shards=num_shards, labels=labels, seed=seed,
                        progress=progress, phase1_s=time.perf_counter() - t1, t_start=t_start,
                        extra={"augment": augment} if augment else None)


def read_inputs(manifest: str | os.PathLike, out_dir: str | os.PathLike, *, l_max: int, long_word_rule: str,
                labels: Sequence[str] | None, name: str | None
                ) -> tuple[str, str, list[ManifestRow], list[tuple[int, dict[str, str]]]]:
    """Checks the settings, makes the output folders and reads the manifest (before phase 1).

    Returns:
      (absolute out_dir, corpus name, the rows to preprocess, rejects so far as
      (manifest line, rejects.jsonl entry): malformed rows and unknown labels).
    """
    if long_word_rule not in features_lib.LONG_WORD_RULES:
        raise ValueError(f"long_word_rule must be one of {features_lib.LONG_WORD_RULES}, got {long_word_rule!r}")
    if l_max < 1:
        raise ValueError(f"l_max must be >= 1, got {l_max}")
    if labels is not None and len(set(labels)) != len(labels):
        raise ValueError(f"labels has duplicates: {list(labels)}")
    out_dir = os.path.abspath(os.fspath(out_dir))
    name = name or os.path.basename(out_dir.rstrip(os.sep)) or "corpus"
    for folder in (out_dir, os.path.join(out_dir, "cache"), os.path.join(out_dir, "records")):
        os.makedirs(folder, exist_ok=True)
        _remove_temporaries(folder)

    rows, manifest_rejects = read_manifest(manifest)
    rejects: list[tuple[int, dict[str, str]]] = [(r.line, r.to_json()) for r in manifest_rejects]
    if labels is not None:
        allowed = set(labels)
        for row in [r for r in rows if r.label not in allowed]:
            rejects.append((row.line, RowReject(row.line, row.id, row.audio, "unknown_label",
                                                f"{row.audio}: label {row.label!r} is not one of {list(labels)}").to_json()))
        rows = [r for r in rows if r.label in allowed]
    return out_dir, name, rows, rejects


def write_corpus(manifest: str | os.PathLike, out_dir: str, name: str, rows: Sequence[ManifestRow],
                 results: Sequence[dict[str, Any]], rejects: list[tuple[int, dict[str, str]]], *,
                 embeddings: str, l_max: int, long_word_rule: str, num_shards: int | None,
                 labels: Sequence[str] | None, seed: int, progress: bool, phase1_s: float,
                 t_start: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Phase 2: rejects.jsonl, vocabulary, embeddings, shards and dataset.json.

    ``results[i]`` is row i's phase-1 outcome, from either source (the process pool here or
    the Beam pipeline of :mod:`hmaf.data.beam`): a summary from :func:`cache_utterance`
    (its frames in ``out_dir/cache/<key>.npz``) or ``{"status": "reject", "reason", "detail"}``.
    ``extra`` adds keys to dataset.json.
    """
    from hmaf.data.embeddings import build_matrix
    from hmaf.data.vocab import Vocab

    cache_dir = os.path.join(out_dir, "cache")
    records_dir = os.path.join(out_dir, "records")
    rejects = list(rejects)
    good: list[tuple[ManifestRow, dict[str, Any]]] = []
    for row, result in zip(rows, results, strict=True):
        if result["status"] == "ok":
            good.append((row, result))
        else:
            rejects.append((row.line, {"id": row.id, "audio": row.audio, "reason": result["reason"],
                                       "detail": result["detail"]}))
    rejects.sort(key=lambda item: item[0])
    with _atomic_open(os.path.join(out_dir, "rejects.jsonl"), "w") as f:
        for _, reject in rejects:
            f.write(json.dumps(reject, ensure_ascii=False) + "\n")
    reason_counts = collections.Counter(r["reason"] for _, r in rejects)
    for _, reject in rejects:
        log.warning("rejected %s: %s", reject["id"] or reject["audio"], reject["detail"])
    if not good:
        raise ValueError(f"{manifest}: no usable example ({len(rejects)} rejected: {dict(reason_counts)}); "
                         f"see {os.path.join(out_dir, 'rejects.jsonl')}")

    # Phase 2: vocabulary, embeddings, shards, metadata.
    label_names = list(labels) if labels is not None else sorted({row.label for row, _ in good})
    label_index = {label: i for i, label in enumerate(label_names)}
    sentences = [result["words"] for _, result in good]
    vocab = Vocab.build(sentences)
    vocab.save(os.path.join(out_dir, "vocab.txt"))
    matrix, emb_info = build_matrix(embeddings, vocab.words, sentences, seed=seed)
    with _atomic_open(os.path.join(out_dir, "embeddings.npy")) as f:
        np.save(f, matrix.astype(np.float32))

    total_frames = sum(result["frames_total"] for _, result in good)
    num_shards = num_shards or _default_num_shards(total_frames, len(good))
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    shard_names = [f"{name}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    for entry in os.listdir(records_dir):  # shards of an earlier run with another layout
        if entry.removeprefix(".").removesuffix(".done") not in shard_names:
            os.remove(os.path.join(records_dir, entry))
    assignment: list[list[tuple[ManifestRow, str, int]]] = [[] for _ in range(num_shards)]
    for i, (row, result) in enumerate(good):
        assignment[i % num_shards].append((row, result["key"], label_index[row.label]))

    from tqdm.auto import tqdm

    t2 = time.perf_counter()
    digests: dict[bytes, str] = {}
    skipped = 0
    for shard_name, examples in tqdm(list(zip(shard_names, assignment)), desc="write", unit="shard",
                                     disable=not progress):
        path = os.path.join(records_dir, shard_name)
        done_path = os.path.join(records_dir, f".{shard_name}.done")
        key = _shard_key(examples)
        done = None
        if os.path.exists(path) and os.path.exists(done_path):
            with open(done_path, encoding="utf-8") as f:
                done = json.load(f)
        if done is not None and done.get("key") == key and done.get("sha256") == _file_sha256(path):
            digests.update({bytes.fromhex(d): utt_id for d, utt_id in done["examples"]})
            skipped += 1
            continue
        with contextlib.suppress(FileNotFoundError):
            os.remove(done_path)
        shard_digests = _write_shard(path, examples, cache_dir)
        digests.update(shard_digests)
        _write_json(done_path, {"key": key, "sha256": _file_sha256(path),
                                "examples": [[d.hex(), utt_id] for d, utt_id in shard_digests.items()]})
    write_s = time.perf_counter() - t2

    content = hashlib.sha256()
    content.update(json.dumps({"label_names": label_names, "vocab": vocab.words}, ensure_ascii=False).encode())
    for digest in sorted(digests, key=lambda d: (digests[d], d)):
        content.update(digest)

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
        "sample_rate": features_lib.SAMPLE_RATE,
        "win_ms": 25,
        "hop_ms": 10,
        "n_fft": features_lib.N_FFT,
        "fmin": features_lib.FMIN,
        "fmax": features_lib.FMAX,
        "log_floor": features_lib.LOG_FLOOR,
        "l_max": l_max,
        "long_word_rule": long_word_rule,
        "long_words": long_words,
        "num_words": num_words,
        "max_word_frames": max(result["max_frames"] for _, result in good),
        "num_transcript_auto": sum(bool(result["transcript_auto"]) for _, result in good),
        "embeddings": {"spec": embeddings, "dim": int(matrix.shape[1]), "vocab_size": len(vocab),
                       "unknown_share": emb_info["unknown_share"],
                       **{k: v for k, v in emb_info.items() if k not in ("spec", "dim", "vocab_size", "unknown_share")}},
        "shards": shard_names,
        "content_hash": content.hexdigest(),
        "num_rejects": len(rejects),
        "reject_reasons": dict(sorted(reason_counts.items())),
        "audio_seconds": round(sum(result["audio_seconds"] for _, result in good), 3),
        "timing": timing,
        "cached_utterances": sum(bool(result["cached"]) for _, result in good),
        "skipped_shards": skipped,
        "manifest": os.path.abspath(os.fspath(manifest)),
        "hmaf_version": _hmaf_version(),
        **(extra or {}),
    }
    from hmaf.data.normalize import write_speaker_stats

    write_speaker_stats(out_dir, [os.path.join(records_dir, s) for s in shard_names])
    _write_json(os.path.join(out_dir, "dataset.json"), info)
    log.info("%d examples, %d rejected; unknown words: %.1f%% of the vocabulary; "
             "long words (> %d frames, %s): %d of %d (%.2f%%)", len(good), len(rejects),
             100 * emb_info["unknown_share"], l_max, long_word_rule, long_words, num_words,
             100 * long_words / max(num_words, 1))
    return info
