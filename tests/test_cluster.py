"""extract on a Dask cluster (loopback only) gives the local run's store, even when a
worker dies; an unreachable scheduler is one clear line."""

import os
import shutil
import signal

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("distributed", reason="the cluster extra (dask[distributed]) is needed")

from serfast.workers import ClusterError, connect  # noqa: E402
from serfast.extract import ExtractOptions, extract  # noqa: E402
from serfast_cli.main import main  # noqa: E402


def store_bytes(out):
    base = str(out)[:-4]
    return (np.load(out).tobytes(), open(base + ".csv").read())


def test_local_cluster_matches_local_run(good_corpus, tmp_path):
    local, dask = tmp_path / "local.npy", tmp_path / "dask.npy"
    extract(str(good_corpus), str(local), ExtractOptions(workers=1, augment=("noise",)))
    extract(str(good_corpus), str(dask),
            ExtractOptions(cluster="local:2", shard_size=1, augment=("noise",)))
    assert store_bytes(dask) == store_bytes(local)


def test_a_dying_worker_costs_only_a_retry(good_corpus, tmp_path):
    from distributed import default_client

    local, dask = tmp_path / "local.npy", tmp_path / "dask.npy"
    options = dict(augment=("noise", "lowpass"), copies=3)
    extract(str(good_corpus), str(local), ExtractOptions(workers=1, **options))
    killed = []

    def kill_one_worker(done, total, ok, failed):
        if not killed:
            pids = default_client().run(os.getpid)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    extract(str(good_corpus), str(dask),
            ExtractOptions(cluster="local:2", shard_size=1, **options), kill_one_worker)
    assert killed
    assert store_bytes(dask) == store_bytes(local)


def test_resume_a_local_run_on_the_cluster(good_corpus, tmp_path):
    full, out = tmp_path / "full.npy", tmp_path / "cut.npy"
    extract(str(good_corpus), str(full), ExtractOptions(workers=1))

    def stop(done, *_):
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(str(good_corpus), str(out), ExtractOptions(workers=1, shard_size=2), stop)
    extract(str(good_corpus), str(out),
            ExtractOptions(cluster="local:2", shard_size=2, resume=True))
    assert store_bytes(out) == store_bytes(full)


def test_unreachable_scheduler_is_one_line(good_corpus, tmp_path):
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        with connect("tcp://127.0.0.1:9"):
            pass
    res = CliRunner().invoke(main, ["extract", str(good_corpus), str(tmp_path / "x.npy"),
                                    "--cluster", "tcp://127.0.0.1:9", "--quiet"])
    assert res.exit_code == 1
    assert "cannot reach the Dask scheduler" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["extract", str(good_corpus), str(tmp_path / "y.npy"),
                                    "--cluster", "local:x", "--quiet"])
    assert res.exit_code == 1 and "use local:N" in res.output


def test_predict_on_a_local_cluster_matches_a_local_run(trained_model, stereo_call, tmp_path):
    from serfast.calls.predict import PredictOptions, predict_archive

    archive = os.path.dirname(stereo_call)
    local, dask = tmp_path / "local" / "labels.csv", tmp_path / "dask" / "labels.csv"
    for out, opts in ((local, PredictOptions(workers=1)), (dask, PredictOptions(cluster="local:2"))):
        out.parent.mkdir()
        predict_archive([archive], trained_model, str(out), opts)
    assert dask.read_text() == local.read_text()
    summaries = [out.parent / "labels.summary.csv" for out in (dask, local)]
    assert summaries[0].read_text() == summaries[1].read_text()
    assert len(local.read_text().splitlines()) >= 4


def test_speaker_groups_on_a_local_cluster_match_a_local_run(trained_model, stereo_call,
                                                              tmp_path):
    """--speakers folder: the first pass's sums come back from the cluster's workers and
    the labels equal an in-process run's."""
    from serfast.calls.predict import PredictOptions, predict_archive

    archive = os.path.dirname(stereo_call)
    shutil.copy(stereo_call, os.path.join(archive, "call2.wav"))
    local, dask = tmp_path / "local" / "labels.csv", tmp_path / "dask" / "labels.csv"
    for out, opts in ((local, PredictOptions(workers=1, speakers="folder")),
                      (dask, PredictOptions(cluster="local:2", speakers="folder"))):
        out.parent.mkdir()
        predict_archive([archive], trained_model, str(out), opts)
    assert dask.read_text() == local.read_text()
    assert len(local.read_text().splitlines()) >= 7


def test_predict_survives_a_dying_worker(trained_model, stereo_call, tmp_path):
    from distributed import default_client

    from serfast.calls.predict import PredictOptions, predict_archive

    archive = os.path.dirname(stereo_call)
    for n in range(4):
        shutil.copy(stereo_call, os.path.join(archive, f"copy{n}.wav"))
    local, dask = tmp_path / "local" / "labels.csv", tmp_path / "dask" / "labels.csv"
    local.parent.mkdir()
    dask.parent.mkdir()
    predict_archive([archive], trained_model, str(local), PredictOptions(workers=1))
    killed = []

    def kill_one_worker(*_):
        if not killed:
            victim = sorted(default_client().run(os.getpid).values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    predict_archive([archive], trained_model, str(dask), PredictOptions(cluster="local:2"),
                    kill_one_worker)
    assert killed and dask.read_text() == local.read_text()


def test_predict_cli_with_unreachable_scheduler(trained_model, stereo_call, tmp_path):
    res = CliRunner().invoke(main, ["predict", stereo_call, "--model", trained_model, "--out",
                                    str(tmp_path / "l.csv"), "--cluster", "tcp://127.0.0.1:9"])
    assert res.exit_code == 1 and "cannot reach the Dask scheduler" in res.output


def test_fsspec_urls_in_a_manifest(good_corpus, tmp_path):
    wavs = sorted(str(p) for p in good_corpus.rglob("*.wav"))
    manifest = tmp_path / "urls.csv"
    manifest.write_text("path,label\n" + "".join(f"file://{p},angry\n" for p in wavs))
    out = tmp_path / "from_urls.npy"  # urls.npy's CSV would be the manifest: refused
    extract(str(manifest), str(out), ExtractOptions(workers=1))
    plain = tmp_path / "plain.npy"
    (tmp_path / "plain.csv").unlink(missing_ok=True)
    manifest2 = tmp_path / "paths.csv"
    manifest2.write_text("path,label\n" + "".join(f"{p},angry\n" for p in wavs))
    extract(str(manifest2), str(plain), ExtractOptions(workers=1))
    assert np.load(out).tobytes() == np.load(plain).tobytes()
