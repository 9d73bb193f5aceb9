"""The package's exception types and the small input checks used at public boundaries.

Every check raises with a message that says what was expected, what was got, and what to do.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Sequence


class IhmrError(Exception):
    """Base class of every error ``ihmr`` raises on purpose.

    The ``ihmr`` entry point prints these (and the OS's file errors) as one line and exits with
    code 2; any other exception is a bug and keeps its traceback. Every subclass that describes
    bad input also derives from :class:`ValueError`, so library callers may catch either.
    """


class ShapeError(IhmrError, ValueError):
    """An array or tensor has the wrong shape."""


class ConfigError(IhmrError, ValueError):
    """A configuration file, key or value, a command-line option or a function argument chosen
    by the user is invalid."""


class DataError(IhmrError, ValueError):
    """A data file is missing, corrupt or inconsistent."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data file (an image, a label file) is not where it was expected: a :class:`DataError`
    and a ``FileNotFoundError``."""


class NonFiniteError(IhmrError, ValueError):
    """Values that must be finite hold NaN or inf (inputs, predictions, a learned noise scale)."""


class OutputPathError(IhmrError, PermissionError):
    """An output file or folder cannot be written (a file in the way, no permission ...)."""


class AssetNotFoundError(IhmrError, FileNotFoundError):
    """A required external asset (body model, checkpoint, dataset) is not where it was expected."""


def shape_str(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def check_shape(x: Any, expected: Sequence[int | None], name: str, hint: str = "") -> None:
    """Raise :class:`ShapeError` unless ``x.shape`` matches ``expected`` (``None`` = any size)."""
    shape = tuple(x.shape)
    ok = len(shape) == len(expected) and all(
        e is None or e == s for e, s in zip(expected, shape, strict=True)
    )
    if not ok:
        want = shape_str(["*" if e is None else e for e in expected])
        msg = f"{name} must have shape {want}, got {shape_str(shape)}"
        raise ShapeError(msg + (f"; {hint}" if hint else ""))


def check_same_shape(a: Any, b: Any, name_a: str, name_b: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeError(
            f"{name_a} and {name_b} must have the same shape, got {shape_str(a.shape)} and "
            f"{shape_str(b.shape)}"
        )


def check_finite(x: Any, name: str) -> None:
    """Raise :class:`NonFiniteError` if a tensor or array holds NaN or inf, saying how many."""
    import numpy as np

    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        import torch

        bad = int((~torch.isfinite(x.detach())).sum())
    else:
        bad = int((~np.isfinite(np.asarray(x))).sum())
    if bad:
        raise NonFiniteError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); remove or repair those "
            "samples before computing the loss or fitting a prior"
        )


def check_finite_rows(x: Any, name: str, hint: str = "") -> None:
    """Raise :class:`NonFiniteError` if an array (N, ...) holds NaN or inf, naming the first bad
    rows (samples) so they can be found in the file."""
    import numpy as np

    a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    if a.dtype.kind not in "fc" or np.isfinite(a).all():
        return
    rows = np.unique(np.nonzero(~np.isfinite(a.reshape(len(a), -1)))[0])
    raise NonFiniteError(
        f"{name} holds NaN or inf in {len(rows)} sample(s), rows "
        f"{rows[:8].tolist()}{' ...' if len(rows) > 8 else ''}" + (f"; {hint}" if hint else "")
    )


def check_positive(value: float, name: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")


def check_choice(value: str, choices: Sequence[str], name: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices`` (closest one suggested)."""
    if value not in choices:
        close = difflib.get_close_matches(str(value), list(choices), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}{hint}")


def check_at_least(value: Any, minimum: int, name: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def describe_os_error(exc: OSError) -> str:
    """One line for an OS file error: the path as the user gave it and why (no errno prefix)."""
    if exc.strerror and exc.filename is not None:
        other = f" -> {exc.filename2!r}" if exc.filename2 is not None else ""
        return f"{exc.filename!s}{other}: {exc.strerror}"
    return str(exc)
