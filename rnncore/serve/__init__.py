"""The model server: a trained model behind a JSON API and a typing page, over HTTP.

FastAPI on uvicorn (`pip install "rnncore[serve]"`), in units:
  app.py      create_app(model): the application
  routes.py   the endpoints, on an APIRouter
  schemas.py  the request and response bodies (the OpenAPI schema)
  gate.py     API key, admission (429) and body checks before any route
  errors.py   the one way of refusing: {"error": "one line"} with a 4xx
  batcher.py  the scheduler: requests advanced together in rounds, long searches on a
              lane of their own
  cache.py    the states after recent texts, so a keystroke feeds only what it adds
  server.py   `rnncore serve`: the socket, uvicorn, signals, the API key's sources
  page.html   the typing page (one self-contained file), icon.svg its icon
Importing this package imports neither FastAPI nor uvicorn: serve() and create_app()
say what to install when they are missing.
"""
INSTALL = "pip install 'rnncore[serve]'"


class ServeMissing(RuntimeError):
    """FastAPI or uvicorn is not installed."""


def require():
    """ServeMissing unless FastAPI and uvicorn can be imported."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ServeMissing(f"rnncore serve needs FastAPI and uvicorn ({e.name} is missing): "
                           f"{INSTALL}") from None


def create_app(model, **options):
    """The FastAPI application serving `model`; see rnncore.serve.app.create_app."""
    require()
    from .app import create_app as create
    return create(model, **options)


def serve(model, name, **options):
    """Serve `model` until SIGTERM or Ctrl-C; see rnncore.serve.server.serve."""
    from .server import serve as run
    return run(model, name, **options)
