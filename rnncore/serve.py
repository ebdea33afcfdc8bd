"""The model server: a trained model behind a JSON API and a typing page, over HTTP.

FastAPI on uvicorn (`pip install "rnncore[serve]"`).  create_app(model) builds the
application; serve() binds the socket, runs it until SIGTERM or Ctrl-C, and stops the
batcher.  Every request's compiled work runs on the batcher's worker thread
(rnncore.batcher), which advances concurrent requests as one batch.

Every error is a 4xx response {"error": "one line naming the problem"}: malformed JSON
(400), a body over 64 KiB (413), wrong types, values out of range, unknown characters,
an empty prime where one is needed (422), unknown paths (404) and methods (405).  No
endpoint reads a file, or takes a path.
"""
import asyncio
import contextlib
import json
import signal
import socket
import sys
import threading
from importlib import resources
from typing import List, Optional, Union

from .batcher import Batcher, Job
from .threads import num_threads

INSTALL = "pip install 'rnncore[serve]'"
#: the largest request body read, in bytes (a larger one is refused with 413)
MAX_BODY = 64 * 1024
#: limits of the requests' settings (besides --max-length)
MAX_SUGGEST_K, MAX_SUGGEST_CHARS, MAX_BEAM, MAX_STOPS = 32, 128, 64, 16


class ServeMissing(RuntimeError):
    """FastAPI or uvicorn is not installed."""


def _require():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ServeMissing(f"rnncore serve needs FastAPI and uvicorn ({e.name} is missing): "
                           f"{INSTALL}") from None


def page_html():
    """The typing page served at GET /: one self-contained file (no CDN, no build)."""
    return resources.files("rnncore").joinpath("page.html").read_text(encoding="utf-8")


def model_summary(model):
    """What GET /v1/model reports."""
    return {"cell": model.cell, "num_layers": model.num_layers,
            "hidden_size": model.hidden_size, "vocab_size": model.n_vocab,
            "dtype": model.dtype.name, "parameters": model.num_parameters(),
            "vocab": "".join(model.vocab.chars)}


