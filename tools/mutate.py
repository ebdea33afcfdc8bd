"""Mutation testing for rnncore's Python layer: does the test suite notice a one-line bug?

    python tools/mutate.py rnncore/train.py --only learning_rate_at evaluate \
        --tests tests/train/test_schedules.py tests/train/test_evaluate.py

For each module it lists the small, one-place changes a careless edit could make (a
comparison flipped or made inclusive, an operator swapped, a constant moved by one, a
condition negated, `and`/`or` swapped, a statement deleted, `break`/`continue` swapped),
applies them one at a time to a copy of the package in a temporary folder, runs the given
tests against that copy (PYTHONPATH, so subprocesses such as `python -m rnncore` see it too),
and reports the mutants the tests did not kill, with their line, the original code and the
change.  The working tree is never modified.

Docstrings, strings and f-strings (messages) are left alone.  `--only NAME ...` limits the
mutants to functions or methods whose qualified name (`Class.method`, `function`) or class
name is given.  Choose fast tests: every mutant runs them (with -x, stopping at the first
failure), and a mutant that makes them run longer than --timeout seconds counts as killed.
The exit status is 0 when every mutant was killed, 1 otherwise.

`--kinds semantic` makes, instead, the changes a wrong design or a hurried refactor makes,
which the one-token kinds above never do: a keyword argument dropped from a call (a
setting that no longer reaches its use), a one-argument call unwrapped to its argument
(a broadcast, copy, conversion or collective skipped: `broadcast(x)` -> `x`,
`p.copy()` -> `p`), a dictionary entry dropped (a key no longer stored or sent), an
operand dropped from an `and`/`or` (a condition forgotten), the two branches of an
`if`/`else` swapped, a slice's bound dropped (`a[lo:hi]` -> `a[lo:]`), a loop run over its
first item only, and a `return X` made `return None`.  `--kinds all` makes both.
`--sample N` tests N mutants drawn at random (`--seed`) from those listed, for a run over
the whole package in bounded time.
"""
import random
import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
                 ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
                 ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
               ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
               ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}
SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
          ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
          ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
          ast.Mod: "%", ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|", ast.And: "and",
          ast.Or: "or"}
DELETABLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Raise)


def _is_docstring(node, parent):
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


class _Applied(Exception):
    pass


