#!/usr/bin/env bash
# Downloads, on a machine with a package registry, the wheels a GPU machine without one needs to
# run ihmr beside its preinstalled CUDA torch (Python 3.12; torch, torchvision, scikit-learn,
# typer and OpenCV are expected there already). Carry the folder over, then on the GPU machine:
#
#   pip install --no-index --find-links WHEELS smplx trimesh pyrender PyYAML matplotlib
#
# (pip takes what it needs from WHEELS and leaves the installed packages alone). scripts/device_check.py
# needs only the second group (plus numpy, scipy, typer, rich); smplx, trimesh and pyrender serve
# `ihmr predict`, `ihmr render` and the SMPL checks.
#
# usage: [PYTHON=python3] scripts/device_wheels.sh WHEELS [PYTHON_VERSION]    (default 3.12)
set -euo pipefail
dest=${1:?usage: scripts/device_wheels.sh WHEELS [PYTHON_VERSION]}
pyver=${2:-3.12}
mkdir -p "$dest"
# body and rendering: pyrender pins PyOpenGL 3.1.0; --no-deps, so every dependency is named
body=(smplx==0.1.28 trimesh pyrender==0.1.45 freetype-py imageio networkx pyglet six)
# what the device check imports beyond the preinstalled packages (matplotlib: evaluation plots)
check=(PyYAML matplotlib contourpy cycler fonttools kiwisolver pyparsing python-dateutil packaging
       pillow)
# --only-binary with --python-version: wheels for that Python on this machine's platform
# (Linux x86_64 here and there); pure-python ones are platform-independent anyway.
"${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$pyver" \
  -d "$dest" "${body[@]}" "${check[@]}"
# pyrender's PyOpenGL 3.1.0 exists only as a source archive (pure Python; pip builds it offline)
"${PYTHON:-python3}" -m pip download --quiet --no-deps --python-version "$pyver" -d "$dest" \
  PyOpenGL==3.1.0
ls "$dest"
echo "wheels for Python $pyver in $dest: carry the folder to the GPU machine and install with"
echo "  pip install --no-index --find-links $dest smplx trimesh pyrender PyYAML matplotlib"
