"""Device resolution: ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` -> a torch device string.

Asking for a device that is not there is an error, never a silent fallback. torch is imported only
when a device other than ``"cpu"`` is asked for or ``"auto"`` must look.
"""

from __future__ import annotations

import re
from typing import Any

from berg_core.errors import InvalidParameterError


def _torch() -> Any:
    """The torch module, or ``None`` when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def resolve_device(device: str | None = "auto") -> str:
    """Return ``"cpu"``, ``"cuda:N"`` or ``"mps"``; raise ``InvalidParameterError`` if unavailable."""
    name = "auto" if device is None else str(device).strip().lower()
    if name == "cpu":
        return "cpu"
    torch = _torch()
    if name == "auto":
        if torch is not None and torch.cuda.is_available():
            return "cuda:0"
        if torch is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match:
        index = int(match.group(1) or 0)
        if torch is None or not torch.cuda.is_available():
            raise InvalidParameterError(f"device {device!r} asked for, but CUDA is not available here; use device='cpu' or 'auto'")
        if index >= torch.cuda.device_count():
            raise InvalidParameterError(
                f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist; use cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
        return f"cuda:{index}"
    if name == "mps":
        if torch is None or not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InvalidParameterError("device 'mps' asked for, but Apple MPS is not available here; use device='cpu' or 'auto'")
        return "mps"
    raise InvalidParameterError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


def default_dtype(device: str) -> str:
    """berg's precision choice: float32 on CPU, float16 on CUDA/MPS (override with ``dtype=``)."""
    return "float32" if device == "cpu" else "float16"
