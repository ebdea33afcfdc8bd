"""create_app: the FastAPI application that serves one model (routes.py's endpoints behind
gate.py's checks, errors.py's one way of refusing, a batcher.py scheduler)."""
import contextlib

from fastapi import FastAPI

from .batcher import Batcher
from .errors import install_handlers
from .gate import Admission, Gate
from .routes import Characters, build_router
from .schemas import request_models

#: the largest request body read, in bytes (a larger one is refused with 413)
MAX_BODY = 64 * 1024
#: the most model requests in flight (queued or under way) before new ones get 429
MAX_QUEUE = 512


def create_app(model, max_length=4096, batcher=None, api_key=None, max_queue=MAX_QUEUE):
    """The application serving `model`: texts and primes of at most max_length
    characters; batcher, a running rnncore.serve.batcher.Batcher (None: one is started
    with the application's lifespan and closed with it); api_key, the key every /v1/
    request must bear (None: none); max_queue, the most model requests in flight."""
    own_batcher = batcher is None

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if own_batcher:
            app.state.batcher = Batcher(model)
        try:
            yield
        finally:
            if own_batcher:
                app.state.batcher.close()

    from .. import __version__
    app = FastAPI(title="rnncore", version=__version__, lifespan=lifespan,
                  description=f"A character-level language model ({model.cell}, "
                  f"{model.num_layers}x{model.hidden_size}, {model.n_vocab} symbols) as a "
                  "predictive text engine.")
    app.state.model, app.state.batcher = model, batcher
    app.state.characters = Characters(model.vocab)
    app.state.admission = Admission(max_queue)
    install_handlers(app)
    app.include_router(build_router(request_models(model.n_vocab, max_length), max_length))
    app.add_middleware(Gate, max_body=MAX_BODY, admission=app.state.admission,
                       api_key=api_key)
    return app
