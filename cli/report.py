"""`serfast report`: the archive report of a predict run, one HTML page."""

import click

from serfast.calls.html_report import DEFAULT_CHANNELS, ReportError, write_report


@click.command()
@click.argument("results", type=click.Path(exists=True))
@click.option("--html", "page", required=True, type=click.Path(dir_okay=False),
              help="The page to write (an earlier report there is replaced).")
@click.option("--channels", default=",".join(DEFAULT_CHANNELS), show_default=True,
              help="Names of channels 0, 1, … on the page, comma-separated.")
@click.option("--title", default="", help="Page title [default: from the labels file].")
def report(results, page, channels, title):
    """Write one self-contained HTML page (no server, nothing fetched) for the calls that
    `serfast predict` labelled: RESULTS is its --out labels CSV or the folder holding it,
    beside which its summary CSV lies. The page plays each call from the audio files by
    their paths relative to the page, so keep the page where it can reach them."""
    titles = tuple(t.strip() for t in channels.split(",") if t.strip())
    try:
        info = write_report(results, page, titles, title)
    except ReportError as err:
        raise click.ClickException(" ".join(str(err).split())) from None
    click.echo(f"report of {info.calls} calls ({info.windows} windows, "
               f"{info.bytes / 1e6:.1f} MB) in {info.seconds:.1f} s -> {info.path}")
