"""Inputs as ByzFL takes them, to the float32 matrices the Rust core reads, and back.

Accepted: an ``n × d`` NumPy array (float16/32/64, any byte order or layout), a list or tuple
of 1-D arrays, a torch tensor (CPU or CUDA) or a list of tensors. A float32 C-contiguous
NumPy array (or CPU float32 contiguous tensor) is read in place, without a copy; anything
else is converted once. Results come back with the input's type, dtype and device.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Tuple

import numpy as np

try:  # torch is optional
    import torch as _torch
except ImportError:  # pragma: no cover - exercised where torch is absent
    _torch = None


def _is_tensor(x: Any) -> bool:
    return _torch is not None and isinstance(x, _torch.Tensor)


def _float_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.kind != "f":
        raise TypeError(
            f"{where} has dtype {dtype}: pass floating-point vectors (float32 or float64); "
            "convert integers with .astype(np.float32)"
        )


def _tensor_to_numpy(t: Any, where: str) -> np.ndarray:
    if not t.is_floating_point():
        raise TypeError(f"{where} has dtype {t.dtype}: pass floating-point tensors")
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dtype != _torch.float32:
        t = t.float()
    return t.numpy()


def as_matrix(vectors: Any) -> Tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """``(x, back)``: ``x`` the vectors as a C-contiguous float32 ``n × d`` NumPy array (the
    input itself when it already is one), ``back`` turning a float32 result into the input's
    type, dtype and device."""
    if _is_tensor(vectors):
        if vectors.dim() != 2:
            raise ValueError(
                f"expected an n × d tensor of n vectors, got {vectors.dim()} dimension(s) "
                f"(shape {tuple(vectors.shape)})"
            )
        x = _tensor_to_numpy(vectors, "the tensor")
        return _contiguous(x), _to_tensor(vectors.dtype, vectors.device)
    if isinstance(vectors, (list, tuple)):
        if len(vectors) == 0:
            raise ValueError("no vectors: the list is empty")
        if _is_tensor(vectors[0]):
            rows = []
            for i, v in enumerate(vectors):
                if not _is_tensor(v):
                    raise TypeError(f"element {i} is a {type(v).__name__}, element 0 a tensor")
                if v.dim() != 1:
                    raise ValueError(f"element {i} has shape {tuple(v.shape)}: each vector must be 1-D")
                rows.append(_tensor_to_numpy(v, f"element {i}"))
            x = _stack(rows)
            return x, _to_tensor(vectors[0].dtype, vectors[0].device)
        rows = []
        for i, v in enumerate(vectors):
            a = np.asarray(v)
            if a.dtype == object:
                raise TypeError(f"element {i} is not a numeric vector")
            if a.ndim != 1:
                raise ValueError(f"element {i} has shape {a.shape}: each vector must be 1-D")
            _float_dtype(a.dtype, f"element {i}")
            rows.append(a)
        x = _stack(rows)
        return x, _to_numpy(rows[0].dtype)
    if isinstance(vectors, np.ndarray):
        if vectors.ndim != 2:
            raise ValueError(
                f"expected an n × d array of n vectors, got {vectors.ndim} dimension(s) "
                f"(shape {vectors.shape}); stack 1-D vectors with np.stack"
            )
        _float_dtype(vectors.dtype, "the array")
        return _contiguous(vectors), _to_numpy(vectors.dtype)
    raise TypeError(
        "vectors must be an n × d numpy array, a torch tensor, or a list of 1-D arrays or "
        f"tensors, got {type(vectors).__name__}"
    )


def _contiguous(x: np.ndarray) -> np.ndarray:
    if x.shape[0] == 0:
        raise ValueError("no vectors: the input has 0 rows")
    if x.shape[1] == 0:
        raise ValueError("the vectors have dimension 0")
    # A no-op (no copy) for native float32 C-contiguous input.
    return np.ascontiguousarray(x, dtype=np.float32)


def _stack(rows: list) -> np.ndarray:
    d = rows[0].shape[0]
    for i, r in enumerate(rows):
        if r.shape[0] != d:
            raise ValueError(f"ragged vectors: element {i} has length {r.shape[0]}, element 0 has {d}")
    return _contiguous(np.stack([np.asarray(r, dtype=np.float32) for r in rows]))


def _to_numpy(dtype: np.dtype) -> Callable[[np.ndarray], Any]:
    def back(out: np.ndarray) -> np.ndarray:
        return out if out.dtype == dtype else out.astype(dtype)

    return back


def _to_tensor(dtype: Any, device: Any) -> Callable[[np.ndarray], Any]:
    def back(out: np.ndarray) -> Any:
        return _torch.from_numpy(out).to(device=device, dtype=dtype)

    return back


def check_number(rule: str, name: str, value: Any, *, integer: bool = False,
                 minimum: float | None = None, allow_none: bool = False) -> Any:
    """A hyperparameter checked in Python before it reaches Rust: a ``TypeError`` for a wrong
    type, a ``ValueError`` naming the parameter for NaN, ∞ or a value below ``minimum``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{rule}: {name} must be {kind}, got {value!r}")
    if integer:
        if not isinstance(value, numbers.Integral):
            raise TypeError(f"{rule}: {name} must be an integer, got {value!r}")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{rule}: {name} must be a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{rule}: {name} must be ≥ {minimum}, got {value}")
    return value


def subclasses(base: type) -> list:
    """Every subclass of ``base``, depth first (a registry's classes: each names its entry)."""
    out = []
    for c in base.__subclasses__():
        out += [c] + subclasses(c)
    return out


def check_finite(rule: str, params: dict) -> dict:
    """``params`` unchanged, or a ``ValueError`` naming the first NaN or ±∞ among them (nested
    lists and dicts too): JSON, which carries them to Rust, has no form for those, and no
    parameter of any rule takes one."""
    def walk(key: str, v: Any) -> None:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{rule}: {key} must be a finite number, got {v}")
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{key}.{k}", x)
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(f"{key}[{i}]", x)
        elif isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all():
            raise ValueError(f"{rule}: {key} must hold finite numbers only")
    for k, v in params.items():
        walk(k, v)
    return params


def canonical(kind: str, name: str, what: str) -> str:
    """The canonical name of ``name`` (any alias) in byzadam's registry ``kind``
    (``aggregators``, ``preaggregators``, ``attacks``); a ``ValueError`` listing the registry's
    names when there is none. ``what`` names one entry in the message."""
    from . import _core

    found = _core.canonical_name(kind, name)
    if found is None:
        known = ", ".join(n for n, _ in _core.registry()[kind])
        raise ValueError(f"no {what} {name!r}; the {kind}: {known}")
    return found
