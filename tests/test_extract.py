"""`serfast extract` end to end: bad input, resume, workers, the store, the CLI."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from serfast.extract import ExtractOptions, extract
from serfast.io.store import StoreError, open_store
from serfast_cli.main import main

from conftest import speech, write


def read_csv(out):
    with open(str(out)[:-4] + ".csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def messy_corpus(good_corpus, tmp_path):
    """The good clips plus every kind of bad and unusual file the issue lists."""
    root = tmp_path / "messy"
    shutil.copytree(good_corpus, root)
    bad = root / "bad"
    bad.mkdir()
    valid = speech("happy", 3, sr=16000)
    data = open(write(tmp_path / "tmp.wav", valid, 16000, subtype="PCM_16"), "rb").read()
    (bad / "truncated.wav").write_bytes(data[: len(data) // 3])
    (bad / "empty.wav").write_bytes(b"")
    (bad / "random.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    (bad / "header_only.wav").write_bytes(data[:44])
    nan = valid.copy()
    nan[20000:20100] = np.nan  # inside the 0.6 s + 2.5 s crop
    write(bad / "nan.wav", nan, 16000, subtype="FLOAT")
    write(bad / "one_sample.wav", valid[:1], 16000)
    (bad / "notes.txt").write_text("not audio")
    os.symlink(bad / "gone.wav", bad / "unreadable.wav")
    odd = root / "odd"
    write(odd / "silent.wav", np.zeros(48000, np.float32), 16000)
    write(odd / "eight_channels.wav", np.stack([valid] * 8, axis=1), 16000)
    write(odd / "ulaw.wav", speech("sad", 5, sr=8000), 8000, subtype="ULAW")
    write(odd / "alaw.wav", speech("sad", 5, sr=8000), 8000, subtype="ALAW")
    write(odd / "clip.ogg", valid, 16000)
    write(odd / "clip.flac", valid, 16000)
    long = np.tile(speech("angry", 6, sr=8000, seconds=10.0), 60)  # ten minutes
    write(odd / "ten_minutes.wav", long, 8000, subtype="PCM_16")
    write(odd / "Ünïcödé clip.WAV", valid, 16000)
    return root


def test_messy_corpus_completes_with_a_row_per_audio_file(messy_corpus, good_corpus, tmp_path):
    out = tmp_path / "messy.npy"
    summary = extract(str(messy_corpus), str(out), ExtractOptions(workers=1))
    rows = read_csv(out)
    names = {os.path.basename(r["path"]): r for r in rows}
    assert len(rows) == 6 + 7 + 8  # notes.txt is not audio
    for name in ("empty.wav", "random.wav", "header_only.wav", "nan.wav", "one_sample.wav",
                 "unreadable.wav"):
        assert names[name]["status"] == "error", name
        assert names[name]["error"] and "\n" not in names[name]["error"]
    for name in ("silent.wav", "eight_channels.wav", "ulaw.wav", "alaw.wav", "clip.ogg",
                 "clip.flac", "ten_minutes.wav", "Ünïcödé clip.WAV", "truncated.wav"):
        assert names[name]["status"] == "ok", (name, names[name]["error"])
    values = np.load(out, mmap_mode="r")
    ok = np.array([r["status"] == "ok" for r in rows])
    assert np.isfinite(values[ok][:, :-1]).all()  # features; gender is NaN when unknown
    assert summary.errors == 6 and summary.ignored == ["bad/notes.txt"]
    # every good row is identical to a run without the other files
    clean = tmp_path / "clean.npy"
    extract(str(good_corpus), str(clean), ExtractOptions(workers=1))
    clean_rows = {os.path.basename(r["path"]): i for i, r in enumerate(read_csv(clean))}
    clean_values = np.load(clean)
    for name, i in clean_rows.items():
        j = [os.path.basename(r["path"]) for r in rows].index(name)
        assert np.array_equal(values[j], clean_values[i])


def test_store_layout_and_metadata(good_corpus, tmp_path):
    out = tmp_path / "s.npy"
    extract(str(good_corpus), str(out), ExtractOptions(workers=1, frames=True))
    values = np.load(out, mmap_mode="r")  # readable without serfast
    meta = json.load(open(tmp_path / "s.json"))
    assert values.dtype == np.float32 and values.shape == (6, 169)
    assert meta["columns"][0] == "zcr_mean" and meta["columns"][-1] == "gender"
    assert meta["rows"] == meta["ok"] == 6 and meta["spec"]["sr"] == 22050
    store = open_store(str(out))
    assert [r["label"] for r in store.rows[:3]] == ["neutral", "sad", "angry"]
    assert list(values[:, -1]) == [1.0] * 3 + [0.0] * 3  # actor 1 male, actor 2 female
    frames = store.row_frames(1)
    assert frames.shape == (108, 148)
    assert np.allclose(frames[:, 128:].mean(axis=0), values[1, 13:33], atol=1e-3)


def test_interrupted_run_resumes_to_identical_output(good_corpus, tmp_path):
    full = tmp_path / "full.npy"
    extract(str(good_corpus), str(full), ExtractOptions(workers=1, frames=True, shard_size=2))
    out = tmp_path / "cut.npy"

    def stop_after_two(done, total, ok, failed):
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(str(good_corpus), str(out),
                ExtractOptions(workers=1, frames=True, shard_size=2), stop_after_two)
    assert not out.exists() and (tmp_path / "cut.npy.partial").exists()
    with pytest.raises(StoreError):  # a plain rerun must not clobber the partial run
        extract(str(good_corpus), str(out),
                ExtractOptions(workers=1, frames=True, shard_size=2, resume=True,
                               augment=("noise",)))
    seen = []
    extract(str(good_corpus), str(out),
            ExtractOptions(workers=1, frames=True, shard_size=2, resume=True),
            lambda done, *_: seen.append(done))
    assert seen[0] == 4  # the two finished rows were not redone
    assert np.load(out).tobytes() == np.load(full).tobytes()
    assert (np.load(tmp_path / "cut.frames.npy").tobytes()
            == np.load(tmp_path / "full.frames.npy").tobytes())
    assert read_csv(out) == [dict(r) for r in read_csv(full)]
    assert not (tmp_path / "cut.journal").exists()


def test_journal_resumes_before_a_torn_or_unusable_line(tmp_path):
    from serfast.io.journal import Journal

    path = str(tmp_path / "run.journal")
    head = {"spec": [1, 2], "rows": 3}
    journal = Journal.create(path, head)
    journal.append({"row": 0})
    journal.append({"row": 1}, {"row": 2})
    journal.close()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"row": 3, "err')  # the write a crash cut short
    journal, entries = Journal.resume(path, head, StoreError, "changed")
    assert entries == [{"row": 0}, {"row": 1}, {"row": 2}]
    journal.append({"row": 3})
    journal.close()
    with open(path, encoding="utf-8") as fh:
        assert [json.loads(line) for line in fh] == [head] + [{"row": i} for i in range(4)]
    journal, entries = Journal.resume(path, head, StoreError, "changed",
                                      usable=lambda e: e["row"] < 2)
    assert entries == [{"row": 0}, {"row": 1}]
    journal.remove()
    assert os.listdir(tmp_path) == []
    Journal.create(path, head).close()
    with pytest.raises(StoreError, match="cannot resume: the options changed"):
        Journal.resume(path, {"spec": [1, 3], "rows": 3}, StoreError, "the options changed")


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    from serfast.io.files import atomic_write

    path = tmp_path / "out.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(str(path), "w", encoding="utf-8") as fh:
            fh.write("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["out.csv"]
    with atomic_write(str(path), "wb") as fh:
        fh.write(b"new\n")
    assert path.read_bytes() == b"new\n" and os.listdir(tmp_path) == ["out.csv"]


def test_two_workers_give_the_same_store(good_corpus, tmp_path):
    one, two = tmp_path / "one.npy", tmp_path / "two.npy"
    extract(str(good_corpus), str(one), ExtractOptions(workers=1))
    extract(str(good_corpus), str(two), ExtractOptions(workers=2, shard_size=1))
    assert np.load(one).tobytes() == np.load(two).tobytes()


def test_augmented_rows_follow_their_clip(good_corpus, tmp_path):
    out = tmp_path / "aug.npy"
    extract(str(good_corpus), str(out),
            ExtractOptions(workers=1, augment=("noise", "lowpass"), copies=2, seed=3))
    rows = read_csv(out)
    assert len(rows) == 6 * 5
    assert [r["augment"] for r in rows[:5]] == ["", "noise", "noise", "lowpass", "lowpass"]
    assert {r["source"] for r in rows[1:5]} == {"0"}
    again = tmp_path / "again.npy"
    extract(str(good_corpus), str(again),
            ExtractOptions(workers=1, augment=("noise", "lowpass"), copies=2, seed=3))
    values = np.load(out)
    assert np.array_equal(values, np.load(again))  # deterministic with the seed
    assert not np.array_equal(values[1], values[2])  # two different noisy copies


def test_cli_extract_and_exit_codes(good_corpus, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli.npy"
    res = runner.invoke(main, ["extract", str(good_corpus), str(out), "--workers", "1",
                               "--quiet"])
    assert res.exit_code == 0, res.output
    assert "extracted 6 of 6 rows (0 failed)" in res.output
    res = runner.invoke(main, ["extract", str(good_corpus), str(out), "--quiet"])
    assert res.exit_code != 0 and "is a finished store" in res.output
    assert "--overwrite" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(main, ["extract", str(good_corpus), str(tmp_path / "x.bin")])
    assert res.exit_code == 2 and "must end in .npy" in res.output
    bad = tmp_path / "allbad"
    bad.mkdir()
    (bad / "a.wav").write_bytes(b"garbage")
    res = runner.invoke(main, ["extract", str(bad), str(tmp_path / "bad.npy"), "--quiet"])
    assert res.exit_code == 1 and "extracted 0 of 1 rows (1 failed)" in res.output


def test_extract_never_imports_tensorflow(good_corpus, tmp_path):
    code = ("import sys; from serfast_cli.main import main\n"
            "try:\n"
            f"    main(['extract', {str(good_corpus)!r}, {str(tmp_path / 'o.npy')!r},"
            " '--workers', '1', '--quiet'])\n"
            "except SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_pool_parent_stays_light_and_workers_use_one_thread_per_library():
    """The parent of a worker pool never loads the feature engine (Numba, SciPy): it would
    only delay the workers' start. A process that computes features loads it before
    limiting threads, so SciPy's own OpenBLAS (loaded by SciPy, not NumPy) is limited too:
    two workers with two BLAS threads each made extract twice as slow on two cores."""
    code = ("import sys\n"
            "import serfast.extract, serfast.workers\n"
            "print('numba' in sys.modules, 'scipy.fft' in sys.modules)\n"
            "serfast.workers.one_thread_each()\n"
            "from threadpoolctl import threadpool_info\n"
            "libs = threadpool_info()\n"
            "print(len(libs), all(lib['num_threads'] == 1 for lib in libs))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.split()
    assert out[:2] == ["False", "False"]
    assert int(out[2]) >= 1 and out[3] == "True"
