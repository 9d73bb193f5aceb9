"""The IHMR pose benchmark: SPIN data, cached features, the 100-region balanced split and eval.

Modules: :mod:`.spin_data` (readers), :mod:`.features` (feature store), :mod:`.crop` (SPIN crop and
flips), :mod:`.extract` (``ihmr extract-features``), :mod:`.split` (``ihmr split``),
:mod:`.evaluate` (metrics, ``ihmr eval`` outputs), :mod:`.jobs` (the ``split``/``eval`` jobs),
:mod:`.demo_data` (``ihmr demo-data``). Nothing is imported here.
"""
