"""A local Dask cluster for ``python -m hmaf.prepare --dask N`` (docs/scaling.md).

:func:`local_cluster` starts a ``dask.distributed.LocalCluster`` of N worker processes
(one thread each: preprocessing is Python and numpy, so processes, not threads, use the
cores) and always shuts it down: on success, on an error, on Ctrl-C and on SIGTERM.
:func:`prepare_on_local_cluster` runs :func:`hmaf.data.beam.prepare_beam` on such a
cluster through Beam's Dask runner. On a real cluster, start the scheduler and workers
with its own tools (dask-jobqueue, dask-kubernetes, ``dask scheduler`` / ``dask worker``)
and pass ``--beam --beam_options="--runner=DaskRunner --dask_client_address=HOST:PORT"``.

Worker processes are started with multiprocessing's spawn method: each re-imports the
launching program's main module, so a script that calls this must do so under
``if __name__ == "__main__":`` (``hmaf.prepare`` does).
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import signal
import threading
from typing import Any, Iterator

from dask.distributed import LocalCluster  # the dask extra: pip install 'hmaf[dask]'

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While inside, SIGTERM unwinds the main thread (SystemExit, status 143) instead of killing
    the process outright, so the ``finally`` blocks shut the cluster down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def local_cluster(num_workers: int) -> Iterator[LocalCluster]:
    """A running ``LocalCluster`` of ``num_workers`` single-threaded worker processes.

    Its address is ``cluster.scheduler_address``. Workers get one BLAS/OpenMP thread
    (Dask's default environment for spawned workers). Closed on leaving the block, however
    it is left; the nannies stop their worker processes.

    Raises:
      ValueError: num_workers < 1.
    """
    if num_workers < 1:
        raise ValueError(f"--dask needs at least one worker, got {num_workers}")

    cluster = None
    with _sigterm_unwinds():
        try:
            cluster = LocalCluster(n_workers=num_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            log.info("local Dask cluster at %s with %d workers", cluster.scheduler_address, num_workers)
            yield cluster
        finally:
            if cluster is not None:
                cluster.close()


def prepare_on_local_cluster(manifest: str, out_dir: str, *, num_workers: int, beam_options: str | None = None,
                             beam_data_dir: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Prepares a corpus on a local Dask cluster of ``num_workers`` processes.

    :func:`hmaf.data.beam_workers.prepare_on_workers` on Beam's Dask runner (what
    :func:`hmaf.data.beam.prepare_beam` runs for the Dask runner, without importing
    TensorFlow into this process). ``beam_options`` may add Dask runner flags (e.g.
    ``--dask_partition_size=8``) but not a runner or a scheduler address: this function
    sets both. Other keywords as :func:`hmaf.data.writer.prepare`.

    Raises:
      ValueError: ``beam_options`` names a runner or a client address, or ``beam_data_dir``
        is given (the workers write into ``out_dir``; there is no tfds dataset).
    """
    extra = shlex.split(beam_options or "")
    clash = [f for f in extra if f.split("=")[0] in ("--runner", "--dask_client_address")]
    if clash:
        raise ValueError(f"--dask starts its own cluster and runner; drop {clash} from --beam_options")
    if beam_data_dir is not None:
        raise ValueError("--beam_data_dir is for the tfds path; with --dask the workers write into --out")
    from hmaf.data.beam_workers import prepare_on_workers

    with local_cluster(num_workers) as cluster:
        flags = ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}", *extra]
        return prepare_on_workers(manifest, out_dir, beam_options=shlex.join(flags), **kwargs)
