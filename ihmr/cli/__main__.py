"""``python -m ihmr.cli ...``: the ``ihmr`` command without the console script (e.g. under
``torchrun -m`` or from a source checkout)."""

from . import main

main()
