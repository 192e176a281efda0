"""berg family ``brainscore_language-{name}``: Brain-Score language models read at their language-system
layer, mapped to Pereira 2018 fMRI voxels by a PLS regression trained once and cached.

Importing this package is light; brainscore-language, torch and sklearn are imported only when a model is
loaded.
"""

__version__ = "0.1.0"
