"""`serfast demo`: the whole pipeline on an embedded synthetic corpus, no data needed."""

import os
import shutil

import click

from serfast.extract import ExtractOptions

from .extract import run_and_report


@click.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False), default="serfast-demo",
              show_default=True, help="Where the demo corpus and outputs go (replaced).")
@click.option("--quiet", is_flag=True, help="No progress display.")
def demo(folder, quiet):
    """Make a small labelled corpus of synthetic speech, extract it, cross-validate and
    train a model, then label a synthetic stereo telephone call with it."""
    from serfast.demo import make_demo_call, make_demo_corpus
    from serfast.calls.predict import PredictOptions, predict_archive
    from serfast.model.train import TrainOptions, train

    shutil.rmtree(folder, ignore_errors=True)
    corpus, store = os.path.join(folder, "corpus"), os.path.join(folder, "features.npy")
    click.echo(f"1/4 made {make_demo_corpus(corpus)} synthetic clips (6 speakers, 6 emotions)"
               f" in {corpus}")
    click.echo("2/4 ", nl=False)
    run_and_report(corpus, store, ExtractOptions(frames=True), quiet)
    model = os.path.join(folder, "model")
    report = train([store], model, TrainOptions(cv=3, ensemble=1, epochs=20))
    cv = report["cv"]["summary"]
    click.echo(f"3/4 3-fold speaker CV accuracy {100 * cv['accuracy']['mean']:.1f} % "
               f"(UAR {cv['uar']['mean']:.2f}); model and report -> {model}")
    calls = os.path.join(folder, "calls")
    os.makedirs(calls)
    truth = make_demo_call(os.path.join(calls, "call.wav"))
    labels = os.path.join(folder, "labels.csv")
    rep = predict_archive([calls], model, labels,
                          PredictOptions(plots=os.path.join(folder, "plots")))
    click.echo(f"4/4 labelled a {rep.audio_seconds:.0f}-s stereo µ-law call with "
               f"{len(truth)} utterances: {rep.windows} windows -> {labels}, "
               f"{os.path.join(folder, 'summary.csv')}, {os.path.join(folder, 'plots')}/")
