"""Entry point of the `serfast` console script; its sub-commands live in the modules of
this package (`demo`, `extract`, `predict`, and `train` with `evaluate`).

Sub-commands are imported when they run (click's lazy-group pattern), so `serfast
extract` starts without importing what only `predict` or `train` need.
"""

import importlib

import click

from serfast import __version__

#: command name -> "module:function" of its click command, in this package.
COMMANDS = {
    "demo": "demo:demo",
    "evaluate": "train:evaluate",
    "extract": "extract:extract",
    "predict": "predict:predict",
    "report": "report:report",
    "train": "train:train",
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="serfast")
def main() -> None:
    """serfast: fast speech-emotion-recognition features, training and bulk labelling."""
    from serfast.process import own_this_process

    own_this_process()  # the command's process is serfast's: its process-wide settings
