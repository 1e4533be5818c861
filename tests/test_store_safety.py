"""A store run loses nothing and deletes nothing: the lock, --resume and --overwrite,
changed clips, crashes (a real SIGKILL of the run, of a worker, a torn journal line, a
truncated frames file), and one line instead of a traceback."""

import csv
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from click.testing import CliRunner

from serfast.extract import ExtractError, ExtractOptions, extract
from serfast.io.files import FileLock, atomic_write
from serfast.io.journal import Journal
from serfast.io.store import RowMeta, RowResult, StoreError, StoreWriter
from serfast.features.spec import FeatureSpec
from serfast_cli.main import main

from conftest import speech, write

#: The options of every run here: frames too, one row per shard (many durable steps).
OPTIONS = ExtractOptions(workers=1, frames=True, shard_size=1)
#: serfast extract's options for OPTIONS.spec (the method's set and crop, not its defaults)
METHOD_CROP = ["--features", "seed", "--offset", "0.6", "--duration", "2.5"]
STORE_FILES = (".npy", ".csv", ".json", ".frames.npy")


def store_bytes(out) -> dict[str, bytes]:
    """Every file of the finished store ``out`` (X.npy), by suffix."""
    base = str(out)[:-4]
    return {suffix: open(base + suffix, "rb").read() for suffix in STORE_FILES}


def leftovers(out) -> list[str]:
    """Files of ``out``'s folder that a finished run should not leave behind."""
    return sorted(f for f in os.listdir(os.path.dirname(str(out)))
                  if f.endswith((".partial", ".journal", ".lock", ".tmp")))


@pytest.fixture
def reference(good_corpus, tmp_path):
    """An uninterrupted run of the good corpus: (its store's bytes, OUT for another run of
    the same name in another folder, so that every byte must match)."""
    ref = tmp_path / "ref" / "s.npy"
    ref.parent.mkdir()
    extract(str(good_corpus), str(ref), OPTIONS)
    out = tmp_path / "run" / "s.npy"
    out.parent.mkdir()
    return store_bytes(ref), out


def interrupt_after(rows: int):
    def progress(done, total, ok, failed):
        if done >= rows:
            raise KeyboardInterrupt
    return progress


def interrupted(corpus, out, rows=2, options=OPTIONS):
    with pytest.raises(KeyboardInterrupt):
        extract(str(corpus), str(out), options, interrupt_after(rows))
    assert not os.path.exists(out) and os.path.exists(str(out) + ".partial")


def run_files(out) -> dict[str, bytes]:
    base = str(out)[:-4]
    return {s: open(base + s, "rb").read() for s in (".npy.partial", ".frames.partial",
                                                     ".journal")}


# --- the lock, plain reruns, --resume and --overwrite ---------------------------------------


def test_a_plain_rerun_onto_an_interrupted_run_refuses_and_keeps_it(good_corpus, reference):
    expected, out = reference
    interrupted(good_corpus, out)
    before = run_files(out)
    with pytest.raises(StoreError, match="--resume.*--overwrite") as err:
        extract(str(good_corpus), str(out), OPTIONS)
    assert "\n" not in str(err.value)
    assert run_files(out) == before  # nothing deleted, nothing rewritten
    res = CliRunner().invoke(main, ["extract", str(good_corpus), str(out), "--frames",
                                    "--workers", "1", "--quiet"])
    assert res.exit_code == 1 and "--resume" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    extract(str(good_corpus), str(out), ExtractOptions(**{**vars(OPTIONS), "resume": True}))
    assert store_bytes(out) == expected and leftovers(out) == []


def test_overwrite_starts_again_and_removes_only_serfast_files(good_corpus, reference, tmp_path):
    expected, out = reference
    interrupted(good_corpus, out)
    mine = out.parent / "notes.txt"
    mine.write_text("the user's")
    overwrite = ExtractOptions(**{**vars(OPTIONS), "overwrite": True})
    seen = []
    extract(str(good_corpus), str(out), overwrite, lambda done, *_: seen.append(done))
    assert seen[0] == 1  # started again from nothing
    assert store_bytes(out) == expected and leftovers(out) == []
    with pytest.raises(StoreError, match="is a finished store.*--overwrite"):
        extract(str(good_corpus), str(out), OPTIONS)
    extract(str(good_corpus), str(out), overwrite)  # a finished store is replaced
    assert store_bytes(out) == expected and mine.read_text() == "the user's"
    # a CSV beside OUT that no serfast store owns is never overwritten nor deleted
    theirs = tmp_path / "data.csv"
    theirs.write_text("path,label\nx.wav,sad\n")
    for options in (OPTIONS, overwrite):
        with pytest.raises(StoreError, match="data.csv exists and is not part of a serfast"):
            extract(str(good_corpus), str(tmp_path / "data.npy"), options)
    assert theirs.read_text() == "path,label\nx.wav,sad\n"
    assert sorted(os.listdir(tmp_path)) == ["data.csv", "good", "ref", "run"]


