"""Reference values for byzadam-robust's aggregators, pre-aggregators and attacks.

Independent of the Rust code: ByzFL (the library researchers use) where its definition is the
same as ours, plain numpy written from the papers where it is not. Run with

    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install numpy byzfl==0.0.11
    /tmp/refenv/bin/python crates/robust/reference/make_reference.py > crates/robust/reference/reference.json

Every case records which implementation produced it. Inputs are float32; every computation
runs in float64 on those float32 values.
"""
import itertools
import json
import sys

import numpy as np
import byzfl
import torch
from byzfl import (ARC, CenteredClipping, Clipping, GeometricMedian, MDA, Meamed, Median,
                   MoNNA, NNM, TrMean, Average)
from byzfl import (ALittleIsEnough, InnerProductManipulation, Mimic, SignFlipping,
                   Optimal_InnerProductManipulation)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


rng = np.random.default_rng(20261127)
N, D, F = 9, 7, 2
X = f32(rng.normal(size=(N, D)) + np.linspace(0, 1, D))
# A second input with clear outliers, so the robust rules have something to reject.
Y = X.copy()
Y[-2:] = f32(rng.normal(loc=6.0, scale=3.0, size=(2, D)))

cases = []


def case(name, params, inputs, output, source):
    cases.append({
        "rule": name,
        "params": params,
        "input": np.asarray(inputs).tolist(),
        "expected": np.asarray(output, dtype=np.float64).tolist(),
        "source": source,
    })


BYZFL = f"ByzFL {byzfl.__version__ if hasattr(byzfl, '__version__') else '0.0.11'}"

for name, inputs in [("x", X), ("y", Y)]:
    case("average", {}, inputs, Average()(inputs.copy()), BYZFL)
    case("median", {}, inputs, Median()(inputs.copy()), BYZFL)
    case("median", {}, inputs[:-1], Median()(inputs[:-1].copy()), BYZFL + " (even n)")
    case("trimmed_mean", {"f": F}, inputs, TrMean(f=F)(inputs.copy()), BYZFL)
    case("mean_around_median", {"f": F}, inputs, Meamed(f=F)(inputs.copy()), BYZFL)
    case("minimum_diameter_averaging", {"f": F}, inputs, MDA(f=F)(inputs.copy()), BYZFL)
    case("monna", {"f": F, "pivot": 0}, inputs, MoNNA(f=F, idx=0)(inputs.copy()), BYZFL)
    case("geometric_median", {"nu": 0.1, "max_iterations": 3, "tolerance": 0.0}, inputs,
         GeometricMedian(nu=0.1, T=3)(inputs.copy()), BYZFL)
    case("centered_clipping", {"tau": 1.5, "iterations": 3}, inputs,
         CenteredClipping(tau=1.5, L=3)(inputs.copy()), BYZFL)
    case("nearest_neighbor_mixing", {"f": F}, inputs, NNM(f=F)(inputs.copy()), BYZFL)
    case("static_clipping", {"c": 2.0}, inputs, Clipping(c=2.0)(inputs.copy()), BYZFL)
    case("adaptive_robust_clipping", {"f": F}, inputs, ARC(f=F)(inputs.copy()), BYZFL)

    # Krum / Multi-Krum as Blanchard et al. define them (n - f - 2 neighbours); ByzFL counts
    # n - f - 1, so these come from numpy.
    d2 = ((inputs[:, None, :] - inputs[None, :, :]) ** 2).sum(-1)
    scores = np.array([np.sort(np.delete(d2[i], i))[: N - F - 2].sum() for i in range(N)])
    order = np.argsort(scores, kind="stable")
    case("krum", {"f": F}, inputs, inputs[order[0]], "numpy (Blanchard et al. 2017)")
    case("multi_krum", {"f": F}, inputs, inputs[np.sort(order[: N - F])].mean(0),
         "numpy (Blanchard et al. 2017, m = n - f)")

    # Bulyan (El Mhamdi et al. 2018), numpy; needs n >= 4f + 3, so f = 1 here.
    FB = 1
    remaining = list(range(N))
    selected = []
    while len(selected) < N - 2 * FB:
        r = len(remaining)
        k = max(r - FB - 2, 0)
        # Krum score, ties (certain with 0 or 1 neighbours) to the smaller total squared
        # distance to the others left, then to the lower index: byzadam's documented choice.
        sc = [(np.sort([d2[i, j] for j in remaining if j != i])[:k].sum(),
               sum(d2[i, j] for j in remaining if j != i), i) for i in remaining]
        best = min(range(r), key=lambda a: sc[a])
        selected.append(remaining.pop(best))
    sel = inputs[sorted(selected)]
    beta = len(sel) - 2 * FB
    med = np.median(sel, axis=0)
    idx = np.argsort(np.abs(sel - med), axis=0, kind="stable")[:beta]
    case("bulyan", {"f": FB}, inputs, np.take_along_axis(sel, idx, 0).mean(0),
         "numpy (El Mhamdi et al. 2018; Krum ties by total distance)")

    # SMEA, exact (numpy eigh of each subset's covariance); ByzFL uses one random power step.
    best, best_l = None, np.inf
    for S in itertools.combinations(range(N), N - F):
        Z = inputs[list(S)]
        C = np.cov(Z.T, bias=True)
        l = np.linalg.eigvalsh(C)[-1]
        if l < best_l:
            best, best_l = S, l
    case("smallest_eigenvalue_averaging", {"f": F}, inputs, inputs[list(best)].mean(0),
         "numpy (Allouah et al. 2023, exact eigenvalues)")

    # CAF, exact top eigenvector of the d x d weighted covariance (numpy eigh), max tau over the
    # still-weighted vectors.
    c = np.ones(N)
    best_mu, best_l = None, np.inf
    while c.sum() > N - 2 * F:
        w = c / c.sum()
        mu = (w[:, None] * inputs).sum(0)
        Z = inputs - mu
        C = (w[:, None, None] * Z[:, :, None] * Z[:, None, :]).sum(0)
        vals, vecs = np.linalg.eigh(C)
        l, v = vals[-1], vecs[:, -1]
        if l < best_l:
            best_l, best_mu = l, mu
        tau = (Z @ v) ** 2
        tau_max = tau[c > 0].max()
        c = np.where(c > 0, np.maximum(c * (1 - tau / tau_max), 0), 0)
    case("covariance_filter", {"f": F}, inputs, best_mu,
         "numpy (Allouah et al. 2025, exact eigenvector)")

