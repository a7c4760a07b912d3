"""No input from Python crashes the interpreter: each case raises the right exception with a
message naming the problem."""
import numpy as np
import pytest
import torch

import byzadam

X = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)


def test_ragged_lists():
    with pytest.raises(ValueError, match="ragged vectors: element 2 has length 4"):
        byzadam.Median()([np.zeros(5), np.zeros(5), np.zeros(4)])
    with pytest.raises(ValueError, match="ragged"):
        byzadam.Median()([torch.zeros(5), torch.zeros(3)])


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_wrong_number_of_dimensions(shape):
    with pytest.raises(ValueError, match="n × d"):
        byzadam.TrMean(f=1)(np.zeros(shape, dtype=np.float32))
    with pytest.raises(ValueError, match="n × d"):
        byzadam.TrMean(f=1)(torch.zeros(shape))


def test_list_of_non_vectors():
    with pytest.raises(ValueError, match="element 0 has shape"):
        byzadam.Median()([np.zeros((2, 2))])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_parameters(bad):
    with pytest.raises(ValueError, match="tau must be a finite number"):
        byzadam.CenteredClipping(tau=bad)
    with pytest.raises(ValueError, match="c must be a finite number"):
        byzadam.Clipping(c=bad)
    with pytest.raises(ValueError, match="z must be a finite number"):
        byzadam.ALittleIsEnough(z=bad)
    with pytest.raises(ValueError, match="lr must be a finite number"):
        byzadam.optim.DRA(lr=bad)


def test_parameter_requirements_named_at_construction():
    with pytest.raises(ValueError, match="trimmed_mean: f must be ≥ 0"):
        byzadam.TrMean(f=-1)
    with pytest.raises(TypeError, match="f must be an integer"):
        byzadam.TrMean(f=1.5)
    with pytest.raises(ValueError, match="bucketing: invalid s: bucket size must be ≥ 1"):
        byzadam.Bucketing(s=0)
    with pytest.raises(ValueError, match="optimal_alie: invalid ratio"):
        byzadam.OptimalAlie(ratio=1.5)
    with pytest.raises(ValueError, match="dra: beta1 must be in"):
        byzadam.optim.DRA(beta1=1.0)
    with pytest.raises(ValueError, match="no aggregation rule 'trimmed_meen'"):
        byzadam.Aggregator("trimmed_meen")
    with pytest.raises(ValueError, match="unexpected keyword argument .fff."):
        byzadam.RobustAggregator({"name": "cwtm", "parameters": {"f": 1, "fff": 2}})


@pytest.mark.parametrize("f", [5, 9, 20])
def test_f_too_large_for_n(f):
    with pytest.raises(byzadam.ByzadamError, match=f"trimmed_mean needs n > 2f, but got n = 9, f = {f}"):
        byzadam.TrMean(f=f)(X)
    with pytest.raises(byzadam.ByzadamError, match="krum needs"):
        byzadam.Krum(f=f)(X)


def test_empty_inputs():
    with pytest.raises(ValueError, match="no vectors"):
        byzadam.Median()([])
    with pytest.raises(ValueError, match="0 rows"):
        byzadam.Median()(np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="dimension 0"):
        byzadam.Median()(np.zeros((3, 0), dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, bool])
def test_integer_dtypes(dtype):
    with pytest.raises(TypeError, match="floating-point"):
        byzadam.Median()(np.ones((3, 4), dtype=dtype))
    with pytest.raises(TypeError, match="floating-point"):
        byzadam.Median()(torch.ones((3, 4), dtype=torch.int64))


def test_not_vectors_at_all():
    with pytest.raises(TypeError, match="vectors must be"):
        byzadam.Median()("hello")
    with pytest.raises(TypeError, match="not a numeric vector"):
        byzadam.Median()([np.array(["a", "b"], dtype=object)])


def test_attack_inputs():
    with pytest.raises(byzadam.ByzadamError, match="own genuine vectors"):
        byzadam.Little()(X)
    with pytest.raises(byzadam.ByzadamError, match="2 own vectors given, but byzantine is 3"):
        byzadam.Little().forge(3, own=X[:2])
    with pytest.raises(ValueError, match="byzantine must be ≥ 1"):
        byzadam.SignFlip().forge(0, own=X[:2])


def test_optimizer_halves_check_lengths():
    opt = byzadam.optim.MRA()
    w = opt.worker(5)
    with pytest.raises(byzadam.ByzadamError, match="the gradient has 4 values"):
        w.message(np.zeros(4, dtype=np.float32))
    s = opt.server(np.zeros(5))
    with pytest.raises(byzadam.ByzadamError, match="takes 2 aggregated vector"):
        s.step([np.zeros(5)])
    with pytest.raises(byzadam.ByzadamError, match="an aggregated vector has 3 values"):
        s.step([np.zeros(5), np.zeros(3)])


def test_run_config_errors_name_the_key():
    with pytest.raises(byzadam.ByzadamError, match="optimizer.lr.value"):
        byzadam.run({"optimizer": {"name": "dra", "lr": {"name": "constant", "value": -1.0}}}, progress=False)
    with pytest.raises(byzadam.ByzadamError, match="the config dict"):
        byzadam.run({"rounds": "many"}, progress=False)
    with pytest.raises(byzadam.ByzadamError, match="no store at"):
        byzadam.Store("/nonexistent/store.db")


def _cpu_level_in(env_value):
    """`byzadam.cpu_level()` in a fresh interpreter with BYZADAM_CPU set (the level is read
    once per process): its output, or the exception's type and message."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, BYZADAM_CPU=env_value)
    code = ("import byzadam\ntry:\n    print(byzadam.cpu_level())\n"
            "except byzadam.ByzadamError as e:\n    print('error:', e)\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_cpu_level_names_a_level_and_byzadam_cpu_lowers_it():
    best = byzadam.cpu_level()
    assert best in ("avx512", "avx2", "portable")
    assert _cpu_level_in("portable") == "portable"
    if best != "portable":
        assert _cpu_level_in(" AVX2 ") == "avx2"
    # A name that is no level, and a level above the CPU's, are errors naming the variable.
    assert _cpu_level_in("avx1024").startswith('error: BYZADAM_CPU="avx1024" is not a CPU level')
    if best != "avx512":
        assert "supports at most" in _cpu_level_in("avx512")
    # A kernel still runs (at the best level below the one asked for) and gives the same
    # values as at the best level: the levels compute the same bits.
    code = ("import numpy as np, byzadam\nx = np.random.default_rng(1).normal(size=(11, 20000))"
            ".astype(np.float32)\nprint(byzadam.TrMean(f=3)(x).tobytes().hex()[:64])\n")
    import os
    import subprocess
    import sys

    outs = {subprocess.run([sys.executable, "-c", code], env=dict(os.environ, BYZADAM_CPU=lvl),
                           capture_output=True, text=True, check=True, timeout=120).stdout
            for lvl in ("portable", best, "avx1024")}
    assert len(outs) == 1, outs
