"""berg plugin for ``fmri-lebel2023-opt_1_3b``: OPT-1.3B layer-18 word features -> voxelwise ridge (LeBel 2023)."""

__version__ = "0.1.0"
