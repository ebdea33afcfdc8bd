"""The server's subpackage keeps the house's floors: its modules import the predictive-text
layer below them and nothing of training or the command line, import each other without a
circle, and importing rnncore.serve loads neither FastAPI nor uvicorn (so the CLI can say
what to install)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import rnncore

SERVE = Path(rnncore.__file__).parent / "serve"
#: what the server may use of the package above it
BELOW = {"predict", "sample", "layout", "errors", "threads", "config", "vocab", ""}


def imports():
    """{module: (rnncore modules it imports, serve modules it imports)}."""
    graph = {}
    for path in SERVE.glob("*.py"):
        above, beside = set(), set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                above.add((node.module or "").split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.level == 1:
                beside.update([node.module] if node.module else
                              [a.name for a in node.names])
        graph[path.stem] = (above, beside - {path.stem})
    return graph


def test_serve_imports_only_the_floors_below_it():
    for name, (above, _) in imports().items():
        assert above <= BELOW, (name, above - BELOW)


def test_serve_modules_import_each_other_without_a_circle():
    graph = {name: beside for name, (_, beside) in imports().items()}
    done = set()

    def visit(module, path):
        assert module not in path, "import circle: " + " -> ".join(path + [module])
        if module in done:
            return
        for dependency in sorted(graph.get(module, ())):
            visit(dependency, path + [module])
        done.add(module)

    for module in graph:
        visit(module, [])
    # the units the issue names: the batcher and cache know nothing of HTTP
    assert graph["batcher"] <= {"cache"} and graph["cache"] == set()
    assert graph["gate"] == {"errors"}


@pytest.mark.slow
def test_importing_the_package_loads_no_web_framework(tmp_path):
    code = ("import sys, rnncore.serve, rnncore.serve.batcher, rnncore.serve.cache; "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))")
    # cwd: not the checkout, whose uncompiled rnncore/ would shadow the installed package
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert out.strip() == "[]"
