"""The package's import graph: floors, no circles."""
import ast
from pathlib import Path

import rnncore

PACKAGE = Path(rnncore.__file__).parent
#: the one sanctioned upward edge: CharRNN's generation conveniences (model.py says so);
#: its file conveniences import nothing (checkpoint and export register their formats)
SANCTIONED = {("model", "sample"), ("model", "predict")}
#: floor 1: what every other floor may use; each imports only the modules listed
FLOOR_1 = {"errors": set(), "layout": {"errors"}, "files": {"errors"},
           "config": {"errors", "layout"}, "vocab": {"errors"}, "lock": {"errors"},
           "npzfile": set(), "metrics": {"errors"}, "clock": set()}


def imports():
    """{module: {rnncore modules it imports, anywhere in its body}}."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        name = path.stem
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(a.name for a in node.names)
        graph[name] = {m for m in found if (PACKAGE / f"{m}.py").exists()} - {name}
    return graph


def test_floor_one_modules_import_only_floor_one():
    graph = imports()
    for name, allowed in FLOOR_1.items():
        assert graph[name] <= allowed, (name, graph[name] - allowed)


def test_there_are_no_import_circles():
    graph = {m: {d for d in deps if (m, d) not in SANCTIONED}
             for m, deps in imports().items()}
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        path.append(m)
        for d in sorted(graph.get(m, ())):
            visit(d)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_the_cli_catches_one_base_class():
    source = (PACKAGE / "cli.py").read_text()
    assert "except RnncoreError" in source
    for bare in ("ValueError", "TypeError"):
        assert f"except ({bare}" not in source and f", {bare})" not in source
