"""A run of byzadam's round with the gradients from PyTorch (any model, any device) and
everything after them (gradient policy, the optimizer's worker step, the Byzantine
forgeries, pre-aggregation, the rule, the server step, ξ and λ) from the Rust halves
(:class:`byzadam.Server`, :class:`byzadam.Worker`): no second round in Python."""
from __future__ import annotations

import contextlib
import json
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .. import _core
from .. import data as _data
from ..round import Server, Worker, resolve
from .models import flat

__all__ = ["Simulation", "Summary"]

# Run options of `byzadam run` the torch backend does not implement: refused when set, never
# silently ignored. Their defaults, as `byzadam.resolve` gives them, and what to use instead.
_UNSUPPORTED: Dict[str, Any] = {
    # The built-in engine's control; PyTorch's kernels flush with `flush_denormal`.
    "flush_subnormals": (False, "byzadam.torch flushes subnormals with its flush_denormal "
                                "argument (on by default on the CPU)"),
}


@contextlib.contextmanager
def _denormals_flushed(on: bool) -> Iterator[None]:
    """Within: the CPU flushes subnormal floats to zero (``torch.set_flush_denormal``), unless
    ``on`` is false; afterwards the mode is what it was. Training drives some activations and
    gradients below float32's normal range (≈ 1.2e-38), where x86 cores take a slow path on
    every operation: the MNIST CNN's gradients after 100 rounds of training cost 2.8× as much
    without flushing (``benchmarks/torch_paths.py``)."""
    if not on or float(torch.tensor(1e-39) * 1.0) == 0.0:  # off, or flushing already
        yield
        return
    if not torch.set_flush_denormal(True):  # a CPU without the control: nothing to do
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextlib.contextmanager
def _tf32_off(on: bool) -> Iterator[None]:
    """Within: CUDA computes float32 convolutions and matrix products in float32, not
    TensorFloat-32 (``torch.backends.cudnn.allow_tf32``, on by default in PyTorch, and
    ``torch.backends.cuda.matmul.allow_tf32``), unless ``on`` is false; afterwards both are
    what they were. TF32 keeps 10 mantissa bits: a gradient about 1e-3 (relative) from
    float32's, where byzadam's proofs compare the torch backend's gradients with the engine's
    to 1e-4. The flags are global; on the CPU they change nothing."""
    if not on:
        yield
        return
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _loss(out: torch.Tensor, y: torch.Tensor, softmax_head: bool,
          reduction: str = "mean") -> torch.Tensor:
    """The run's loss on the model's outputs: cross-entropy on the logits, or with ``head =
    "softmax_then_cross_entropy"`` (the thesis's code) cross-entropy on the softmax of them,
    as the engine computes both."""
    return F.cross_entropy(F.softmax(out, dim=1) if softmax_head else out, y,
                           reduction=reduction)


@dataclass
class Summary:
    """What a run ends with, as :func:`byzadam.run`'s summary: ``final_accuracy``,
    ``best_accuracy``, ``final_loss``, ``rounds``, ``diverged_at`` (a round or ``None``),
    ``seconds``; ``metrics``, one dict per round; and ``class_recall``, each class's recall
    at the last round's evaluation (NaN for a class the evaluated images lack; empty when
    the last round was not evaluated)."""

    final_accuracy: float
    best_accuracy: float
    final_loss: float
    rounds: int
    diverged_at: Optional[int]
    seconds: float
    metrics: List[Dict[str, Any]] = field(default_factory=list)
    class_recall: List[float] = field(default_factory=list)


def _device(device: Any) -> torch.device:
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r} is not a torch device: {e}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine "
                         "(torch.cuda.is_available() is False)")
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} "
                         "CUDA device(s)")
    return d


