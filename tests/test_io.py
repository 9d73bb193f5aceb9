"""Atomic outputs, output-folder checks, cleanup of folders a failed command made, and the one
reader of user checkpoints / .npz archives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ihmr.errors import AssetNotFoundError, DataError, OutputPathError
from ihmr.io import (
    check_writable_dir,
    check_writable_file,
    load_torch_file,
    make_dirs,
    read_npz,
    remove_created_dirs_on_failure,
    write_text,
)


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError, SystemExit])
def test_failed_block_removes_only_the_empty_folders_it_made(tmp_path, failure):
    (tmp_path / "old").mkdir()
    with pytest.raises(failure):
        with remove_created_dirs_on_failure():
            make_dirs(tmp_path / "old" / "a" / "b")  # old exists: a and b are new
            check_writable_dir(tmp_path / "c" / "d")
            write_text(tmp_path / "kept" / "x.txt", "x")  # a finished file stays, and its folder
            raise failure(1) if failure is SystemExit else failure()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "old"]
    assert list((tmp_path / "old").iterdir()) == []
    assert (tmp_path / "kept" / "x.txt").read_text() == "x"


@pytest.mark.parametrize("code", [0, None])
def test_successful_exit_keeps_the_folders(tmp_path, code):
    with pytest.raises(SystemExit):
        with remove_created_dirs_on_failure():
            make_dirs(tmp_path / "a" / "b")
            raise SystemExit(code)
    assert (tmp_path / "a" / "b").is_dir()


def test_interrupted_write_leaves_no_partial_file(tmp_path):
    from ihmr.io import atomic_path

    write_text(tmp_path / "x.txt", "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("half of the new")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]  # no temporary file left
    assert (tmp_path / "x.txt").read_text() == "old"


def test_output_path_checks_name_the_blocker(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match=r"'.*f' is a file, not a folder"):
        check_writable_dir(tmp_path / "f" / "sub")
    with pytest.raises(OutputPathError, match="it is a folder"):
        check_writable_file(tmp_path)
    assert check_writable_file(tmp_path / "new" / "p.npz") == tmp_path / "new" / "p.npz"
    assert (tmp_path / "new").is_dir() and list((tmp_path / "new").iterdir()) == []


def test_load_torch_file_errors(tmp_path):
    torch.save({"w": torch.arange(1000.0)}, tmp_path / "ok.pt")
    assert torch.equal(load_torch_file(tmp_path / "ok.pt")["w"], torch.arange(1000.0))
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    (tmp_path / "text.pt").write_text("not a checkpoint")
    for name in ("cut.pt", "text.pt"):
        for mmap in (False, True):
            with pytest.raises(
                DataError,
                match=rf"checkpoint '.*{name}' is truncated or not a "
                "checkpoint",
            ):
                load_torch_file(tmp_path / name, mmap=mmap)
    with pytest.raises(AssetNotFoundError, match="does not exist"):
        load_torch_file(tmp_path / "missing.pt")


def test_read_npz_errors(tmp_path):
    np.savez(tmp_path / "ok.npz", a=np.arange(3))
    assert read_npz(tmp_path / "ok.npz")["a"].tolist() == [0, 1, 2]
    (tmp_path / "text.npz").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="is not an .npz archive"):
        read_npz(tmp_path / "text.npz", "labels")
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(DataError, match="holds object arrays"):
        read_npz(tmp_path / "obj.npz")
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:-30])
    with pytest.raises(DataError, match="(corrupt|not an .npz)"):
        read_npz(tmp_path / "cut.npz")


def test_read_image_rgb_order_bit_depth_and_errors(tmp_path):
    import cv2

    from ihmr.io import read_image

    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    cv2.imwrite(str(tmp_path / "blue.png"), bgr)
    rgb = read_image(tmp_path / "blue.png")
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert rgb[..., 2].min() == 200 and rgb[..., :2].max() == 0
    depth = (np.arange(20, dtype=np.uint16) * 3000).reshape(4, 5)
    cv2.imwrite(str(tmp_path / "d.png"), depth)
    np.testing.assert_array_equal(read_image(tmp_path / "d.png", unchanged=True), depth)
    with pytest.raises(DataError, match="missing.png.*not found; check the folder") as err:
        read_image(tmp_path / "missing.png", hint="check the folder")
    assert isinstance(err.value, FileNotFoundError)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match="could not read .*text.png") as err:
        read_image(tmp_path / "text.png")
    assert not isinstance(err.value, FileNotFoundError)
