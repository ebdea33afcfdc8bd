"""The request scheduler: concurrent requests to one model advanced together in rounds,
long work on a lane of its own, so that no request stalls another.

The round lane (one worker thread, every compiled call with the GIL released, so the
event loop keeps reading requests) runs rounds.  Each round it takes every request that
has arrived (a cancelled one is dropped), and:
  1. looks up each new text's longest prefix in the state cache (rnncore.serve.cache)
     and feeds every text one slice further (at most `feed_budget` characters in all,
     a slice ending at the cache's next regular position or at the text's end), as one
     batch of streams from their own states, keeping the states the cache wants;
  2. answers the `next` requests whose text is fed (one softmax each), and runs the
     `suggest` and `complete` requests' searches as one batch per setting;
  3. adds the `sample` requests to the streams being sampled, and advances every such
     stream by one chunk of characters as one batch, each with its own settings.
So a request waits for at most a round's slices of the others, not for their whole
run.  A search is one compiled call that cannot be sliced: one whose steps × beams
exceed `long_work` (a 4,096-character beam of 64, a wide word search over 128
characters) runs on the long lane instead, a second thread with a kernel of its own on
one thread at a lower OS priority, one search after the other.  A request that arrives
alone runs at once; under load (the previous round held several) the round lane waits
up to `gather` seconds for as many as the previous round had.

A request's result is the same bits whether it runs alone or beside any others: every
stream of a batch is computed as it would be alone (csrc/gemm.h sums each row in one
order whatever the batch), on either lane and any thread count; and a text fed from a
cached state is the bits of the text fed whole.  Results equal the Python API's
(model.next_char_probs, suggest, beam_search, sample with the same seed).
"""
import concurrent.futures
import os
import queue
import threading
import time

import numpy as np

from ..layout import state_rows
from ..predict import (beam_from_state, next_probs_of_state, start_text,
                       suggest_from_state, text_ids)
from ..sample import StopScanner, feed_texts
from .cache import StateCache

#: characters every sampling stream advances per round
CHUNK = 32
#: characters fed per round in all (each text feeding gets at least MIN_SLICE of them)
FEED_BUDGET = 4096
MIN_SLICE = 16
#: a search whose steps × beams exceed this runs on the long lane
LONG_WORK = 8192
#: the state cache's default size
CACHE_BYTES = 64 << 20
#: seconds an idle worker waits before it looks again whether it should end
POLL = 0.05
#: what close() and stop() put on the queues to wake the workers at once
_WAKE = object()


class Stopping(RuntimeError):
    """The server stopped before the request was answered."""


class Job:
    """One request: its kind ("next", "suggest", "complete", "sample"), the characters to
    feed (ids: index array), the text as the model saw it (for suggest), its settings,
    and the future its result is set on.  on_piece (sample jobs only) is called from the
    worker thread with each new piece of text as it is generated.  Setting `cancelled`
    (nobody waits for it any more) drops it within a round."""

    __slots__ = ("kind", "ids", "text", "settings", "future", "on_piece", "cancelled",
                 "key", "fed", "state", "rng", "scanner", "remaining", "parts")

    def __init__(self, kind, ids, text="", on_piece=None, key=None, **settings):
        self.kind, self.ids, self.text, self.settings = kind, ids, text, settings
        self.on_piece = on_piece
        self.key = key        # the characters of ids as a str (the cache's key)
        self.cancelled = False
        self.future = concurrent.futures.Future()
        self.fed, self.state = 0, None

    @classmethod
    def predicting(cls, model, kind, text, ids=None, **settings):
        """A `next` or `suggest` job for `text` (as the model sees it; ids: its indices,
        when they are known): the empty text is fed as the start text, as
        rnncore.predict does."""
        if ids is None or len(ids) == 0:
            ids = text_ids(model, text)
        return cls(kind, ids, text=text, key=text or start_text(model.vocab), **settings)

    def search_key(self):
        """The settings a batch of searches shares."""
        s = self.settings
        if self.kind == "suggest":
            return self.kind, s["k"], s["max_chars"], s["beam"]
        return self.kind, s["length"], s["beam"]

    def work(self):
        """Steps × beams of a search job (its cost, for the choice of lane)."""
        s = self.settings
        if self.kind == "suggest":
            return s["max_chars"] * s["beam"]
        return s["length"] * s["beam"] if self.kind == "complete" else 0


