"""The server's one way of saying no: a Refusal (status, one line naming the problem,
headers) becomes the response {"error": "..."} with that status, whether it is raised by
a route, by the gate in front of the application, or translated from FastAPI's own
errors (validation, unknown paths and methods).  Never a 5xx for bad input; a bug is a
500 in the same form, and the server keeps serving."""
import json


class Refusal(Exception):
    """A request refused: `status` (4xx, or 503 while stopping), a one-line `message`,
    and extra response headers (Retry-After, WWW-Authenticate, Allow)."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


def error_body(message):
    """The bytes of {"error": message}."""
    return json.dumps({"error": message}).encode()


async def send_refusal(send, refusal):
    """Answer a raw ASGI request with `refusal` (for the gate, outside the application)."""
    body = error_body(refusal.message)
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), str(v).encode()) for k, v in refusal.headers.items()]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_handlers(app):
    """Make every error of `app` a Refusal's response."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def respond(refusal):
        return JSONResponse({"error": refusal.message}, status_code=refusal.status,
                            headers=refusal.headers or None)

    @app.exception_handler(Refusal)
    async def refused(request, exc):
        return respond(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        return respond(validation_refusal(exc.errors(), request.headers.get(
            "content-type", "")))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        if exc.status_code == 404:
            return respond(Refusal(404, f"not found: {request.url.path}"))
        if exc.status_code == 405:   # Allow: the methods that are
            return respond(Refusal(405, f"method {request.method} is not allowed on "
                                   f"{request.url.path}", exc.headers))
        return respond(Refusal(exc.status_code, str(exc.detail), exc.headers))

    @app.exception_handler(Exception)
    async def crashed(request, exc):   # a bug: say so in one line, keep serving
        return respond(Refusal(500, f"internal error: {type(exc).__name__}: "
                               f"{exc}".splitlines()[0]))


def validation_refusal(errors, content_type):
    """The 422 for pydantic's validation errors: the first, as "field: message"."""
    first = errors[0] if errors else {"type": "", "loc": (), "msg": "invalid"}
    loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
    message = str(first.get("msg", "invalid")).replace("\n", " ")
    if first.get("type") == "missing" and loc == "body":
        message = "the request needs a JSON object as its body"
    kind = content_type.split(";")[0].strip().lower()
    if loc == "body" and kind and not (kind == "application/json" or kind.endswith("+json")):
        message = (f"the body is sent as {kind}: send a JSON object with "
                   "Content-Type: application/json")
    return Refusal(422, message if loc == "body" else f"{loc}: {message}")
