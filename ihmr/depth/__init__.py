"""Monocular depth estimation on NYUD2-DIR with per-pixel Balanced MSE (paper Sec. 4.2, Table 2)."""
