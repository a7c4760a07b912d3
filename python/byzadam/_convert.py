"""Inputs as ByzFL takes them, to the float32 matrices the Rust core reads, and back.

Accepted: an ``n × d`` NumPy array (float16/32/64, any byte order or layout), a list or tuple
of 1-D arrays, a torch tensor (CPU or CUDA) or a list of tensors. A float32 C-contiguous
NumPy array (or CPU float32 contiguous tensor) is read in place, without a copy; anything
else is converted once. Results come back with the input's type, dtype and device.
"""
from __future__ import annotations

import contextlib
import functools
import math
import numbers
import sys
from typing import Any, Callable, Iterator, Tuple

import numpy as np



def _torch() -> Any:
    """torch, when the caller has imported it (a tensor cannot exist otherwise): byzadam
    never imports it itself, so ``import byzadam`` stays light (no 0.5 GB, no 2 s) in
    processes that never touch torch, such as a Flower ClientApp."""
    return sys.modules.get("torch")


def _is_tensor(x: Any) -> bool:
    t = _torch()
    return t is not None and isinstance(x, t.Tensor)


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
    if t.dtype != _torch().float32:
        # Read at full width: _contiguous narrows it, refusing a finite value float32 lacks.
        return t.double().numpy()
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
            if isinstance(v, np.ma.MaskedArray):
                raise TypeError(f"element {i} is a masked array: its mask would be ignored; "
                                "fill it (v.filled(np.nan)) first")
            a = np.asarray(v)
            if a.dtype == object:
                raise TypeError(f"element {i} is not a numeric vector")
            if a.ndim != 1:
                raise ValueError(f"element {i} has shape {a.shape}: each vector must be 1-D")
            _float_dtype(a.dtype, f"element {i}")
            rows.append(a)
        x = _stack(rows)
        return x, _to_numpy(rows[0].dtype)
    if isinstance(vectors, np.ma.MaskedArray):
        raise TypeError(
            "a masked array: its mask would be ignored; fill the masked values "
            "(x.filled(np.nan), which robust rules treat as a Byzantine value) or drop "
            "the rows (np.ma.compress_rows(x)) first"
        )
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
    if x.dtype.itemsize <= 4:
        return np.ascontiguousarray(x, dtype=np.float32)
    with np.errstate(over="ignore"):  # an overflow is reported by _check_narrowed
        y = np.ascontiguousarray(x, dtype=np.float32)
    _check_narrowed(x, y)
    return y


def _check_narrowed(x: np.ndarray, y: np.ndarray) -> None:
    """A ``ValueError`` naming the first value that was finite in ``x`` but became ±∞ in its
    float32 copy ``y`` (float64's 1e300): byzadam computes in float32, and a silent ∞ would
    be trimmed or win as if a worker had sent it. ±∞ and NaN given as such stay inputs."""
    with np.errstate(invalid="ignore"):
        bad = np.isinf(y) & np.isfinite(x)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise ValueError(
            f"row {i}, column {j}: {float(x[i, j])!r} is outside float32's range (±3.4e38; "
            "byzadam computes in float32)"
        )


def _stack(rows: list) -> np.ndarray:
    d = rows[0].shape[0]
    for i, r in enumerate(rows):
        if r.shape[0] != d:
            raise ValueError(f"ragged vectors: element {i} has length {r.shape[0]}, element 0 has {d}")
    wide = [r for r in rows if r.dtype.itemsize > 4]
    with np.errstate(over="ignore"):  # an overflow is reported by _check_narrowed
        x = _contiguous(np.stack([np.asarray(r, dtype=np.float32) for r in rows]))
    if wide:
        _check_narrowed(np.stack([np.asarray(r, dtype=np.float64) for r in rows]), x)
    return x


def _to_numpy(dtype: np.dtype) -> Callable[[np.ndarray], Any]:
    def back(out: np.ndarray) -> np.ndarray:
        return out if out.dtype == dtype else out.astype(dtype)

    return back


def _to_tensor(dtype: Any, device: Any) -> Callable[[np.ndarray], Any]:
    def back(out: np.ndarray) -> Any:
        return _torch().from_numpy(out).to(device=device, dtype=dtype)

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


class Copyable:
    """``copy.copy`` and ``copy.deepcopy`` give an independent object: the Rust state it holds
    (centred clipping's centre, an attack's or bucketing's random stream, a worker's moments)
    is copied, never shared, so the copy and the original can be used side by side."""

    def __copy__(self) -> Any:
        new = object.__new__(type(self))
        new.__dict__.update({k: _copied(v) for k, v in self.__dict__.items()})
        return new

    def __deepcopy__(self, memo: dict) -> Any:
        new = self.__copy__()
        memo[id(self)] = new
        return new


def _copied(v: Any) -> Any:
    if isinstance(v, Copyable):
        return v.__copy__()
    if type(v).__module__ == "byzadam._core" and hasattr(v, "copy"):
        return v.copy()
    if isinstance(v, dict):
        return {k: _copied(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copied(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.copy()
    return v


@functools.lru_cache(maxsize=None)
def _declared(kind: str) -> dict:
    """``{name: {param: declaration}}`` of registry ``kind``, as ``byzadam rules --json``."""
    import json

    from . import _core

    return {e["name"]: {p["name"]: p for p in e["params"]}
            for e in json.loads(_core.registry_json())[kind]}


_U64 = 2**64 - 1


def check_params(kind: str, name: str, params: dict) -> dict:
    """``params`` unchanged, or the error a user can act on, naming the parameter: an unknown
    name (listing the entry's parameters), a wrong type, a negative or over-64-bit integer,
    NaN or ±∞, a value outside an enumeration. Checked against the declarations of the Rust
    registry (``byzadam.registry(parameters=True)``), before JSON carries the values to Rust,
    whose messages would name a Rust type instead. The bounds themselves are Rust's."""
    check_finite(name, params)
    declared = _declared(kind).get(name, {})
    for key, v in params.items():
        p = declared.get(key)
        if p is None:
            known = ", ".join(declared) or "none"
            raise TypeError(f"{name}: unknown parameter {key!r} (its parameters: {known})")
        k = p["kind"]
        if k == "int":
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{name}: {key} must be an integer, got {v!r}")
            if not 0 <= int(v) <= _U64:
                raise ValueError(f"{name}: {key} must be an integer in 0..2^64-1, got {v}")
        elif k == "float":
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{name}: {key} must be a number, got {v!r}")
        elif k == "bool":
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{name}: {key} must be True or False, got {v!r}")
        elif k == "int list":
            if not isinstance(v, (list, tuple)) or not all(
                    isinstance(x, numbers.Integral) and not isinstance(x, bool)
                    and 0 <= int(x) <= _U64 for x in v):
                raise TypeError(f"{name}: {key} must be a list of integers ≥ 0, got {v!r}")
        elif "|" in k:
            options = [o.strip() for o in k.split("|")]
            if v not in options:
                raise ValueError(f"{name}: {key} must be one of {', '.join(options)}, got {v!r}")
    return params


@contextlib.contextmanager
def exclusive(what: str) -> Iterator[None]:
    """Turns PyO3's "Already borrowed" (an object used by two threads at once) into a message
    that says what happened and what to do."""
    try:
        yield
    except RuntimeError as e:
        if "lready borrowed" in str(e) or "lready mutably borrowed" in str(e):
            raise RuntimeError(
                f"{what} is in use by another thread: give each thread its own "
                "(copy.copy makes an independent one)") from None
        raise
