"""berg plugin: fmri-cneuromod_algo2025-text2fmri (Text2fMRI: Qwen2.5 features per TR -> transformer head -> Schaefer-1000)."""

__version__ = "0.1.0"
