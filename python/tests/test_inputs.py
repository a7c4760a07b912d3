"""Inputs as ByzFL takes them, outputs of the input's type, dtype and device, zero-copy
reads, and the GIL released while kernels run."""
import threading
import time

import numpy as np
import pytest
import torch

import byzadam
from byzadam._convert import as_matrix


def x32(n=9, d=13, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_numpy_float32_and_float64():
    x = x32()
    out32 = byzadam.TrMean(f=2)(x)
    out64 = byzadam.TrMean(f=2)(x.astype(np.float64))
    assert out32.dtype == np.float32 and out64.dtype == np.float64
    np.testing.assert_array_equal(out64, out32.astype(np.float64))


def test_lists_of_arrays_and_of_tensors():
    x = x32()
    want = byzadam.Median()(x)
    np.testing.assert_array_equal(byzadam.Median()(list(x)), want)
    t = byzadam.Median()([torch.from_numpy(r.copy()) for r in x])
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_torch_dtype_and_device_preserved(dtype):
    x = torch.from_numpy(x32()).to(dtype)
    out = byzadam.MDA(f=2)(x)
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.device == x.device
    rows = byzadam.NNM(f=2)(x)
    assert rows.shape == x.shape and rows.dtype == dtype


def test_requires_grad_tensors_are_read_detached():
    x = torch.from_numpy(x32()).requires_grad_(True)
    out = byzadam.TrMean(f=2)(x)
    assert not out.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only where a GPU exists")
def test_cuda_tensors_come_back_on_their_device():
    x = torch.from_numpy(x32()).cuda()
    out = byzadam.TrMean(f=2)(x)
    assert out.device == x.device
    np.testing.assert_array_equal(out.cpu().numpy(), byzadam.TrMean(f=2)(x32()))


def test_float32_c_contiguous_input_is_read_without_a_copy():
    x = x32()
    m, _ = as_matrix(x)
    assert m is x
    t = torch.from_numpy(x32())
    m, _ = as_matrix(t)
    assert np.shares_memory(m, t.numpy())


def test_non_contiguous_and_big_endian_inputs_give_the_same_result():
    x = x32(9, 26)
    want = byzadam.TrMean(f=2)(np.ascontiguousarray(x[:, ::2]))
    np.testing.assert_array_equal(byzadam.TrMean(f=2)(x[:, ::2]), want)
    np.testing.assert_array_equal(byzadam.TrMean(f=2)(np.asfortranarray(x[:, ::2])), want)
    be = x[:, ::2].astype(">f4")
    out = byzadam.TrMean(f=2)(be)
    assert out.dtype == be.dtype
    np.testing.assert_array_equal(out.astype(np.float32), want)


def test_stateful_rules_keep_state_across_calls():
    x = x32()
    cc = byzadam.CenteredClipping(tau=0.5, iterations=1)
    first, second = cc(x), cc(x)
    assert not np.array_equal(first, second)  # the second starts from the first's output
    cc.reset()
    np.testing.assert_array_equal(cc(x), first)
    # RobustAggregator: the same state across aggregate_vectors calls.
    ra = byzadam.RobustAggregator({"name": "CenteredClipping", "parameters": {"tau": 0.5}})
    np.testing.assert_array_equal(ra(x), first)
    np.testing.assert_array_equal(ra(x), second)


def test_two_threads_run_kernels_at_once():
    """Each thread notes when its call starts and ends. If the GIL were held during the kernel,
    the second thread could not even note its start before the first call ended; the
    intervals overlap only because the GIL is released."""
    x = np.random.default_rng(1).normal(size=(15, 300_000)).astype(np.float32)
    rule = lambda: byzadam.GeometricMedian(nu=1e-6, max_iterations=60, tolerance=0.0)  # noqa: E731
    rule()(x)  # warm up
    spans = {}
    started = threading.Barrier(2)

    def work(k):
        r = rule()
        started.wait()
        t0 = time.perf_counter()
        r(x)
        spans[k] = (t0, time.perf_counter())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = spans[0], spans[1]
    assert a0 < b1 and b0 < a1, f"calls did not overlap: {spans}"
