"""Fitting: ridge and banded ridge with cross-validated penalties, PCA (ridge; scikit-learn estimators),
encoding statistics (stats) and the ``berg train`` pipeline (train). Imports the framework, ``store``,
``features`` and ``trained`` (the folder layout a trained encoder is written in)."""
