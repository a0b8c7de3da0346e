"""Batches by step number, and a background thread that prefetches them onto the devices.

The batch of step ``s`` is a pure function of (examples, batch size, seed, s): resuming at step
``s`` needs no other data position, and a resumed run sees exactly the batches of an
uninterrupted one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

Batch = dict[str, np.ndarray]


class StepBatches:
    """Seeded shuffling of examples over epochs; the batch of a step.

    ``arrays`` holds the examples (all with the same first dimension); each batch array is
    shaped ``(accum_steps, batch_size // accum_steps, ...)``.
    """

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, accum_steps: int, seed: int):
        if batch_size % accum_steps:
            raise ValueError(f"batch_size={batch_size} is not divisible by {accum_steps}")
        sizes = {len(array) for array in arrays.values()}
        if len(sizes) != 1:
            raise ValueError(f"arrays have different numbers of examples: {sizes}")
        self.arrays = arrays
        self.size = sizes.pop()
        self.batch_size = batch_size
        self.accum_steps = accum_steps
        self.seed = seed
        self._epoch = -1
        self._order = np.zeros(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._order = rng.permutation(self.size)
            self._epoch = epoch
        return self._order

    def indices(self, step: int) -> np.ndarray:
        """Indices of the examples of ``step`` (sample ``i`` of the run is in epoch ``i // n``)."""
        n = self.size
        samples = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        out = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(samples // n):
            selected = samples // n == epoch
            out[selected] = self._permutation(int(epoch))[samples[selected] % n]
        return out

    def __call__(self, step: int) -> Batch:
        chosen = self.indices(step)
        return {
            key: array[chosen].reshape(self.accum_steps, -1, *array.shape[1:])
            for key, array in self.arrays.items()
        }


def eval_batches(
    arrays: dict[str, np.ndarray], batch_size: int, max_batches: int, pad: dict[str, float]
) -> list[Batch]:
    """Held-out examples in fixed-size batches; the last one is filled with ``pad`` values
    (masks padded with 0 do not count)."""
    size = len(next(iter(arrays.values())))
    batches = []
    for start in range(0, min(size, batch_size * max_batches), batch_size):
        batch = {}
        for key, array in arrays.items():
            chunk = array[start : start + batch_size]
            missing = batch_size - len(chunk)
            if missing:
                filler = np.full((missing, *array.shape[1:]), pad[key], dtype=array.dtype)
                chunk = np.concatenate([chunk, filler])
            batch[key] = chunk
        batches.append(batch)
    return batches


class Prefetcher:
    """Iterates ``make(step)`` for steps ``start..stop-1`` from a daemon thread.

    ``place`` (e.g. a sharded ``jax.device_put``) runs in the thread too, so host-to-device
    copies overlap with the training step. An exception in the thread is raised by ``next``.
    """

    _END = object()

    def __init__(
        self,
        make: Callable[[int], Batch],
        start: int,
        stop: int,
        place: Callable[[Batch], Any] = lambda batch: batch,
        depth: int = 2,
    ):
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._fill, args=(make, start, stop, place), daemon=True, name="prefetch"
        )
        self.wait_seconds = 0.0
        self._thread.start()

    def _fill(self, make: Callable[[int], Batch], start: int, stop: int, place: Callable) -> None:
        try:
            for step in range(start, stop):
                item = place(make(step))
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as error:  # forwarded to the consumer
            self._queue.put(error)
        self._queue.put(self._END)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        began = time.perf_counter()
        item = self._queue.get()
        self.wait_seconds += time.perf_counter() - began
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.1)