class Sites:
    """Walks a module in a fixed order and yields (site, description) for every mutation;
    called again on a fresh tree with `apply=k`, it performs the k-th mutation instead."""

    def __init__(self, only=None, apply=None, kinds="syntax"):
        self.kinds = kinds
        self.only = set(only or ())
        self.apply = apply
        self.count = 0
        self.found = []        # (lineno, description, qualname)

    def _site(self, node, description, mutate, scope):
        if self.only and not (set(scope) & self.only or any(
                ".".join(scope[:k]) in self.only for k in range(2, len(scope) + 1))):
            return
        if self.apply == self.count:
            mutate()
            raise _Applied  # the walk stops here: later sites keep their numbers
        self.found.append((node.lineno, description, ".".join(scope)))
        self.count += 1

    def visit(self, node, scope=(), parent=None):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = scope + (node.name,)
        if isinstance(node, ast.If) and _is_main_guard(node):
            return
        if isinstance(node, (ast.JoinedStr, ast.Import, ast.ImportFrom)):
            return
        if self.kinds in ("syntax", "all"):
            self._node_sites(node, scope, parent)
        if self.kinds in ("semantic", "all"):
            self._semantic_sites(node, scope, parent)
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, ast.AST):
                        if isinstance(child, ast.stmt) and self.kinds in ("syntax", "all"):
                            self._statement_sites(node, field, i, child, scope)
                        if not (isinstance(child, ast.stmt) and _is_docstring(child, node)):
                            self.visit(child, scope, node)
            elif isinstance(value, ast.AST):
                self.visit(value, scope, node)

    def _statement_sites(self, parent, field, i, stmt, scope):
        body = getattr(parent, field)
        if not isinstance(stmt, DELETABLE) or _is_docstring(stmt, parent):
            return
        if isinstance(stmt, ast.Expr) and not isinstance(stmt.value, ast.Call):
            return

        def delete():
            body[i] = ast.copy_location(ast.Pass(), stmt)
        text = ast.unparse(stmt).splitlines()[0]
        self._site(stmt, f"delete `{text[:60]}`", delete, scope)

    def _node_sites(self, node, scope, parent):
        if isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                new = COMPARE_SWAPS.get(type(op))
                if new:
                    def swap(k=k, new=new):
                        node.ops[k] = new()
                    self._site(node, f"`{SYMBOL[type(op)]}` -> `{SYMBOL[new]}`", swap, scope)
        elif isinstance(node, (ast.BinOp, ast.AugAssign)):
            new = BINOP_SWAPS.get(type(node.op))
            if new and not _is_string_format(node):
                def swap(new=new):
                    node.op = new()
                aug = "=" if isinstance(node, ast.AugAssign) else ""
                self._site(node, f"`{SYMBOL[type(node.op)]}{aug}` -> `{SYMBOL[new]}{aug}`",
                           swap, scope)
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And

            def swap(new=new):
                node.op = new()
            self._site(node, f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[new]}`", swap, scope)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            def drop():
                _replace_child(parent, node, node.operand)
            what = "not " if isinstance(node.op, ast.Not) else "-"
            self._site(node, f"drop `{what}`", drop, scope)
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            value = node.value
            if isinstance(value, bool):
                new = not value
            elif isinstance(value, int):
                # `-1` (last, or "infer" in a reshape) moves to `-0`, not to `-2`
                negated = isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub)
                new = value - 1 if negated and value > 0 else value + 1
            else:
                new = value * 2 if value else 1.0

            def change(new=new):
                node.value = new
            sign = "-" if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub) \
                else ""
            self._site(node, f"constant {sign}{value!r} -> {sign}{new!r}", change, scope)
        elif isinstance(node, (ast.If, ast.While)) and not isinstance(node.test, ast.Compare):
            def negate():
                node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
            keyword = "if" if isinstance(node, ast.If) else "while"
            self._site(node, f"`{keyword} X` -> `{keyword} not X`", negate, scope)
        elif isinstance(node, (ast.Break, ast.Continue)):
            new = ast.Continue if isinstance(node, ast.Break) else ast.Break

            def swap(new=new):
                _replace_statement(parent, node, new())
            self._site(node, f"`{type(node).__name__.lower()}` -> `{new.__name__.lower()}`",
                       swap, scope)


    def _semantic_sites(self, node, scope, parent):
        """The semantic kinds (module docstring)."""
        if isinstance(node, ast.Call):
            for k, kw in enumerate(node.keywords):
                if kw.arg is None:
                    continue

                def drop_keyword(k=k):
                    del node.keywords[k]
                self._site(node, f"drop keyword `{kw.arg}=` from `{_name(node.func)}(...)`",
                           drop_keyword, scope)
            unwrapped = None
            if len(node.args) == 1 and not node.keywords \
                    and not isinstance(node.args[0], ast.Starred):
                unwrapped = node.args[0]               # f(x) -> x
            elif not node.args and not node.keywords and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("copy", "item", "tolist"):
                unwrapped = node.func.value            # x.copy() -> x
            if unwrapped is not None and parent is not None and not _is_statement_call(node,
                                                                                      parent):
                def unwrap(new=unwrapped):
                    _replace_child(parent, node, new)
                self._site(node, f"unwrap `{ast.unparse(node)[:50]}` to "
                           f"`{ast.unparse(unwrapped)[:30]}`", unwrap, scope)
        elif isinstance(node, ast.Dict) and len(node.keys) > 1:
            for k, key in enumerate(node.keys):
                if key is None:
                    continue

                def drop_entry(k=k):
                    del node.keys[k]
                    del node.values[k]
                self._site(node, f"drop entry `{ast.unparse(key)[:40]}` of a dict",
                           drop_entry, scope)
        elif isinstance(node, ast.BoolOp):
            for k in range(len(node.values)):
                def drop_operand(k=k):
                    del node.values[k]
                    if len(node.values) == 1:
                        _replace_child(parent, node, node.values[0])
                self._site(node, f"drop operand `{ast.unparse(node.values[k])[:50]}` of "
                           f"`{SYMBOL[type(node.op)]}`", drop_operand, scope)
        elif isinstance(node, ast.If) and node.orelse and not (
                len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If)):
            def swap_branches():
                node.body, node.orelse = node.orelse, node.body
            self._site(node, f"swap the branches of `if {ast.unparse(node.test)[:50]}`",
                       swap_branches, scope)
        elif isinstance(node, ast.Slice):
            for bound in ("lower", "upper"):
                if getattr(node, bound) is not None:
                    def drop_bound(bound=bound):
                        setattr(node, bound, None)
                    self._site(node, f"drop the {bound} bound of `[{ast.unparse(node)[:40]}]`",
                               drop_bound, scope)
        elif isinstance(node, ast.For):
            def first_only():
                node.iter = ast.Subscript(value=node.iter, slice=ast.Slice(
                    upper=ast.Constant(1)), ctx=ast.Load())
            self._site(node, f"loop over the first item of `{ast.unparse(node.iter)[:50]}` "
                       "only", first_only, scope)
        elif isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            def return_none():
                node.value = ast.Constant(None)
            self._site(node, f"`return {ast.unparse(node.value)[:50]}` -> `return None`",
                       return_none, scope)


def _name(func):
    return ast.unparse(func)[:40]


def _is_statement_call(node, parent):
    """A call that is a statement of its own (its value is unused: unwrapping it changes
    nothing; deleting it is the syntax kinds' job)."""
    return isinstance(parent, ast.Expr)


def _is_main_guard(node):
    return (isinstance(node.test, ast.Compare) and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__")


def _is_string_format(node):
    return (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod)
            and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str))


def _replace_child(parent, old, new):
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                if item is old:
                    value[i] = new
                    return
    raise RuntimeError("child not found")


def _replace_statement(parent, old, new):
    _replace_child(parent, old, ast.copy_location(new, old))


def mutants(source, only=None, kinds="syntax"):
    """[(index, lineno, description, qualname)] for a module's source."""
    sites = Sites(only, kinds=kinds)
    sites.visit(ast.parse(source))
    return [(i, *found) for i, found in enumerate(sites.found)]


def mutated_source(source, index, only=None, kinds="syntax"):
    tree = ast.parse(source)
    try:
        Sites(only, apply=index, kinds=kinds).visit(tree)
    except _Applied:
        pass
    else:
        raise IndexError(f"no mutant number {index}")
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider"]


def run_tests(workdir, tests, timeout, env, fork):
    """"passed", "failed" or "timeout" for one run of the tests against the copy."""
    if fork:
        return _run_forked(workdir, tests, timeout, env)
    cmd = [sys.executable, "-B", "-m", "pytest", *PYTEST_ARGS, *tests]
    try:
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "passed" if proc.returncode == 0 else "failed"


def _run_forked(workdir, tests, timeout, env):
    """pytest in a forked child of this process, which has imported pytest, numpy and scipy
    once (but never rnncore: the child imports the mutated copy afresh)."""
    pid = os.fork()
    if pid == 0:  # the child
        status = 3
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.chdir(workdir)
            os.environ.clear()
            os.environ.update(env)
            sys.path[:0] = [workdir, os.path.join(workdir, "tests")]
            import pytest
            status = int(pytest.main([*PYTEST_ARGS, *tests]))
        finally:
            os._exit(status)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "passed" if os.waitstatus_to_exitcode(status) == 0 else "failed"
        if deadline is not None and time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.02)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("modules", nargs="+", help="files under rnncore/ to mutate")
    ap.add_argument("--tests", nargs="+", required=True, help="test files or node ids to run")
    ap.add_argument("--only", nargs="+", help="mutate only these functions/classes")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per mutant (default: 5 x the unmutated run, >= 20)")
    ap.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    ap.add_argument("--kinds", choices=("syntax", "semantic", "all"), default="syntax",
                    help="which mutants: one-token edits (default), semantic ones, or both")
    ap.add_argument("--sample", type=int, help="test only this many mutants, drawn at "
                    "random from all the modules' (see --seed)")
    ap.add_argument("--seed", type=int, default=0, help="the draw of --sample (default 0)")
    ap.add_argument("--no-fork", dest="fork", action="store_false",
                    help="start a fresh interpreter per mutant (slower; the default forks "
                    "one that has imported pytest and numpy)")
    args = ap.parse_args(argv)

    sources = {}
    for module in args.modules:
        rel = os.path.relpath(os.path.abspath(module), ROOT)
        if not rel.startswith("rnncore" + os.sep) or not rel.endswith(".py"):
            ap.error(f"{module}: not a module of rnncore/")
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            sources[rel] = f.read()
    if args.list:
        for rel, source in sources.items():
            for i, line, what, scope in mutants(source, args.only, args.kinds):
                print(f"{rel}:{line} [{i}] {scope}: {what}")
        return 0
    chosen = None
    if args.sample is not None:
        every = [(rel, m[0]) for rel, source in sources.items()
                 for m in mutants(source, args.only, args.kinds)]
        chosen = set(random.Random(args.seed).sample(every, min(args.sample, len(every))))

    work = tempfile.mkdtemp(prefix="rnncore-mutate-")
    try:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(os.path.join(ROOT, "rnncore"), os.path.join(work, "rnncore"),
                        ignore=ignore)
        shutil.copytree(os.path.join(ROOT, "tests"), os.path.join(work, "tests"),
                        ignore=ignore)
        for name in ("pyproject.toml", "README.md", "CHANGELOG.md"):
            shutil.copy(os.path.join(ROOT, name), work)
        # the guides: the tests that check what they promise read them there
        shutil.copytree(os.path.join(ROOT, "docs"), os.path.join(work, "docs"))
        env = {**os.environ, "PYTHONPATH": work, "PYTHONDONTWRITEBYTECODE": "1"}
        probe = subprocess.run([sys.executable, "-c", "import rnncore; print(rnncore.__file__)"],
                               cwd=work, env=env, capture_output=True, text=True)
        if not probe.stdout.startswith(work):
            raise SystemExit(f"the copy in {work} is not what gets imported: {probe.stdout}"
                             f"{probe.stderr}")
        t0 = time.monotonic()
        if args.fork:
            import numpy, pytest, scipy.linalg  # noqa: F401  (imported once, before forking)
            assert "rnncore" not in sys.modules
        if run_tests(work, args.tests, None, env, args.fork) != "passed":
            raise SystemExit("the tests fail without any mutation: fix them first")
        timeout = args.timeout or max(20.0, 5 * (time.monotonic() - t0))
        survivors, total, killed = [], 0, 0
        for rel, source in sources.items():
            target = os.path.join(work, rel)
            listed = mutants(source, args.only, args.kinds)
            if chosen is not None:
                listed = [m for m in listed if (rel, m[0]) in chosen]
            print(f"{rel}: {len(listed)} mutants", flush=True)
            for i, line, what, scope in listed:
                with open(target, "w", encoding="utf-8") as f:
                    f.write(mutated_source(source, i, args.only, args.kinds))
                outcome = run_tests(work, args.tests, timeout, env, args.fork)
                total += 1
                if outcome == "passed":
                    original = source.splitlines()[line - 1].strip()
                    survivors.append((rel, line, scope, what, original))
                    print(f"  SURVIVED {rel}:{line} {scope}: {what}    | {original}",
                          flush=True)
                else:
                    killed += 1
            with open(target, "w", encoding="utf-8") as f:
                f.write(source)
        score = killed / total if total else 1.0
        print(f"\n{killed}/{total} mutants killed ({score:.0%}); {len(survivors)} survived")
        for rel, line, scope, what, original in survivors:
            print(f"{rel}:{line} {scope}: {what}    | {original}")
        return 0 if not survivors else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
