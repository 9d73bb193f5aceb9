"""Offscreen OpenGL for pyrender: pick the platform before OpenGL is imported, fail clearly.

PyOpenGL binds its platform (EGL, OSMesa, GLX) once, when ``OpenGL`` is first imported, from the
``PYOPENGL_PLATFORM`` environment variable. :func:`setup_backend` therefore runs before the first
``import pyrender``:

1. a platform the user set in ``PYOPENGL_PLATFORM`` is respected;
2. otherwise EGL, if ``libEGL`` loads and initialises a display (Mesa's software EGL works with
   no GPU and no X server; on Debian/Ubuntu: ``libegl1 libegl-mesa0 libgl1-mesa-dri``);
3. otherwise OSMesa, if ``libOSMesa`` is found (``libosmesa6``; needs PyOpenGL >= 3.1.7);
4. otherwise :class:`RenderBackendError`, naming the system packages to install.

pyrender 0.1.45 still uses ``np.infty``, which numpy 2 removed; it is restored here (an alias of
``np.inf``) before pyrender is imported. Nothing happens at import time of this module.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import os
import sys

import numpy as np

from ihmr.errors import IhmrError

PLATFORM_VAR = "PYOPENGL_PLATFORM"
EGL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri"
OSMESA_PACKAGES = "libosmesa6"


class RenderBackendError(IhmrError, RuntimeError):
    """No offscreen OpenGL platform could be set up for pyrender."""


def _load(names: tuple[str, ...]):
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    found = ctypes.util.find_library(names[0].split(".so")[0].removeprefix("lib"))
    if found:
        try:
            return ctypes.CDLL(found)
        except OSError:
            return None
    return None


def _egl_initialise(lib, display) -> bool:
    if not display:
        return False
    lib.eglInitialize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.eglInitialize.restype = ctypes.c_uint
    lib.eglTerminate.argtypes = [ctypes.c_void_p]
    major, minor = ctypes.c_int(), ctypes.c_int()
    ok = lib.eglInitialize(display, ctypes.byref(major), ctypes.byref(minor))
    if ok:
        lib.eglTerminate(display)
    return bool(ok)


def egl_works() -> bool:
    """True when ``libEGL`` loads and initialises a display the way pyrender asks for one:
    an EGL device (``EGL_EXT_platform_device``; Mesa's software device counts), else the
    default display."""
    lib = _load(("libEGL.so.1", "libEGL.so"))
    if lib is None:
        return False
    try:
        lib.eglGetProcAddress.restype = ctypes.c_void_p
        lib.eglGetProcAddress.argtypes = [ctypes.c_char_p]
        query_addr = lib.eglGetProcAddress(b"eglQueryDevicesEXT")
        platform_addr = lib.eglGetProcAddress(b"eglGetPlatformDisplayEXT")
        if query_addr and platform_addr:
            query = ctypes.CFUNCTYPE(
                ctypes.c_uint,
                ctypes.c_int,
                ctypes.POINTER(ctypes.c_void_p),
                ctypes.POINTER(ctypes.c_int),
            )(query_addr)
            get_display = ctypes.CFUNCTYPE(
                ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p
            )(platform_addr)
            devices, count = (ctypes.c_void_p * 8)(), ctypes.c_int()
            if query(8, devices, ctypes.byref(count)):
                for i in range(count.value):
                    if _egl_initialise(lib, get_display(0x313F, devices[i], None)):
                        return True  # 0x313F: EGL_PLATFORM_DEVICE_EXT
        lib.eglGetDisplay.restype = ctypes.c_void_p
        lib.eglGetDisplay.argtypes = [ctypes.c_void_p]
        return _egl_initialise(lib, lib.eglGetDisplay(None))  # EGL_DEFAULT_DISPLAY
    except (AttributeError, OSError):
        return False


def osmesa_found() -> bool:
    return _load(("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so")) is not None


def restore_np_infty() -> None:
    """Give numpy 2 back the ``np.infty`` alias that pyrender 0.1.45 uses (bounds, shadows)."""
    if "infty" not in np.__dict__:
        np.infty = np.inf  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=1)
def setup_backend() -> str:
    """Choose and set the offscreen platform; return it (``"egl"``, ``"osmesa"``, ...).

    Raises :class:`RenderBackendError` with the packages to install when none works, or when
    OpenGL was already imported with no platform chosen (then the choice can no longer be made).
    """
    restore_np_infty()
    chosen = os.environ.get(PLATFORM_VAR)
    if chosen:
        return chosen
    if "OpenGL" in sys.modules:
        raise RenderBackendError(
            "OpenGL was imported before ihmr.render could choose an offscreen platform; set "
            f"{PLATFORM_VAR}=egl (or osmesa) in the environment, or import ihmr.render first"
        )
    if egl_works():
        os.environ[PLATFORM_VAR] = "egl"
        return "egl"
    if osmesa_found():
        os.environ[PLATFORM_VAR] = "osmesa"
        return "osmesa"
    raise RenderBackendError(
        "no offscreen OpenGL found for rendering: EGL did not initialise and OSMesa is missing. "
        f"Install the system libraries for EGL (Debian/Ubuntu: apt-get install {EGL_PACKAGES}) "
        f"or for OSMesa (apt-get install {OSMESA_PACKAGES}, with PyOpenGL >= 3.1.7), or set "
        f"{PLATFORM_VAR} to a platform that works on this machine"
    )


def import_pyrender():
    """Set the platform up (once), then import and return ``pyrender``."""
    setup_backend()
    try:
        import pyrender
    except ImportError as exc:
        raise RenderBackendError(
            f"pyrender could not be imported ({exc}); install it with pip install pyrender==0.1.45"
        ) from exc
    return pyrender


_shared: list = []


def shared_offscreen_renderer():
    """The process's one pyrender ``OffscreenRenderer`` (resize it through its viewport).

    pyrender's EGL platform terminates the whole EGL display when any renderer is deleted, which
    breaks every other live renderer; so ``ihmr`` keeps a single one per process, created on
    first use and deleted at exit.
    """
    if not _shared:
        pyrender = import_pyrender()
        _shared.append(pyrender.OffscreenRenderer(64, 64))
        atexit.register(release_shared_renderer)
    return _shared[0]


def release_shared_renderer() -> None:
    """Delete the shared renderer (at exit; a later render creates a new one)."""
    while _shared:
        try:
            _shared.pop().delete()
        except Exception:  # noqa: BLE001 -- the GL context may already be gone at exit
            pass


@functools.lru_cache(maxsize=1)
def backend_problem() -> str | None:
    """``None`` when a tiny offscreen render works, else the reason (for skipping tests)."""
    try:
        pyrender = import_pyrender()
        renderer = shared_offscreen_renderer()
        scene = pyrender.Scene()
        scene.add(pyrender.PerspectiveCamera(yfov=1.0))
        renderer.render(scene)
    except Exception as exc:  # noqa: BLE001 -- any failure means "cannot render here"
        return f"no offscreen OpenGL rendering: {exc}"
    return None


def render_available() -> bool:
    """True when pyrender can render offscreen here (see :func:`backend_problem` for why not)."""
    return backend_problem() is None
