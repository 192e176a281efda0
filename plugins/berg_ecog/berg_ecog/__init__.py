"""berg plugin for ecog-zada2025-gpt2_xl (Podcast ECoG x GPT-2 XL, Zada et al. 2025)."""

__version__ = "0.1.0"
