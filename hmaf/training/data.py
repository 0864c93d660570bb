"""Batches reach the device ahead of the step: a background thread reads the source,
places each batch (device_put / sharding) and keeps ``size`` of them queued, so host
work (tf.data, packing, transfers) overlaps the device running the previous step.

The order of the batches is the source's, so prefetching never changes results.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator

_DONE = object()


class Prefetch(Iterator[Any]):
    """Iterates ``place(batch)`` for the batches of ``batches``, computed ``size`` ahead
    in a daemon thread (``size=0``: in the caller's thread). An error in the source is
    raised by the ``next()`` that reaches it. Call :meth:`close` (or use ``with``) to stop
    the thread early; it ends by itself when the source is exhausted."""

    def __init__(self, batches: Iterable[Any], place: Callable[[Any], Any], size: int = 2):
        self._batches, self._place = iter(batches), place
        self._size = int(size)
        self._exhausted = False
        if self._size <= 0:
            return
        self._queue: queue.Queue = queue.Queue(maxsize=self._size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="hmaf-prefetch", daemon=True)
        self._thread.start()

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
            for batch in self._batches:
                if not self._put(("ok", self._place(batch))):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            self._put(("error", err))
            return
        self._put(("ok", _DONE))

    def __next__(self) -> Any:
        if self._size <= 0:
            return self._place(next(self._batches))
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
