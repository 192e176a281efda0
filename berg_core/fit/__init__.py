"""Fitting: ridge and banded ridge with cross-validated penalties, PCA (ridge; scikit-learn estimators),
the native banded-ridge random search (banded), encoding statistics (stats) and the ``berg train``
pipeline (train: load -> design -> fit -> evaluate -> write). Imports the framework, ``store``,
``features`` and ``trained`` (the folder layout a trained encoder is written in)."""
