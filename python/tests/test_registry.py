"""The registry described once (issue 21): every Rust registry entry has a Python class under
its name, reachable from every factory (``byzadam.aggregator``, ``RobustAggregator``,
``byzadam.attack``, ``byzadam.preaggregator``) by its name and every alias, and the reverse;
the bounds Python enforces are Rust's (the same ``validate``), so they cannot drift; NaN and ∞
are refused naming the key on every path."""
import math

import numpy as np
import pytest

import byzadam
from byzadam import aggregators, attacks, preaggregators

REG = byzadam.registry(parameters=True)
MODULES = {"aggregators": aggregators, "preaggregators": preaggregators, "attacks": attacks}
SAMPLE = {"int": 1, "float": 0.5, "bool": False, "int list": [], "own | honest_mean": "own"}


def required(entry):
    return {p["name"]: SAMPLE[p["kind"]] for p in entry["params"] if p["default"] == "required"}


@pytest.mark.parametrize("kind", list(MODULES))
def test_every_entry_has_a_class_and_every_class_an_entry(kind):
    names = {e["name"] for e in REG[kind]}
    assert set(MODULES[kind].CLASSES) == names
    for e in REG[kind]:
        cls = MODULES[kind].CLASSES[e["name"]]
        assert cls.name == e["name"]
        assert cls.__doc__, f"{cls.__name__} has no docstring"


def test_every_name_and_alias_reaches_its_class_from_every_factory():
    for kind, factory in [("aggregators", byzadam.aggregator),
                          ("preaggregators", byzadam.preaggregators.preaggregator),
                          ("attacks", byzadam.attacks.attack)]:
        for e in REG[kind]:
            for name in [e["name"], *e["aliases"]]:
                made = factory(name, **required(e))
                assert made.name == e["name"], (kind, name)
    x = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    for e in REG["aggregators"]:
        for name in [e["name"], *e["aliases"]]:
            agg = byzadam.RobustAggregator({"name": name, "parameters": required(e)})
            assert agg.aggregator.name == e["name"]
            if e["name"] not in ("smallest_eigenvalue_averaging", "bulyan"):
                assert agg.aggregate_vectors(x).shape == (4,), name


def test_largest_distance_filter_is_reachable():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert byzadam.aggregator("largest_distance_filter", f=1)(x).shape == (3,)
    out = byzadam.RobustAggregator({"name": "largest_distance_filter", "parameters": {"f": 1}})
    assert out.aggregate_vectors(x).shape == (3,)


@pytest.mark.parametrize("make, key", [
    (lambda: byzadam.CenteredClipping(tau=0.0), "tau"),
    (lambda: byzadam.CenteredClipping(iterations=0), "iterations"),
    (lambda: byzadam.Gaussian(std=-1.0), "std"),
    (lambda: byzadam.LabelFlip(classes=1), "classes"),
    (lambda: byzadam.Bucketing(s=0), "s"),
    (lambda: byzadam.Clipping(c=0.0), "c"),
    (lambda: byzadam.MultiKrum(f=1, m=0), "m"),
    (lambda: byzadam.MDA(f=1, subset_budget=0), "subset_budget"),
    (lambda: byzadam.aggregator("cc", tau=-3.0), "tau"),
    (lambda: byzadam.attacks.attack("gaussian", std=-0.5), "std"),
])
def test_out_of_bound_values_are_refused_with_rusts_bound_naming_the_parameter(make, key):
    with pytest.raises(ValueError, match=rf"invalid {key}"):
        make()


def test_pythons_bounds_are_rusts_where_they_had_drifted():
    # Python used to allow tau = 0 (Rust: > 0) and refuse std = -1 while run configs took it.
    with pytest.raises(ValueError, match="tau"):
        byzadam.CenteredClipping(tau=0.0)
    byzadam.CenteredClipping(tau=1e-9)
    with pytest.raises(byzadam.ByzadamError, match="attack.std"):
        byzadam.resolve({"attack": {"name": "gaussian", "std": -1.0}})
    byzadam.Gaussian(std=0.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused_naming_the_key_on_every_path(bad):
    with pytest.raises(ValueError, match="tau must be a finite number"):
        byzadam.aggregator("centered_clipping", tau=bad)
    with pytest.raises(ValueError, match="z must be a finite number"):
        byzadam.Attack("alie", z=bad)
    with pytest.raises(byzadam.ByzadamError, match="`attack.z`"):
        byzadam.resolve({"attack": {"name": "alie", "z": bad}})
    with pytest.raises(byzadam.ByzadamError, match="`aggregator.low`|aggregator.low"):
        byzadam.resolve({"aggregator": {"name": "cwtm", "f": 2, "low": bad}})
    with pytest.raises(byzadam.ByzadamError, match="`rounds`"):
        byzadam.resolve(set=[f"rounds={'nan' if math.isnan(bad) else ('inf' if bad > 0 else '-inf')}"])


def test_rules_json_is_the_registry(cli):
    import json
    import subprocess

    out = subprocess.run([cli, "rules", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == REG
