"""Corpus preparation with both phases on the Beam workers, over a shared file system.

:func:`prepare_on_workers` is the path :func:`hmaf.data.beam.prepare_beam` takes when the
workers can write into the output folder (``worker_writes=True``; the default on the Dask
runner). Two Beam pipelines of ``Create`` and ``ParDo`` only, so every runner can run them,
the Dask runner included (it cannot run the tensorflow-datasets writer of the tfds path):

1. **Rows.** Each worker preprocesses its rows exactly as the process pool of
   :func:`hmaf.data.writer.prepare` does (:func:`hmaf.data.pool.process_row`), and
   stores each utterance in the writer's cache (:mod:`hmaf.data.cache`), ``OUT/cache/<key>.npz``. What the driver
   needs about a row (its summary: words, frame counts, timings; or its reject) is written
   per bundle to ``OUT/.beam_outcomes/<hash of the bundle's manifest lines>.jsonl``. A row
   cached by an earlier run is not preprocessed again.
2. **Vocabulary.** The driver reads the outcomes (no frames), builds the vocabulary and the
   embeddings (in :func:`hmaf.data.writer.write_corpus`) and assigns example i (manifest
   order, good rows only) to shard ``i % num_shards``, as the normal path does.
3. **Shards.** Each worker writes whole shards from the cache to a staged name fixed by
   the shard's name and content key, ``records/.NAME.staged-<key>``, atomically (temp file,
   then rename), with a ``.json`` beside it: the shard's sha256, size and example digests.
   The driver only checks the size, renames the staged file onto ``records/NAME`` and writes
   the ``.NAME.done`` marker the normal path writes after a shard. ``write_corpus`` then
   finds every shard complete (as on a resumed run), collects the digests from the markers
   and writes ``dataset.json``.

Frames never pass through the driver's memory; it reads each shard once, streaming, when
``write_corpus`` checks the shard's sha256 against its marker. A task that dies (a killed
worker) is run again by the runner; every file it writes is either complete under its
final name or a temporary that the driver removes, and two runs of one task write the same
bytes, so a retry changes nothing. The result has the normal path's ``content_hash``.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import time
from typing import Any, Callable, Iterator, Sequence

import apache_beam as beam
import numpy as np

from hmaf.data import cache, pool, shards, writer
from hmaf.data.manifest import ManifestRow
from hmaf.data.settings import PrepareSettings
from hmaf.io import TMP_MARK, atomic_open, atomic_write_json, remove_temporaries

log = logging.getLogger(__name__)

OUTCOMES_DIR = ".beam_outcomes"
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
# Rows per Dask task when the user does not choose (--dask_npartitions / --dask_partition_size):
# small tasks balance the workers and lose little when one is killed.
ROWS_PER_TASK = 2
MAX_TASKS = 2000

_warmed_up = False  # per process: see _PreprocessToCache.setup

ShardExamples = list[shards.ShardItem]  # (row, cache key, label index) in shard order


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


class _PreprocessToCache(beam.DoFn):
    """Manifest rows -> cache entries on the shared disk, and one outcome file per bundle."""

    def __init__(self, cache_dir: str, outcome_dir: str, l_max: int, long_word_rule: str, aligner: str,
                 boundaries: str):
        self._cache_dir = cache_dir
        self._outcome_dir = outcome_dir
        self._l_max = l_max
        self._long_word_rule = long_word_rule
        self._aligner = aligner
        self._boundaries = boundaries
        self._outcomes: list[dict[str, Any]] = []

    def setup(self) -> None:
        # The Dask runner sets a DoFn up for every task (bundle): pay the imports and FFT
        # set-up once per worker process, not per task.
        global _warmed_up
        if not _warmed_up:
            pool.warm_up()
            _warmed_up = True

    def start_bundle(self) -> None:
        self._outcomes = []

    def process(self, row: ManifestRow) -> Iterator[Any]:
        key = cache.cache_key(row, self._l_max, self._long_word_rule, self._aligner, self._boundaries)
        result = cache.cached_result(key, self._cache_dir)
        if result is None:
            result = pool.process_row(row, key, self._cache_dir, self._l_max, self._long_word_rule, self._aligner,
                                      self._boundaries)
        beam.metrics.Metrics.counter("hmaf", "examples" if result["status"] == "ok"
                                     else f"rejected_{result['reason']}").inc()
        self._outcomes.append({"line": row.line, "id": row.id, "result": result})
        return iter(())

    def finish_bundle(self) -> None:
        if not self._outcomes:
            return
        # Named by the bundle's rows: a retried bundle rewrites the same file, never a second one.
        lines = json.dumps(sorted(o["line"] for o in self._outcomes)).encode()
        path = os.path.join(self._outcome_dir, hashlib.sha256(lines).hexdigest()[:32] + ".jsonl")
        with atomic_open(path, "w") as f:
            for outcome in self._outcomes:
                f.write(json.dumps(outcome, ensure_ascii=False, default=_json_default) + "\n")
        self._outcomes = []


def staged_path(records_dir: str, shard_name: str, shard_key: str) -> str:
    """Where a worker leaves a finished shard for the driver to rename."""
    return os.path.join(records_dir, f".{shard_name}.staged-{shard_key[:32]}")


class _WriteShard(beam.DoFn):
    """(shard name, shard key, examples) -> the shard at its staged name, and its metadata beside it."""

    def __init__(self, records_dir: str, cache_dir: str):
        self._records_dir = records_dir
        self._cache_dir = cache_dir

    def process(self, task: tuple[str, str, ShardExamples]) -> Iterator[Any]:
        shard_name, shard_key, examples = task
        path = staged_path(self._records_dir, shard_name, shard_key)
        digests = shards._write_shard(path, examples, self._cache_dir)
        atomic_write_json(path + ".json", {
            "key": shard_key, "sha256": cache.file_sha256(path), "size": os.path.getsize(path),
            "examples": [[d.hex(), utt_id] for d, utt_id in digests.items()]})
        beam.metrics.Metrics.counter("hmaf", "shards_written").inc()
        return iter(())


def pipeline_options(flags: str | None) -> beam.options.pipeline_options.PipelineOptions:
    """Beam pipeline options from a command-line string, e.g. "--runner=DirectRunner --direct_num_workers=2".

    ``--runner=DaskRunner`` is accepted as a short name: Beam 2.77 knows the Dask runner only
    by its module path.
    """
    options = beam.options.pipeline_options.PipelineOptions(shlex.split(flags or ""))
    standard = options.view_as(beam.options.pipeline_options.StandardOptions)
    if standard.runner == "DaskRunner":
        standard.runner = DASK_RUNNER
    return options


def is_dask(options: beam.options.pipeline_options.PipelineOptions) -> bool:
    """Whether the options name Beam's Dask runner (short or full name)."""
    runner = options.view_as(beam.options.pipeline_options.StandardOptions).runner
    return runner in ("DaskRunner", DASK_RUNNER)


