"""Batches reach the device ahead of the step: a background thread reads the source,
places each batch (device_put / sharding) and keeps ``size`` of them queued, so host
work (tf.data, packing, transfers) overlaps the device running the previous step.

On a CPU backend the step's XLA threads and the host input work share the same few
cores; ``nice`` lowers the background thread's scheduling priority (and that of the
tf.data threads it starts, which inherit it), meant to let the host work run in the time
the step leaves idle instead of pre-empting the step's threads. The trainer leaves it
off by default (``config.prefetch_nice = 0``): on a shared machine it measured no faster
(benchmarks/README.md, "The trainer's loop against the isolated step").

The order of the batches is the source's, so prefetching never changes results.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any, Callable, Iterable, Iterator

_DONE = object()
_MAX_NICE = 19


def lower_thread_priority(increment: int) -> int | None:
    """Raises the calling thread's nice value by ``increment`` (capped at 19): on Linux
    the nice value is per thread, and threads started by this one inherit it. Returns
    the new value, or None where thread priorities cannot be set (not Linux, no
    permission); the caller then runs at its usual priority."""
    if increment <= 0 or not hasattr(os, "setpriority"):
        return None
    try:
        tid = threading.get_native_id()
        value = min(os.getpriority(os.PRIO_PROCESS, tid) + increment, _MAX_NICE)
        os.setpriority(os.PRIO_PROCESS, tid, value)
        return value
    except OSError as err:
        logging.info("could not lower the input thread's priority (%s): it runs at the usual one", err)
        return None


class Prefetch(Iterator[Any]):
    """Iterates ``place(batch)`` for the batches of ``batches``, computed ``size`` ahead
    in a daemon thread (``size=0``: in the caller's thread). An error in the source is
    raised by the ``next()`` that reaches it. Call :meth:`close` (or use ``with``) to stop
    the thread early; it ends by itself when the source is exhausted.

    ``batches`` may be a zero-argument callable returning the iterable: it is then
    called in the background thread, so that whatever threads the source starts
    (tf.data's) are that thread's children. ``nice``: see :func:`lower_thread_priority`
    (background thread only)."""

    def __init__(self, batches: Iterable[Any] | Callable[[], Iterable[Any]], place: Callable[[Any], Any],
                 size: int = 2, *, nice: int = 0):
        self._source, self._place = batches, place
        self._size, self._nice = int(size), int(nice)
        self._batches: Iterator[Any] | None = None
        self._exhausted = False
        if self._size <= 0:
            return
        self._queue: queue.Queue = queue.Queue(maxsize=self._size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="hmaf-prefetch", daemon=True)
        self._thread.start()

    def _open(self) -> Iterator[Any]:
        if self._batches is None:
            source = self._source
            self._batches = iter(source() if callable(source) and not hasattr(source, "__iter__") else source)
        return self._batches

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        try:
            lower_thread_priority(self._nice)
            for batch in self._open():
                if not self._put(("ok", self._place(batch))):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            self._put(("error", err))
            return
        self._put(("ok", _DONE))

    def __next__(self) -> Any:
        if self._size <= 0:
            return self._place(next(self._open()))
        if self._exhausted:
            raise StopIteration
        kind, item = self._queue.get()
        if kind == "error":
            self._stop.set()
            raise item
        if item is _DONE:
            self._exhausted = True
            raise StopIteration
        return item

    def close(self) -> None:
        if self._size <= 0:
            return
        self._stop.set()
        self._thread.join(timeout=10)

    def __enter__(self) -> "Prefetch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
