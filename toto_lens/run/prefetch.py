"""`Prefetch`: the next items of a list made in a background thread while the caller uses this one.

What a DataLoader's prefetch does for its batches, with one thread and no processes: the extractor
renders and tokenizes batch b + 1 while the model runs batch b. A thread is enough because torch
releases the GIL inside its kernels, and numpy inside its larger array operations.

- Items are made in order, one after the other, by one thread; at most `depth` finished items wait in
  the queue (plus the one being made), so memory stays bounded however long the list.
- An exception in the producer is raised in the consumer, the same object (its type, message and
  traceback), when the consumer reaches the item that failed; nothing hangs.
- `close()` (and leaving the `with` block, on Ctrl-C too) tells the producer to stop, and waits for the
  item it is making, if any: stopping costs at most one item's making.
- depth 0 makes each item in the caller's thread when it is asked for: no thread at all.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_POLL_S = 0.05  # how often a producer blocked on a full queue looks whether it should stop


class Prefetch(Generic[T, R]):
    """Iterate over `make(item) for item in items`, made up to `depth` items ahead in a thread."""

    def __init__(
        self, items: Iterable[T], make: Callable[[T], R], depth: int = 2, name: str = "toto-lens-prefetch"
    ) -> None:
        self.items, self.make, self.depth, self.name = list(items), make, depth, name
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Prefetch[T, R]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[R]:
        if self.depth <= 0:
            for item in self.items:
                yield self.make(item)
            return
        if self._thread is not None:
            raise RuntimeError("a Prefetch is iterated once")
        self._thread = threading.Thread(target=self._produce, name=self.name, daemon=True)
        self._thread.start()
        while True:
            kind, value = self._queue.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return

    def close(self) -> None:
        """Stop the producer and wait for it (at most the item it is making). Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        while not self._queue.empty():  # drop made items now rather than with this object
            self._queue.get_nowait()

    def _produce(self) -> None:
        try:
            for item in self.items:
                if self._stop.is_set():
                    return
                if not self._put(("item", self.make(item))):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(("error", e))
            return
        self._put(("end", None))

    def _put(self, entry: tuple[str, object]) -> bool:
        """Put, unless told to stop while the queue is full; True when it was put."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False
