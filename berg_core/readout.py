"""``LinearReadout``: the linear map from features to responses that every family ends with.

``predict(X) = X @ coef.T + intercept`` with

* ``coef``: (n_outputs, n_features), float32 or float64 — scikit-learn's ``coef_`` layout, one row per
  output. A family whose file stores (n_features, n_outputs) (HDF5 weights read by columns) builds it
  with ``LinearReadout.from_columns`` (a transposed view, no copy);
* ``intercept``: (n_outputs,), in response units (e.g. z-scored BOLD), cast to ``coef``'s dtype;
* ``output_names``: (n_outputs,) names (ROI names or ``voxel_<i>``).

The product is computed in ``coef``'s dtype (float64 weights give a float64 product, float32 weights a
float32 one) and returned as ``out_dtype`` (float32).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from berg_core.errors import InvalidParameterError, ModelLoadError

__all__ = ["LinearReadout"]

R = TypeVar("R", bound="LinearReadout")


@dataclass(frozen=True)
class LinearReadout:
    """Linear readout ``X @ coef.T + intercept``; see the module docstring for the shapes.

    Subclasses may add per-output fields (e.g. the ridge penalty of each output): list them in
    ``per_output`` so that ``select`` keeps them in step with the rows of ``coef``.
    """

    coef: np.ndarray
    intercept: np.ndarray
    output_names: tuple[str, ...]

    #: dtype of ``predict``'s result
    out_dtype: ClassVar[type[np.floating[Any]]] = np.float32
    #: fields indexed by output (axis 0), sliced together by ``select``
    per_output: ClassVar[tuple[str, ...]] = ("coef", "intercept")

    def __post_init__(self) -> None:
        coef = np.asarray(self.coef)
        if coef.ndim != 2 or coef.dtype not in (np.float32, np.float64):
            raise ModelLoadError(f"a readout's coef must be a float32/float64 (n_outputs, n_features) matrix, got {coef.dtype} {coef.shape}")
        intercept = np.asarray(self.intercept, dtype=coef.dtype)
        names = tuple(str(n) for n in self.output_names)
        if intercept.shape != (coef.shape[0],) or len(names) != coef.shape[0]:
            raise ModelLoadError(f"a readout's coef {coef.shape}, intercept {intercept.shape} and {len(names)} output names do not match")
        object.__setattr__(self, "coef", coef)
        object.__setattr__(self, "intercept", intercept)
        object.__setattr__(self, "output_names", names)

    @classmethod
    def from_columns(cls: type[R], weights: ArrayLike, intercept: ArrayLike | None, output_names: Sequence[str]) -> R:
        """A readout from weights stored (n_features, n_outputs), one column per output (no copy).

        ``intercept`` (n_outputs,) or None for none (zeros).
        """
        w = np.asarray(weights)
        if w.ndim != 2:
            raise ModelLoadError(f"readout weights must be an (n_features, n_outputs) matrix, got shape {w.shape}")
        b = np.zeros(w.shape[1], dtype=w.dtype) if intercept is None else intercept
        return cls(w.T, np.asarray(b), tuple(output_names))

    @property
    def n_features(self) -> int:
        return int(self.coef.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.coef.shape[0])

    def indices(self, which: Sequence[str] | Sequence[int] | NDArray[np.integer[Any]]) -> NDArray[np.intp]:
        """Row indices of ``which`` (output names, or integer indices), in the order given.

        A name this readout lacks is a ``ModelLoadError`` (the model names an output its weights do not
        have); a bad index, or a name several outputs share, is an ``InvalidParameterError``.
        """
        items = which.tolist() if isinstance(which, np.ndarray) else list(which)
        if all(isinstance(i, str) for i in items):
            position: dict[str, int] = {}
            repeated = set()
            for i, name in enumerate(self.output_names):
                if name in position:
                    repeated.add(name)
                position.setdefault(name, i)
            missing = [str(i) for i in items if i not in position]
            if missing:
                shown = ", ".join(self.output_names[:10]) + (", ..." if self.n_outputs > 10 else "")
                raise ModelLoadError(f"the readout has no output {', '.join(map(repr, missing))} (it has {shown}); its weight file "
                                     "does not match the model: delete it and fetch it again")
            ambiguous = [str(i) for i in items if i in repeated]
            if ambiguous:
                raise InvalidParameterError(f"the readout has several outputs named {ambiguous[0]!r}; select them by index")
            return np.array([position[str(i)] for i in items], dtype=np.intp)
        if not all(isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_)) for i in items):
            raise InvalidParameterError("a readout selection is a list of output names or of integer indices, not a mix or other types")
        index = np.array(items, dtype=np.intp)
        if index.size and (index.min() < 0 or index.max() >= self.n_outputs):
            raise InvalidParameterError(f"readout output index out of range 0..{self.n_outputs - 1}: {items}")
        return index

    def select(self: R, which: Sequence[str] | Sequence[int] | NDArray[np.integer[Any]]) -> R:
        """The readout of outputs ``which`` (names or indices), in that order; per-output fields follow."""
        idx = self.indices(which)
        fields = {name: np.asarray(getattr(self, name))[idx] for name in self.per_output}
        return dataclasses.replace(self, output_names=tuple(self.output_names[i] for i in idx), **fields)

    def predict(self, X: ArrayLike, *, batch_rows: int = 1024) -> np.ndarray:
        """(n_rows, n_features) features -> (n_rows, n_outputs) responses, ``out_dtype`` (float32).

        Computed in ``coef``'s dtype, ``batch_rows`` rows at a time (the temporary product of one batch
        is the only memory beyond the result).
        """
        x = np.asarray(X)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InvalidParameterError(f"features of shape {x.shape} do not fit a readout of {self.n_features} features; "
                                        f"expected (n_rows, {self.n_features})")
        if batch_rows < 1:
            raise InvalidParameterError(f"batch_rows must be >= 1, got {batch_rows}")
        out = np.empty((x.shape[0], self.n_outputs), dtype=self.out_dtype)
        weights = self.coef.T
        for start in range(0, x.shape[0], batch_rows):
            block = np.asarray(x[start:start + batch_rows], dtype=self.coef.dtype)
            out[start:start + batch_rows] = block @ weights + self.intercept
        return out
