"""``gluon-resnetv2 <command>``: argument parsing only; every command calls the library.

Each sub-command lives in :mod:`gluon_resnetv2.commands.<name>` and provides ``add_parser(subparsers)``
(which registers its options and sets ``func``) so that commands can be added without touching this file
beyond the list below.
"""

import argparse
import importlib
import sys
import warnings

# Sub-command modules, in the order ``--help`` lists them.  A missing module (a command still being
# built) is skipped rather than breaking the others.
COMMANDS = [
    "check",
    "train",
    "launch",
    "plot",
    "reproduce",
    "analyze",
    "export",
    "predict",
    "bench",
    "bench_memory",
    "models",
]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="gluon-resnetv2", description="Identity Mappings in Deep Residual Networks (ResNet v2) in MXNet Gluon."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"gluon_resnetv2.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"gluon_resnetv2.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def error_message(err):
    """One line for a library error: its message; for an OS error (unwritable or missing path, full disk)
    the path and the operating system's reason."""
    if isinstance(err, OSError) and err.strerror:
        paths = " -> ".join(str(p) for p in (err.filename, err.filename2) if p is not None)
        return f"{paths}: {err.strerror}" if paths else err.strerror
    return str(err)


def call(args, prog):
    """Run the parsed command ``args.func(args)``; library errors become a one-line message and status 2,
    warnings one ``prog: warning:`` line each."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            result = args.func(args)
        except (ValueError, OSError, RuntimeError) as err:
            # Library errors are written for people: show the message, not a traceback.
            print(f"{prog}: error: {error_message(err)}", file=sys.stderr)
            return 2
    return result if isinstance(result, int) else 0


def interrupted(err, prog):
    """Ctrl-C (or a SIGTERM a command turned into ``Interrupted``): one line and the shell's status, 130
    (128 + SIGINT) or 143 (128 + SIGTERM).  Files that must not be half-written are staged
    (:func:`gluon_resnetv2.fileio.staged`) or written atomically, so nothing is left half-written."""
    kept = getattr(err, "kept", None)
    print(f"{prog}: {str(err) or 'interrupted'}" + (f"; {kept}" if kept else ""), file=sys.stderr)
    return getattr(err, "exit_code", 130)


def main(argv=None):
    prog = "gluon-resnetv2"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        prog = f"gluon-resnetv2 {args.command}"
        return call(args, prog)
    except KeyboardInterrupt as err:
        return interrupted(err, prog)


def run_as_script(command, argv=None, prog=None):
    """Run one sub-command as a program of its own: the thin entry points in ``scripts/``."""
    module = importlib.import_module(f"gluon_resnetv2.commands.{command}")
    parser = argparse.ArgumentParser(prog=prog, description=(module.__doc__ or "").strip().splitlines()[0])
    module.add_arguments(parser)
    try:
        args = parser.parse_args(argv)
        return call(args, parser.prog)
    except KeyboardInterrupt as err:
        return interrupted(err, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
