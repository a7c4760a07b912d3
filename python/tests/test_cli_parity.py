"""Every rule, pre-aggregator and attack through Python equals the Rust CLI's output bit for
bit on the same inputs, ±∞ and NaN rows included."""
import numpy as np
import pytest

import byzadam
from conftest import run_cli

N, D = 11, 37
SEGMENTS = [5, 30, 2]  # sums to D


def inputs(rng):
    x = rng.normal(size=(N, D)).astype(np.float32)
    x[:, 5] += 3.0
    bad = x.copy()
    bad[0] = np.inf
    bad[1] = -np.inf
    bad[2, ::3] = np.nan
    return {"finite": x, "non-finite": bad}


# (Python object, CLI arguments of `byzadam aggregate`)
RULES = [
    (lambda: byzadam.Average(), ["--rule", "average"]),
    (lambda: byzadam.TrimmedMean(f=3), ["--rule", "trimmed_mean", "--f", 3]),
    (lambda: byzadam.Median(), ["--rule", "median"]),
    (lambda: byzadam.MeanAroundMedian(f=3), ["--rule", "meamed", "--f", 3]),
    (lambda: byzadam.MinimumDiameterAveraging(f=3), ["--rule", "mda", "--f", 3]),
    (lambda: byzadam.Krum(f=3), ["--rule", "krum", "--f", 3]),
    (lambda: byzadam.MultiKrum(f=3, m=5), ["--rule", "multi_krum", "--f", 3, "--set", "m=5"]),
    (lambda: byzadam.GeometricMedian(nu=0.1, max_iterations=7), ["--rule", "gm", "--set", "nu=0.1", "--set", "max_iterations=7"]),
    (lambda: byzadam.CenteredClipping(tau=2.5, iterations=3), ["--rule", "cc", "--set", "tau=2.5", "--set", "iterations=3"]),
    (lambda: byzadam.Bulyan(f=2), ["--rule", "bulyan", "--f", 2]),
    (lambda: byzadam.Monna(f=3, pivot=4), ["--rule", "monna", "--f", 3, "--set", "pivot=4"]),
    (lambda: byzadam.CovarianceFilter(f=3), ["--rule", "caf", "--f", 3]),
    (lambda: byzadam.SmallestEigenvalueAveraging(f=3), ["--rule", "smea", "--f", 3]),
    (lambda: byzadam.LargestDistanceFilter(f=3), ["--rule", "largest_distance_filter", "--f", 3]),
    (lambda: byzadam.LargestDistanceFilter(f=3, segments=SEGMENTS),
     ["--rule", "largest_distance_filter", "--f", 3, "--set", f"segments={SEGMENTS}"]),
    (lambda: byzadam.TrimmedMean(f=3, low=4), ["--rule", "trimmed_mean", "--f", 3, "--set", "low=4"]),
]

PRE = [
    (lambda: byzadam.NearestNeighborMixing(f=3), "nnm:f=3"),
    (lambda: byzadam.Bucketing(s=2), "bucketing:s=2"),
    (lambda: byzadam.StaticClipping(c=1.5), "static_clipping:c=1.5"),
    (lambda: byzadam.AdaptiveRobustClipping(f=3), "arc:f=3"),
]


def cli_aggregate(cli, tmp_path, x, args):
    np.save(tmp_path / "x.npy", x)
    run_cli(cli, "aggregate", tmp_path / "x.npy", *args, "-o", tmp_path / "out.npy")
    return np.load(tmp_path / "out.npy")


def same_bits(a, b):
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    assert a.shape == b.shape
    assert a.view(np.uint32).tolist() == b.view(np.uint32).tolist()


def test_every_registry_rule_is_covered():
    names = {n for n, _ in byzadam.registry()["aggregators"]}
    assert names == {make().name for make, _ in RULES}
    assert {n for n, _ in byzadam.registry()["preaggregators"]} == {make().name for make, _ in PRE}


@pytest.mark.parametrize("make,args", RULES, ids=[" ".join(map(str, a[1])) for a in RULES])
def test_rules_equal_the_cli(cli, tmp_path, rng, make, args):
    for kind, x in inputs(rng).items():
        rule = make()
        try:
            expected = cli_aggregate(cli, tmp_path, x, args)
        except AssertionError as e:  # the CLI refused: Python must refuse the same way
            with pytest.raises(byzadam.ByzadamError):
                rule(x)
            assert "failed" in str(e)
            continue
        same_bits(rule(x), expected)