class _Split:
    """One split's inputs and labels as tensors on the device (normalised as byzadam run
    normalises the byzadam dataset dicts)."""

    def __init__(self, source: Any, which: str, labels: Any, normalize: bool,
                 device: torch.device) -> None:
        if isinstance(source, dict):
            key = f"{which}_images"
            if key not in source:
                raise TypeError(f"{which}: a dict must be byzadam.data.load's (no {key!r})")
            x = torch.from_numpy(np.ascontiguousarray(source[key])).to(torch.float32) / 255.0
            if normalize:
                mean = torch.tensor(source["mean"], dtype=torch.float32).view(1, -1, 1, 1)
                std = torch.tensor(source["std"], dtype=torch.float32).view(1, -1, 1, 1)
                x = (x - mean) / std
            y = np.asarray(source[f"{which}_labels"])
        elif isinstance(source, torch.utils.data.Dataset):
            n = len(source)  # type: ignore[arg-type]
            if n == 0:
                raise ValueError(f"{which}: the dataset is empty")
            items = [source[i] for i in range(n)]
            if not isinstance(items[0], (tuple, list)) or len(items[0]) < 1:
                raise TypeError(f"{which}: dataset items must be (input, label) pairs")
            x = torch.stack([torch.as_tensor(it[0], dtype=torch.float32) for it in items])
            if labels is None:
                labels = getattr(source, "targets", None)
                if labels is None and len(items[0]) >= 2:
                    labels = [int(it[1]) for it in items]
            if labels is None:
                raise ValueError(f"{which}: the dataset has no labels (no .targets and no "
                                 "(input, label) items): pass labels=")
            y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        else:
            raise TypeError(f"{which}: a torch Dataset or byzadam.data.load's dict, got "
                            f"{type(source).__name__}")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"{which}: {len(y)} labels for {len(x)} inputs")
        if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() > 255)):
            raise ValueError(f"{which}: labels must be integer classes in 0..=255")
        self.labels = y.astype(np.uint8)
        self.x = x.to(device)
        self.y = torch.from_numpy(self.labels.astype(np.int64)).to(device)


