"""The gate in front of the application (ASGI middleware): who may ask, how many may
wait, and whether what they sent is JSON at all, decided before a request reaches a
route, in this order:

  1. the API key: with one set, every /v1/ path needs `Authorization: Bearer KEY`
     (compared in constant time; else 401 with WWW-Authenticate); the page, /healthz,
     /favicon.ico and the OpenAPI schema and docs stay open;
  2. admission: at most `max_queue` model requests (POST /v1/...) in flight, from
     arrival to the end of their response; beyond, 429 with Retry-After, as HuggingFace
     TGI answers when it is full;
  3. the body: over `max_body` bytes is 413, refused before it is read whole (at once
     when its Content-Length says so); a JSON body that is not UTF-8, not JSON or nested
     too deeply is 400 `malformed JSON: ...`.
Every refusal is a Refusal's response (rnncore.serve.errors).
"""
import hashlib
import hmac
import json

from .errors import Refusal, send_refusal

#: seconds a client refused for a full queue is asked to wait
RETRY_AFTER = 1


class Admission:
    """How many model requests are in flight, of at most max_queue."""

    def __init__(self, max_queue):
        self.max_queue = max_queue
        self.in_flight = 0          # model requests admitted and not yet answered
        self.refused_busy = 0       # requests refused for a full queue

    def stats(self):
        return {"in_flight": self.in_flight, "max_queue": self.max_queue,
                "refused_busy": self.refused_busy}


class Gate:
    """ASGI middleware: the checks above, then the application."""

    def __init__(self, app, max_body, admission, api_key=None):
        self.app, self.max_body, self.admission = app, max_body, admission
        self.api_key = _digest(api_key.encode()) if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        counted = scope["method"] == "POST" and scope["path"].startswith("/v1/")
        queue = self.admission
        try:
            self._check_key(scope)
            if counted and queue.in_flight >= queue.max_queue:
                queue.refused_busy += 1
                raise Refusal(429, f"the server is busy: {queue.in_flight} requests are "
                              f"in flight (--max-queue {queue.max_queue}); retry after "
                              f"{RETRY_AFTER} s", {"Retry-After": RETRY_AFTER})
            if counted:
                queue.in_flight += 1
        except Refusal as refusal:
            return await send_refusal(send, refusal)
        try:
            try:
                body = await self._read_body(scope, receive)
            except Refusal as refusal:
                return await send_refusal(send, refusal)
            if body is None:          # the client left while sending it
                return
            return await self.app(scope, _replay(body, receive), send)
        finally:
            if counted:
                queue.in_flight -= 1

    def _check_key(self, scope):
        if self.api_key is None or not scope["path"].startswith("/v1/"):
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if not given:
            raise Refusal(401, "this server needs an API key: send Authorization: Bearer "
                          "KEY", challenge)
        # digests of one length, compared in a time that does not depend on their bytes
        if scheme.lower() != b"bearer" or not hmac.compare_digest(_digest(token.strip()),
                                                                  self.api_key):
            raise Refusal(401, "the API key is not valid (send Authorization: Bearer KEY)",
                          challenge)

    async def _read_body(self, scope, receive):
        """The whole body (None if the client disconnected), or a Refusal."""
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                raise Refusal(400, "Content-Length is not a number") from None
            if too_big:
                raise Refusal(413, f"the body is over {self.max_body // 1024} KiB")
        parts, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise Refusal(413, f"the body is over {self.max_body // 1024} KiB")
            parts.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(parts)
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and (not kind or kind == b"application/json" or kind.endswith(b"+json")):
            check_json(body)
        return body


def _digest(key):
    return hashlib.sha256(key).digest()


def check_json(body):
    """A Refusal (400 `malformed JSON: ...`) unless `body` is UTF-8 JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Refusal(400, f"malformed JSON: not UTF-8 (byte {e.start} is "
                      f"0x{body[e.start]:02x})") from None
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise Refusal(400, f"malformed JSON: {e.msg} at line {e.lineno} column "
                      f"{e.colno}") from None
    except RecursionError:
        raise Refusal(400, "malformed JSON: nested too deeply (a request is an object "
                      "of plain fields)") from None


def _replay(body, receive):
    """An ASGI receive that gives `body` once, then waits on the client (disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
