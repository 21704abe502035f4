"""One backend shared by several engines: their concurrent calls run as one batch.

Each stream's inference thread calls ``embed_audio`` / ``localize`` with batch 1, as it
does with a backend of its own. The calls go into one queue; a single batcher thread
takes the first waiting call, then collects more of the same kind until every
registered stream has one in, ``max_batch`` is reached or ``max_wait`` has passed since
the first arrived — so batching adds at most ``max_wait`` to any frame's latency — and
runs them as one call of the wrapped backend. Only the batcher thread touches the
backend, so runtimes that are not thread-safe (TensorRT execution contexts) are safe.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np


def _cat(parts: list):
    """Concatenate batch-1 inputs along axis 0 (numpy arrays or torch tensors)."""
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=0)
    import torch

    return torch.cat(parts, dim=0)


@dataclass
class _Call:
    kind: str  # "audio" or "visual"
    args: tuple
    done: threading.Event = field(default_factory=threading.Event)
    result: object = None
    error: BaseException | None = None


class BatchingBackend:
    """Wraps a backend (hearflow.runtime.backends) for ``streams`` engines at once.

    backend: the loaded backend; its attributes (preprocess, name, source, uses_flow,
        precision …) are read through this wrapper unchanged.
    max_wait: longest time (seconds) the first call of a batch waits for others.
    max_batch: largest batch (the export's TensorRT profile bounds it; 0 = streams).
    """

    def __init__(self, backend, max_wait: float = 0.004, max_batch: int = 0):
        self.backend = backend
        self.max_wait = float(max_wait)
        self.max_batch = int(max_batch)
        self.streams = 0
        """Engines sharing this backend (register()); a batch never waits for more."""
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._held: _Call | None = None  # a call of the other kind that ended a batch
        self._stats: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0])
        self._stats_lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="batcher", daemon=True)
        self._thread.start()

    def __getattr__(self, name):  # preprocess, name, source, uses_flow, precision, ...
        return getattr(self.backend, name)

    def register(self) -> None:
        """One more engine shares the backend."""
        self.streams += 1

    def unregister(self) -> None:
        """An engine has stopped: batches no longer wait for it."""
        self.streams = max(0, self.streams - 1)

    # --- what engines call -----------------------------------------------------------
    def embed_audio(self, spec):
        return self._submit("audio", (spec,))

    def localize(self, frames, flows, emb):
        return self._submit("visual", (frames, flows, emb))

    def _submit(self, kind: str, args: tuple):
        call = _Call(kind, args)
        self._queue.put(call)
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    # --- the batcher thread ----------------------------------------------------------
    def _serve(self) -> None:
        while True:
            first = self._held if self._held is not None else self._queue.get()
            self._held = None
            if first is None:
                return
            batch = self._collect(first)
            self._run(batch)

    def _collect(self, first: _Call) -> list[_Call]:
        """``first`` and the calls of its kind that arrive within max_wait."""
        batch = [first]
        limit = max(1, min(self.max_batch or self.streams, self.streams))  # never wait for absent streams
        deadline = time.monotonic() + self.max_wait
        while len(batch) < limit:
            remaining = deadline - time.monotonic()
            try:
                call = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if call is None:  # close(): stop after this batch
                self._queue.put(None)
                break
            if call.kind != first.kind:
                self._held = call  # the first of the next batch
                break
            batch.append(call)
        return batch

    def _run(self, batch: list[_Call]) -> None:
        kind, n = batch[0].kind, len(batch)
        start = time.perf_counter()
        try:
            if kind == "audio":
                out = self.backend.embed_audio(_cat([c.args[0] for c in batch]))
            else:
                flows = [c.args[1] for c in batch]
                out = self.backend.localize(_cat([c.args[0] for c in batch]),
                                            None if flows[0] is None else _cat(flows),
                                            _cat([c.args[2] for c in batch]))
            for i, c in enumerate(batch):
                c.result = out[i:i + 1]
        except BaseException as exc:  # every caller of this batch gets the error
            for c in batch:
                c.error = exc
        with self._stats_lock:
            s = self._stats[(kind, n)]
            s[0] += 1
            s[1] += time.perf_counter() - start
        for c in batch:
            c.done.set()

    def report(self) -> dict:
        """Calls per batch size and what each cost: {kind: {batch: {calls, ms_per_call, ms_per_item}}}."""
        out: dict = {"max_wait_ms": round(self.max_wait * 1000, 3), "streams": self.streams}
        with self._stats_lock:
            for (kind, n), (calls, seconds) in sorted(self._stats.items()):
                out.setdefault(kind, {})[str(n)] = {
                    "calls": int(calls), "ms_per_call": round(seconds / calls * 1000, 3),
                    "ms_per_item": round(seconds / calls / n * 1000, 3)}
        return out


__all__ = ["BatchingBackend"]