def _settle(job, result=None, error=None):
    """Set a job's result (or error), unless it is settled already."""
    try:
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass


def _drop(job):
    job.future.cancel()


class Batcher:
    """Runs Jobs for `model`: rounds on one worker thread, long searches on another.

    gather: seconds to wait for more requests when the previous round held several
    (0: never wait).  chunk: characters a sampling stream advances per round.
    max_batch: the most requests a round takes; 1 serves one request at a time, start
    to end (for comparison).  cache_bytes: the state cache's bound.  long_work: steps ×
    beams from which a search runs on the long lane.  feed_budget: characters fed per
    round in all.
    """

    KINDS = ("next", "suggest", "complete", "sample")

    def __init__(self, model, gather=0.002, chunk=CHUNK, max_batch=256,
                 cache_bytes=CACHE_BYTES, long_work=LONG_WORK, feed_budget=FEED_BUDGET,
                 start=True):
        self.model = model
        self.gather, self.chunk, self.max_batch = gather, chunk, max_batch
        self.long_work, self.feed_budget = long_work, feed_budget
        self.cache = StateCache(cache_bytes)
        self.queue = queue.Queue()
        self.feeding = []           # jobs whose text is being fed
        self.streams = []           # sample jobs being generated
        self.rounds = 0
        self.round_sizes = []       # the last rounds' requests (tests and benchmarks)
        self.answered = dict.fromkeys(self.KINDS, 0)
        self._last_round = 1
        self._closed = self._stopping = False
        self._stop_at = None
        self._long = queue.Queue()  # (job, state) for the long lane
        self._long_running = None
        self._threads = [threading.Thread(target=self._run, name="rnncore-rounds",
                                          daemon=True),
                         threading.Thread(target=self._run_long, name="rnncore-long",
                                          daemon=True)]
        if start:
            self.start()

    def start(self):
        """Start the workers (done by the constructor unless start=False)."""
        for thread in self._threads:
            thread.start()

    # ---- the caller's side -----------------------------------------------------------
    def submit(self, job):
        """Queue a Job; returns its concurrent.futures.Future (Stopping once stopped)."""
        if self._closed or self._stopping:
            raise Stopping("the server is stopping")
        if job.kind not in self.KINDS:
            raise ValueError(f"a job's kind is one of {', '.join(self.KINDS)}, got "
                             f"{job.kind!r}")
        self.queue.put(job)
        return job.future

    def stop(self, grace=0.0):
        """Take no more requests; answer those under way for up to `grace` seconds,
        then fail what is left with Stopping (a long search under way is abandoned)."""
        self._stopping = True
        self._stop_at = time.perf_counter() + grace
        self.queue.put(_WAKE)
        self._long.put(_WAKE)
        running = self._long_running
        if running is not None:
            _settle(running, error=Stopping("the server is stopping"))

    def close(self, timeout=10):
        """Stop the workers once the requests under way are answered (stop() first to
        fail them instead); a long search under way is not waited for."""
        self._closed = True
        self.queue.put(_WAKE)
        self._long.put(_WAKE)
        rounds, long = self._threads
        if rounds.is_alive():
            rounds.join(timeout)
        if long.is_alive():
            long.join(min(timeout, 0.5))

    def stats(self):
        """What GET /v1/stats reports of the scheduler and its cache."""
        sizes = self.round_sizes[-100:]
        return {"state_cache": self.cache.stats(),
                "rounds": self.rounds, "answered": dict(self.answered),
                "queued": self.queue.qsize(), "feeding": len(self.feeding),
                "sampling": len(self.streams),
                "long_lane": {"queued": self._long.qsize(),
                              "running": int(self._long_running is not None)},
                "last_rounds_mean_size": float(np.mean(sizes)) if sizes else 0.0}

    # ---- the round lane ----------------------------------------------------------------
    def _busy(self):
        return bool(self.streams or self.feeding)

    def _over(self):
        """Whether the round lane should end: the grace of a stop is over, or it is
        closing or stopping with nothing left to do."""
        if self._stop_at is not None and time.perf_counter() >= self._stop_at:
            return True
        return (self._closed or self._stopping) and not self._busy() and \
            all(job is _WAKE for job in list(self.queue.queue))

    def _take(self):
        """The requests of the next round, waiting while there is nothing to do; None
        when the round lane should end."""
        jobs = []
        while not jobs:
            if self._over():
                return None
            if self._busy():
                if self.max_batch == 1:
                    return jobs   # one at a time: the request under way runs to its end
                break
            try:
                jobs.append(self.queue.get(timeout=POLL))
            except queue.Empty:
                pass
            jobs = [j for j in jobs if j is not _WAKE]
        wanted = min(self._last_round, self.max_batch)
        deadline = time.perf_counter() + self.gather
        while len(jobs) < self.max_batch:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                # under load, give the clients the last round answered time to return
                left = deadline - time.perf_counter()
                if len(jobs) + len(self.streams) >= wanted or left <= 0 or self._busy():
                    break
                try:
                    job = self.queue.get(timeout=left)
                except queue.Empty:
                    break
            if job is not _WAKE:
                jobs.append(job)
        return jobs

    def _run(self):
        while True:
            jobs = self._take()
            if jobs is None:
                break
            self._last_round = max(1, len(jobs) + len(self.streams) + len(self.feeding))
            self.rounds += 1
            self.round_sizes = (self.round_sizes + [self._last_round])[-1000:]
            try:
                self._round(jobs)
            except BaseException as e:   # a bug: fail these requests, keep serving
                for job in jobs + self.feeding + self.streams:
                    _settle(job, error=e)
                self.feeding, self.streams = [], []
        self._fail_all()

    def _fail_all(self):
        """Fail everything not answered (the server is stopping)."""
        left = self.feeding + self.streams
        while True:
            try:
                left.append(self.queue.get_nowait())
            except queue.Empty:
                break
        left = [job for job in left if job is not _WAKE]
        for job in left:
            _settle(job, error=Stopping("the server is stopping"))
        self.feeding, self.streams = [], []

    def _round(self, jobs):
        for job in jobs:
            if job.cancelled:
                _drop(job)
            else:
                self._admit(job)
        self.feeding = self._keep_wanted(self.feeding)
        self.streams = self._keep_wanted(self.streams)
        ready = self._feed()
        if ready:
            self._answer(ready)
        if self.streams:
            self._advance()

    @staticmethod
    def _keep_wanted(jobs):
        kept = []
        for job in jobs:
            if job.cancelled:
                _drop(job)
            else:
                kept.append(job)
        return kept

    def _admit(self, job):
        """Start a job from the longest cached prefix of its text."""
        if job.key is None:
            job.key = self.model.vocab.decode(job.ids)
        fed, state = self.cache.longest_prefix(job.key, job.ids)
        if state is None:
            rows = state_rows(self.model.cell, self.model.num_layers)
            state = np.zeros((rows, self.model.hidden_size), self.model.dtype)
        job.fed, job.state = fed, state
        self.feeding.append(job)

    def _feed(self):
        """Feed every text one slice further; returns the jobs whose text is all fed."""
        todo = [j for j in self.feeding if j.fed < len(j.ids)]
        if todo:
            every = self.cache.every
            width = max(MIN_SLICE, self.feed_budget // len(todo))
            ends = [min(len(j.ids), j.fed + width, (j.fed // every + 1) * every)
                    for j in todo]
            states = np.stack([j.state for j in todo], axis=1)
            states = feed_texts(self.model, [j.ids[j.fed:end] for j, end in zip(todo, ends)],
                                state=states)
            self.cache.count_fed(sum(end - j.fed for j, end in zip(todo, ends)))
            for r, (job, end) in enumerate(zip(todo, ends)):
                job.state, job.fed = np.ascontiguousarray(states[:, r]), end
                if end % every == 0 or end == len(job.ids):
                    self.cache.store(job.key[:end], job.ids[:end], job.state)
        ready = [j for j in self.feeding if j.fed == len(j.ids)]
        self.feeding = [j for j in self.feeding if j.fed < len(j.ids)]
        return ready

    def _answer(self, jobs):
        """Answer the jobs whose text is fed (or start their streams)."""
        model = self.model
        nexts = [j for j in jobs if j.kind == "next"]
        if nexts:
            probs = next_probs_of_state(model, np.stack([j.state for j in nexts], axis=1))
            for job, p in zip(nexts, probs):
                self._done(job, p)
        groups = {}
        for job in jobs:
            if job.kind in ("suggest", "complete"):
                if job.work() > self.long_work:
                    self._long.put(job)
                else:
                    groups.setdefault(job.search_key(), []).append(job)
        for group in groups.values():
            for job, result in zip(group, self._search(group)):
                self._done(job, result)
        for job in jobs:
            if job.kind == "sample":
                self._start_stream(job)

    def _search(self, group, kernel=None):
        """The results of a group of suggest or complete jobs of one search_key (a
        suggest job with settings["next"] gets (suggestions, next-character
        probabilities))."""
        state = np.stack([j.state for j in group], axis=1)
        s = group[0].settings
        if group[0].kind == "complete":
            return beam_from_state(self.model, state, s["length"], s["beam"], kernel=kernel)
        found = suggest_from_state(self.model, state, [j.text for j in group], s["k"],
                                   s["max_chars"], s["beam"], kernel=kernel)
        if not any("next" in j.settings for j in group):
            return found
        probs = next_probs_of_state(self.model, state, kernel=kernel)
        return [(f, p) if "next" in j.settings else f
                for j, f, p in zip(group, found, probs)]

    def _done(self, job, result):
        self.answered[job.kind] += 1
        _settle(job, result)

    # ---- sampling streams -------------------------------------------------------------
    def _start_stream(self, job):
        s = job.settings
        job.rng = np.random.default_rng(s["seed"])
        job.scanner = StopScanner(s["stops"])
        job.remaining = s["length"]
        job.parts = []
        if job.remaining == 0:
            self._done(job, "")
            return
        self.streams.append(job)

    def _advance(self):
        """Every sampling stream one chunk further, as one batch."""
        streams = self.streams
        B = len(streams)
        size = min(self.chunk, max(j.remaining for j in streams))
        state = np.ascontiguousarray(np.stack([j.state for j in streams], axis=1))
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
        self.model.generation_kernel().sample_rows(state, out, uniforms, temperature,
                                                   top_k, top_p)
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
                _drop(job)
            elif job.scanner.stopped or job.remaining == 0:
                self._done(job, "".join(job.parts))
            else:
                job.state = np.ascontiguousarray(state[:, b])
                still.append(job)
        self.streams = still

    # ---- the long lane -------------------------------------------------------------------
    def _run_long(self):
        """Long searches, one after the other, on a kernel of their own (one thread, a
        lower OS priority: the rounds keep the cores they need)."""
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):   # not Linux, or not allowed: same results
            pass
        kernel = None
        while not ((self._closed or self._stopping) and self._long.empty()):
            try:
                job = self._long.get(timeout=POLL)
            except queue.Empty:
                continue
            if job is _WAKE:
                continue
            if job.cancelled:
                _drop(job)
                continue
            if self._stopping:
                _settle(job, error=Stopping("the server is stopping"))
                continue
            if kernel is None:
                kernel = self.model.generation_kernel(own=True)
                kernel.threads = 1
            self._long_running = job
            try:
                self._done(job, self._search([job], kernel)[0])
            except BaseException as e:   # a bug (or out of memory): fail it, keep serving
                _settle(job, error=e)
            finally:
                self._long_running = None
