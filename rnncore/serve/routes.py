"""The server's endpoints, on a FastAPI APIRouter.

A route checks what the schema cannot (unknown characters, stop texts), makes a Job and
awaits it on the application's batcher (app.state.batcher) while watching the client:
a client that disconnects cancels its job, which the batcher drops within a round.  The
busiest routes (next, suggest) answer with a JSONResponse of what their response model
describes, without validating it again.
"""
import asyncio
import json
from importlib import resources

import numpy as np

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from . import schemas
from .batcher import Job, Stopping
from .errors import Refusal

STOPPING = "the server is stopping"
#: seconds a request's answer may take before its client is watched for a disconnect
WATCH_AFTER = 0.05


def model_summary(model, max_length):
    """What GET /v1/model reports."""
    from ..predict import start_text
    return {"cell": model.cell, "num_layers": model.num_layers,
            "hidden_size": model.hidden_size, "vocab_size": model.n_vocab,
            "dtype": model.dtype.name, "parameters": model.num_parameters(),
            "vocab": "".join(model.vocab.chars), "max_length": max_length,
            "start_text": start_text(model.vocab)}


def page_file(name):
    """A file served as it is: the typing page (one self-contained file, no CDN, no
    build) and the icon."""
    return resources.files("rnncore.serve").joinpath(name).read_text(encoding="utf-8")


class Characters:
    """The model's characters as indices for a whole request text in one numpy pass (a
    table from code point to index): the server's hot path, where rnncore.Vocab's
    encode and unknown would sort the text's characters twice per request."""

    def __init__(self, vocab):
        codepoints = vocab.codepoints
        self.vocab = vocab
        self.index = np.full(int(codepoints.max()) + 2, -1, np.intp)   # last: unknown
        self.index[codepoints] = np.arange(len(codepoints))

    def seen(self, text, skip_unknown, what):
        """(indices, text) of `text` as the model sees it (its unknown characters dropped
        with skip_unknown), or a 422 naming the characters the model has never seen."""
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
        ids = self.index[np.minimum(points, len(self.index) - 1)]
        known = ids >= 0
        if known.all():
            return ids, text
        if not skip_unknown:
            unknown = np.unique(points[~known])
            shown = json.dumps("".join(chr(int(c)) for c in unknown))
            raise Refusal(422, f"the {what} has characters the model has never seen: "
                          f"{shown} (send \"skip_unknown\": true to drop them)")
        ids = ids[known]
        return ids, self.vocab.decode(ids)


def check_stops(stop, max_length):
    """The stop texts of a sample request as a tuple, or a 422 naming the problem."""
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > schemas.MAX_STOPS:
        raise Refusal(422, f"stop: at most {schemas.MAX_STOPS} texts, got {len(stops)}")
    for t in stops:
        if not t:
            raise Refusal(422, "stop: a stop text must not be empty")
        if len(t) > max_length:
            raise Refusal(422, f"stop: a stop text of {len(t)} characters is longer than "
                          f"the limit of {max_length}")
    return tuple(stops)


def submit(request, job):
    """Queue `job` on the application's batcher; its future."""
    try:
        return request.app.state.batcher.submit(job)
    except Stopping:
        raise Refusal(503, STOPPING) from None


async def answer(request, job):
    """The result of `job`, awaited while watching the client (from WATCH_AFTER seconds
    on: most answers come sooner): one that disconnects cancels the job, which the
    batcher then drops, and gets no answer."""
    waiter = asyncio.wrap_future(submit(request, job))
    watch = []
    timer = asyncio.get_running_loop().call_later(
        WATCH_AFTER, lambda: watch.append(asyncio.ensure_future(_watch(request, job,
                                                                       waiter))))
    try:
        return await waiter
    except asyncio.CancelledError:
        if job.cancelled:
            raise Refusal(499, "the client closed the connection") from None
        raise
    except Stopping:
        raise Refusal(503, STOPPING) from None
    finally:
        timer.cancel()
        for task in watch:
            task.cancel()