def test_a_second_run_onto_one_out_refuses_while_the_first_holds_it(good_corpus, tmp_path):
    out = tmp_path / "s.npy"
    plan = [RowMeta(str(good_corpus / "x.wav"))]
    with StoreWriter(str(out), FeatureSpec(), plan):
        with pytest.raises(StoreError, match="another serfast run is writing"):
            extract(str(good_corpus), str(out), OPTIONS)
    # another process holds the lock; when it is killed the kernel releases it
    code = ("import sys, time\nfrom serfast.io.files import FileLock\n"
            f"assert FileLock({str(out)[:-4] + '.lock'!r}).acquire()\n"
            "print('held', flush=True)\ntime.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = CliRunner().invoke(main, ["extract", str(good_corpus), str(out), "--quiet",
                                        "--workers", "1"])
        assert res.exit_code == 1 and "another serfast run is writing" in res.output
        assert not out.exists() and not os.path.exists(str(out) + ".partial")
    finally:
        holder.kill()
        holder.wait()
    extract(str(good_corpus), str(out), OPTIONS)  # the dead holder's lock file is reused
    assert out.exists() and leftovers(out) == []


def test_a_lock_file_serfast_did_not_write_is_left_alone(tmp_path):
    path = tmp_path / "s.lock"
    path.write_text("someone else's")
    with pytest.raises(FileExistsError):
        FileLock(str(path)).acquire()
    assert path.read_text() == "someone else's"


def test_resume_on_a_finished_store_says_so_and_changes_nothing(good_corpus, reference):
    expected, out = reference
    extract(str(good_corpus), str(out), OPTIONS)
    stamps = {s: os.stat(str(out)[:-4] + s).st_mtime_ns for s in STORE_FILES}
    summary = extract(str(good_corpus), str(out),
                      ExtractOptions(**{**vars(OPTIONS), "resume": True}))
    assert summary.complete and (summary.rows, summary.ok) == (6, 6)
    res = CliRunner().invoke(main, ["extract", str(good_corpus), str(out), "--frames",
                                    *METHOD_CROP, "--resume", "--quiet"])
    assert res.exit_code == 0 and res.output.count("\n") == 1
    assert "is complete (6 of 6 rows ok): nothing to resume" in res.output
    assert {s: os.stat(str(out)[:-4] + s).st_mtime_ns for s in STORE_FILES} == stamps
    assert store_bytes(out) == expected and leftovers(out) == []
    with pytest.raises(StoreError, match="extracted with other options.*--overwrite"):
        extract(str(good_corpus), str(out), ExtractOptions(workers=1, resume=True))  # no frames
    assert store_bytes(out) == expected


def test_ctrl_c_is_one_line_naming_resume(good_corpus, tmp_path, monkeypatch):
    import serfast_cli.extract as cli

    def interrupted_run(corpus, out, options, progress):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_extract", interrupted_run)
    res = CliRunner().invoke(main, ["extract", str(good_corpus), str(tmp_path / "s.npy")])
    assert res.exit_code == 130 and "Traceback" not in res.output
    assert res.output.strip().startswith("interrupted:") and "--resume" in res.output


def test_resume_computes_a_clip_again_when_its_file_changed(good_corpus, tmp_path):
    out = tmp_path / "s.npy"
    interrupted(good_corpus, out, rows=3)
    first = sorted(good_corpus.rglob("*.wav"))[0]
    write(first, speech("happy", 9, 0, sr=48000, seconds=3.0), 48000, subtype="PCM_16")
    seen = []
    summary = extract(str(good_corpus), str(out),
                      ExtractOptions(**{**vars(OPTIONS), "resume": True}),
                      lambda done, *_: seen.append(done))
    assert summary.changed == 1 and seen[0] == 3  # rows 1 and 2 kept, row 0 again
    fresh = tmp_path / "fresh" / "s.npy"
    fresh.parent.mkdir()
    extract(str(good_corpus), str(fresh), OPTIONS)
    assert store_bytes(out) == store_bytes(fresh)


# --- crashes: the run, a worker, a torn journal line, a truncated frames file ---------------

