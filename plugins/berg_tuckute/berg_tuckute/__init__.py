"""berg plugin for fmri-tuckute_2024-GPT2_XL (Tuckute et al. 2024)."""

__version__ = "0.1.0"
