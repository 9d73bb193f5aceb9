"""``python -m ihmr``: the same command line as the ``ihmr`` script."""

from .cli import main

main()
