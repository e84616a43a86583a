"""The documentation's examples run: every ``python`` block of the README and the guides is executed (tiny
sizes), and every ``gluon-resnetv2 ...`` command line they show parses with the real parser, so a renamed
function or option breaks the build instead of the reader's first try."""

import argparse
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from gluon_resnetv2.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
GENERATED_DIRS = ("_build", "_generated", "results", "reproduce", "propagation")
#: First line of a python block that needs data or a long run: it is compiled, not run.  Keep it rare.
SKIP_MARKER = "# docs-test: skip"


def pages():
    out = [os.path.join(ROOT, "README.md")]
    for path in sorted(glob.glob(os.path.join(DOCS, "**", "*.md"), recursive=True)):
        if os.path.relpath(path, DOCS).split(os.sep)[0] not in GENERATED_DIRS:
            out.append(path)
    return out


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def code_blocks(language):
    """``[(page:line, code)]`` of every fenced block in ``language`` (``sh`` includes bash)."""
    langs = {"python": ("python",), "sh": ("sh", "bash", "shell", "console")}[language]
    out = []
    for path in pages():
        text = _read(path)
        for match in FENCE.finditer(text):
            if match.group(1) in langs:
                line = text[: match.start()].count("\n") + 1
                out.append((f"{os.path.relpath(path, ROOT)}:{line}", match.group(2)))
    return out


PYTHON_BLOCKS = code_blocks("python")


def test_the_guides_have_python_examples():
    names = {where.split(":")[0] for where, _ in PYTHON_BLOCKS}
    assert {"README.md", "docs/guides/units-and-networks.md", "docs/guides/deployment.md"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("where, code", PYTHON_BLOCKS, ids=[w for w, _ in PYTHON_BLOCKS])
def test_python_example_runs(where, code, tmp_path):
    """Each block in a fresh interpreter, in an empty directory (the blocks write only under it)."""
    if code.lstrip().startswith(SKIP_MARKER):
        compile(code, where, "exec")
        return
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, f"{where} failed:\n{proc.stderr[-3000:]}"


# -- command lines -------------------------------------------------------------------------------------

PROG = "gluon-resnetv2"


def _commands_in(text):
    """Command lines that start with ``gluon-resnetv2``: continuation lines joined, comments dropped, an
    environment prefix (``VAR=1 gluon-resnetv2 ...``) or a launcher (``salloc ... gluon-resnetv2``) cut off,
    and ``launch ... -- gluon-resnetv2 train ...`` split into its two commands."""
    text = text.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = " ".join(re.sub(r"(^|\s)#.*$", "", line).split()).strip('"')
        while PROG + " " in line:
            line = line[line.index(PROG + " ") :]
            rest = line[len(PROG) :]
            nxt = rest.find(" -- " + PROG + " ")
            if nxt >= 0:
                out.append(line[: len(PROG) + nxt + 3])
                line = rest[nxt + 4 :]
            else:
                out.append(line)
                break
    return out


def _placeholders_removed(argv):
    """Docs write optional parts as ``[--gpu 0]`` and elisions as ``...``: keep the options, drop the dots."""
    out = []
    for token in argv:
        token = token.strip("[]")
        if token in ("...", "…", "", "|"):
            if out and out[-1].startswith("--") and token in ("...", "…"):
                out.pop()  # `--activation ...`: the option's value elided
            continue
        out.append(token)
    return out


def command_lines():
    """Whole command lines of the shell blocks."""
    found = []
    for where, code in code_blocks("sh"):
        found += [(where, c) for c in _commands_in(code)]
    return found


def inline_options():
    """``gluon-resnetv2 SUBCOMMAND ... --option`` in running text (a part of a command, not all of it)."""
    found = []
    for path in pages():
        for match in re.finditer(r"`(?:[A-Z_]+=\S+ )*(" + PROG + r" [a-z-]+ [^`]*--[^`]*)`", _read(path)):
            found.append((os.path.relpath(path, ROOT), match.group(1)))
    return found


COMMANDS = command_lines()
INLINE = inline_options()


def test_command_line_extraction():
    text = "x=1 gluon-resnetv2 launch -n 2 -- \\\n  gluon-resnetv2 train ... --kvstore dist_sync --out o  # comment"
    assert _commands_in(text) == [
        "gluon-resnetv2 launch -n 2 --",
        "gluon-resnetv2 train ... --kvstore dist_sync --out o",
    ]
    assert _commands_in("salloc -n 2 gluon-resnetv2 models") == ["gluon-resnetv2 models"]
    assert _placeholders_removed(["predict", "e", "a.png", "[--gpu", "0]", "--act", "..."]) == [
        "predict",
        "e",
        "a.png",
        "--gpu",
        "0",
    ]
    assert len(COMMANDS) > 30 and len(INLINE) >= 3


@pytest.mark.parametrize("where, line", COMMANDS, ids=[f"{w}: {c[:60]}" for w, c in COMMANDS])
def test_documented_command_parses(where, line):
    argv = _placeholders_removed(shlex.split(line)[1:])
    if argv and argv[-1] == "--":
        argv.append("true")  # launch's command was split off above
    parser = build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as err:
        pytest.fail(f"{where}: `{line}` does not parse ({err.code})")


def _subcommand_options(name):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices[name]._option_string_actions)


@pytest.mark.parametrize("where, text", INLINE, ids=[f"{w}: {c[:60]}" for w, c in INLINE])
def test_documented_option_exists(where, text):
    """``gluon-resnetv2 export --force`` in a sentence: ``export`` has a ``--force``."""
    argv = shlex.split(text.replace("[", " ").replace("]", " "))
    options = _subcommand_options(argv[1])
    unknown = [t.split("=")[0] for t in argv[2:] if t.startswith("--") and t.split("=")[0] not in options]
    assert not unknown, f"{where}: `{text}` names options that `{argv[1]}` does not have: {unknown}"
