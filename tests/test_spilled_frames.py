"""Long files' frames spilled by a worker and copied into the store by the writer."""

import io
import os

import numpy as np
import pytest

from serfast.io.spilled_frames import FrameSink, FramesFile, remove_spills, spill_dir


def test_a_sink_spills_chunks_that_the_writer_copies_back_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    chunks = [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 1, 7)]
    folder = spill_dir(str(tmp_path / "out"))
    sink = FrameSink(os.path.join(folder, "4.f4"))
    for c in chunks:
        sink(c)
    sink.close()
    spilled = sink.result()
    assert sink.finite and spilled == FramesFile(os.path.join(folder, "4.f4"), 13)
    dst = io.BytesIO()
    spilled.copy_into(dst, row_bytes=3 * 4)
    got = np.frombuffer(dst.getvalue(), "<f4").reshape(-1, 3)
    assert np.array_equal(got, np.concatenate(chunks))
    assert not os.path.exists(spilled.path)  # copied, then removed


def test_an_in_memory_sink_joins_its_chunks_and_notices_non_finite_ones():
    sink = FrameSink()
    assert sink.result() is None
    sink(np.ones((2, 3), np.float32))
    sink(np.array([[np.nan, 0, 0]], np.float32))
    assert not sink.finite and sink.result().shape == (3, 3)


def test_a_short_spill_is_an_error_and_cleaning_keeps_files_serfast_did_not_write(tmp_path):
    folder = tmp_path / "s.frames.long"
    folder.mkdir()
    (folder / "0.f4").write_bytes(b"\0" * 8)
    with pytest.raises(OSError, match="bytes of frames missing"):
        FramesFile(str(folder / "0.f4"), 1).copy_into(io.BytesIO(), row_bytes=12)
    (folder / "1.f4").write_bytes(b"")
    (folder / "notes.txt").write_text("mine")
    remove_spills(str(folder))
    assert sorted(os.listdir(folder)) == ["notes.txt"]
    os.remove(folder / "notes.txt")
    remove_spills(str(folder))
    assert not folder.exists()
