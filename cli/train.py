"""`serfast train` and `serfast evaluate`."""

import json
import os

import click

from serfast.model.report import write_predictions
from serfast.io.store import StoreError


class Folds(click.ParamType):
    """``--cv``: a number of speaker folds (0 = none) or ``corpus``."""

    name = "K|corpus"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == "corpus":
            return value
        try:
            folds = int(value)
        except ValueError:
            folds = -1
        if folds < 0:
            self.fail(f"use a number of speaker folds (0 = none) or 'corpus', not {value!r}",
                      param, ctx)
        return folds


def _library_errors():
    from serfast.model.config import ModelError
    from serfast.model.train import TrainError

    return (StoreError, TrainError, ModelError)


@click.command()
@click.argument("stores", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to save the trained model and its report in.")
@click.option("--classes", default="seed6", show_default=True,
              help="seed6 (no calm/surprised), all, or a comma list of emotions.")
@click.option("--cv", type=Folds(), default=5, show_default=True,
              help="Folds of whole speakers (0 = no cross-validation), or 'corpus': hold "
                   "out each corpus of STORES in turn (the stores' dataset column).")
@click.option("--network", type=click.Choice(["serfast", "method"]), default="serfast",
              show_default=True, help="serfast ensemble, or the method's exact SER-FusionNet.")
@click.option("--extractor", type=click.Choice(["conv1d", "conv2d"]), default="conv1d",
              show_default=True, help="Method network: deep-feature extractor.")
@click.option("--classifier", type=click.Choice(["mlp", "lstm", "bilstm"]), default="mlp",
              show_default=True, help="Method network: classifier head.")
@click.option("--norm", type=click.Choice(["speaker", "global"]), default=None,
              help="Feature normalisation [serfast: speaker, method: global].")
@click.option("--ensemble", type=click.IntRange(0), default=2, show_default=True,
              help="Serfast: statistics-MLP members (and as many sequence members with "
                   "--sequence).")
@click.option("--sequence", is_flag=True,
              help="Serfast: also Conv1D sequence members over the frames (a store with "
                   "frames; slower to train, better within one corpus).")
@click.option("--stats", type=click.Choice(["mfcc", "all"]), default="mfcc", show_default=True,
              help="Serfast: frames the statistics pool: the mean log-mel and MFCCs, or "
                   "every log-mel band too.")
@click.option("--linear", type=click.IntRange(0), default=0, show_default=True,
              help="Serfast: also this many logistic-regression members over the statistics.")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Epochs [serfast: 40; method: at most 100 with early stopping].")
@click.option("--class-weight/--no-class-weight", default=True, show_default=True,
              help="Balance the classes in the loss.")
@click.option("--no-augmented", is_flag=True, help="Ignore the augmented rows of the stores.")
@click.option("--compare", "compare_baselines", is_flag=True,
              help="Also cross-validate scikit-learn baselines and network variants.")
@click.option("--compare-limit", type=click.FloatRange(0), default=900.0, show_default=True,
              help="--compare: a cell whose projected CV time exceeds this many seconds "
                   "stops after the folds done (marked in the table); 0 = no limit.")
@click.option("--seed", type=int, default=0, show_default=True, help="Folds and weights seed.")
@click.option("--quiet", is_flag=True, help="Print only the summary.")
def train(stores, model_dir, classes, cv, network, extractor, classifier, norm, ensemble,
          sequence, stats, linear, epochs, class_weight, no_augmented, compare_baselines,
          compare_limit, seed, quiet):
    """Cross-validate over speaker folds (or leave one corpus out), then train on all rows
    of STORES (.npy feature stores) and save the model, report.md, report.json and plots
    in --model DIR."""
    from serfast.model.train import TrainOptions, train as run_train

    options = TrainOptions(classes=classes, cv=cv, network=network, extractor=extractor,
                           classifier=classifier, norm=norm, ensemble=ensemble,
                           sequence=sequence, stats=stats, linear=linear, epochs=epochs,
                           class_weight=class_weight, augmented=not no_augmented, seed=seed,
                           compare_limit=compare_limit)
    try:
        report = run_train(list(stores), model_dir, options, compare_baselines,
                           progress=(lambda _: None) if quiet else click.echo)
    except _library_errors() as err:
        raise click.ClickException(str(err)) from None
    if "cv" in report:
        s = report["cv"]["summary"]
        click.echo(f"{options.cv}-fold speaker CV: accuracy {100 * s['accuracy']['mean']:.1f} "
                   f"± {100 * s['accuracy']['std']:.1f} %, UAR {s['uar']['mean']:.3f} "
                   f"± {s['uar']['std']:.3f}, ECE {report['cv']['pooled']['ece']:.3f} "
                   f"({report['cv']['pooled']['ece_calibrated']:.3f} calibrated: temperature "
                   f"{report['temperature']:.2f} saved) ({report['cv_seconds']:.0f} s)")
    if "loco" in report:
        from serfast.model.report import confusion_table, loco_table

        loco = report["loco"]
        click.echo(f"leave one corpus out: mean UAR {loco['mean_uar']:.3f} over "
                   f"{len(loco['corpora'])} corpora ({report['loco_seconds']:.0f} s)")
        click.echo("\n".join(loco_table(loco)))
        for c in loco["corpora"]:
            click.echo(f"\n{c['corpus']}: confusion (rows true, columns predicted)")
            click.echo("\n".join(confusion_table(report["labels"], c["confusion"],
                                                 c["classes"])))
    if "compare" in report:
        from serfast.model.report import compare_table

        click.echo("\n".join(compare_table(report["compare"])[2:]))
    for note in report["notes"]:
        click.echo(f"note: {note}")
    click.echo(f"model and report -> {model_dir} ({report['seconds']:.0f} s)")


@click.command()
@click.argument("model_dir")
@click.argument("stores", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--predictions", type=click.Path(dir_okay=False),
              help="Write one CSV row per clip: path, true, predicted, confidence, p_<class>.")
def evaluate(model_dir, stores, as_json, predictions):
    """Score the saved model MODEL_DIR on the labelled clips of STORES; MODEL_DIR
    'default' is the model shipped with serfast."""
    from serfast.model.train import evaluate as run_evaluate

    if predictions and not os.path.isdir(os.path.dirname(os.path.abspath(predictions))):
        raise click.ClickException(f"--predictions {predictions}: its folder does not exist")
    try:
        result = run_evaluate(model_dir, list(stores))
    except _library_errors() as err:
        raise click.ClickException(str(err)) from None
    rows = result.pop("predictions")
    if result["trained_on"]:
        click.echo(f"warning: the model was trained on {result['trained_on']} of these "
                   f"{result['n']} clips; their scores overstate how it does on new clips",
                   err=True)
    if predictions:
        try:
            write_predictions(predictions, rows, result["labels"])
        except OSError as err:
            raise click.ClickException(f"--predictions {predictions}: {err.strerror}") from None
    if as_json:
        click.echo(json.dumps(result))
        return
    labels = result["labels"]
    click.echo(f"{result['n']} clips scored ({result['left_out']} of other classes left out)")
    click.echo(f"accuracy {result['accuracy']:.3f}  UAR {result['uar']:.3f}  "
               f"macro F1 {result['macro_f1']:.3f}  ECE {result['ece']:.3f}")
    click.echo("recall: " + "  ".join(f"{lab} {c['recall']:.3f}"
                                      for lab, c in result["per_class"].items()))
    width = max(len(lab) for lab in labels) + 1
    click.echo("confusion (rows true, columns predicted):")
    click.echo(" " * width + " ".join(f"{lab[:7]:>7}" for lab in labels))
    for lab, row in zip(labels, result["confusion"]):
        click.echo(f"{lab:<{width}}" + " ".join(f"{v:>7}" for v in row))
