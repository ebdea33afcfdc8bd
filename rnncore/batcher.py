"""The request batcher: concurrent requests to one model advanced together, as one batch
of streams through the compiled step.

One worker thread makes every compiled call (they release the GIL, so the server's
event loop keeps parsing requests meanwhile).  Each round it takes every request that
has arrived, and:
  1. feeds all their texts as one batch of streams (StackKernel.feed_rows);
  2. answers the `next` requests from their rows (one softmax each);
  3. runs the `suggest` requests' word beams, and the `complete` requests' beams, as one
     batch per setting (StackKernel.word_beam);
  4. adds the `sample` requests to the streams being sampled, and advances every such
     stream by one chunk of characters as one batch (StackKernel.sample_rows), each
     with its own temperature, top-k, top-p and random generator, so a long sample
     never holds up the short requests that arrive while it runs.
A request that arrives alone is run at once.  Under load (the previous round held
more than one request) the worker waits up to `gather` seconds for as many requests
as the previous round had, so the clients a round answered come back into one round.

Results equal the Python API's (model.next_char_probs, suggest, complete, sample with
the same seed), up to the rounding of a batched product against a single one (1e-15
relative in float64): the streams of a batch never mix.
"""
import concurrent.futures
import queue
import threading
import time

import numpy as np

from .predict import (beam_from_state, feed_texts, next_probs_of_state,
                      suggest_from_state)
from .sample import StopScanner

#: characters every sampling stream advances per round
CHUNK = 32


class Job:
    """One request: its kind, its text as index array, its settings, and the future its
    result is set on.  on_piece (sample jobs only) is called from the worker thread
    with each new piece of text as it is generated."""

    __slots__ = ("kind", "ids", "text", "settings", "future", "on_piece", "state", "rng",
                 "scanner", "remaining", "parts", "submitted", "cancelled")

    def __init__(self, kind, ids, text="", on_piece=None, **settings):
        self.kind, self.ids, self.text, self.settings = kind, ids, text, settings
        self.on_piece = on_piece
        self.cancelled = False    # set when nobody waits for it any more (a closed stream)
        self.future = concurrent.futures.Future()
        self.submitted = time.perf_counter()


def _settle(job, result=None, error=None):
    """Set a job's result (or error), unless it is settled already or its caller has
    given up on it (cancelled)."""
    try:
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass


