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


Examples = dict[str, np.ndarray]


class StepBatches:
    """Seeded shuffling of examples over epochs; the batch of a step.

    ``examples`` holds the examples (arrays with the same first dimension), or is a function
    giving those of an epoch (the same number every epoch). Each batch array is shaped
    ``(accum_steps, batch_size // accum_steps, ...)``.
    """

    def __init__(
        self,
        examples: Examples | Callable[[int], Examples],
        batch_size: int,
        accum_steps: int,
        seed: int,
    ):
        if batch_size % accum_steps:
            raise ValueError(f"batch_size={batch_size} is not divisible by {accum_steps}")
        self._examples = examples if callable(examples) else (lambda epoch: examples)
        self._cache: dict[int, tuple[Examples, np.ndarray]] = {}
        self.batch_size = batch_size
        self.accum_steps = accum_steps
        self.seed = seed
        self.size = self._size(self._epoch(0)[0])

    @staticmethod
    def _size(examples: Examples) -> int:
        sizes = {len(array) for array in examples.values()}
        if len(sizes) != 1:
            raise ValueError(f"arrays have different numbers of examples: {sizes}")
        return sizes.pop()

    def _epoch(self, epoch: int) -> tuple[Examples, np.ndarray]:
        """The examples of ``epoch`` and their seeded order (the last two epochs are kept)."""
        if epoch not in self._cache:
            examples = self._examples(epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(self._size(examples))
            self._cache = {e: v for e, v in self._cache.items() if e == epoch - 1}
            self._cache[epoch] = (examples, order)
        return self._cache[epoch]

    def indices(self, step: int, rows: np.ndarray | None = None) -> list[tuple[int, np.ndarray]]:
        """(epoch, indices of its examples) of the samples of ``step`` (only those at ``rows``
        of each micro-batch); sample ``i`` of the run is the ``i % n``-th of epoch ``i // n``."""
        samples = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        if rows is not None:
            samples = samples.reshape(self.accum_steps, -1)[:, rows].reshape(-1)
        epochs = samples // self.size
        return [
            (int(epoch), self._epoch(int(epoch))[1][samples[epochs == epoch] % self.size])
            for epoch in np.unique(epochs)
        ]

    def __call__(self, step: int, rows: np.ndarray | None = None) -> Batch:
        """The batch of ``step``, or (``rows``: positions within a micro-batch) only the
        examples at those positions of each micro-batch: a process's own part of it."""
        parts = [
            {key: array[chosen] for key, array in self._epoch(epoch)[0].items()}
            for epoch, chosen in self.indices(step, rows)
        ]
        return {
            key: np.concatenate([part[key] for part in parts]).reshape(
                self.accum_steps, -1, *parts[0][key].shape[1:]
            )
            for key in parts[0]
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
