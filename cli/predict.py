"""`serfast predict`: label the speech of an archive of recordings."""

import os
import sys

import click

from serfast.io.corpus import CorpusError
from serfast.calls.channel import WindowOptions
from serfast.calls.denoise import DenoiseOptions
from serfast.features.device import DEVICES, DeviceError
from serfast.calls.labels import OutputError
from serfast.calls.predict import PredictOptions, predict_archive
from serfast.features.spec import FeatureSpec
from serfast.workers import ClusterError

from .progress import ProgressLine


@click.command()
@click.argument("archive", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True),
              help="Folder of a trained model.")
@click.option("--out", required=True, type=click.Path(),
              help="labels.csv: one row per window of speech.")
@click.option("--summary", default="", type=click.Path(),
              help="Per file and channel summary [default: summary.csv beside --out].")
@click.option("--segments", is_flag=True,
              help="Also write segments.csv beside --out: adjacent same-label windows merged.")
@click.option("--plots", default="", type=click.Path(file_okay=False),
              help="Folder for one timeline PNG per file.")
@click.option("--mix", is_flag=True, help="Mix channels down instead of one speaker each.")
@click.option("--window", type=click.FloatRange(0.1), default=None,
              help=f"Window in seconds [default: the model's crop, {FeatureSpec.duration}].")
@click.option("--hop", type=click.FloatRange(0.05), default=None,
              help="Hop between windows in seconds [default: half the window].")
@click.option("--denoise/--no-denoise", default=True, show_default=True,
              help="Reduce steady line noise in each channel before labelling.")
@click.option("--workers", type=click.IntRange(0), default=0, show_default=True,
              help="Worker processes; 0 = every core.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run into --out.")
@click.option("--cluster", default="", metavar="ADDRESS",
              help="Run on a Dask cluster: tcp://host:8786, or local:N worker processes.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where window features are computed; auto = the GPU when one is usable.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def predict(archive, model_dir, out, summary, segments, plots, mix, window, hop, denoise,
            workers, resume, cluster, device, quiet):
    """Label every speech window of ARCHIVE (folders, audio files, .txt lists of paths or
    .csv manifests) with the model in --model.

    Each channel is its own speaker (agent and customer of a stereo call); silence, hold
    music and line noise are left out by voice-activity detection."""
    beside = os.path.dirname(os.path.abspath(out))
    windows = WindowOptions(window=window or 0.0, hop=hop or 0.0,
                            denoise=DenoiseOptions() if denoise else None)
    options = PredictOptions(windows=windows, mix=mix, workers=workers, resume=resume,
                             summary=summary,
                             segments=os.path.join(beside, "segments.csv") if segments else "",
                             plots=plots, cluster=cluster, device=device)
    progress = ProgressLine(not quiet, unit="audio h", scale=1 / 3600)
    try:
        rep = predict_archive(list(archive), model_dir, out, options, progress)
    except (CorpusError, OutputError, ClusterError, DeviceError, ValueError, OSError) as err:
        raise click.ClickException(" ".join(str(err).split())) from None
    click.echo(f"labelled {rep.windows} windows ({rep.speech_seconds / 3600:.2f} h of speech) "
               f"in {rep.channels} channels of {rep.files} files "
               f"({rep.audio_seconds / 3600:.2f} h of audio) in {rep.seconds:.1f} s "
               f"on {f'Dask cluster {cluster}' if cluster else f'{rep.workers} worker(s)'}"
               f"{'' if rep.device == 'CPU' else f' with {rep.device}'}, "
               f"{rep.errors} failed -> {out}")
    if rep.skipped:
        click.echo(f"resumed: {rep.skipped} files were already done")
    if rep.errors:
        click.echo(f"unreadable files and their reasons: rows of {out} with an error")
    if rep.files and rep.errors == rep.channels:
        sys.exit(1)