# Attacks: honest = first 6 rows of X, 3 Byzantine.
H = X[:6]
mu, sd = H.mean(0), H.std(0, ddof=1)
attacks = []


def attack(name, params, out, source, own=None):
    attacks.append({
        "attack": name,
        "params": params,
        "n": 9,
        "byzantine": 3,
        "honest": H.tolist(),
        "own": None if own is None else np.asarray(own).tolist(),
        "expected": np.asarray(out, dtype=np.float64).tolist(),
        "source": source,
    })


attack("a_little_is_enough", {"z": 1.5}, [ALittleIsEnough(tau=-1.5)(H.copy())] * 3,
       BYZFL + " ALittleIsEnough(tau = -z)")
attack("empire", {"epsilon": 0.9, "base": "honest_mean"},
       [InnerProductManipulation(tau=0.9)(H.copy())] * 3, BYZFL + " InnerProductManipulation")
attack("sign_flip", {"base": "honest_mean"}, [SignFlipping()(H.copy())] * 3, BYZFL)
attack("mimic", {"target": 2}, [Mimic(epsilon=2)(H.copy())] * 3, BYZFL)
OWN = X[6:]
attack("little", {}, OWN - OWN.std(0, ddof=1), "numpy (thesis Algorithm 8, sample std)", own=OWN)
attack("empire", {"epsilon": 0.9}, -0.9 * OWN, "numpy (thesis Algorithm 18)", own=OWN)
opt = Optimal_InnerProductManipulation(agg=TrMean(f=3), pre_agg_list=[], f=3)
attack("optimal_empire", {"server": {"name": "trimmed_mean", "f": 3}},
       [opt(H.copy())] * 3, BYZFL + " Optimal_InnerProductManipulation(TrMean(f=3), no pre-aggregation)")

json.dump({
    "generated_by": "crates/robust/reference/make_reference.py",
    "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                 "byzfl": "0.0.11", "torch": torch.__version__},
    "aggregators": cases,
    "attacks": attacks,
}, sys.stdout, indent=1)
