"""`rnncore serve`: bind the socket, run the application on uvicorn until SIGTERM or
Ctrl-C, and stop cleanly: requests under way get a moment to be answered, then what is
left is answered 503 (a stream ends with an error event); no traceback, exit status 0."""
import contextlib
import os
import signal
import socket
import sys
import threading

from ..errors import UsageError
from ..threads import num_threads
from . import require
from .batcher import CACHE_BYTES, Batcher

#: seconds the requests under way get to be answered once a stop is asked for
GRACE = 1.0
#: where the API key may come from, besides --api-key and --api-key-file
KEY_VARIABLE = "RNNCORE_API_KEY"


def api_key_of(key=None, key_file=None, environ=os.environ):
    """The API key from --api-key, --api-key-file (its first line) or the environment
    variable RNNCORE_API_KEY, in that order; None for none.  A UsageError for both
    options, an unreadable or empty file, or an empty key."""
    if key is not None and key_file is not None:
        raise UsageError("--api-key and --api-key-file: give one of them")
    if key_file is not None:
        try:
            with open(key_file, encoding="utf-8") as f:
                key = f.readline().strip()
        except OSError as e:
            raise UsageError(f"--api-key-file {key_file}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--api-key-file {key_file}: not UTF-8 text") from None
        if not key:
            raise UsageError(f"--api-key-file {key_file}: the file's first line is empty")
        return key
    if key is None:
        key = environ.get(KEY_VARIABLE)
        if key is None:
            return None
        where = f"the environment variable {KEY_VARIABLE}"
    else:
        where = "--api-key"
    if not key.strip():
        raise UsageError(f"{where} is empty")
    return key.strip()


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
          echo=print, ready=None, max_batch=256, max_queue=None, cache_bytes=CACHE_BYTES,
          api_key=None):
    """Serve `model` on host:port until SIGTERM or Ctrl-C; returns the exit status (0).

    Prints `serving NAME on http://HOST:PORT` once it accepts connections (the port
    actually bound when port is 0).  A host other than a loopback address, served
    without an API key, gets a warning on stderr (anyone who reaches it may use the
    model).  max_batch: the most requests advanced together (1: one at a time);
    max_queue: the most model requests in flight before 429; cache_bytes: the state
    cache's bound; api_key: the key every /v1/ request must bear.  ready: called with
    the uvicorn Server once it runs."""
    require()
    import uvicorn
    from .app import MAX_QUEUE, create_app

    if api_key is None and not is_loopback(host):
        print(f"rnncore: warning: serving on {host}, which other machines can reach, "
              "without an API key: anyone who reaches it may use the model (see "
              "--api-key-file)", file=sys.stderr, flush=True)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    batcher = Batcher(model, max_batch=max_batch, cache_bytes=cache_bytes)
    app = create_app(model, max_length=max_length, batcher=batcher, api_key=api_key,
                     max_queue=MAX_QUEUE if max_queue is None else max_queue)
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
                Server.stopped_by = Server.stopped_by or signal.Signals(sig).name
                batcher.stop(grace=GRACE)    # what is not answered by then gets 503
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
        batcher.stop()
        batcher.close()
        sock.close()
    echo(f"stopped serving {name}" + (f" ({Server.stopped_by})" if Server.stopped_by
                                       else ""))
    return 0
