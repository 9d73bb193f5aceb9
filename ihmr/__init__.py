"""ihmr: Balanced MSE for imbalanced visual regression (Ren et al., CVPR 2022).

Nothing heavy happens at import time: subpackages (``ihmr.losses``, ``ihmr.priors``, ...) are
imported by the user or by the CLI command that needs them.
"""

__version__ = "0.1.0"