#: Runs extract in a child process that kills itself with SIGKILL at a chosen point.
KILLED_RUN = textwrap.dedent("""
    import json, os, signal, sys
    from serfast.extract import ExtractOptions, extract
    from serfast.io.journal import Journal

    source, out, where, after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    appended = Journal.append
    calls = []

    def append(self, *entries):
        calls.append(1)
        if where != "between shards" and len(calls) == after:
            if where == "torn journal line":  # half of a line reaches the disk
                line = json.dumps(entries[0])
                self._fh.write(line[:len(line) // 2])
                self._fh.flush()
                os.fsync(self._fh.fileno())
            os.kill(os.getpid(), signal.SIGKILL)  # "before journal": rows written, no line
        appended(self, *entries)

    def progress(done, total, ok, failed):
        if where == "between shards" and done >= after:
            os.kill(os.getpid(), signal.SIGKILL)

    Journal.append = append
    extract(source, out, ExtractOptions(workers=1, frames=True, shard_size=1), progress)
""")


@pytest.mark.parametrize("where", ["between shards", "before journal", "torn journal line"])
def test_a_run_killed_by_sigkill_resumes_to_identical_output(good_corpus, reference, where):
    expected, out = reference
    run = subprocess.run([sys.executable, "-c", KILLED_RUN, str(good_corpus), str(out),
                          where, "3"])
    assert run.returncode == -signal.SIGKILL
    journal = str(out)[:-4] + ".journal"
    assert not out.exists() and os.path.exists(journal)
    if where == "torn journal line":
        assert not open(journal).read().endswith("\n")
    seen = []
    extract(str(good_corpus), str(out), ExtractOptions(**{**vars(OPTIONS), "resume": True}),
            lambda done, *_: seen.append(done))
    assert seen[0] == (4 if where == "between shards" else 3)
    assert store_bytes(out) == expected and leftovers(out) == []