@pytest.mark.parametrize("make,spec", PRE, ids=[p[1] for p in PRE])
def test_preaggregators_equal_the_cli(cli, tmp_path, rng, make, spec):
    for x in inputs(rng).values():
        expected = cli_aggregate(cli, tmp_path, x, ["--rule", "average", "--pre", spec])
        name = make().name
        params = dict(kv.split("=") for kv in spec.split(":")[1].split(","))
        agg = byzadam.RobustAggregator({"name": "average"},
                                       [{"name": name, "parameters": {k: float(v) if "." in v else int(v) for k, v in params.items()}}])
        same_bits(agg(x), expected)
        # The lone pre-aggregator gives the rows the pipeline averaged.
        rows = make()(x)
        assert rows.shape == (make().output_len(N), D)


ATTACKS = [
    (lambda: byzadam.SignFlip(), ["--attack", "sign_flip"], True),
    (lambda: byzadam.SignFlipping(), ["--attack", "sign_flip", "--set", "base=\"honest_mean\""], False),
    (lambda: byzadam.Empire(epsilon=0.7), ["--attack", "empire", "--set", "epsilon=0.7"], True),
    (lambda: byzadam.InnerProductManipulation(tau=2.0), ["--attack", "ipm", "--set", "epsilon=2.0", "--set", "base=\"honest_mean\""], False),
    (lambda: byzadam.Little(), ["--attack", "little"], True),
    (lambda: byzadam.ALittleIsEnough(), ["--attack", "alie"], False),
    (lambda: byzadam.ALittleIsEnough(z=1.2), ["--attack", "alie", "--set", "z=1.2"], False),
    (lambda: byzadam.PositiveInfinity(), ["--attack", "inf"], False),
    (lambda: byzadam.NegativeInfinity(), ["--attack=-inf"], False),
    (lambda: byzadam.NotANumber(), ["--attack", "nan"], False),
    (lambda: byzadam.Gaussian(mean=0.5, std=2.0, seed=7), ["--attack", "gaussian", "--set", "mean=0.5", "--set", "std=2.0", "--seed", 7], False),
    (lambda: byzadam.Mimic(target=2), ["--attack", "mimic", "--set", "target=2"], False),
    (lambda: byzadam.LabelFlip(), ["--attack", "label_flip"], True),
]


def test_every_registry_attack_is_covered():
    names = {n for n, _ in byzadam.registry()["attacks"]}
    covered = {make().name for make, _, _ in ATTACKS} | {"optimal_alie", "optimal_empire"}
    assert names == covered


@pytest.mark.parametrize("make,args,needs_own", ATTACKS, ids=[" ".join(map(str, a[1])) for a in ATTACKS])
@pytest.mark.parametrize("non_finite", [False, True], ids=["finite", "non-finite"])
def test_attacks_equal_the_cli(cli, tmp_path, rng, make, args, needs_own, non_finite):
    honest = rng.normal(size=(8, D)).astype(np.float32)
    own = rng.normal(size=(3, D)).astype(np.float32)
    if non_finite:
        honest[0, :4] = [np.inf, -np.inf, np.nan, 1.0]
        own[1, 2] = np.nan
    np.save(tmp_path / "h.npy", honest)
    np.save(tmp_path / "own.npy", own)
    extra = ["--own", tmp_path / "own.npy"] if needs_own else []
    run_cli(cli, "attack", tmp_path / "h.npy", *args, "--byzantine", 3, *extra, "-o", tmp_path / "b.npy")
    expected = np.load(tmp_path / "b.npy")
    got = make().forge(3, honest=honest, own=own if needs_own else None)
    same_bits(got, expected)


@pytest.mark.parametrize("cls,name", [(byzadam.OptimalAlie, "optimal_alie"), (byzadam.OptimalEmpire, "optimal_empire")])
def test_adaptive_attacks_equal_the_cli(cli, tmp_path, rng, cls, name):
    honest = rng.normal(size=(8, D)).astype(np.float32)
    np.save(tmp_path / "h.npy", honest)
    run_cli(cli, "attack", tmp_path / "h.npy", "--attack", name, "--byzantine", 3,
            "--server-rule", "cwtm", "--server-f", 3, "--server-pre", "nnm:f=3", "-o", tmp_path / "b.npy")
    got = cls(agg=byzadam.TrMean(f=3), pre_agg_list=[byzadam.NNM(f=3)]).forge(3, honest=honest)
    same_bits(got, np.load(tmp_path / "b.npy"))
