"""Atomic writes: complete or absent, never half-written; JSON is deterministic."""

import errno
import os
import stat

import numpy as np
import pytest

from cae.errors import CaeError
from cae.io import atomic_path, read_arrays, write_arrays, write_json


def _leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(".tmp-")]


def test_atomic_file_appears_complete(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("hello")
        assert not target.exists()
    assert target.read_text() == "hello"
    assert _leftovers(tmp_path) == []
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode & 0o044, "atomic files must get normal permissions, not mkstemp's 0600"


def test_atomic_file_interrupted_keeps_old_content(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "raw"
    write_arrays(target, {"a": np.arange(3), "b": np.ones(2)})
    assert sorted(p.name for p in target.iterdir()) == ["a.npy", "b.npy"]
    with pytest.raises(KeyboardInterrupt), atomic_path(target, directory=True) as tmp:
        np.save(tmp / "c.npy", np.zeros(1))
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["a.npy", "b.npy"]
    write_arrays(target, {"c": np.zeros(1)})
    assert [p.name for p in target.iterdir()] == ["c.npy"]
    assert _leftovers(tmp_path) == []


def test_unwritable_directory_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        target = blocker / "sub" / "out.json"  # parent is a file: fails even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out.json"
    with pytest.raises(CaeError, match="cannot write here"):
        write_json(target, {"a": 1})


def test_write_json_is_sorted_and_rejects_non_finite(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"b": np.float32(0.5), "a": np.int64(3)})
    assert path.read_text() == '{\n  "a": 3,\n  "b": 0.5\n}\n'
    with pytest.raises(ValueError, match="non-finite"):
        write_json(path, {"loss": float("nan")})
    assert path.read_text().startswith('{\n  "a": 3')  # old content intact


def test_read_arrays_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CaeError, match=r"nothere: not found; run `dvc repro download`"):
        read_arrays(tmp_path / "nothere", ["a"], hint="run `dvc repro download`")
    write_arrays(tmp_path / "d", {"a": np.arange(4)})
    with pytest.raises(CaeError, match=r"b\.npy: not found"):
        read_arrays(tmp_path / "d", ["a", "b"], hint="x")
    (tmp_path / "d" / "a.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(CaeError, match=r"a\.npy: unreadable or corrupt"):
        read_arrays(tmp_path / "d", ["a"], hint="x")
    np.save(tmp_path / "d" / "a.npy", np.array([{"x": 1}], dtype=object))
    with pytest.raises(CaeError, match=r"a\.npy: unreadable or corrupt"):
        read_arrays(tmp_path / "d", ["a"], hint="x")  # pickled objects are refused


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT])
def test_out_of_space_is_one_clear_error_naming_the_output(tmp_path, code):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(CaeError) as info, atomic_path(target) as tmp:
        tmp.write_text("partial")
        try:
            raise OSError(code, os.strerror(code))
        except OSError as exc:
            raise RuntimeError("a library wrapped it") from exc  # found through the chain
    assert str(info.value).startswith(f"no space left / file too large writing {target} (")
    assert "\n" not in str(info.value)
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_nested_write_is_reported_under_the_outer_name(tmp_path):
    target = tmp_path / "model.bin"
    with (
        pytest.raises(CaeError, match=r"writing .*model\.bin \("),
        atomic_path(target) as tmp,
        atomic_path(tmp),  # e.g. write_json(tmp, …) into an outer temporary name
    ):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert not target.exists() and _leftovers(tmp_path) == []


def test_output_through_a_file_names_the_file(tmp_path):
    (tmp_path / "models").write_text("not a directory")
    with pytest.raises(CaeError, match=r"models/m\.keras: cannot write here \(.*models is a file, not a directory\)"):
        write_json(tmp_path / "models" / "m.keras", {})


def test_npy_rows_and_writer_stream_the_bytes_np_save_writes(tmp_path):
    from cae.io import NpyRows, NpyWriter, read_arrays

    a = np.random.default_rng(0).random((9, 4, 5, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    w = NpyWriter(tmp_path / "b.npy", a.shape, a.dtype)
    w[0:4] = a[:4]
    w[[8, 5, 7, 6, 4]] = a[[8, 5, 7, 6, 4]]  # any order
    w.close()
    assert (tmp_path / "b.npy").read_bytes() == (tmp_path / "a.npy").read_bytes()
    rows = read_arrays(tmp_path, ["a"], hint="", rows=True)["a"]
    assert isinstance(rows, NpyRows) and rows.shape == a.shape and rows.dtype == a.dtype and len(rows) == 9
    for key in (slice(2, 6), [7, 1, 2, 3, 0], np.array([5]), 3, slice(None, None, 2), slice(4, 4)):
        np.testing.assert_array_equal(rows[key], a[key] if not isinstance(key, int) else a[key : key + 1])
    stacked = np.stack([a, 2 * a])
    np.save(tmp_path / "c.npy", stacked)
    w = NpyWriter(tmp_path / "d.npy", stacked.shape, stacked.dtype)
    for j in range(2):
        w.part(j)[:] = stacked[j]
    w.close()
    assert (tmp_path / "d.npy").read_bytes() == (tmp_path / "c.npy").read_bytes()
    with pytest.raises(IndexError):
        rows[[9]]


def test_npy_rows_truncated_file_is_named(tmp_path):
    from cae.errors import CaeError
    from cae.io import read_arrays

    np.save(tmp_path / "a.npy", np.zeros((10, 3), np.uint8))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[:-5])
    with pytest.raises(CaeError, match=r"a\.npy: unreadable or corrupt \(file is truncated"):
        read_arrays(tmp_path, ["a"], hint="rerun", rows=True)
