"""Against ByzFL 0.0.11 (in CI's virtual environment): where both libraries define a rule the
same way, random inputs (several n, f, d) agree to float tolerance; where the definitions
differ, the documented difference is what is asserted."""
import itertools

import numpy as np
import pytest
import torch

import byzadam

import byzfl  # noqa: E402 - required (CI installs it), never skipped

SHAPES = [(7, 2, 5), (11, 3, 40), (15, 5, 300)]  # (n, f, d)


def data(n, d, seed):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, d)).astype(np.float32)
    x[-1] += 4.0  # one outlier, so robust rules have something to reject
    return x


SAME = [
    ("Average", lambda f: byzadam.Average(), lambda f: byzfl.Average()),
    ("Median", lambda f: byzadam.Median(), lambda f: byzfl.Median()),
    ("TrMean", lambda f: byzadam.TrMean(f=f), lambda f: byzfl.TrMean(f=f)),
    ("Meamed", lambda f: byzadam.Meamed(f=f), lambda f: byzfl.Meamed(f=f)),
    ("MDA", lambda f: byzadam.MDA(f=f), lambda f: byzfl.MDA(f=f)),
    ("MoNNA", lambda f: byzadam.MoNNA(f=f, idx=1), lambda f: byzfl.MoNNA(f=f, idx=1)),
    ("GeometricMedian", lambda f: byzadam.GeometricMedian(nu=0.1, T=3), lambda f: byzfl.GeometricMedian(nu=0.1, T=3)),
    ("CenteredClipping", lambda f: byzadam.CenteredClipping(tau=1.5, L=3), lambda f: byzfl.CenteredClipping(tau=1.5, L=3)),
    ("NNM", lambda f: byzadam.NNM(f=f), lambda f: byzfl.NNM(f=f)),
    ("Clipping", lambda f: byzadam.Clipping(c=2.0), lambda f: byzfl.Clipping(c=2.0)),
    ("ARC", lambda f: byzadam.ARC(f=f), lambda f: byzfl.ARC(f=f)),
]