async def _watch(request, job, waiter):
    """Cancel `job` (and stop waiting for it) once the client disconnects."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    job.cancelled = True
    waiter.cancel()


def build_router(models, max_length):
    """The router of every endpoint, its request bodies `models` (schemas.request_models:
    built per server, from its limits, so the annotations are values mypy cannot see)."""
    router = APIRouter()
    errors = schemas.ERRORS

    @router.get("/healthz", response_model=schemas.Health)
    async def healthz():
        return {"status": "ok"}

    @router.get("/v1/model", response_model=schemas.ModelInfo,
                responses={401: errors[401]})
    async def get_model(request: Request):
        return model_summary(request.app.state.model, max_length)

    @router.get("/v1/stats", response_model=schemas.Stats, responses={401: errors[401]})
    async def get_stats(request: Request):
        return {**request.app.state.batcher.stats(),
                "queue": request.app.state.admission.stats()}

    @router.post("/v1/next", response_model=schemas.NextResponse, responses=errors)
    async def post_next(req: models.next, request: Request):  # type: ignore[name-defined]
        model = request.app.state.model
        ids, text = request.app.state.characters.seen(req.text, req.skip_unknown, "text")
        probs = await answer(request, Job.predicting(model, "next", text, ids))
        return JSONResponse({"next": ranked(model, probs, req.k)})

    @router.post("/v1/suggest", response_model=schemas.SuggestResponse, responses=errors)
    async def post_suggest(req: models.suggest, request: Request):  # type: ignore[name-defined]
        model = request.app.state.model
        ids, text = request.app.state.characters.seen(req.text, req.skip_unknown, "text")
        job = Job.predicting(model, "suggest", text, ids, k=req.k, max_chars=req.max_chars,
                             beam=max(req.beam, req.k))
        if req.next:
            job.settings["next"] = req.next
        found = await answer(request, job)
        if req.next:
            found, probs = found
            return JSONResponse({"suggestions": [s._asdict() for s in found],
                                 "next": ranked(model, probs, req.next)})
        return JSONResponse({"suggestions": [s._asdict() for s in found]})

    @router.post("/v1/complete", response_model=schemas.CompleteResponse, responses=errors)
    async def post_complete(req: models.complete, request: Request):  # type: ignore[name-defined]
        model = request.app.state.model
        ids, prime = request.app.state.characters.seen(req.prime, req.skip_unknown, "prime")
        if len(ids) == 0:
            raise Refusal(422, "prime: empty once the unknown characters are dropped: "
                          "there is nothing to complete")
        found = await answer(request, Job("complete", ids, key=prime, length=req.length,
                                          beam=req.beam))
        chars, log_prob = found[0]
        return {"completion": model.vocab.decode(chars), "log_prob": log_prob}

    @router.post("/v1/sample", response_model=schemas.SampleResponse,
                 responses={**errors, **schemas.STREAMED})
    async def post_sample(req: models.sample, request: Request):  # type: ignore[name-defined]
        model = request.app.state.model
        ids, prime = request.app.state.characters.seen(req.prime, req.skip_unknown, "prime")
        settings = dict(key=prime, length=req.length, temperature=req.temperature,
                        top_k=min(req.top_k or 0, model.n_vocab),
                        top_p=1.0 if req.top_p is None else req.top_p, seed=req.seed,
                        stops=check_stops(req.stop, max_length), greedy=False)
        if not req.stream:
            return {"text": await answer(request, Job("sample", ids, **settings))}
        return stream_sample(request, ids, settings)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(page_file("page.html"))

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(page_file("icon.svg"), media_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})

    return router


def ranked(model, probs, k):
    from ..predict import ranked_chars
    return [{"char": c, "prob": p} for c, p in ranked_chars(model, probs, k)]


def stream_sample(request, ids, settings):
    """A sample as Server-Sent Events, as it is generated."""
    loop = asyncio.get_running_loop()
    pieces = asyncio.Queue()
    job = Job("sample", ids, on_piece=lambda piece: loop.call_soon_threadsafe(
        pieces.put_nowait, piece), **settings)
    future = submit(request, job)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, None))

    async def events():
        try:
            while True:
                piece = await pieces.get()
                if piece is None:
                    break
                yield f"data: {json.dumps({'text': piece})}\n\n"
            if not future.cancelled() and future.exception() is not None:
                message = STOPPING if isinstance(future.exception(), Stopping) else \
                    f"internal error: {future.exception()}"
                yield f"event: error\ndata: {json.dumps({'error': message})}\n\n"
            else:
                yield "event: done\ndata: {}\n\n"
        finally:
            job.cancelled = True

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})