class Batcher:
    """Runs Jobs for `model` on a worker thread, batching those that arrive together.

    gather: seconds to wait for more requests when the previous round held several
    (0: never wait).  chunk: characters a sampling stream advances per round.
    max_batch: the most requests a round takes; 1 serves one request at a time, start to
    end (for comparison: bench/serve.py).
    """

    KINDS = ("next", "suggest", "complete", "sample")

    def __init__(self, model, gather=0.002, chunk=CHUNK, max_batch=256, start=True):
        self.model = model
        self.gather, self.chunk, self.max_batch = gather, chunk, max_batch
        self.queue = queue.Queue()
        self.streams = []           # sample jobs being generated
        self.rounds = 0             # rounds run, and the requests they held
        self.round_sizes = []       # (for the tests and the benchmark) the last rounds'
        self._last_round = 1
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="rnncore-batcher",
                                        daemon=True)
        if start:
            self.start()

    def start(self):
        """Start the worker (done by the constructor unless start=False)."""
        self._thread.start()

    # ---- the caller's side -------------------------------------------------------
    def submit(self, job):
        """Queue a Job; returns its concurrent.futures.Future."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        if job.kind not in self.KINDS:
            raise ValueError(f"a job's kind is one of {', '.join(self.KINDS)}, got "
                             f"{job.kind!r}")
        self.queue.put(job)
        return job.future

    def close(self, timeout=10):
        """Stop the worker once the requests under way are answered."""
        self._closed = True
        self.queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ---- the worker ----------------------------------------------------------------
    def _take(self):
        """The requests of the next round (blocking while there is nothing to do);
        None once closed."""
        jobs = []
        if self.max_batch == 1 and self.streams:
            return jobs      # one at a time: the sample under way runs to its end first
        if not self.streams:
            job = self.queue.get()
            if job is None:
                return None
            jobs.append(job)
        wanted = min(self._last_round, self.max_batch)
        deadline = time.perf_counter() + self.gather
        while len(jobs) < self.max_batch:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                # under load, give the clients the last round answered time to return
                left = deadline - time.perf_counter()
                if len(jobs) + len(self.streams) >= wanted or left <= 0 or self.streams:
                    break
                try:
                    job = self.queue.get(timeout=left)
                except queue.Empty:
                    break
            if job is None:
                self._closed = True
                break
            jobs.append(job)
        return jobs

    def _run(self):
        while True:
            jobs = self._take()
            if jobs is None:
                break
            self._last_round = max(1, len(jobs) + len(self.streams))
            self.rounds += 1
            self.round_sizes = (self.round_sizes + [self._last_round])[-1000:]
            try:
                self._round(jobs)
            except BaseException as e:   # a bug: fail these requests, keep serving
                for job in jobs + self.streams:
                    _settle(job, error=e)
                self.streams = []
            if self._closed and self.queue.empty() and not self.streams:
                break
        for job in self.streams:
            _settle(job, error=RuntimeError("the server is stopping"))

    def _round(self, jobs):
        model = self.model
        if jobs:
            state = feed_texts(model, [job.ids for job in jobs])
            rows = {id(job): r for r, job in enumerate(jobs)}
            nexts = [job for job in jobs if job.kind == "next"]
            if nexts:
                probs = next_probs_of_state(model, np.ascontiguousarray(
                    state[:, [rows[id(j)] for j in nexts]]))
                for job, p in zip(nexts, probs):
                    _settle(job, p)
            groups = {}
            for job in jobs:
                if job.kind in ("suggest", "complete"):
                    key = (job.kind,) + tuple(sorted(job.settings.items()))
                    groups.setdefault(key, []).append(job)
            for key, group in groups.items():
                sub = np.ascontiguousarray(state[:, [rows[id(j)] for j in group]])
                s = group[0].settings
                if key[0] == "suggest":
                    found = suggest_from_state(model, sub, [j.text for j in group], s["k"],
                                               s["max_chars"], s["beam"])
                else:
                    found = beam_from_state(model, sub, s["length"], s["beam"])
                for job, result in zip(group, found):
                    _settle(job, result)
            for job in jobs:
                if job.kind == "sample":
                    self._start_stream(job, state[:, rows[id(job)]])
        if self.streams:
            self._advance()

    def _start_stream(self, job, state):
        s = job.settings
        job.state = np.ascontiguousarray(state[:, None, :])
        job.rng = np.random.default_rng(s["seed"])
        job.scanner = StopScanner(s["stops"])
        job.remaining = s["length"]
        job.parts = []
        if job.remaining == 0:
            _settle(job, "")
            return
        self.streams.append(job)

    def _advance(self):
        """Every sampling stream one chunk further, as one batch."""
        streams = self.streams
        B = len(streams)
        size = min(self.chunk, max(j.remaining for j in streams))
        state = np.ascontiguousarray(np.concatenate([j.state for j in streams], axis=1))
        uniforms = np.zeros((size, B))
        for b, job in enumerate(streams):
            m = min(size, job.remaining)
            if not job.settings["greedy"]:
                uniforms[:m, b] = job.rng.random(m)
        temperature = np.array([0.0 if j.settings["greedy"] else j.settings["temperature"]
                                for j in streams])
        top_k = np.array([j.settings["top_k"] for j in streams], np.intp)
        top_p = np.array([j.settings["top_p"] for j in streams])
        out = np.empty((size, B), np.intp)
        self.model.generation_kernel().sample_rows(state, out, uniforms, temperature, top_k,
                                             top_p)
        decode = self.model.vocab.decode
        still = []
        for b, job in enumerate(streams):
            m = min(size, job.remaining)
            piece = job.scanner.cut(decode(out[:m, b]))
            job.remaining -= m
            if piece:
                job.parts.append(piece)
                if job.on_piece is not None:
                    job.on_piece(piece)
            if job.cancelled:
                job.future.cancel()
            elif job.scanner.stopped or job.remaining == 0:
                _settle(job, "".join(job.parts))
            else:
                job.state = np.ascontiguousarray(state[:, b:b + 1])
                still.append(job)
        self.streams = still
