"""The ``hearflow`` command: thin glue over the library, one subcommand per job.

Each subcommand's work lives in a library module; the modules of this package only parse
arguments (``data``: datasets; ``training``: models; ``live``: the engine; ``deploy``:
export and benchmarks), call the library and turn expected failures
(:class:`~hearflow.errors.HearflowError`) into a one-line ``error: ...`` message with
exit status 2 instead of a traceback. The exit codes (hearflow.errors.EXIT_*) are listed
in every command's --help.
"""

from __future__ import annotations

import argparse
import sys

from hearflow import __version__

# importing a command module registers its subcommands; this order is the order --help lists them in
# isort: off
from hearflow.cli import data, training, live, deploy  # noqa: F401
# isort: on
from hearflow.cli.registry import COMMANDS
from hearflow.errors import EXIT_SIGINT, EXIT_USAGE, HearflowError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hearflow",
        description="Real-time visual sound source localization (Hear The Flow): "
        "train, evaluate, export and run models that show where a sound comes from in video.",
    )
    parser.add_argument("--version", action="version", version=f"hearflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help, description, exit_status, build) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=description, epilog=exit_status)
        p.set_defaults(_run=build(p))
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    # dotted overrides may come after options too (`synth OUT --train 8 duration=2`)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides or []) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        args._run(args)
    except HearflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        # hearflow run stopped while loading: SIGTERM is a requested stop, Ctrl-C an interruption
        if getattr(exc, "signal_name", None) == "SIGTERM":
            print("stopped by SIGTERM before the run started", file=sys.stderr)
            return 0
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    return 0