def create_app(model, max_length=4096, batcher=None, name="model"):
    """The FastAPI application serving `model`.  batcher: a running rnncore.batcher.Batcher
    (None: one is started here and closed with the application's lifespan)."""
    _require()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.exceptions import HTTPException

    V = model.n_vocab
    own_batcher = batcher is None

    class ErrorBody(BaseModel):
        error: str = Field(description="one line naming the problem")

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    class NextRequest(Strict):
        text: str = Field(max_length=max_length, description="the text typed so far")
        k: int = Field(10, ge=1, le=V, description="how many characters, most likely first")
        skip_unknown: bool = Field(False, description="drop characters the model has "
                                   "never seen (else they are an error)")

    class CharProb(BaseModel):
        char: str
        prob: float

    class NextResponse(BaseModel):
        next: List[CharProb]

    class SuggestRequest(Strict):
        text: str = Field(max_length=max_length, description="the text typed so far")
        k: int = Field(3, ge=1, le=MAX_SUGGEST_K, description="how many suggestions")
        max_chars: int = Field(32, ge=0, le=min(MAX_SUGGEST_CHARS, max_length),
                               description="longest completion, in characters")
        beam: int = Field(16, ge=1, le=MAX_BEAM, description="beam width of the search")
        skip_unknown: bool = False

    class SuggestionItem(BaseModel):
        word: str
        completion: str
        log_prob: float

    class SuggestResponse(BaseModel):
        suggestions: List[SuggestionItem]

    class CompleteRequest(Strict):
        prime: str = Field(min_length=1, max_length=max_length, description="text to complete")
        length: int = Field(ge=1, le=max_length, description="characters to add")
        beam: int = Field(1, ge=1, le=MAX_BEAM, description="beam width (1: greedy)")
        skip_unknown: bool = False

    class CompleteResponse(BaseModel):
        completion: str
        log_prob: float

    class SampleRequest(Strict):
        prime: str = Field("", max_length=max_length, description="text to start from")
        length: int = Field(200, ge=1, le=max_length, description="characters to generate")
        temperature: float = Field(1.0, gt=0, le=100, allow_inf_nan=False)
        top_k: Optional[int] = Field(None, ge=1, le=1 << 31)
        top_p: Optional[float] = Field(None, gt=0, le=1, allow_inf_nan=False)
        seed: Optional[int] = Field(None, ge=0, le=(1 << 63) - 1)
        stop: Union[None, str, List[str]] = Field(
            None, description="a text, or up to 16; the sample ends right after the first "
            "to appear")
        stream: bool = Field(False, description="send the text as Server-Sent Events as "
                             "it is generated")
        skip_unknown: bool = False

    class SampleResponse(BaseModel):
        text: str

    class Health(BaseModel):
        status: str

    errors = {400: {"model": ErrorBody, "description": "malformed JSON"},
              413: {"model": ErrorBody, "description": "body over 64 KiB"},
              422: {"model": ErrorBody, "description": "invalid request"}}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        app.state.batcher = Batcher(model) if own_batcher else batcher
        try:
            yield
        finally:
            if own_batcher:
                app.state.batcher.close()

    app = FastAPI(title="rnncore", version=_version(), lifespan=lifespan,
                  description=f"A character-level language model ({model.cell}, "
                  f"{model.num_layers}x{model.hidden_size}, {V} symbols) as a predictive "
                  "text engine.")
    app.state.batcher = batcher

    class Refused(Exception):
        def __init__(self, status, message):
            self.status, self.message = status, message

    def error(status, message):
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(Refused)
    async def refused(request, exc):
        return error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        first = exc.errors()[0] if exc.errors() else {"type": "", "loc": (), "msg": "invalid"}
        if first.get("type") == "json_invalid":
            detail = (first.get("ctx") or {}).get("error", "")
            return error(400, f"malformed JSON{': ' + str(detail) if detail else ''}")
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        message = str(first.get("msg", "invalid")).replace("\n", " ")
        if first.get("type") == "missing" and loc == "body":
            message = "the request needs a JSON object as its body"
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if loc == "body" and kind and not (kind == "application/json"
                                           or kind.endswith("+json")):
            message = (f"the body is sent as {kind}: send a JSON object with "
                       "Content-Type: application/json")
        return error(422, message if loc == "body" else f"{loc}: {message}")

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        if exc.status_code == 404:
            return error(404, f"not found: {request.url.path}")
        if exc.status_code == 405:
            response = error(405, f"method {request.method} is not allowed on "
                             f"{request.url.path}")
            response.headers.update(exc.headers or {})   # Allow: the methods that are
            return response
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def crashed(request, exc):   # a bug: say so in one line, keep serving
        return error(500, f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])

    def ids_of(text, skip_unknown, what):
        unknown = model.vocab.unknown(text)
        if unknown and not skip_unknown:
            shown = json.dumps("".join(unknown))
            raise Refused(422, f"the {what} has characters the model has never seen: "
                          f"{shown} (send \"skip_unknown\": true to drop them)")
        return model.vocab.encode(text, skip_unknown=True).astype("intp")

    async def run(job):
        return await asyncio.wrap_future(app.state.batcher.submit(job))

    @app.get("/healthz", response_model=Health)
    async def healthz():
        return {"status": "ok"}

    @app.get("/v1/model")
    async def get_model():
        return model_summary(model)

    @app.post("/v1/next", response_model=NextResponse, responses=errors)
    async def post_next(req: NextRequest):
        ids = ids_of(req.text, req.skip_unknown, "text")
        probs = await run(Job("next", ids))
        from .predict import ranked_chars
        return {"next": [{"char": c, "prob": p} for c, p in ranked_chars(model, probs, req.k)]}

    @app.post("/v1/suggest", response_model=SuggestResponse, responses=errors)
    async def post_suggest(req: SuggestRequest):
        ids = ids_of(req.text, req.skip_unknown, "text")
        found = await run(Job("suggest", ids, text=model.vocab.decode(ids), k=req.k,
                              max_chars=req.max_chars, beam=max(req.beam, req.k)))
        return {"suggestions": [s._asdict() for s in found]}

    @app.post("/v1/complete", response_model=CompleteResponse, responses=errors)
    async def post_complete(req: CompleteRequest):
        ids = ids_of(req.prime, req.skip_unknown, "prime")
        if len(ids) == 0:
            raise Refused(422, "prime: empty once the unknown characters are dropped: "
                          "there is nothing to complete")
        found = await run(Job("complete", ids, length=req.length, beam=req.beam))
        chars, log_prob = found[0]
        return {"completion": model.vocab.decode(chars), "log_prob": log_prob}

    streamed = {200: {"description": "the text; with \"stream\": true, Server-Sent "
                      "Events: `data: {\"text\": piece}` as it is generated, then "
                      "`event: done`", "content": {"text/event-stream": {
                          "schema": {"type": "object", "properties": {
                              "text": {"type": "string"}}}}}}}

    @app.post("/v1/sample", response_model=SampleResponse, responses={**errors, **streamed})
    async def post_sample(req: SampleRequest):
        ids = ids_of(req.prime, req.skip_unknown, "prime")
        stops = _check_stops(req.stop, max_length)
        settings = dict(length=req.length, temperature=req.temperature,
                        top_k=min(req.top_k or 0, V), top_p=1.0 if req.top_p is None
                        else req.top_p, seed=req.seed, stops=stops, greedy=False)
        if not req.stream:
            return {"text": await run(Job("sample", ids, **settings))}
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        job = Job("sample", ids, on_piece=lambda piece: loop.call_soon_threadsafe(
            pieces.put_nowait, piece), **settings)
        job.future.add_done_callback(
            lambda _: loop.call_soon_threadsafe(pieces.put_nowait, None))
        app.state.batcher.submit(job)

        async def events():
            try:
                while True:
                    piece = await pieces.get()
                    if piece is None:
                        break
                    yield f"data: {json.dumps({'text': piece})}\n\n"
                yield "event: done\ndata: {}\n\n"
            finally:
                job.cancelled = True

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(page_html())

    app.add_middleware(LimitBody, limit=MAX_BODY)
    return app


