"""The documentation holds together: every link in README.md, CHANGELOG.md and docs/*.md
resolves (the file, and the heading an #anchor names), every `rnncore ...` command the docs
show still parses with the CLI's own parser (nothing is run), every Python snippet
compiles, and README stays a front door with the set-up commands CI runs.  A source
distribution ships without docs/: these tests are skipped there."""
import argparse
import re
import shlex
from pathlib import Path

import pytest

from rnncore import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(not DOCS.is_dir(), reason="no docs/ (a source distribution)")


def documents():
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]


def fenced_blocks(text):
    """[(info string, first line number, [lines])] of the ``` blocks of a Markdown text."""
    blocks, current = [], None
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("```"):
            if current is None:
                current = (line[3:].strip(), number + 1, [])
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current[2].append(line)
    assert current is None, f"a ``` block opened at line {current[1] - 1} is never closed"
    return blocks


def prose(text):
    """The text outside fenced blocks, each fenced line blanked (line numbers kept)."""
    lines, fence = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fence = not fence
            lines.append("")
        else:
            lines.append("" if fence else line)
    return "\n".join(lines)


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    found, seen = set(), {}
    for line in prose(path.read_text(encoding="utf-8")).split("\n"):
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            base = slug(heading.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def broken_links(path, root=ROOT):
    """The links of one document that do not resolve, as 'line N: target (why)'.  A link's
    text may wrap a line; links inside code are not links."""
    text = prose(path.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`]*`", lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    broken = []
    for match in LINK.finditer(text):
        target, number = match.group(1), text.count("\n", 0, match.start(1)) + 1
        if re.match(r"[a-z][a-z0-9+.-]*:", target):   # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        where = (path.parent / file).resolve() if file else path
        if root not in where.parents:
            broken.append(f"line {number}: {target} (outside the repository)")
        elif not where.exists():
            broken.append(f"line {number}: {target} (no such file)")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(f"line {number}: {target} (no heading #{anchor} in "
                          f"{where.relative_to(root)})")
    return broken


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(path):
    assert broken_links(path) == []


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "guide.md").write_text("# A guide\n\n## Two words\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text("[ok](guide.md#two-words) [self](#top) `[code](nowhere.md)`\n\n# Top\n"
                   "[gone](missing.md) and ![img](nope.png)\n[bad anchor](guide.md#three)\n"
                   "```\n[in a fence](fenced.md)\n```\n[a text that\nwraps](../out.md)\n",
                   encoding="utf-8")
    assert broken_links(doc, root=tmp_path) == [
        "line 4: missing.md (no such file)", "line 4: nope.png (no such file)",
        "line 5: guide.md#three (no heading #three in guide.md)",
        "line 10: ../out.md (outside the repository)"]


def test_slugs_are_githubs():
    assert slug("Beam search: the most probable completion") == \
        "beam-search-the-most-probable-completion"
    assert slug("Which start learns best: the gated cells' initialisation") == \
        "which-start-learns-best-the-gated-cells-initialisation"
    assert slug("Validation, schedules, metrics, plots") == "validation-schedules-metrics-plots"


# ---- the commands the docs show ---------------------------------------------------------
SUBCOMMANDS = next(a for a in cli.build_parser()._actions
                   if isinstance(a, argparse._SubParsersAction)).choices


def shell_lines(info, lines):
    """The command lines of a shell block: its `$ ` lines when it has a prompt (the rest is
    output), else every line; a line ending in a backslash continues on the next."""
    if info not in ("", "sh", "bash", "console", "shell"):
        return []
    prompted = any(line.startswith("$ ") for line in lines)
    commands, pending = [], None
    for line in lines:
        if pending is not None:
            pending += " " + line
        elif not prompted or line.startswith("$ "):
            pending = line[2:] if prompted else line
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1]
        else:
            commands.append(pending)
            pending = None
    return [line for line in commands if re.search(r"\brnncore\b", line)]


def rnncore_commands(line):
    """The argument lists given to `rnncore` in one shell line (after `&&`, `|`, `mpiexec
    -n 2`...); optional parts written [--flag VALUE] count as given."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    commands, current = [], None
    for token in lexer:
        if token in ("&&", "||", "|", ";", "&"):
            current = None
        elif current is not None:
            current.append(token.strip("[]"))
        elif token == "rnncore":
            current = []
            commands.append(current)
    return [[t for t in c if t] for c in commands]


def fenced_commands():
    found = []
    for path in documents():
        for info, first, lines in fenced_blocks(path.read_text(encoding="utf-8")):
            for line in shell_lines(info, lines):
                for argv in rnncore_commands(line):
                    found.append((f"{path.relative_to(ROOT)}:{first}", argv))
    return found


COMMANDS = fenced_commands()


def test_the_docs_show_every_everyday_command():
    shown = {argv[0] for _, argv in COMMANDS if argv}
    assert {"demo", "train", "sample", "suggest", "next", "serve", "eval", "info"} <= shown
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[f"{w} {' '.join(a)[:50]}"
                                                       for w, a in COMMANDS])
def test_every_command_in_the_docs_parses(where, argv, capsys):
    parser = cli.build_parser()
    if argv == ["--version"]:
        assert "--version" in parser._option_string_actions
        return
    try:
        parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: rnncore {' '.join(argv)}: {capsys.readouterr().err.strip()}")


def test_a_command_that_does_not_parse_is_caught():
    assert rnncore_commands("python -m pip install . && rnncore demo") == [["demo"]]
    assert rnncore_commands("mpiexec -n 2 rnncore train c.txt --out m.npz  # two ranks") == \
        [["train", "c.txt", "--out", "m.npz"]]
    assert rnncore_commands("rnncore serve m.npz [--port 8000]") == \
        [["serve", "m.npz", "--port", "8000"]]
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "c.txt", "--out", "m.npz", "--hiden-size", "8"])


INLINE = re.compile(r"`(rnncore [a-z]+[^`]*)`")


def inline_commands():
    """`rnncore SUBCOMMAND ...` spans of the prose (a span may wrap a line)."""
    found = []
    for path in documents():
        text = re.sub(r"\s*\n\s*", " ", prose(path.read_text(encoding="utf-8")))
        for span in INLINE.findall(text):
            found.append((str(path.relative_to(ROOT)), span))
    return found


def test_every_flag_of_an_inline_command_exists():
    """Prose names commands in usage form (`rnncore sample CKPT [--top-k K]`): their
    subcommand and every --flag must exist."""
    unknown = []
    spans = inline_commands()
    assert len(spans) >= 20
    for where, span in spans:
        name = span.split()[1]
        if name not in SUBCOMMANDS:
            unknown.append(f"{where}: `{span}`: no command {name!r}")
            continue
        options = SUBCOMMANDS[name]._option_string_actions
        pieces = span.split(" | ")   # `--greedy | --beam K`, but not `... | head -c 50`
        usage = " ".join(p for i, p in enumerate(pieces) if i == 0 or p.startswith("-"))
        for flag in re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", usage):
            if flag not in options:
                unknown.append(f"{where}: `{span}`: no option {flag}")
    assert unknown == []


# ---- Python snippets, README's shape ------------------------------------------------------
@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_snippet_compiles(path):
    for info, first, lines in fenced_blocks(path.read_text(encoding="utf-8")):
        if info == "python":
            compile("\n".join(lines), f"{path.name}:{first}", "exec")


def test_readme_is_a_front_door_with_the_setup_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    blocks = ["\n".join(lines) for _, _, lines in fenced_blocks(readme)]
    assert "python -m pip install . && rnncore demo" in blocks
    assert 'python -m pip install ".[test]" && pytest' in blocks
    ci = (ROOT / ".ci" / "run")
    if ci.exists():
        assert 'python -m pip install ".[test]" && pytest' in ci.read_text()
    for guide in ("user-guide", "server", "performance", "tinyshakespeare", "distributed",
                  "architecture", "development"):
        assert f"](docs/{guide}.md)" in readme, f"README does not link docs/{guide}.md"
    assert "](CHANGELOG.md)" in readme
