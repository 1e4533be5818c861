"""Entry point of the `serfast` console script: one sub-command per module."""

import click

from serfast import __version__

from .demo import demo
from .extract import extract
from .train import evaluate, train
from .predict import predict


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="serfast")
def main() -> None:
    """serfast: fast speech-emotion-recognition features, training and bulk labelling."""


main.add_command(extract)
main.add_command(demo)
main.add_command(predict)
main.add_command(train)
main.add_command(evaluate)