@pytest.mark.parametrize("name,ours,theirs", SAME, ids=[s[0] for s in SAME])
@pytest.mark.parametrize("n,f,d", SHAPES)
def test_same_definition_same_numbers(name, ours, theirs, n, f, d):
    x = data(n, d, n * 1000 + d)
    got = ours(f)(x)
    want = theirs(f)(x.copy())
    np.testing.assert_allclose(got, np.asarray(want, dtype=np.float64), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("n,f,d", SHAPES)
def test_robust_aggregator_takes_byzfl_configs_unchanged(n, f, d):
    x = data(n, d, 7 + d)
    cfg = ({"name": "TrMean", "parameters": {"f": f}}, [{"name": "NNM", "parameters": {"f": f}},
                                                         {"name": "Clipping", "parameters": {"c": 2.0}}])
    ours = byzadam.RobustAggregator(*cfg).aggregate_vectors(torch.from_numpy(x))
    theirs = byzfl.RobustAggregator(*cfg).aggregate_vectors(torch.from_numpy(x.copy()))
    assert isinstance(ours, torch.Tensor) and ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("n,f,d", SHAPES)
def test_attacks_with_the_same_definition(n, f, d):
    h = data(n - f, d, 3 * d)
    for ours, theirs in [(byzadam.SignFlipping(), byzfl.SignFlipping()),
                         (byzadam.InnerProductManipulation(tau=2.0), byzfl.InnerProductManipulation(tau=2.0)),
                         (byzadam.ALittleIsEnough(tau=1.5), byzfl.ALittleIsEnough(tau=1.5)),
                         (byzadam.Mimic(epsilon=1), byzfl.Mimic(epsilon=1)),
                         (byzadam.Inf(), byzfl.Inf())]:
        np.testing.assert_allclose(ours(h), theirs(h.copy()), rtol=2e-5, atol=2e-5)
    ours = byzadam.Optimal_InnerProductManipulation(agg=byzadam.TrMean(f=f), pre_agg_list=[], f=f)(h)
    theirs = byzfl.Optimal_InnerProductManipulation(agg=byzfl.TrMean(f=f), pre_agg_list=[], f=f)(h.copy())
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def krum_scores(x, k):
    d2 = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    return np.array([np.sort(np.delete(d2[i], i))[:k].sum() for i in range(len(x))])


@pytest.mark.parametrize("n,f,d", SHAPES)
def test_krum_differs_as_documented(n, f, d):
    """byzadam: n − f − 2 neighbours (Blanchard et al.); ByzFL: n − f − 1. With
    byzfl_compat=True byzadam gives ByzFL's choice."""
    x = data(n, d, 11 * d)
    x[0] = x[1] + 1e-3  # a near pair, so the neighbour count matters
    ours = krum_scores(x, n - f - 2)
    theirs = krum_scores(x, n - f - 1)
    np.testing.assert_array_equal(byzadam.Krum(f=f)(x), x[np.argmin(ours)])
    np.testing.assert_allclose(byzfl.Krum(f=f)(x.copy()), x[np.argmin(theirs)])
    np.testing.assert_array_equal(byzadam.Krum(f=f, byzfl_compat=True)(x), np.asarray(byzfl.Krum(f=f)(x.copy()), np.float32))
    np.testing.assert_allclose(byzadam.MultiKrum(f=f, byzfl_compat=True)(x), byzfl.MultiKrum(f=f)(x.copy()), rtol=2e-5, atol=2e-5)
    chosen = np.sort(np.argsort(ours, kind="stable")[: n - f])
    np.testing.assert_allclose(byzadam.MultiKrum(f=f)(x), x[chosen].astype(np.float64).mean(0), rtol=2e-5, atol=2e-5)


def test_the_global_switch_applies_to_rules_made_afterwards():
    x = data(9, 3, 5)
    try:
        byzadam.byzfl_compat = True
        assert byzadam.Krum(f=2)._byzfl and byzadam.GeometricMedian().params == {"nu": 0.1, "max_iterations": 3, "tolerance": 0.0}
        np.testing.assert_allclose(byzadam.GeometricMedian()(x), byzfl.GeometricMedian()(x.copy()), rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(byzadam.ALittleIsEnough()(x), byzfl.ALittleIsEnough()(x.copy()), rtol=2e-5, atol=2e-5)
    finally:
        byzadam.byzfl_compat = False
    assert not byzadam.Krum(f=2)._byzfl


def test_mda_ties_differ_as_documented():
    """Repeated vectors make equal diameters: ByzFL takes the first subset in combinations
    order, byzadam the smaller sum of squared distances; byzfl_compat takes ByzFL's."""
    base = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [0.5, 0.5]], dtype=np.float32)
    n, f = 5, 1
    ours, theirs = byzadam.MDA(f=f)(base), byzfl.MDA(f=f)(base.copy())
    d2 = ((base[:, None] - base[None]) ** 2).sum(-1)
    subsets = list(itertools.combinations(range(n), n - f))
    diam = [d2[np.ix_(s, s)].max() for s in subsets]
    tied = [s for s, dm in zip(subsets, diam) if dm == min(diam)]
    assert len(tied) > 1
    first = base[list(tied[0])].mean(0)
    spread = min(tied, key=lambda s: d2[np.ix_(s, s)].sum())
    np.testing.assert_allclose(theirs, first)
    np.testing.assert_allclose(ours, base[list(spread)].mean(0))
    np.testing.assert_allclose(byzadam.MDA(f=f, byzfl_compat=True)(base), first)


def test_smea_and_caf_are_exact_where_byzfl_is_random():
    """ByzFL's SMEA/CAF use random power steps; byzadam's SMEA is the exact minimiser."""
    x = data(8, 2, 12)
    best = min(itertools.combinations(range(8), 6),
               key=lambda s: np.linalg.eigvalsh(np.cov(x[list(s)].T.astype(np.float64), bias=True))[-1])
    np.testing.assert_allclose(byzadam.SMEA(f=2)(x), x[list(best)].astype(np.float64).mean(0), rtol=1e-5, atol=1e-6)
    theirs = byzfl.SMEA(f=2)(x.copy())
    assert theirs.shape == (2,)  # a mean of some 6 rows, its choice random


def test_alie_tau_is_minus_z():
    h = data(10, 4, 2)
    mu, sd = h.astype(np.float64).mean(0), h.astype(np.float64).std(0, ddof=1)
    np.testing.assert_allclose(byzadam.ALittleIsEnough(z=1.5)(h), mu - 1.5 * sd, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(byzadam.ALittleIsEnough(tau=1.5)(h), byzfl.ALittleIsEnough(tau=1.5)(h.copy()), rtol=1e-5, atol=1e-5)
