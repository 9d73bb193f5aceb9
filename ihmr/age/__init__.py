"""Age estimation on IMDB-WIKI-DIR / AgeDB-DIR with Balanced MSE (paper Table 1, Fig. 5).

- :mod:`.data`: the DIR ``age,path,split`` CSV reader, image checks and OpenCV transforms.
- :mod:`.demo_data`: an offline, generated demo in the same format.
- :mod:`.model`: ResNet-50 (or a small CPU demo CNN) with a ``linear`` 2048 -> 1 head; RRT freezing.
- :mod:`.criteria`: stage-2 losses (BMC, GAI, BNI, reweighting, LDS) built from the training ages.
- :mod:`.train`: stage 1 (vanilla) and stage 2 (RRT) on images or cached features.
- :mod:`.features`: cached features for stage 2.
- :mod:`.metrics`: MSE, L1, G-mean, bMAE, bMSE overall and per shot.
- :mod:`.evaluate`: :func:`~.evaluate.evaluate_age_checkpoint` (metrics.json, Table 1, Fig. 5).
- :mod:`.demo`: the whole pipeline on the demo.

Nothing is imported here, so ``import ihmr.age`` stays cheap.
"""
