"""The data side of the simulator, so a Python loop can match a run sample for sample:
dataset readers (checksums verified), the partitioner and the epoch sampler, drawing from the
same seed streams as ``byzadam run``."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Union

import numpy as np

from . import _core
from ._convert import check_number

__all__ = ["load", "partition", "EpochSampler", "sampler"]

EpochSampler = _core.EpochSampler


def load(name: str, data_dir: Optional[str] = None, seed: int = 0) -> Dict[str, Any]:
    """A dataset as arrays: ``train_images``/``test_images`` (uint8, ``N × C × H × W``),
    ``train_labels``/``test_labels`` (uint8), ``classes`` and the ``data_dir`` read. ``name``:
    ``mnist``, ``fashion-mnist``, ``cifar10`` or ``synthetic`` (generated from ``seed``).
    ``data_dir`` defaults to ``$BYZADAM_DATA_DIR``, else ``./data``; every file's SHA-256 is
    checked and a missing or corrupt file is an error naming it."""
    return _core.load_dataset(name, data_dir, check_number("load", "seed", seed, integer=True, minimum=0))


def _scheme(scheme: Union[str, dict]) -> str:
    if isinstance(scheme, str):
        scheme = {"name": scheme}
    if not isinstance(scheme, dict):
        raise TypeError(f"scheme must be a name or a dict, got {scheme!r}")
    return json.dumps(scheme)


def partition(labels: Any, workers: int, scheme: Union[str, dict] = "homogeneous",
              data_seed: int = 0, classes: Optional[int] = None) -> List[np.ndarray]:
    """Each worker's sample indices (ascending uint32 arrays): the split a run with this
    ``partition`` table and ``data_seed`` trains on. ``scheme``: ``"homogeneous"``,
    ``"iid"``, ``"extreme"``, or a table such as ``{"name": "dirichlet", "alpha": 0.1}``."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "ui":
        raise TypeError("labels must be a 1-D array of integer class labels")
    if y.size and (y.min() < 0 or y.max() > 255):
        raise ValueError("labels must be in 0..=255")
    y = np.ascontiguousarray(y, dtype=np.uint8)
    classes = int(y.max()) + 1 if classes is None else check_number("partition", "classes", classes, integer=True, minimum=1)
    return _core.partition_shards(y, classes, check_number("partition", "workers", workers, integer=True, minimum=1),
                                  _scheme(scheme), check_number("partition", "data_seed", data_seed, integer=True, minimum=0))


def sampler(shard: Any, batch: int, seed: int, worker: int,
            shared_first_shuffle: bool = False) -> "EpochSampler":
    """Worker ``worker``'s epoch sampler in a run with seed ``seed``: ``next_batch()`` gives
    the sample indices it trains on in the next round, ``batches(k)`` the next ``k``. With
    ``shared_first_shuffle`` (the run option of that name) its first epoch is drawn from the
    run's one shared stream, as every worker's is."""
    a = np.asarray(shard)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise TypeError(f"sampler: shard must be a 1-D array of sample indices (integers), "
                        f"got {a.dtype} with shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() > np.iinfo(np.uint32).max):
        raise ValueError(f"sampler: shard indices must be in 0..{np.iinfo(np.uint32).max}, "
                         f"got {a.min()}..{a.max()}")
    s = np.ascontiguousarray(a, dtype=np.uint32)
    return _core.EpochSampler(s, check_number("sampler", "batch", batch, integer=True, minimum=1),
                              check_number("sampler", "seed", seed, integer=True, minimum=0),
                              check_number("sampler", "worker", worker, integer=True, minimum=0),
                              bool(shared_first_shuffle))
