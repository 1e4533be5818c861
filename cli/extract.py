"""`serfast extract`: a corpus into a feature store (its options, progress and summary)."""

import sys

import click

from serfast.io.corpus import CorpusError
from serfast.features.device import DEVICES, DeviceError
from serfast.extract import ExtractError, ExtractOptions, extract as run_extract
from serfast.features.spec import FEATURE_SETS, STORE_SPEC, FeatureSpec
from serfast.io.store import StoreError
from serfast.workers import ClusterError

from .progress import ProgressLine


def _csv_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


def run_and_report(corpus: str, out: str, options: ExtractOptions, quiet: bool) -> int:
    """Run an extraction, print its summary; returns the number of ok rows (of all rows,
    when ``resume`` found the store finished)."""
    try:
        summary = run_extract(corpus, out, options,
                              ProgressLine(not quiet, spec=options.spec))
    except (CorpusError, StoreError, ClusterError, DeviceError, ExtractError,
            ValueError) as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: the rows done are kept; continue with "
                   f"serfast extract {corpus} {out} --resume (and the same options)", err=True)
        sys.exit(130)
    if summary.complete:
        click.echo(f"{out} is complete ({summary.ok} of {summary.rows} rows ok): nothing to "
                   "resume (--overwrite extracts it again)")
        return summary.rows
    if summary.changed:
        click.echo(f"{summary.changed} clip(s) changed since the interrupted run: "
                   "computed again")
    click.echo(f"extracted {summary.ok} of {summary.rows} rows ({summary.errors} failed) "
               f"in {summary.seconds:.1f} s on {summary.where} -> {out}")
    if summary.ignored:
        click.echo(f"not audio, ignored: {len(summary.ignored)} file(s) (listed in the JSON)")
    if summary.notes:
        click.echo(f"kept without a label: {len(summary.notes)} clip(s), e.g. "
                   f"{summary.notes[0]} (all listed in the JSON)")
    if summary.errors:
        base = out[:-4] if out.endswith(".npy") else out
        click.echo(f"failed rows and their reasons: {base}.csv (status=error)")
    return summary.ok


@click.command()
@click.argument("corpus", type=click.Path(exists=True))
@click.argument("out", type=click.Path())
@click.option("--workers", type=click.IntRange(0), default=0, show_default=True,
              help="Worker processes; 0 = every core.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run into OUT (clips changed since are "
                   "computed again; a finished OUT is left as it is).")
@click.option("--overwrite", is_flag=True,
              help="Replace OUT's store or interrupted run (only files serfast wrote).")
@click.option("--features", "feature_set", type=click.Choice(FEATURE_SETS),
              default=STORE_SPEC.name, show_default=True,
              help="Feature set: seed (the method's 169 columns, the fastest), prosody "
                   "(pitch, voice quality, loudness, spectral shape, frame statistics) or "
                   "all (both: what serfast train's default recipe does best on).")
@click.option("--embedding/--no-embedding", default=None,
              help="Also store what the shipped speaker encoder makes of each clip (512 "
                   "columns; the default and telephone models read them). Default: with "
                   "the all set.")
@click.option("--frames/--no-frames", default=True, show_default=True,
              help="Also store per-frame log-mel and MFCC (with prosody: F0, voicing "
                   "probability and RMS dB too); serfast train's default network needs "
                   "them.")
@click.option("--sr", type=click.IntRange(1000), default=STORE_SPEC.sr, show_default=True,
              help="Sample rate in Hz.")
@click.option("--offset", type=click.FloatRange(0), default=STORE_SPEC.offset,
              show_default=True,
              help="Seconds skipped at the start of each file (the method's crop: 0.6).")
@click.option("--duration", type=click.FloatRange(0), default=STORE_SPEC.duration,
              show_default=True,
              help="Seconds kept; 0 keeps the whole file (the method's crop: 2.5).")
@click.option("--augment", default="", help="Comma list: noise,stretch,pitch,lowpass,telephone.")
@click.option("--copies", type=click.IntRange(1), default=1, show_default=True,
              help="Augmented copies per clip and augmentation.")
@click.option("--seed", type=int, default=0, show_default=True, help="Augmentation seed.")
@click.option("--cluster", default="", metavar="ADDRESS",
              help="Run on a Dask cluster: tcp://host:8786, or local:N worker processes.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where features are computed; auto = the GPU when one is usable.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def extract(corpus, out, workers, resume, overwrite, feature_set, embedding, frames, sr,
            offset, duration, augment, copies, seed, cluster, device, quiet):
    """Extract features of every clip under CORPUS (folder, file or CSV manifest) into
    the store OUT (.npy, with .csv and .json beside it)."""
    if not out.endswith(".npy"):
        raise click.BadParameter("OUT must end in .npy", param_hint="OUT")
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    spec = FeatureSpec(sr=sr, offset=offset, duration=duration, name=feature_set,
                       embedding=(feature_set == STORE_SPEC.name and STORE_SPEC.embedding)
                       if embedding is None else embedding)
    options = ExtractOptions(spec=spec,
                             workers=workers, frames=frames, augment=_csv_list(augment),
                             copies=copies, seed=seed, resume=resume, overwrite=overwrite,
                             cluster=cluster, device=device)
    if run_and_report(corpus, out, options, quiet) == 0:
        sys.exit(1)