def test_a_run_killed_from_outside_with_its_workers_resumes_identically(good_corpus, tmp_path):
    corpus = tmp_path / "many"
    for i in range(5):
        shutil.copytree(good_corpus, corpus / f"copy{i}")
    ref = tmp_path / "ref" / "s.npy"
    ref.parent.mkdir()
    extract(str(corpus), str(ref), OPTIONS)
    out = tmp_path / "run" / "s.npy"
    out.parent.mkdir()
    journal = str(out)[:-4] + ".journal"
    run = subprocess.Popen([sys.executable, "-m", "serfast_cli", "extract", str(corpus),
                            str(out), "--frames", *METHOD_CROP, "--workers", "2", "--quiet"],
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and run.poll() is None:
            if os.path.exists(journal) and open(journal).read().count("\n") >= 4:
                break
            time.sleep(0.01)
        os.killpg(run.pid, signal.SIGKILL)  # the run and its worker processes
    finally:
        run.wait()
    assert run.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    summary = extract(str(corpus), str(out), ExtractOptions(**{**vars(OPTIONS),
                                                             "resume": True}))
    assert summary.rows == 30 and not summary.complete
    assert store_bytes(out) == store_bytes(ref) and leftovers(out) == []


def test_a_truncated_frames_file_resumes_to_identical_output(good_corpus, reference):
    expected, out = reference
    interrupted(good_corpus, out, rows=4)
    frames = str(out)[:-4] + ".frames.partial"
    size = os.path.getsize(frames)
    with open(frames, "r+b") as fh:
        fh.truncate(size - 1000)  # into the last journaled row's frames
    seen = []
    extract(str(good_corpus), str(out), ExtractOptions(**{**vars(OPTIONS), "resume": True}),
            lambda done, *_: seen.append(done))
    assert seen[0] == 4  # the damaged row was computed again
    assert store_bytes(out) == expected and leftovers(out) == []


@pytest.mark.parametrize("crash", ["before OUT.npy is in place", "before the run's files go"])
def test_a_finish_cut_short_resumes_or_is_complete(good_corpus, reference, monkeypatch, crash):
    """A crash inside finish: before the features are moved into place, every file the
    resume needs is still there; after it, the store is complete and resume tidies up."""
    import serfast.io.store as store

    expected, out = reference
    real_move = store.move_into_place

    def crash_on_move(src, dst):
        if dst.endswith(".npy") and not dst.endswith(".frames.npy"):
            raise KeyboardInterrupt
        real_move(src, dst)

    def crash_on_remove(self):
        raise KeyboardInterrupt

    if crash == "before OUT.npy is in place":
        monkeypatch.setattr(store, "move_into_place", crash_on_move)
    else:
        monkeypatch.setattr(Journal, "remove", crash_on_remove)
    with pytest.raises(KeyboardInterrupt):
        extract(str(good_corpus), str(out), OPTIONS)
    monkeypatch.undo()
    assert os.path.exists(str(out)[:-4] + ".frames.partial")
    with pytest.raises(StoreError, match="--overwrite"):  # a plain rerun still refuses
        extract(str(good_corpus), str(out), OPTIONS)
    summary = extract(str(good_corpus), str(out),
                      ExtractOptions(**{**vars(OPTIONS), "resume": True}))
    assert summary.complete == (crash == "before the run's files go")
    assert store_bytes(out) == expected and leftovers(out) == []


def test_a_damaged_partial_store_is_one_line(good_corpus, tmp_path):
    out = tmp_path / "s.npy"
    interrupted(good_corpus, out)
    with open(str(out) + ".partial", "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(StoreError, match=r"s.npy.partial is damaged.*--overwrite") as err:
        extract(str(good_corpus), str(out), ExtractOptions(**{**vars(OPTIONS), "resume": True}))
    assert "\n" not in str(err.value)


#: Loaded by every Python started with this folder on PYTHONPATH (the pool's workers):
#: a worker asked to decode a clip named kill*.wav is killed as the OOM killer would.
KILL_HOOK = textwrap.dedent("""
    import os, signal
    import serfast.io.audio as audio

    _load = audio.load_clip

    def load_clip(path, *args, **kwargs):
        if os.path.basename(path).startswith("kill"):
            os.kill(os.getpid(), signal.SIGKILL)
        return _load(path, *args, **kwargs)

    audio.load_clip = load_clip
""")


def test_a_killed_worker_is_one_line_and_the_run_resumes(good_corpus, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    shutil.copytree(good_corpus, corpus)
    (corpus / "zz").mkdir()
    for name in ("kill1.wav", "kill2.wav"):  # two: a resume of one task would run in-process
        shutil.copy(next(good_corpus.rglob("*.wav")), corpus / "zz" / name)
    ref = tmp_path / "ref" / "s.npy"
    ref.parent.mkdir()
    extract(str(corpus), str(ref), OPTIONS)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILL_HOOK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(hooks)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    out = tmp_path / "run" / "s.npy"
    out.parent.mkdir()
    with pytest.raises(ExtractError, match="a worker process died.*--resume") as err:
        extract(str(corpus), str(out), ExtractOptions(workers=2, frames=True, shard_size=1))
    assert "\n" not in str(err.value)
    journal = str(out)[:-4] + ".journal"
    assert open(journal).read().count("\n") >= 4  # the rows finished before it are kept
    res = CliRunner().invoke(main, ["extract", str(corpus), str(out), "--frames", "--resume",
                                    *METHOD_CROP, "--workers", "2", "--quiet"])
    assert res.exit_code == 1 and "a worker process died" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    monkeypatch.delenv("PYTHONPATH")
    extract(str(corpus), str(out), ExtractOptions(**{**vars(OPTIONS), "resume": True}))
    assert store_bytes(out) == store_bytes(ref) and leftovers(out) == []


# --- durable files --------------------------------------------------------------------------


def test_the_journal_is_never_rewritten_in_place_and_renames_are_synced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = str(tmp_path / "run.journal")
    journal = Journal.create(path, {"spec": 1})
    assert synced == [False, True]  # the file, then its folder once it was renamed
    journal.append({"row": 0})
    journal.close()
    with open(path, "a") as fh:
        fh.write('{"row": 1, "er')
    os.link(path, str(tmp_path / "before"))  # the journal's inode as the crash left it
    synced.clear()
    journal, entries = Journal.resume(path, {"spec": 1}, StoreError, "changed")
    assert entries == [{"row": 0}] and synced == [False, True]
    journal.close()
    assert open(tmp_path / "before").read().endswith('{"row": 1, "er')  # not written into
    assert open(path).read() == '{"spec": 1}\n{"row": 0}\n'
    synced.clear()
    with atomic_write(str(tmp_path / "x.csv")) as fh:
        fh.write("x")
    assert synced == [False, True]


# --- one line instead of a traceback --------------------------------------------------------


def test_out_in_a_missing_folder_is_one_line(good_corpus, tmp_path):
    res = CliRunner().invoke(main, ["extract", str(good_corpus),
                                    str(tmp_path / "nowhere" / "s.npy"), "--quiet"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip() == (f"Error: cannot write {tmp_path / 'nowhere' / 's.npy'}: "
                                  f"folder {tmp_path / 'nowhere'} does not exist")


def test_cluster_local_zero_is_one_line(good_corpus, tmp_path):
    out = tmp_path / "s.npy"
    res = CliRunner().invoke(main, ["extract", str(good_corpus), str(out), "--cluster",
                                    "local:0", "--quiet"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "local:N" in res.output and len(res.output.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == ["good"]  # a run that computed nothing leaves nothing


# --- never an ok row that is not finite -----------------------------------------------------


def test_a_loud_finite_clip_is_an_error_row_not_an_ok_row_of_nan(tmp_path):
    corpus = tmp_path / "loud"
    write(corpus / "happy" / "loud.wav", speech("happy", 1, 0, sr=16000) * 1e20, 16000,
          subtype="FLOAT")
    write(corpus / "happy" / "plain.wav", speech("happy", 1, 0, sr=16000), 16000,
          subtype="FLOAT")
    out = tmp_path / "s.npy"
    summary = extract(str(corpus), str(out), OPTIONS)
    assert (summary.ok, summary.errors) == (1, 1)
    rows = {os.path.basename(r["path"]): r for r in csv.DictReader(open(tmp_path / "s.csv"))}
    assert rows["loud.wav"]["status"] == "error"
    assert rows["loud.wav"]["error"].startswith("feature error: non-finite features")
    assert "overflows float32 power" in rows["loud.wav"]["error"]
    assert rows["plain.wav"]["status"] == "ok"
    values = np.load(out)
    assert np.isfinite(values[[r["status"] == "ok" for r in rows.values()], :-1]).all()


def test_the_writer_never_records_a_non_finite_ok_row(tmp_path):
    spec = FeatureSpec()
    with StoreWriter(str(tmp_path / "s.npy"), spec, [RowMeta("/a.wav")]) as writer:
        bad = np.zeros(len(spec.columns) - 1, np.float32)
        bad[3] = np.inf
        writer.write(RowResult(0, bad, duration=1.0))
        meta = writer.finish()
    assert (meta["ok"], meta["errors"]) == (0, 1)
    assert json.load(open(tmp_path / "s.json"))["errors"] == 1
    assert "non-finite features" in open(tmp_path / "s.csv").read()


def test_store_csv_text_cannot_be_a_formula_and_reads_back_as_written(tmp_path):
    import csv

    from serfast.io.store import open_store

    spec = FeatureSpec()
    meta = RowMeta("=HYPERLINK(x).wav", dataset="@corpus", speaker="-1", label="+angry")
    with StoreWriter(str(tmp_path / "s.npy"), spec, [meta]) as writer:
        writer.write(RowResult(0, np.zeros(len(spec.columns) - 1, np.float32), duration=1.0))
        writer.finish()
    with open(tmp_path / "s.csv", newline="", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    assert (row["path"], row["dataset"], row["speaker"], row["label"], row["source"]) == \
        ("'=HYPERLINK(x).wav", "'@corpus", "'-1", "'+angry", "-1")
    back = open_store(str(tmp_path / "s.npy")).rows[0]
    assert (back["path"], back["dataset"], back["speaker"], back["label"]) == \
        ("=HYPERLINK(x).wav", "@corpus", "-1", "+angry")


@pytest.mark.parametrize("damage, message", [
    ("drop n_frames column", "lacks the column n_frames"),
    ("short row", "row 1 of .* has fewer cells than its header"),
])
def test_a_store_csv_with_missing_cells_is_one_line(good_corpus, tmp_path, damage, message):
    from serfast.io.store import open_store
    out = tmp_path / "s.npy"
    extract(str(good_corpus), str(out), OPTIONS)
    path = tmp_path / "s.csv"
    rows = list(csv.reader(open(path, newline="")))
    if damage == "drop n_frames column":
        rows = [r[:-1] for r in rows]
    else:
        rows[2] = rows[2][:5]
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(StoreError, match=message) as err:
        open_store(str(out))
    assert "\n" not in str(err.value) and "damaged serfast store" in str(err.value)


def test_evaluate_predictions_quote_formula_like_paths(tmp_path):
    from serfast.model.report import write_predictions
    out = tmp_path / "p.csv"
    write_predictions(str(out), [{"path": "=HYPERLINK(\"x\")", "true": "angry",
                                  "predicted": "sad", "confidence": 0.5, "p_angry": 0.5,
                                  "p_sad": 0.5}], ["angry", "sad"])
    rows = list(csv.reader(open(out, newline="")))
    assert rows[0] == ["path", "true", "predicted", "confidence", "p_angry", "p_sad"]
    assert rows[1][0] == "'=HYPERLINK(\"x\")" and rows[1][1:4] == ["angry", "sad", "0.5"]
