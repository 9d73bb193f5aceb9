"""Atomic file writes: outputs appear whole under their final name, or not at all.

Each writer writes to a temporary file in the destination folder and renames it into place, so a
killed run never leaves a half-written file behind. Folders are created through
:func:`make_dirs`, which records them inside :func:`remove_created_dirs_on_failure` (the ``ihmr``
entry point wraps every command in it), so a failed command leaves no empty folder it created.
Output folders are checked with :func:`check_writable_dir` before the work starts, and user
checkpoints are read with :func:`load_torch_file`; images with :func:`read_image`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

from .errors import AssetNotFoundError, DataError, DataFileNotFoundError, OutputPathError

_CREATED: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar(
    "ihmr_created_dirs", default=None
)


def make_dirs(path: str | os.PathLike) -> Path:
    """``mkdir -p path``, recording the folders it created for
    :func:`remove_created_dirs_on_failure`."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    created = _CREATED.get()
    if created is not None:
        created.extend(reversed(missing))  # parents first
    return path


@contextlib.contextmanager
def remove_created_dirs_on_failure() -> Iterator[None]:
    """Inside the block, folders made by :func:`make_dirs` are recorded; if the block raises
    (an error, ``KeyboardInterrupt``, a non-zero ``SystemExit``) those still empty are removed,
    deepest first, so a failed command leaves behind no empty folder it created."""
    created: list[Path] = []
    token = _CREATED.set(created)
    try:
        yield
    except BaseException as exc:
        if not (isinstance(exc, SystemExit) and exc.code in (0, None)):
            for d in reversed(created):
                with contextlib.suppress(OSError):  # not empty (or gone): keep it
                    d.rmdir()
        raise
    finally:
        _CREATED.reset(token)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    ``suffix`` defaults to the destination's suffix (numpy and matplotlib look at it).
    """
    path = Path(path)
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.",
        suffix=(path.suffix if suffix is None else suffix) + ".tmp",
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates owner-only files; give the result the usual umask-derived mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """``np.savez`` written atomically (the temporary name keeps the ``.npz`` suffix)."""
    import numpy as np

    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return Path(path)


def torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` of a plain dict, written atomically (load with ``weights_only=True``)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def check_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` if needed and make sure files can be written there; raise a clear error.

    Call it before the work starts, so a bad ``--out`` fails at once. The error
    (:class:`~ihmr.errors.OutputPathError`) names the folder as given and why: a file in the way,
    no permission, a read-only file system ...
    """
    path = Path(path)
    return _check_dir(path, f"cannot use {what} {str(path)!r}")


def check_writable_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """:func:`check_writable_dir` for the folder of an output file (created if needed); ``path``
    itself must not be a folder. Call it before the work starts."""
    path = Path(path)
    prefix = f"cannot write {what} {str(path)!r}"
    if path.is_dir():
        raise OutputPathError(f"{prefix}: it is a folder; give a file name")
    _check_dir(path.parent, prefix)
    return path


def _check_dir(path: Path, prefix: str) -> Path:
    blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputPathError(
            f"{prefix}: {str(blocker)!r} is a file, not a folder; choose another path"
        )
    try:
        make_dirs(path)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputPathError(
            f"{prefix}: cannot create or write to folder {str(path)!r} "
            f"({exc.strerror or exc}); choose another folder or fix its "
            "permissions"
        ) from exc
    return path


def load_torch_file(
    path: str | os.PathLike,
    what: str = "checkpoint",
    *,
    mmap: bool = False,
    map_location: Any = "cpu",
) -> Any:
    """``torch.load(path, weights_only=True)`` of a user file, with one clear error for every way
    it can fail: a missing file, or "checkpoint X is truncated or not a checkpoint"."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise AssetNotFoundError(
            f"{what} {str(path)!r} does not exist" + ("; it is a folder" if path.is_dir() else "")
        )
    with open(path, "rb"):  # no permission ...: the OS's error, with the path
        pass
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - the file opens, so whatever torch.load raises
        # (zip errors, unpickling errors, EINVAL on a cut file) means the content is at fault
        why = " ".join(str(exc).split()).split(". ")[0][:160]  # torch's first sentence
        raise DataError(
            f"{what} {str(path)!r} is truncated or not a checkpoint ({type(exc).__name__}: {why})"
        ) from exc


def open_npz(path: str | os.PathLike, what: str = "file") -> Any:
    """``np.load(path, allow_pickle=False)`` of a user ``.npz`` with clear errors: a missing file,
    a file that is not an ``.npz`` archive at all, a corrupt archive. Use as a context manager."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise AssetNotFoundError(f"{what} {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{what} {str(path)!r} is not an .npz archive (numpy.savez format); "
            "check the file name and how it was written"
        )
    try:
        return np.load(path, allow_pickle=False)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - a zip that numpy cannot read: the file is at fault
        raise DataError(f"{what} {str(path)!r} is a corrupt .npz archive ({exc})") from exc


def read_npz(path: str | os.PathLike, what: str = "file") -> dict[str, Any]:
    """All arrays of a user ``.npz`` (see :func:`open_npz`); object (pickled) arrays are refused."""
    with open_npz(path, what) as z:
        try:
            return {k: z[k] for k in z.files}
        except ValueError as exc:  # numpy: object arrays need allow_pickle
            raise DataError(
                f"{what} {str(path)!r} holds object arrays (pickled Python objects), "
                "which ihmr does not load; store strings as unicode arrays (np.str_)"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - truncated member, bad CRC ...
            raise DataError(f"{what} {str(path)!r} is a corrupt .npz archive ({exc})") from exc


def read_image(path: str | os.PathLike, *, unchanged: bool = False, hint: str = "") -> Any:
    """Read an image file with OpenCV: ``(H, W, 3)`` uint8 RGB (contiguous), or with
    ``unchanged`` the stored pixels as they are (channels and bit depth kept, e.g. a 16-bit depth
    PNG as ``(H, W)`` uint16; OpenCV's channel order).

    Raises :class:`~ihmr.errors.DataFileNotFoundError` (a ``DataError`` and a
    ``FileNotFoundError``) when there is no file at ``path``, and
    :class:`~ihmr.errors.DataError` when OpenCV cannot read it as an image. Both messages name
    the path and end with ``hint`` (what the user should check), when given.
    """
    import cv2
    import numpy as np

    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if not path.is_file():
        raise DataFileNotFoundError(f"image {str(path)!r} not found{tail}")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED if unchanged else cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(
            f"could not read {str(path)!r} as an image (corrupt, or not an image file){tail}"
        )
    return img if unchanged else np.ascontiguousarray(img[..., ::-1])