class Simulation:
    """A run of ``config`` (the keys, defaults and validation of ``byzadam run``) with
    ``model``'s gradients computed by PyTorch on ``device``.

    ``train``/``test``: map-style torch Datasets of ``(input, label)`` (labels from
    ``.targets``, the items, or ``labels``/``test_labels``), or the dict
    ``byzadam.data.load`` returns (then the config's input normalisation applies as in
    ``byzadam run``). Partitions and batches are byzadam's (the same indices as the Rust
    simulator for the same seeds). The initial parameters are the model's own unless
    ``params`` (a flat vector) or the config's ``init`` (a flat ``.npy`` file, as
    ``byzadam run`` reads it) gives them.

    Gradients: one batched call over the workers (``torch.func.vmap`` of ``grad``, each
    worker drawing its own dropout masks, each keeping its own buffers such as batch-norm
    running statistics, stacked along the vmapped dimension; evaluation uses the honest
    workers' mean, as the Rust engine does) with ``vmap=True``, or a per-worker loop with
    ``vmap=False`` or when vmap cannot batch the model. The default, ``vmap=None``, takes the
    loop on the CPU (the faster path there: PyTorch's batched convolutions over the workers'
    weights are slower than one convolution per worker) and vmap elsewhere.
    :attr:`gradient_path` says which ran (``"vmap"`` or ``"loop"``) and
    :attr:`fallback_reason` why the loop, if it did.

    ``channels_last``: convert the model's 4-D parameters (convolution weights) to PyTorch's
    channels-last memory format (``model.to(memory_format=torch.channels_last)``, in place,
    as ``.to(device)`` is). The default, ``None``, does so on the CPU for a model with a 4-D
    parameter and no batch norm, where PyTorch's convolutions at small batches run about
    1.5× faster that way; ``False`` leaves the model's layout alone. The flat parameter order
    is the same either way and the gradients agree to float32 rounding, except that with
    batch norm PyTorch's channels-last gradient is far less accurate (the thesis's CIFAR-10
    CNN: relative 3e-3 from the engine's gradient and 1.3e-3 from its float64 value, against
    1e-6 to 3e-5 and 7e-7 on the default layout; hence not by default there).
    :attr:`channels_last` says which was used.

    ``flush_denormal``: on the CPU, the gradients and evaluations run with subnormal floats
    flushed to zero (``torch.set_flush_denormal``; the mode is restored afterwards), since
    x86 cores slow down on every operation with one, and training produces them; values
    below 1.2e-38 then count as 0. ``False`` computes with them.

    ``tf32``: ``False`` (the default) turns TensorFloat-32 off within the gradients and
    evaluations (``torch.backends.cudnn.allow_tf32`` and ``torch.backends.cuda.matmul.
    allow_tf32``, restored afterwards): PyTorch lets cuDNN compute float32 convolutions with
    10-bit mantissas by default, about 1e-3 from float32, on GPUs since Ampere. ``True``
    leaves PyTorch's settings as they are (faster on such a GPU, less exact).
    """

    def __init__(self, model: torch.nn.Module, train: Any, test: Any = None, *,
                 config: Any = None, set: Sequence[str] = (), device: Any = "cpu",
                 labels: Any = None, test_labels: Any = None, params: Any = None,
                 vmap: Optional[bool] = None, eval_batch: int = 1000,
                 channels_last: Optional[bool] = None, flush_denormal: bool = True,
                 tf32: bool = False) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        _check_flag("vmap", vmap, optional=True)
        _check_flag("channels_last", channels_last, optional=True)
        _check_flag("flush_denormal", flush_denormal)
        _check_flag("tf32", tf32)
        if isinstance(eval_batch, bool) or not isinstance(eval_batch, int) or eval_batch < 1:
            raise ValueError(f"eval_batch must be a positive integer (test images per forward "
                             f"pass), got {eval_batch!r}")
        self.config: Dict[str, Any] = resolve(config, set=set)
        for key, (default, instead) in _UNSUPPORTED.items():
            if self.config.get(key, default) != default:
                raise ValueError(f"config key {key!r}: not supported by the torch backend "
                                 f"(only {default!r}): {instead}")
        if not any(True for _ in model.parameters()):
            raise ValueError("the model has no parameters: nothing to train")
        self.device = _device(device)
        self.model = model.to(self.device)
        if channels_last is None:
            # On the CPU, PyTorch's convolutions at the workers' small batches run ≈ 1.5×
            # faster on channels-last weights (oneDNN) than on the default layout
            # (BENCHMARKS.md, "byzadam.torch on the CPU"). Not with batch norm: there the
            # channels-last float32 gradient is far less accurate (the thesis's CIFAR-10 CNN:
            # 3e-3 from the engine's gradient, 1.3e-3 from its float64 value; the default
            # layout 1e-6 to 3e-5 and 7e-7), the error entering in the backward pass through
            # a batch norm (each layer alone is accurate; the cause inside PyTorch is not
            # pinned down).
            channels_last = (self.device.type == "cpu"
                             and any(p.dim() == 4 for p in self.model.parameters())
                             and not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                         for m in self.model.modules()))
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.channels_last = bool(channels_last)
        self.flush_denormal = bool(flush_denormal)
        # Only the CPU's mode is set (torch.set_flush_denormal is the CPU's control).
        self._flush_on_device = self.flush_denormal and self.device.type == "cpu"
        self.tf32 = bool(tf32)
        normalize = bool(self.config.get("normalize_inputs", True))
        self._train = _Split(train, "train", labels, normalize, self.device)
        self._test = None if test is None else _Split(test, "test", test_labels, normalize,
                                                      self.device)
        cfg = self.config
        n = cfg["workers"]
        init = cfg.get("init")
        if init is not None and params is not None:
            raise ValueError(f"config key 'init' ({init['path']}) and params= both give the "
                             "initial parameters: give one")
        if init is not None:
            # Read and checked (its pinned SHA-256, length of the config's model) in Rust.
            self.server = Server(cfg)
            start = self.server.params
            source = f"init ({init['path']})"
        elif params is None:
            start = flat(self.model).detach().cpu().numpy().astype(np.float32)
            source = "the model"
        else:
            start = np.ascontiguousarray(np.asarray(params, dtype=np.float32).reshape(-1))
            source = "params"
        self.dim = int(start.size)
        if self.dim != sum(p.numel() for p in self.model.parameters()):
            raise ValueError(f"{source} has {self.dim} values, the model "
                             f"{sum(p.numel() for p in self.model.parameters())} parameters")
        if init is None:
            self.server = Server(cfg, params=start)
        self.workers = [Worker(cfg, self.dim) for _ in range(n)]
        classes = int(self._train.labels.max()) + 1
        self.classes = max(classes, 10) if isinstance(train, dict) else classes
        shards = _data.partition(self._train.labels, n, cfg["partition"], cfg["data_seed"],
                                 classes=self.classes)
        self._softmax_head = cfg.get("head", "log_softmax") == "softmax_then_cross_entropy"
        subset = _core.eval_subset(json.dumps(cfg))
        self._eval_indices = None if subset is None else torch.tensor(subset, dtype=torch.long,
                                                                      device=self.device)
        if self._eval_indices is not None and self._test is not None \
                and int(self._eval_indices.max()) >= len(self._test.y):
            raise ValueError(f"eval_subset: index {int(self._eval_indices.max())} is past the "
                             f"test set's {len(self._test.y)} images")
        self._samplers = [_data.sampler(s, cfg["batch"], cfg["seed"], w,
                                        shared_first_shuffle=bool(cfg.get("shared_first_shuffle")))
                          for w, s in enumerate(shards)]
        attack = cfg.get("attack")
        attack = attack if isinstance(attack, dict) else {}  # "none" or absent: no attack
        self._flip = attack.get("classes", 10) if attack.get("name") == "label_flip" else None
        self._names = [k for k, _ in self.model.named_parameters()]
        self._buffers = {k: v for k, v in self.model.named_buffers()}
        # Each worker's own buffers (batch-norm running statistics), kept apart.
        self._worker_buffers = [{k: v.detach().clone() for k, v in self._buffers.items()}
                                for _ in range(n)]
        if vmap is None:
            # On the CPU the loop is the faster path (batch 25, one thread: the MNIST CNN's ten
            # gradients 48 against vmap's 71 ms, both channels last; the CIFAR-10 CNN's five
            # 0.84 against 1.11 s; benchmarks/torch_paths.py); elsewhere one batched call.
            self.gradient_path = "loop" if self.device.type == "cpu" else "vmap"
            self.fallback_reason: Optional[str] = (
                "the CPU (vmap=None): the per-worker loop is the faster path there"
                if self.gradient_path == "loop" else None)
        else:
            self.gradient_path = "vmap" if vmap else "loop"
            self.fallback_reason = None if vmap else "vmap=False"
        self._output_checked = False
        self._messages: Optional[List[np.ndarray]] = None
        self._eval_batch = int(eval_batch)
        self._generator_seed = int(cfg["seed"])
        self.metrics: List[Dict[str, Any]] = []
        # Each class's recall at the last round's evaluation (as the engine's simulator).
        self.final_recall: List[float] = []

    # -- gradients ----------------------------------------------------------------------

    def _batch(self, w: int, idx: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
        return self._batches([w], [idx])[0]

    def _batches(self, workers: List[int], idx: List[np.ndarray]
                 ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Each worker's batch of the training images ``idx`` gives it (its labels flipped for a
        Byzantine worker under the label-flip attack), gathered in one indexing call."""
        sizes = [len(i) for i in idx]
        i = torch.from_numpy(np.concatenate(idx).astype(np.int64, copy=False)).to(self.device)
        xs, ys = self._train.x[i].split(sizes), self._train.y[i].split(sizes)
        out = []
        for w, x, y in zip(workers, xs, ys):
            if self._flip is not None and self.server.is_byzantine(w):
                y = torch.where(y < self._flip, self._flip - 1 - y, y)
            out.append((x, y))
        return out

    def _load_params(self, params: Optional[np.ndarray] = None) -> None:
        """The flat ``params`` (default: the server's) into the model's, each copied into its
        tensor in place, so the tensors keep their memory format (channels last)."""
        if params is None:
            params = self.server.params
        src = torch.from_numpy(np.ascontiguousarray(params, np.float32)).to(self.device)
        with torch.no_grad():
            offset = 0
            for p in self.model.parameters():
                p.copy_(src[offset:offset + p.numel()].view_as(p))
                offset += p.numel()

    def _seed(self, seed: int) -> None:
        """Seeds the generator the model's dropout draws from on ``self.device``: the CPU's, or
        the CUDA device's. (``torch.manual_seed`` would also queue a lazy seeding of every
        CUDA device, formatting a stack trace each call: 0.4 ms a worker on a CPU machine.)

        The seeds derived from the run's seed grow past 2^63 for run seeds above ~2^43 (every
        seed up to 2^63 − 1 is a valid run seed), where a generator's ``manual_seed`` raises
        "Overflow when unpacking long long": the seed is taken modulo 2^63, which leaves every
        seed below it as it was."""
        seed &= (1 << 63) - 1
        if self.device.type == "cuda":
            index = self.device.index
            if index is None:
                index = torch.cuda.current_device()
            torch.cuda.default_generators[index].manual_seed(seed)
        else:
            torch.default_generator.manual_seed(seed)

    def _check_output(self, out: torch.Tensor, batch: int) -> None:
        if out.dim() != 2 or out.shape[0] != batch:
            raise ValueError(f"the model's output has shape {tuple(out.shape)}: expected "
                             f"(batch, classes) = ({batch}, classes)")
        if out.shape[1] < self.classes:
            raise ValueError(f"the model's output has {out.shape[1]} classes, the labels "
                             f"{self.classes}")

    def _loop(self, active: List[int], batches: List[Tuple[torch.Tensor, torch.Tensor]],
              t: int) -> Tuple[torch.Tensor, torch.Tensor]:
        self.model.train()
        params = list(self.model.parameters())
        # Each worker's gradient is concatenated straight into its row (no stacking copy).
        grads = torch.empty((len(active), sum(p.numel() for p in params)),
                            dtype=params[0].dtype, device=self.device)
        losses = []
        for row, (w, (x, y)) in enumerate(zip(active, batches)):
            self._seed(self._generator_seed * 1_000_003 + t * 4099 + w)
            for k, b in self._buffers.items():
                b.copy_(self._worker_buffers[w][k])
            out = self.model(x)
            self._check_output(out, len(y))
            loss = _loss(out, y, self._softmax_head)
            g = torch.autograd.grad(loss, params, allow_unused=True)
            torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                       for gi, p in zip(g, params)], out=grads[row])
            losses.append(loss.detach())
            for k, b in self._buffers.items():
                self._worker_buffers[w][k] = b.detach().clone()
        return grads, torch.stack(losses)

    def _vmapped(self, active: List[int], batches: List[Tuple[torch.Tensor, torch.Tensor]],
                 t: int) -> Tuple[torch.Tensor, torch.Tensor]:
        from torch.func import functional_call, grad_and_value, vmap

        self.model.train()
        pdict = {k: v.detach() for k, v in self.model.named_parameters()}
        # Each worker's buffers (batch-norm running statistics) stacked along the vmapped
        # dimension: the in-place updates land in each worker's own slice.
        bstack = {k: torch.stack([self._worker_buffers[w][k] for w in active])
                  for k in self._buffers}
        xs = torch.stack([b[0] for b in batches])
        ys = torch.stack([b[1] for b in batches])
        if not self._output_checked:
            # Once: vmap's result has no per-worker output to look at, so one forward on the
            # first worker's batch (buffers copied, so no statistics move) checks its shape.
            with torch.no_grad():
                probe = {k: v[0].clone() for k, v in bstack.items()}
                self._check_output(functional_call(self.model, (pdict, probe), (xs[0],)),
                                   ys.shape[1])
            self._output_checked = True

        def loss_fn(p: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor], x: torch.Tensor,
                    y: torch.Tensor) -> torch.Tensor:
            return _loss(functional_call(self.model, (p, b), (x,)), y, self._softmax_head)

        self._seed(self._generator_seed * 1_000_003 + t * 4099)
        g, loss = vmap(grad_and_value(loss_fn), in_dims=(None, 0, 0, 0),
                       randomness="different")(pdict, bstack, xs, ys)
        for i, w in enumerate(active):
            for k, v in bstack.items():
                self._worker_buffers[w][k] = v[i].detach().clone()
        return torch.cat([g[k].reshape(len(batches), -1) for k in self._names], dim=1), loss

    def gradients(self, t: int) -> Tuple[List[int], np.ndarray, np.ndarray]:
        """Round ``t``'s gradients at the server's parameters: the workers that compute
        (all, or the honest ones when the attack ignores the Byzantine workers' genuine
        messages), their ``active × dim`` float32 gradients and their losses."""
        n = len(self.workers)
        needs = self.server.needs_byzantine_messages
        active = [w for w in range(n) if needs or not self.server.is_byzantine(w)]
        batches = self._batches(active, [np.asarray(self._samplers[w].next_batch())
                                         for w in active])
        return self._gradients_at(self.server.params, t, active, batches)

    def _gradients_at(self, params: np.ndarray, t: int, active: List[int],
                      batches: List[Tuple[torch.Tensor, torch.Tensor]]
                      ) -> Tuple[List[int], np.ndarray, np.ndarray]:
        """Round ``t``'s gradients of the ``active`` workers on their ``batches`` at the flat
        ``params`` (the server's, or a Flower node's copy of them)."""
        self._load_params(params)
        # Dropout draws from torch's generator, seeded per round (and worker): the user's
        # generator state is restored afterwards.
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), self._numerics():
            return self._gradients(t, active, batches)

    @contextlib.contextmanager
    def _numerics(self) -> Iterator[None]:
        """The floating-point modes the gradients and evaluations run in: subnormals flushed
        on the CPU (``flush_denormal``), TensorFloat-32 off (``tf32``)."""
        with _denormals_flushed(self._flush_on_device), _tf32_off(not self.tf32):
            yield

    def _gradients(self, t: int, active: List[int],
                   batches: List[Tuple[torch.Tensor, torch.Tensor]]
                   ) -> Tuple[List[int], np.ndarray, np.ndarray]:
        if self.gradient_path == "vmap":
            try:
                g, loss = self._vmapped(active, batches, t)
            except ValueError:
                raise
            except Exception as e:  # noqa: BLE001 - any op vmap cannot batch
                self.gradient_path = "loop"
                self.fallback_reason = f"vmap cannot batch this model ({type(e).__name__}: {e})"
                warnings.warn(f"byzadam.torch: {self.fallback_reason}; using the per-worker loop",
                              RuntimeWarning, stacklevel=2)
                g, loss = self._loop(active, batches, t)
        else:
            g, loss = self._loop(active, batches, t)
        return (active, g.detach().to("cpu", torch.float32).numpy(),
                loss.detach().to("cpu", torch.float32).numpy())

    # -- evaluation -----------------------------------------------------------------------

    def evaluate(self, round: Optional[int] = None, recall: bool = False) -> Tuple:
        """``(accuracy, loss)`` of the server's parameters on the test set's ``eval_subset``
        images, else its first ``eval_samples`` (all without either), batch-norm statistics
        the honest workers' mean; with the softmax head, the loss is the run's and the
        prediction the arg-max of the probabilities, as the engine's.

        With the run option ``training_mode_eval = {batch = B}`` (the thesis's code's CIFAR-10
        evaluation) the model is evaluated in training mode, ``B`` test images at a time: each
        batch's own batch-norm statistics (the running statistics are left as they were) and
        dropout on, its masks drawn from torch's generator seeded by the run's seed and
        ``round`` (default: the server's round now), so an evaluation is reproducible.

        ``recall=True`` adds each class's recall (NaN for a class the images lack):
        ``(accuracy, loss, [recall per class])``."""
        if self._test is None:
            raise ValueError("no test set was given")
        self._load_params()
        honest = [w for w in range(len(self.workers)) if not self.server.is_byzantine(w)]
        for k, b in self._buffers.items():
            stacked = torch.stack([self._worker_buffers[w][k].to(torch.float64) for w in honest])
            b.copy_(stacked.mean(0).to(b.dtype))
        if self._eval_indices is not None:
            x, y = self._test.x[self._eval_indices], self._test.y[self._eval_indices]
        else:
            k = self.config.get("eval_samples") or len(self._test.y)
            x, y = self._test.x[:k], self._test.y[:k]
        training = self.config.get("training_mode_eval")
        batch = int(training["batch"]) if training is not None else self._eval_batch
        saved = {k: b.detach().clone() for k, b in self._buffers.items()}
        self.model.train(training is not None)
        t = self.server.round if round is None else int(round)
        cuda = [self.device] if self.device.type == "cuda" else []
        correct, total_loss = 0, 0.0
        hits = torch.zeros(self.classes, dtype=torch.int64, device=self.device)
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=cuda), self._numerics():
                if training is not None:
                    # Dropout's evaluation stream: apart from the workers' (seeds below 2^62).
                    self._seed((1 << 62) | ((self._generator_seed * 1_000_003 + t)
                                            & ((1 << 62) - 1)))
                for s in range(0, len(y), batch):
                    out = self.model(x[s:s + batch])
                    yy = y[s:s + batch]
                    total_loss += float(_loss(out, yy, self._softmax_head, reduction="sum"))
                    scores = F.softmax(out, dim=1) if self._softmax_head else out
                    right = scores.argmax(1) == yy
                    correct += int(right.sum())
                    if recall:
                        hits += torch.bincount(yy[right], minlength=self.classes)[:self.classes]
        finally:
            # Training mode updates the running statistics: put back the honest mean.
            for k, b in self._buffers.items():
                b.copy_(saved[k])
        if recall:
            counts = torch.bincount(y, minlength=self.classes)[:self.classes].cpu().tolist()
            per_class = [h / c if c else float("nan") for h, c in zip(hits.cpu().tolist(), counts)]
            return correct / len(y), total_loss / len(y), per_class
        return correct / len(y), total_loss / len(y)

    # -- the round --------------------------------------------------------------------------

    def step(self) -> Dict[str, Any]:
        """One round: the gradients, each worker's message (Rust), the server's step
        (Rust), and the evaluation when due. Returns the round's metrics."""
        t = self.server.round + 1
        due = self.server.evaluation_due()
        active, grads, losses = self.gradients(t)
        params = self.server.params
        n, k = len(self.workers), self.server.messages
        if self._messages is None:
            # The server's message arrays, allocated once: each worker's message is written
            # into its row in place (the rows of the workers that compute nothing stay 0).
            self._messages = [np.zeros((n, self.dim), np.float32) for _ in range(k)]
        messages = self._messages
        all_losses = np.zeros(n, np.float32)
        for row, w in enumerate(active):
            # The gradient row is this round's own copy: the gradient policy may overwrite it.
            self.workers[w].message_into(params, grads[row], [m[w] for m in messages])
            all_losses[w] = losses[row]
        last = t == int(self.config["rounds"])
        before = (self.evaluate(t, recall=last) if due == "before" and self._test is not None
                  else None)
        metrics = self.server.step(messages, all_losses)
        if due is not None and self._test is not None:
            result = before if before is not None else self.evaluate(t, recall=last)
            acc, loss = result[0], result[1]
            if last:
                self.final_recall = list(result[2])
            metrics["eval"] = {"accuracy": acc, "loss": loss}
        self.metrics.append(metrics)
        return metrics

    # -- checkpoints --------------------------------------------------------------------------

    def checkpoint(self) -> bytes:
        """Everything carried to the next round, as bytes (an ``.npz`` archive, no pickle):
        the server half, every worker's optimizer state, sampler and buffers, and the
        metrics so far. :meth:`restore` on a simulation of the same config and model
        continues with the same bits."""
        import io
        import json

        parts: Dict[str, np.ndarray] = {
            "config": np.frombuffer(json.dumps(self.config, sort_keys=True).encode(), np.uint8),
            "metrics": np.frombuffer(json.dumps(self.metrics).encode(), np.uint8),
            "recall": np.asarray(self.final_recall, np.float64),
            "dim": np.array([self.dim], np.int64),
            "server": np.frombuffer(self.server.checkpoint(), np.uint8),
        }
        for w, (worker, sampler) in enumerate(zip(self.workers, self._samplers)):
            parts[f"worker/{w}"] = np.frombuffer(worker.checkpoint(), np.uint8)
            parts[f"sampler/{w}"] = np.frombuffer(sampler.checkpoint(), np.uint8)
            for k, v in self._worker_buffers[w].items():
                parts[f"buffer/{w}/{k}"] = v.detach().cpu().numpy()
        out = io.BytesIO()
        np.savez(out, **parts)
        return out.getvalue()

    def restore(self, state: bytes) -> None:
        """Continues from :meth:`checkpoint`'s bytes. A checkpoint of another config or
        model is refused before anything changes."""
        import io
        import json

        try:
            z = np.load(io.BytesIO(bytes(state)), allow_pickle=False)
            parts = {k: z[k] for k in z.files}
        except Exception as e:  # noqa: BLE001 - any malformed archive
            raise ValueError(f"not a byzadam.torch checkpoint: {e}") from None
        if "config" not in parts or json.loads(parts["config"].tobytes()) != json.loads(
                json.dumps(self.config, sort_keys=True)):
            raise ValueError("the checkpoint belongs to another config")
        if int(parts["dim"][0]) != self.dim:
            raise ValueError(f"the checkpoint is of a model with {int(parts['dim'][0])} "
                             f"parameters, this one has {self.dim}")
        n = len(self.workers)
        for w in range(n):
            for k, v in self._worker_buffers[w].items():
                got = parts.get(f"buffer/{w}/{k}")
                if got is None or tuple(got.shape) != tuple(v.shape):
                    raise ValueError(f"the checkpoint's buffer {k} of worker {w} does not fit "
                                     "the model")
        # Everything checked that can be: restore (each half checks its own bytes first).
        saved = self.checkpoint()
        try:
            self.server.restore(parts["server"].tobytes())
            for w in range(n):
                self.workers[w].restore(parts[f"worker/{w}"].tobytes())
                self._samplers[w].restore(parts[f"sampler/{w}"].tobytes())
                for k, v in self._worker_buffers[w].items():
                    self._worker_buffers[w][k] = torch.from_numpy(
                        parts[f"buffer/{w}/{k}"].copy()).to(v.device, v.dtype)
            self.metrics = json.loads(parts["metrics"].tobytes())
            self.final_recall = [float(v) for v in parts.get("recall", np.zeros(0))]
        except Exception:
            if state != saved:
                self.restore(saved)
            raise

    def run(self, progress: bool = True,
            on_round: Optional[Callable[[Dict[str, Any]], None]] = None,
            checkpoint: Optional[str] = None, checkpoint_every: float = 60.0,
            tensorboard: Optional[str] = None) -> Summary:
        """The remaining rounds (a tqdm bar when tqdm is installed and ``progress``), each
        round's metrics passed to ``on_round``; the summary. With ``checkpoint`` (a file
        path) the run resumes from that file if it exists, writes it atomically every
        ``checkpoint_every`` seconds and on Ctrl-C (then re-raises ``KeyboardInterrupt``),
        and deletes it when the run completes.

        With ``tensorboard`` (a log directory) each round's metrics are written there as
        TensorBoard scalars, step = round: ``train/loss``, ``train/lr``, ``robustness/xi_norm``
        (‖aggregate − honest mean‖), ``robustness/honest_diameter``, ``robustness/lambda``
        (their ratio, when defined) and, on evaluation rounds, ``test/accuracy`` and
        ``test/loss``. Needs the ``tensorboard`` package (``pip install tensorboard``); a
        resumed run appends to the same directory from the round it resumes at."""
        import os

        if self._test is None:
            raise ValueError("run() evaluates the model: give a test set (or call step())")
        _check_interval(checkpoint_every)
        writer = None
        if tensorboard is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ImportError("run(tensorboard=...) needs the tensorboard package: "
                                  f"pip install tensorboard ({e})") from e
            writer = SummaryWriter(log_dir=os.fspath(tensorboard))
        if checkpoint is not None and os.path.exists(checkpoint):
            with open(checkpoint, "rb") as f:
                self.restore(f.read())

        def save() -> None:
            if checkpoint is None:
                return
            tmp = f"{checkpoint}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(self.checkpoint())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, checkpoint)

        start = time.perf_counter()
        last_save = time.monotonic()
        rounds = self.config["rounds"]
        bar = None
        if progress:
            try:
                from tqdm.auto import tqdm

                bar = tqdm(total=rounds, initial=self.server.round, unit="round")
            except ImportError:
                bar = None
        # Ctrl-C stops between rounds (a checkpoint holds whole rounds only); a second one
        # stops at once.
        import signal
        import threading

        stop: List[int] = []
        previous = None
        if threading.current_thread() is threading.main_thread():
            def on_sigint(signum: int, frame: Any) -> None:
                if stop:
                    raise KeyboardInterrupt
                stop.append(signum)
            previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            while self.server.round < rounds:
                if stop:
                    save()
                    raise KeyboardInterrupt(
                        f"stopped after round {self.server.round}"
                        + (f"; {checkpoint} resumes it" if checkpoint else ""))
                m = self.step()
                if writer is not None:
                    _log_scalars(writer, m)
                if on_round is not None:
                    on_round(m)
                if bar is not None:
                    bar.update(1)
                    if m.get("eval"):
                        bar.set_postfix_str(f"test accuracy {m['eval']['accuracy']:.4f}")
                if checkpoint is not None and time.monotonic() - last_save >= checkpoint_every:
                    save()
                    last_save = time.monotonic()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        if checkpoint is not None and os.path.exists(checkpoint):
            os.remove(checkpoint)
        evals = [m["eval"] for m in self.metrics if m.get("eval")]
        if not evals:  # nothing left to run and nothing evaluated: evaluate now
            acc, loss = self.evaluate()
            evals = [{"accuracy": acc, "loss": loss}]
        diverged = next((m["round"] for m in self.metrics if m.get("diverged")), None)
        return Summary(final_accuracy=evals[-1]["accuracy"],
                       best_accuracy=max(e["accuracy"] for e in evals),
                       final_loss=evals[-1]["loss"], rounds=self.server.round,
                       diverged_at=diverged, seconds=time.perf_counter() - start,
                       metrics=list(self.metrics), class_recall=list(self.final_recall))


def _check_flag(name: str, value: Any, optional: bool = False) -> None:
    """A boolean option (``None`` too when ``optional``): a wrong type would otherwise pass
    silently (``"no"`` is truthy)."""
    if not (isinstance(value, (bool, np.bool_)) or (optional and value is None)):
        choices = "None, True, False" if optional else "True, False"
        raise TypeError(f"{name} must be one of {choices}, got {value!r}")


def _check_interval(seconds: Any) -> None:
    """``checkpoint_every`` is a number of seconds ≥ 0 (0: after every round); NaN would never
    checkpoint, silently."""
    ok = (isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
          and seconds == seconds and seconds >= 0)
    if not ok:
        raise ValueError(f"checkpoint_every must be a number of seconds >= 0, got {seconds!r}")


def _log_scalars(writer: Any, m: Dict[str, Any]) -> None:
    """One round's metrics as TensorBoard scalars (see ``Simulation.run``)."""
    t = m["round"]
    scalars = {"train/loss": m.get("train_loss"), "train/lr": m.get("lr"),
               "robustness/xi_norm": m.get("xi_norm"),
               "robustness/honest_diameter": m.get("honest_diameter"),
               "robustness/lambda": m.get("lambda")}
    if m.get("eval"):
        scalars["test/accuracy"] = m["eval"]["accuracy"]
        scalars["test/loss"] = m["eval"]["loss"]
    for tag, value in scalars.items():
        if value is not None:
            writer.add_scalar(tag, float(value), t)