def _set_dask_tasks(options: beam.options.pipeline_options.PipelineOptions, num_items: int,
                    per_task: int | None) -> beam.options.pipeline_options.PipelineOptions:
    """Dask partitions of ``Create``: the Dask runner ignores ``Reshuffle``, so they are the tasks.

    ``per_task`` None keeps what the user chose, or splits into tasks of ROWS_PER_TASK items.
    """
    from apache_beam.runners.dask.dask_runner import DaskOptions

    dask = options.view_as(DaskOptions)
    if per_task is None and (dask.npartitions or dask.partition_size):
        return options
    per_task = per_task or max(ROWS_PER_TASK, -(-num_items // MAX_TASKS))
    dask.partition_size = None
    dask.npartitions = max(1, -(-num_items // per_task))
    return options


def run_pipeline(options: beam.options.pipeline_options.PipelineOptions,
                 build: Callable[[beam.Pipeline], Any]) -> None:
    """Builds and runs one pipeline and waits for it; on the Dask runner closes its client after.

    Raises:
      RuntimeError: the pipeline did not finish successfully.
    """
    pipeline = beam.Pipeline(options=options)
    build(pipeline)
    result = pipeline.run()
    try:
        state = result.wait_until_finish()
    except BaseException:  # Ctrl-C or a failed task: stop what is still queued on the cluster
        with contextlib.suppress(Exception):
            result.cancel()
        raise
    finally:
        client = getattr(result, "client", None)  # the Dask runner opens one and never closes it
        if client is not None:
            client.close()
    if state != beam.runners.runner.PipelineState.DONE:
        raise RuntimeError(f"the Beam pipeline ended in state {state}")


def _read_outcomes(outcome_dir: str, rows: Sequence[ManifestRow]) -> list[dict[str, Any]]:
    """Phase-1 results in row order, from the bundles' outcome files.

    Raises:
      ValueError: a row has no outcome (the pipeline lost it).
    """
    by_line: dict[int, dict[str, Any]] = {}
    for entry in sorted(os.listdir(outcome_dir)):
        if entry.endswith(".jsonl") and TMP_MARK not in entry:
            with open(os.path.join(outcome_dir, entry), encoding="utf-8") as f:
                for line in f:
                    outcome = json.loads(line)
                    by_line[outcome["line"]] = outcome["result"]
    missing = [row.id for row in rows if row.line not in by_line]
    if missing:  # never write a corpus that silently lacks rows
        raise ValueError(f"the Beam pipeline neither kept nor rejected {len(missing)} row(s): {missing[:5]}")
    return [by_line[row.line] for row in rows]


def _shard_plan(name: str, rows: Sequence[ManifestRow], results: Sequence[dict[str, Any]],
                labels: Sequence[str] | None, num_shards: int | None) -> list[tuple[str, str, ShardExamples]]:
    """The shards write_corpus will expect: names, content keys and examples, in its own order.

    Mirrors write_corpus: label indices over the good rows' labels (or ``labels``), example i
    of the good rows in manifest order to shard ``i % num_shards``.
    """
    good = [(row, result) for row, result in zip(rows, results, strict=True) if result["status"] == "ok"]
    if not good:
        return []
    label_names = list(labels) if labels is not None else sorted({row.label for row, _ in good})
    label_index = {label: i for i, label in enumerate(label_names)}
    num_shards = num_shards or shards.default_num_shards(sum(r["frames_total"] for _, r in good), len(good))
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    assignment: list[ShardExamples] = [[] for _ in range(num_shards)]
    for i, (row, result) in enumerate(good):
        assignment[i % num_shards].append((row, result["key"], label_index[row.label]))
    names = [f"{name}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    return [(shard_name, shards._shard_key(examples), examples) for shard_name, examples in zip(names, assignment)]


def _is_complete(records_dir: str, shard_name: str, shard_key: str) -> bool:
    """A shard an earlier run finished, as write_corpus decides it (same key, same sha256)."""
    path = os.path.join(records_dir, shard_name)
    done_path = os.path.join(records_dir, f".{shard_name}.done")
    if not (os.path.exists(path) and os.path.exists(done_path)):
        return False
    with open(done_path, encoding="utf-8") as f:
        done = json.load(f)
    return done.get("key") == shard_key and done.get("sha256") == cache.file_sha256(path)


def _install_shard(records_dir: str, shard_name: str, shard_key: str) -> None:
    """Renames a worker's staged shard into place and writes its completion marker.

    Raises:
      ValueError: the staged shard is missing or not the size its worker reported.
    """
    staged = staged_path(records_dir, shard_name, shard_key)
    with open(staged + ".json", encoding="utf-8") as f:
        meta = json.load(f)
    if meta["key"] != shard_key or os.path.getsize(staged) != meta["size"]:
        raise ValueError(f"{staged}: staged shard does not match its metadata")
    done_path = os.path.join(records_dir, f".{shard_name}.done")
    with contextlib.suppress(FileNotFoundError):
        os.remove(done_path)  # no marker may vouch for the old file while it is replaced
    os.replace(staged, os.path.join(records_dir, shard_name))
    atomic_write_json(done_path, {"key": shard_key, "sha256": meta["sha256"], "examples": meta["examples"]})
    os.remove(staged + ".json")


def prepare_on_workers(manifest: str | os.PathLike, out_dir: str | os.PathLike, *,
                       beam_options: str | None = None, **values: Any) -> dict[str, Any]:
    """Prepares a corpus directory with phase 1 and the shard writing on the Beam workers.

    ``out_dir`` must be on storage the workers share with this process (the same path on
    every machine). ``beam_options``: Beam pipeline flags as one string (default the
    DirectRunner). ``values``: the fields of :class:`hmaf.data.settings.PrepareSettings`
    (``aligner`` and ``boundaries`` included: the workers align with them); all but ``augment``.

    Returns:
      The content of ``dataset.json``, with ``beam_counters`` (counted here from the
      outcome files: the Dask runner reports no Beam metrics), ``beam_options``,
      ``shards_written_on_workers`` and ``worker_timing``.

    Raises:
      ValueError: bad settings (``augment`` among them: not available on the workers yet),
        no usable example, or a row the pipeline neither kept nor rejected.
    """
    t_start = time.perf_counter()
    settings = PrepareSettings(**values)
    if settings.augment:
        raise ValueError("augment is not available with the Dask runner or worker_writes yet")
    options = pipeline_options(beam_options)
    out_dir, name, rows, rejects = writer.read_inputs(manifest, out_dir, settings)
    cache_dir = os.path.join(out_dir, "cache")
    records_dir = os.path.join(out_dir, "records")
    outcome_dir = os.path.join(out_dir, OUTCOMES_DIR)
    shutil.rmtree(outcome_dir, ignore_errors=True)  # outcomes of an earlier run, maybe of other rows
    os.makedirs(outcome_dir)
    dask = is_dask(options)

    t1 = time.perf_counter()
    if rows:
        if dask:
            _set_dask_tasks(options, len(rows), None)
        run_pipeline(options, lambda p: (
            p | "Rows" >> beam.Create(rows)
            | "Spread" >> beam.Reshuffle()  # other runners: one row per element, spread over workers
            | "Preprocess" >> beam.ParDo(_PreprocessToCache(cache_dir, outcome_dir, settings.l_max, settings.long_word_rule,
                                                           settings.aligner, settings.boundaries))))
    results = _read_outcomes(outcome_dir, rows)
    remove_temporaries(cache_dir)  # left by a killed worker; every task has ended
    phase1_s = time.perf_counter() - t1

    t2 = time.perf_counter()
    plan = _shard_plan(name, rows, results, settings.labels, settings.num_shards)
    todo = [task for task in plan if not _is_complete(records_dir, task[0], task[1])]
    if todo:
        if dask:
            _set_dask_tasks(options, len(todo), 1)  # one shard per task
        run_pipeline(options, lambda p: (
            p | "Shards" >> beam.Create(todo) | "Spread" >> beam.Reshuffle()
            | "Write" >> beam.ParDo(_WriteShard(records_dir, cache_dir))))
        for shard_name, shard_key, _ in todo:
            _install_shard(records_dir, shard_name, shard_key)
    shards_s = time.perf_counter() - t2
    log.info("workers: %d rows in %.1f s, %d of %d shards in %.1f s", len(rows), phase1_s, len(todo), len(plan),
             shards_s)
    shutil.rmtree(outcome_dir, ignore_errors=True)

    counters = collections.Counter("examples" if r["status"] == "ok" else f"rejected_{r['reason']}" for r in results)
    info = writer.write_corpus(
        manifest, out_dir, name, rows, results, rejects, settings, phase1_s=phase1_s, t_start=t_start,
        extra={"beam_counters": dict(sorted(counters.items())), "beam_options": beam_options or "",
               "skipped_shards": len(plan) - len(todo), "shards_written_on_workers": len(todo),
               "worker_timing": {"phase1_wall_s": round(phase1_s, 3), "shards_wall_s": round(shards_s, 3)}})
    if info["shards"] != [task[0] for task in plan]:  # write_corpus and the plan disagree: a bug here
        raise RuntimeError(f"shard plan {[t[0] for t in plan]} differs from the corpus's {info['shards']}")
    return info
