"""A real `rnncore serve` on a free loopback port, and the demo model it serves."""

import re
import selectors
import signal
import subprocess
import time

import pytest
import rnncore

from .processes import rnncore_command
from .texts import HOLA


def demo_model(steps=3000):
    """The demo's model, trained as `rnncore demo` trains it (about 0.2 s)."""
    model = rnncore.CharRNN(rnncore.Vocab.from_text(HOLA), hidden_size=64, seed=0)
    rnncore.Trainer(model, HOLA, seq_length=10, learning_rate=1e-2, optimizer="sgd",
                    clip=5.0).train(steps)
    return model


class Server:
    """`rnncore serve CKPT --port 0 ...` started and waited for: .url, .proc, .lines
    (what it printed)."""

    def __init__(self, ckpt, *args, cwd, timeout=60):
        self.proc = subprocess.Popen(
            rnncore_command() + ["serve", str(ckpt), "--port", "0", *map(str, args)],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL)
        self.lines = []
        self.url = None
        deadline = time.monotonic() + timeout
        while self.url is None:
            line = self._readline(deadline)
            if line is None:
                self.stop()
                raise RuntimeError(f"rnncore serve did not start: {self.lines} "
                                   f"{self.proc.stderr.read()}")
            self.lines.append(line)
            found = re.match(r"serving .* on (http://\S+)$", line.strip())
            if found:
                self.url = found.group(1)

    def _readline(self, deadline):
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=0.1):
                    line = self.proc.stdout.readline()
                    return line if line else None
                if self.proc.poll() is not None:
                    return None
        return None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Send `sig`; returns (exit status, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"the server did not stop on {sig!r} within {timeout} s")
        return self.proc.returncode, out, err


@pytest.fixture(scope="module")
def demo_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "hola.npz"
    demo_model().save(path)
    return path


def running_server(ckpt, *args, cwd):
    """A generator for a fixture: yields a started Server, stops it with SIGTERM after,
    and checks that it stopped cleanly."""
    server = Server(ckpt, *args, cwd=cwd)
    try:
        yield server
    finally:
        status, out, err = server.stop()
        assert status == 0, (status, out, err)
        assert "Traceback" not in err, err
