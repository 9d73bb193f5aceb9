"""Bundled data files (installed as ``ihmr.assets``): the open body and its licence."""
