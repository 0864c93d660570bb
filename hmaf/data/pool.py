"""Phase 1 of corpus preparation: every manifest row preprocessed once, in a process pool.

Each row goes through :func:`hmaf.data.utterance.preprocess_utterance`; its outcome (an
utterance or a reject) is stored in the cache (:mod:`hmaf.data.cache`), so a rerun skips
finished rows. A bad row never stops the run, and neither does a dying worker: its rows
become ``worker_crashed`` rejects that a rerun retries.

Workers never outlive the run: each asks the kernel to kill it when its parent dies
(Linux ``PR_SET_PDEATHSIG``) and also watches its parent's pid (other systems, and a
parent thread ending), so a ``kill -9`` of ``python -m hmaf.prepare`` leaves no process
behind.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from typing import Any, Iterator, Sequence

import numpy as np

from hmaf.data import cache
from hmaf.data import features as features_lib
from hmaf.data.align import DEFAULT_BOUNDARIES
from hmaf.data.manifest import ManifestRow
from hmaf.data.settings import PrepareSettings
from hmaf.data.utterance import PreprocessError, Utterance, preprocess_utterance

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_WATCH_S = 0.5


def preprocess_row(row: ManifestRow, l_max: int, long_word_rule: str, aligner: str = "auto",
                   boundaries: str = DEFAULT_BOUNDARIES) -> Utterance | dict[str, str]:
    """The row's :class:`Utterance`, or a reject ``{"reason", "detail"}``. Never raises for a bad example.

    The one per-row step of phase 1, shared by the process pool here and the Beam
    pipeline (:mod:`hmaf.data.beam`), so both reject the same rows for the same reasons.
    """
    try:
        return preprocess_utterance(row.audio, row.transcript, l_max=l_max, long_word_rule=long_word_rule,
                                    word_timings=row.word_timings, aligner=aligner,
                                    augment=row.augment, boundaries=boundaries)
    except PreprocessError as e:
        return {"reason": e.reason, "detail": str(e)}
    except Exception as e:  # a bug must not cost the other examples
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        return {"reason": "internal_error", "detail": f"{row.audio}: {detail}"}


def process_row(row: ManifestRow, key: str | None, cache_dir: str, l_max: int, long_word_rule: str,
                aligner: str, boundaries: str = DEFAULT_BOUNDARIES) -> dict[str, Any]:
    """Preprocesses one row and caches the outcome. Never raises for a bad example."""
    utt = preprocess_row(row, l_max, long_word_rule, aligner, boundaries)
    if isinstance(utt, dict):
        # An internal error is not cached, so a rerun retries it.
        if key is not None and utt["reason"] != "internal_error":
            cache.cache_reject(key, utt, cache_dir)
        return {"status": "reject", "cached": False, **utt}
    if key is None:  # the file appeared between hashing and decoding: do not cache under no key
        return {"status": "reject", "cached": False, "reason": "unreadable_audio",
                "detail": f"{row.audio}: could not be hashed"}
    return cache.cache_utterance(key, utt, cache_dir)


def warm_up() -> None:
    """Pays a worker's one-time costs (imports of soxr and aeneas, numpy FFT set-up) first.

    Then the per-utterance timings measure the work; the start-up shows in the wall time.
    """
    from hmaf.data import align  # noqa: F401  (aeneas)
    from hmaf.data.audio import resample

    samples = np.random.default_rng(0).normal(0, 0.1, 22050).astype(np.float32)
    features_lib.frame_features(resample(samples, 22050, features_lib.SAMPLE_RATE))


def die_with_parent(parent_pid: int) -> None:
    """Ends this process when ``parent_pid`` (its parent) dies, even by SIGKILL.

    Linux: the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``).
    Everywhere, and when the creating thread rather than the process ends: a daemon thread
    polls the parent pid every :data:`PARENT_WATCH_S` s and exits once it changed (an
    orphan is re-parented).
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # died before the request took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(PARENT_WATCH_S)
        os._exit(1)

    threading.Thread(target=watch, name="hmaf-parent-watch", daemon=True).start()


def _init_worker(parent_pid: int) -> None:
    die_with_parent(parent_pid)
    warm_up()


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


def run_phase1(rows: Sequence[ManifestRow], cache_dir: str, settings: PrepareSettings,
               num_workers: int) -> list[dict[str, Any]]:
    """Outcomes of all rows in row order: cached ones read here, the rest computed in a pool.

    Each outcome is a summary from :func:`hmaf.data.cache.cache_utterance` or
    ``{"status": "reject", "reason", "detail", "cached"}``.
    """
    from tqdm.auto import tqdm

    l_max, long_word_rule, aligner = settings.l_max, settings.long_word_rule, settings.aligner
    boundaries = settings.boundaries
    keys = [cache.cache_key(row, l_max, long_word_rule, aligner, boundaries) for row in rows]
    results = [cache.cached_result(key, cache_dir) for key in keys]
    todo = [i for i, result in enumerate(results) if result is None]
    bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc="preprocess", unit="utt",
               disable=not settings.progress)
    if todo and (num_workers <= 1 or len(todo) == 1):
        warm_up()
        for i in todo:
            results[i] = process_row(rows[i], keys[i], cache_dir, l_max, long_word_rule, aligner, boundaries)
            bar.update()
    elif todo:
        # spawn: workers start clean even when the caller has imported TensorFlow or JAX
        # (their threads make fork unsafe).
        context = multiprocessing.get_context("spawn")
        # One BLAS/OpenMP thread per worker: the processes already fill the cores, and
        # competing OpenBLAS threads made small matrix products ~100x slower on 2 cores.
        with _environment(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"), \
                concurrent.futures.ProcessPoolExecutor(min(num_workers, len(todo)), mp_context=context,
                                                       initializer=_init_worker,
                                                       initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(process_row, rows[i], keys[i], cache_dir, l_max, long_word_rule, aligner,
                                   boundaries): i
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
