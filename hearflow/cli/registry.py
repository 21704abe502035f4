"""The subcommand registry: ``@command`` records a subcommand's argument builder, and the
exit-status texts every --help ends with."""

from __future__ import annotations

COMMANDS = {}

EXIT_STATUS = ("exit status: 0 done; 1 a runtime failure; 2 bad usage or input (one 'error:' line); "
               "130 interrupted by Ctrl-C.")

RUN_EXIT_STATUS = (
    "exit status: 0 everything requested was delivered (also when stopped by SIGTERM: a requested stop); "
    "1 a runtime failure (a source or the inference failed); 2 bad usage or input, reported before the "
    "model loads where it can be; 3 a sink lost output (a write or the final file failed, e.g. a full "
    "disk: its error is in the summary); 130 stopped by Ctrl-C/SIGINT, after every file was finished. "
    "The summary's stopped_by says which signal stopped the run. When several apply: 1, then 3, then 130."
)


def command(name: str, help: str, description: str | None = None, exit_status: str = EXIT_STATUS):
    """Register ``fn(parser)`` as the argument builder of subcommand ``name``."""

    def register(build):
        COMMANDS[name] = (help, description or help, exit_status, build)
        return build

    return register


def overrides_help() -> str:
    return "dotted config overrides, e.g. model.backbone=resnet18 train.epochs=5"