def _check_stops(stop, max_length):
    """The stop texts of a sample request as a tuple, or a 422 naming the problem."""
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > MAX_STOPS:
        raise _refused(f"stop: at most {MAX_STOPS} texts, got {len(stops)}")
    for t in stops:
        if not t:
            raise _refused("stop: a stop text must not be empty")
        if len(t) > max_length:
            raise _refused(f"stop: a stop text of {len(t)} characters is longer than "
                           f"the limit of {max_length}")
    return tuple(stops)


def _refused(message):
    from fastapi import HTTPException
    return HTTPException(422, message)


class LimitBody:
    """ASGI middleware: a request body over `limit` bytes gets 413 and is never read
    whole (a Content-Length over the limit is refused before reading anything)."""

    def __init__(self, app, limit):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.limit
            except ValueError:
                return await _reply(send, 400, "Content-Length is not a number")
            if too_big:
                return await _reply(send, 413, f"the body is over {self.limit // 1024} KiB")
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await _reply(send, 413, f"the body is over {self.limit // 1024} KiB")
            body.append(chunk)
            more = message.get("more_body", False)
        whole = b"".join(body)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


async def _reply(send, status, message):
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _version():
    from . import __version__
    return __version__


def bind(host, port):
    """A listening TCP socket on (host, port), or a one-line OSError naming them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise OSError(f"cannot listen on {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == 98:   # EADDRINUSE
            raise OSError(f"port {port} on {host} is in use (another server is listening "
                          "there): pass another --port") from None
        raise OSError(f"cannot listen on {host} port {port}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock


def is_loopback(host):
    """Whether every address `host` names is a loopback address (127.0.0.0/8, ::1)."""
    import ipaddress
    try:
        infos = socket.getaddrinfo(host, None)
        return bool(infos) and all(
            ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)
    except (OSError, ValueError):
        return False


def serve(model, name, host="127.0.0.1", port=8000, max_length=4096, threads=None,
          echo=print, ready=None, max_batch=256):
    """Serve `model` on host:port until SIGTERM or Ctrl-C; returns the exit status (0).

    Prints `serving NAME on http://HOST:PORT` once it accepts connections (the port
    actually bound when port is 0).  A host other than a loopback address is served
    with a warning on stderr (anyone who reaches it may use the model).  max_batch: the
    most requests advanced together (1: one at a time).  ready: called with the uvicorn
    Server once it runs."""
    _require()
    import uvicorn

    if not is_loopback(host):
        print(f"rnncore: warning: serving on {host}, which other machines can reach: "
              "the server has no authentication", file=sys.stderr, flush=True)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    batcher = Batcher(model, max_batch=max_batch)
    app = create_app(model, max_length=max_length, batcher=batcher, name=name)
    config = uvicorn.Config(app, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5, lifespan="on")

    class Server(uvicorn.Server):
        stopped_by = None

        @contextlib.contextmanager
        def capture_signals(self):
            # uvicorn's own re-raises the signal after its graceful shutdown, which
            # would end the process by that signal: here a signal is a clean stop
            if threading.current_thread() is not threading.main_thread():
                yield
                return

            def stop(sig, frame):
                Server.stopped_by = signal.Signals(sig).name
                self.handle_exit(sig, frame)

            old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in old.items():
                    signal.signal(s, handler)

        async def startup(self, sockets=None):
            await super().startup(sockets)
            if not self.should_exit:
                echo(f"serving {name} on http://{shown}:{bound}")
                if ready is not None:
                    ready(self)

    server = Server(config)
    try:
        with num_threads(threads):
            server.run(sockets=[sock])
    finally:
        batcher.close()
        sock.close()
    echo(f"stopped serving {name}" + (f" ({Server.stopped_by})" if Server.stopped_by
                                       else ""))
    return 0
