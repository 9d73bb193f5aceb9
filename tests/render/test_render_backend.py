"""Choosing the offscreen OpenGL platform (no rendering needed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from ihmr.render import backend


@pytest.fixture
def fresh(monkeypatch):
    """Run setup_backend from scratch, then forget the result again."""
    backend.setup_backend.cache_clear()
    yield monkeypatch
    backend.setup_backend.cache_clear()


def test_user_platform_is_respected(fresh):
    fresh.setenv("PYOPENGL_PLATFORM", "osmesa")
    fresh.setattr(backend, "egl_works", lambda: pytest.fail("must not probe EGL"))
    assert backend.setup_backend() == "osmesa"


@pytest.mark.parametrize("egl, osmesa, expected", [(True, True, "egl"), (False, True, "osmesa")])
def test_egl_first_then_osmesa(fresh, egl, osmesa, expected):
    fresh.delenv("PYOPENGL_PLATFORM", raising=False)
    fresh.delitem(sys.modules, "OpenGL", raising=False)
    fresh.setattr(backend, "egl_works", lambda: egl)
    fresh.setattr(backend, "osmesa_found", lambda: osmesa)
    assert backend.setup_backend() == expected
    import os

    assert os.environ["PYOPENGL_PLATFORM"] == expected


def test_no_platform_names_the_system_packages(fresh):
    fresh.delenv("PYOPENGL_PLATFORM", raising=False)
    fresh.delitem(sys.modules, "OpenGL", raising=False)
    fresh.setattr(backend, "egl_works", lambda: False)
    fresh.setattr(backend, "osmesa_found", lambda: False)
    with pytest.raises(backend.RenderBackendError) as exc:
        backend.setup_backend()
    msg = str(exc.value)
    for package in (
        "libegl1",
        "libegl-mesa0",
        "libgl1-mesa-dri",
        "libosmesa6",
        "PYOPENGL_PLATFORM",
    ):
        assert package in msg


def test_too_late_when_opengl_was_imported_without_a_platform(fresh):
    fresh.delenv("PYOPENGL_PLATFORM", raising=False)
    fresh.setitem(sys.modules, "OpenGL", object())
    with pytest.raises(backend.RenderBackendError, match="imported before"):
        backend.setup_backend()


def test_np_infty_restored_for_pyrender(monkeypatch):
    monkeypatch.delattr(np, "infty", raising=False)  # as on numpy 2, which removed the alias
    assert not hasattr(np, "infty")
    backend.restore_np_infty()
    assert np.infty == float("inf") and -np.infty < -1e308  # pyrender 0.1.45 still uses it
    monkeypatch.setattr(np, "infty", 123.0, raising=False)
    backend.restore_np_infty()  # an existing attribute is left alone
    assert np.infty == 123.0
