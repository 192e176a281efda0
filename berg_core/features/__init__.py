"""Feature science: Hugging Face backbones and sentence features (backbones), word features of timed
stories (words), the feature cache (cache) and time-series helpers: Lanczos resampling, delays,
z-scoring (timeseries). Imports only the framework and ``store``."""
