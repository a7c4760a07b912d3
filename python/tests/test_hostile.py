"""The hostile-input suite (issue 22): what a hostile or careless user feeds the ``byzadam``
command and the Python package, each case asserting its exit status (or exception type) and
its message. No case may crash, abort, hang (each CLI case has a 60 s timeout), pass
silently, or write a file that is not byzadam's.

The CLI cases run the release binary (``$BYZADAM_CLI``, see conftest.py) in a fresh temporary
directory holding the case's files; ``{d}`` in an argument is that directory. Exit status 1
is a refusal by byzadam, 2 a usage error from the argument parser, 0 an input handled as its
documentation says.
"""
from __future__ import annotations

import copy
import gzip
import os
import pathlib
import shutil
import sqlite3
import struct
import subprocess
import threading
from typing import Callable, Dict, List, NamedTuple, Optional, Union

import numpy as np
import pytest

import byzadam
from byzadam import _core

# -------------------------------------------------------------------------------------------
# Files the cases are made of
# -------------------------------------------------------------------------------------------


def npy(descr: str = "<f4", shape: str = "(3, 2)", data: bytes = b"\0" * 24,
        fortran: bool = False, version: int = 1) -> bytes:
    header = (f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}"
              ).encode()
    pre = 10 if version == 1 else 12
    header += b" " * ((64 - (pre + len(header) + 1) % 64) % 64) + b"\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header + data


def f8(values: List[List[float]]) -> bytes:
    a = np.array(values, dtype="<f8")
    return npy("<f8", f"({a.shape[0]}, {a.shape[1]})", a.tobytes())


def sqlite_db(path: pathlib.Path) -> None:
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE people (name TEXT)")
    c.execute("INSERT INTO people VALUES ('ada')")
    c.commit()
    c.close()


def fifo(path: pathlib.Path) -> None:
    os.mkfifo(path)


def zero_link(path: pathlib.Path) -> None:
    os.symlink("/dev/zero", path)


def directory(path: pathlib.Path) -> None:
    path.mkdir()


def sparse(size: int) -> Callable[[pathlib.Path], None]:
    def make(path: pathlib.Path) -> None:
        with open(path, "wb") as f:
            f.truncate(size)
    return make


GOOD_CSV = b"1,2\n3,4\n5,6\n7,8\n9,10\n"
FileSpec = Union[bytes, str, Callable[[pathlib.Path], None]]


class Cli(NamedTuple):
    id: str
    args: List[str]
    rc: int
    message: str  # a regular expression searched in stderr + stdout
    files: Dict[str, FileSpec] = {}
    env: Dict[str, str] = {}
    # After the run: a check on the case's directory (files unchanged, nothing escaped).
    after: Optional[Callable[[pathlib.Path], None]] = None


CASES: List[Cli] = []


def cli_case(id: str, args: List[str], rc: int, message: str, **kw) -> None:
    CASES.append(Cli(id, args, rc, message, **kw))


# -------------------------------------------------------------------------------------------
# 1. Integer overflow in requirement checks, and f out of range
# -------------------------------------------------------------------------------------------

RULES_WITH_F = ["trimmed_mean", "mean_around_median", "minimum_diameter_averaging",
                "largest_distance_filter", "krum", "multi_krum", "bulyan", "monna",
                "covariance_filter", "smallest_eigenvalue_averaging"]
for rule in RULES_WITH_F:
    for f in ["9223372036854775808", "9223372036854775807", "18446744073709551615",
              "4294967296"]:
        cli_case(f"aggregate-{rule}-f={f}", ["aggregate", "{d}/x.csv", "--rule", rule, "--f", f],
                 1, r"needs|over the budget", files={"x.csv": GOOD_CSV})
    cli_case(f"aggregate-{rule}-f=2^64", ["aggregate", "{d}/x.csv", "--rule", rule,
                                          "--f", "18446744073709551616"],
             2, r"invalid value .* for '--f", files={"x.csv": GOOD_CSV})
    cli_case(f"aggregate-{rule}-f=-1", ["aggregate", "{d}/x.csv", "--rule", rule, "--f", "-1"],
             2, r"unexpected argument|invalid value", files={"x.csv": GOOD_CSV})
    cli_case(f"aggregate-{rule}-f-twice", ["aggregate", "{d}/x.csv", "--rule", rule,
                                           "--f", "1", "--set", "f=2"],
             1, r"--f 1 and --set f=2 disagree; give f once", files={"x.csv": GOOD_CSV})

for pre in ["nnm", "arc"]:
    for f in ["9223372036854775808", "18446744073709551615"]:
        cli_case(f"aggregate-pre-{pre}-f={f}", ["aggregate", "{d}/x.csv", "--rule", "median",
                                                "--pre", f"{pre}:f={f}"],
                 1, r"needs|f: `\d+` is not a valid TOML value: number too large",
                 files={"x.csv": GOOD_CSV})
cli_case("aggregate-pre-bucketing-s=2^63", ["aggregate", "{d}/x.csv", "--rule", "median",
                                            "--pre", "bucketing:s=9223372036854775807"],
         0, r"^\[", files={"x.csv": GOOD_CSV})
cli_case("aggregate-pre-bucketing-s=2^63+1", ["aggregate", "{d}/x.csv", "--rule", "median",
                                              "--pre", "bucketing:s=9223372036854775808"],
         1, r"s: `9223372036854775808` is not a valid TOML value", files={"x.csv": GOOD_CSV})

# -------------------------------------------------------------------------------------------
# 2. Sizes from input: matrix files, forged counts, run configs
# -------------------------------------------------------------------------------------------

for i, shape in enumerate(["(100000000000, 100000)", "(18446744073709551615, 2)",
                           "(4294967296, 4294967296)", "(9223372036854775807, 1)"]):
    for descr in ["<f4", "<f8"]:
        cli_case(f"npy-huge-shape-{i}-{descr}", ["aggregate", "{d}/x.npy", "--rule", "mean"],
                 1, r"truncated: the header's shape", files={"x.npy": npy(descr, shape)})
cli_case("npy-shape-over-2^64", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1,
         r"truncated: the header's shape \[18446744073709551616, 2\] claims",
         files={"x.npy": npy("<f4", "(18446744073709551616, 2)")})
cli_case("npy-strides-overflow-zero-count", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1,
         r"truncated: the header's shape \[3, 9223372036854775807, 0\]",
         files={"x.npy": npy("<f4", "(3, 9223372036854775807, 0)", b"")})
cli_case("npy-negative-shape", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1,
         r"not a valid \.npy", files={"x.npy": npy("<f4", "(-1, 2)")})
cli_case("npy-1d", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1, r"expected a 2-D array",
         files={"x.npy": npy("<f4", "(6,)")})
cli_case("npy-3d", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1, r"expected a 2-D array",
         files={"x.npy": npy("<f4", "(1, 2, 3)")})
cli_case("npy-int32", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1, r"unsupported dtype",
         files={"x.npy": npy("<i4", "(3, 2)")})
cli_case("npy-float16", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1, r"unsupported dtype",
         files={"x.npy": npy("<f2", "(3, 2)", b"\0" * 12)})
cli_case("npy-object-pickle", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1,
         r"unsupported dtype|not a valid", files={"x.npy": npy("|O", "(3, 2)", b"\x80\x04.")})
cli_case("npy-bad-magic", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1, r"not a valid \.npy",
         files={"x.npy": b"NUMPY\x01\x00" + b"\0" * 100})
cli_case("npy-empty-file", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1, r"not a valid \.npy",
         files={"x.npy": b""})
cli_case("npy-header-garbage", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1,
         r"not a valid \.npy", files={"x.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': <<<<\n"})
cli_case("npy-header-length-past-end", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1,
         r"not a valid \.npy", files={"x.npy": b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{"})
cli_case("npy-zero-rows", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1, r"no vectors",
         files={"x.npy": npy("<f4", "(0, 3)", b"")})
cli_case("npy-zero-columns", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1, r"no vectors",
         files={"x.npy": npy("<f4", "(3, 0)", b"")})
cli_case("npy-truncated-data", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1, r"truncated",
         files={"x.npy": npy("<f4", "(3, 2)", b"\0" * 10)})
cli_case("npy-f8-1e300", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1,
         r"row 2, column 1: 1e300 is outside float32's range",
         files={"x.npy": f8([[1.0, 2.0], [1e300, 0.0]])})
cli_case("npy-f8--1e39", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1,
         r"row 1, column 2: -1e39 is outside float32's range",
         files={"x.npy": f8([[1.0, -1e39], [1.0, 0.0]])})
cli_case("npy-f8-inf-is-input", ["aggregate", "{d}/x.npy", "--rule", "median"], 0, r"\[",
         files={"x.npy": f8([[1.0, float("inf")], [1.0, 0.0], [2.0, 0.0]])})
cli_case("npy-fortran-order", ["aggregate", "{d}/x.npy", "--rule", "mean"], 0,
         r"^\[2\.0,3\.0\]",
         files={"x.npy": npy("<f4", "(2, 2)", np.array([1, 3, 2, 4], "<f4").tobytes(), True)})
cli_case("npy-big-endian", ["aggregate", "{d}/x.npy", "--rule", "mean"], 0, r"^\[2\.0\]",
         files={"x.npy": npy(">f4", "(2, 1)", np.array([1, 3], ">f4").tobytes())})
cli_case("npy-sparse-17GiB", ["aggregate", "{d}/x.npy", "--rule", "mean"], 1,
         r"over the limit of 17179869184", files={"x.npy": sparse((17 << 30))})
cli_case("json-sparse-300MiB", ["aggregate", "{d}/x.json", "--rule", "mean"], 1,
         r"over the limit of 268435456 for a \.json file \(use \.npy",
         files={"x.json": sparse(300 << 20)})

for ext in ["csv", "npy", "json"]:
    cli_case(f"{ext}-link-to-dev-zero", ["aggregate", f"{{d}}/x.{ext}", "--rule", "mean"], 1,
             r"not a regular file", files={f"x.{ext}": zero_link})
    cli_case(f"{ext}-named-pipe", ["aggregate", f"{{d}}/x.{ext}", "--rule", "mean"], 1,
             r"not a regular file", files={f"x.{ext}": fifo})
    cli_case(f"{ext}-directory", ["aggregate", f"{{d}}/x.{ext}", "--rule", "mean"], 1,
             r"not a regular file", files={f"x.{ext}": directory})
    cli_case(f"{ext}-missing", ["aggregate", f"{{d}}/x.{ext}", "--rule", "mean"], 1,
             r"No such file")
    cli_case(f"{ext}-random-bytes", ["aggregate", f"{{d}}/x.{ext}", "--rule", "mean"], 1,
             r"reading .*x\." + ext, files={f"x.{ext}": bytes(range(256)) * 4})
cli_case("unknown-extension", ["aggregate", "{d}/x.txt", "--rule", "mean"], 1,
         r"unknown format", files={"x.txt": GOOD_CSV})

for i, (text, msg) in enumerate([
    (b"1e39,2\n", r"row 1, column 1: 1e39 is outside float32's range"),
    (b"1,2\n3,-1e39\n", r"row 2, column 2: -1e39 is outside"),
    (b"1,2\n3,abc\n", r"row 2, column 2: \"abc\" is not a number"),
    (b"1,2\n3\n", r"row 2: 1 values, but the first row has 2"),
    (b"", r"no vectors"),
    (b"# only a comment\n", r"no vectors"),
    (b"1,,2\n", r"is not a number"),
    (b"0x10,2\n", r"is not a number"),
    (b"1e400,2\n", r"row 1, column 1: 1e400 is outside float32's range"),
]):
    cli_case(f"csv-{i}", ["aggregate", "{d}/x.csv", "--rule", "mean"], 1, msg,
             files={"x.csv": text})
# NaN orders last (f32::total_cmp): the median of [1, 3, 5, NaN] is (3 + 5) / 2.
cli_case("csv-nan-handled-by-median", ["aggregate", "{d}/x.csv", "--rule", "median"], 0,
         r"^\[4\.0\]", files={"x.csv": b"nan\n1\n3\n5\n"})
cli_case("csv-byte-order-mark-read", ["aggregate", "{d}/x.csv", "--rule", "mean"], 0,
         r"^\[1\.0,2\.0\]", files={"x.csv": b"\xef\xbb\xbf1,2\n"})

for i, (text, msg) in enumerate([
    (b"[[1e39, 2]]", r"row 1, column 1: 1e39 is outside float32's range"),
    (b"[" * 100_000 + b"]" * 100_000, r"invalid JSON: recursion limit"),
    (b"{\"a\": 1}", r"expected an array of vectors"),
    (b"[1, 2]", r"row 1: expected an array of numbers"),
    (b"[[1, 2], [3]]", r"row 2: 1 values, but the first row has 2"),
    (b"[[\"abc\"]]", r"row 1, column 1: \"abc\" is not a number"),
    (b"[[true]]", r"true is not a number"),
    (b"[]", r"no vectors"),
    (b"[[]]", r"no vectors"),
    (b"[[1, 2]", r"invalid JSON"),
    (b"[[null]]", r"null is not a number"),
]):
    cli_case(f"json-{i}", ["aggregate", "{d}/x.json", "--rule", "mean"], 1, msg,
             files={"x.json": text})
cli_case("json-inf-strings", ["aggregate", "{d}/x.json", "--rule", "median"], 0, r"^\[2\.0\]",
         files={"x.json": b"[[\"inf\"], [2], [1]]"})

# Aggregation-rule settings: non-finite, unknown, out of bounds.
for rule, key in [("geometric_median", "nu"), ("geometric_median", "tolerance"),
                  ("centered_clipping", "tau")]:
    for bad in ["nan", "inf", "-inf"]:
        cli_case(f"aggregate-{rule}-{key}={bad}", ["aggregate", "{d}/x.csv", "--rule", rule,
                                                   "--set", f"{key}={bad}"],
                 2, rf"`{key}` must be a finite number", files={"x.csv": GOOD_CSV})
for rule in ["trimmed_mean", "krum", "geometric_median"]:
    f = [] if rule == "geometric_median" else ["--f", "1"]
    cli_case(f"aggregate-{rule}-unknown-key", ["aggregate", "{d}/x.csv", "--rule", rule, *f,
                                               "--set", "nope=1"],
             1, r"unknown field `nope`", files={"x.csv": GOOD_CSV})
cli_case("aggregate-median-takes-no-f", ["aggregate", "{d}/x.csv", "--rule", "median",
                                         "--f", "1"],
         1, r"median takes no f", files={"x.csv": GOOD_CSV})
cli_case("aggregate-unknown-rule", ["aggregate", "{d}/x.csv", "--rule", "nope"], 1,
         r"nope", files={"x.csv": GOOD_CSV})
cli_case("aggregate-gm-iterations-negative", ["aggregate", "{d}/x.csv", "--rule",
                                              "geometric_median", "--set", "max_iterations=-1"],
         1, r"max_iterations|invalid value", files={"x.csv": GOOD_CSV})
cli_case("aggregate-set-not-key-value", ["aggregate", "{d}/x.csv", "--rule", "median",
                                         "--set", "justakey"],
         2, r"is not KEY=VALUE", files={"x.csv": GOOD_CSV})
cli_case("aggregate-cc-tau-negative", ["aggregate", "{d}/x.csv", "--rule", "centered_clipping",
                                       "--set", "tau=-1"],
         1, r"tau", files={"x.csv": GOOD_CSV})
cli_case("aggregate-gm-all-nan-is-nan", ["aggregate", "{d}/x.csv", "--rule", "geometric_median"],
         0, r"^\[NaN,NaN\]|^\[\"nan\",\"nan\"\]|nan", files={"x.csv": b"nan,nan\nnan,nan\n"})

# Attacks.
for b in ["1000000000000", "9223372036854775807", "100001"]:
    cli_case(f"attack-byzantine={b}", ["attack", "{d}/x.csv", "--attack", "alie",
                                       "--byzantine", b],
             1, r"--byzantine: rows: \d+ is over the limit of 100000", files={"x.csv": GOOD_CSV})
cli_case("attack-byzantine=0", ["attack", "{d}/x.csv", "--attack", "alie", "--byzantine", "0"],
         1, r"at least 1", files={"x.csv": GOOD_CSV})
cli_case("attack-byzantine=-1", ["attack", "{d}/x.csv", "--attack", "alie", "--byzantine",
                                 "-1"], 2, r"unexpected argument|invalid value",
         files={"x.csv": GOOD_CSV})
for attack, key in [("a_little_is_enough", "z"), ("empire", "epsilon"), ("gaussian", "std"),
                    ("gaussian", "mean")]:
    for bad in ["nan", "inf"]:
        cli_case(f"attack-{attack}-{key}={bad}", ["attack", "{d}/x.csv", "--attack", attack,
                                                  "--byzantine", "2", "--set", f"{key}={bad}"],
                 2, rf"`{key}` must be a finite number", files={"x.csv": GOOD_CSV})
cli_case("attack-set-twice", ["attack", "{d}/x.csv", "--attack", "alie", "--byzantine", "2",
                              "--set", "z=1", "--set", "z=2"],
         1, r"twice", files={"x.csv": GOOD_CSV})
cli_case("attack-unknown", ["attack", "{d}/x.csv", "--attack", "nope", "--byzantine", "2"],
         1, r"nope", files={"x.csv": GOOD_CSV})
cli_case("attack-gaussian-std-negative", ["attack", "{d}/x.csv", "--attack", "gaussian",
                                          "--byzantine", "2", "--set", "std=-1"],
         1, r"std", files={"x.csv": GOOD_CSV})
cli_case("attack-mimic-target-out-of-range", ["attack", "{d}/x.csv", "--attack", "mimic",
                                              "--byzantine", "2",
                                              "--set", "target=9223372036854775807"],
         1, r"target", files={"x.csv": GOOD_CSV})
cli_case("attack-own-wrong-rows", ["attack", "{d}/x.csv", "--attack", "sign_flip",
                                   "--byzantine", "3", "--own", "{d}/own.csv"],
         1, r"2 genuine vectors, but --byzantine is 3",
         files={"x.csv": GOOD_CSV, "own.csv": b"1,2\n3,4\n"})
cli_case("attack-input-dev-zero", ["attack", "{d}/x.csv", "--attack", "alie", "--byzantine", "2"],
         1, r"not a regular file", files={"x.csv": zero_link})

# -------------------------------------------------------------------------------------------
# 3. Run configs: sizes, hangs, numbers, unknown keys (all refused before any training)
# -------------------------------------------------------------------------------------------

RUN = ["run", "--quiet", "-o", "{d}/out", "--set", "rounds=1", "--set", "eval_samples=100"]
for i, (setting, msg) in enumerate([
    ("workers=9223372036854775807", r"key `workers`: at most 100000"),
    ("workers=100001", r"key `workers`: at most 100000"),
    ("workers=0", r"key `workers`: must be at least 1"),
    ("workers=-1", r"workers"),
    ("rounds=9223372036854775807", r"key `rounds`: at most 100000000"),
    ("rounds=0", r"key `rounds`: must be at least 1"),
    ("byzantine=9223372036854775807", r"key `byzantine`: must be less than workers"),
    ("byzantine=15", r"key `byzantine`: must be less than workers"),
    ("batch=9223372036854775807", r"key `batch`: worker 0 has \d+ samples"),
    ("batch=0", r"key `batch`: must be at least 1"),
    ("eval_samples=9223372036854775807", r"key `eval_samples`: the test set has 10000 images"),
    ("eval_every=0", r"key `eval_every`: must be at least 1"),
    ("seed=-1", r"seed"),
    ('model={name="mlp",hidden=[1000000000]}', r"key `model.hidden`: .*795000000010 parameters"),
    ('model={name="mlp",hidden=[9223372036854775807,9223372036854775807]}',
     r"key `model.hidden`: the network would have \d+ parameters"),
    ('model={name="mlp",hidden=[18446744073709551615]}', r"not a valid TOML value"),
    ('model={name="mlp",hidden=[0]}', r"key `model.hidden`: widths must be at least 1"),
    ('model={name="mlp",hidden=[' + ",".join(["1"] * 65) + "]}",
     r"at most 64 hidden layers"),
    ('model={name="mlp",hidden=[400000]}', r"key `workers`: 15 workers × \d+ parameters"),
    ('model={name="cifar10_cnn",dropout=1.5}', r"dropout"),
    ('model={name="nope"}', r"model"),
    ('partition={name="dirichlet",alpha=1e-9}', r"alpha = 1e-9 is too small"),
    ('partition={name="dirichlet",alpha=1e-300}', r"alpha = 1e-300 is too small"),
    ('partition={name="dirichlet_per_worker",alpha=1e-9}', r"alpha = 1e-9 is too small"),
    ('partition={name="dirichlet",alpha=0}', r"alpha"),
    ('partition={name="dirichlet",alpha=-1}', r"alpha"),
    ('partition={name="dirichlet",alpha=nan}', r"partition.alpha.*finite"),
    ('partition={name="dirichlet",alpha=inf}', r"partition.alpha.*finite"),
    ('partition={name="dirichlet",alpha=0.001}', r"after 1,000 draws"),
    ('partition={name="gamma_similarity",gamma=2}', r"gamma"),
    ('partition={name="gamma_similarity",gamma=nan}', r"finite"),
    ('aggregator={name="trimmed_mean",f=9223372036854775807}', r"aggregator.*needs"),
    ('aggregator={name="krum",f=18446744073709551615}', r"--set aggregator: .*not a valid TOML"),
    ('aggregator={name="krum",f=9223372036854775807}', r"aggregator.*needs"),
    ("rounds=1\nworkers=3", r"holds more than one value"),
    ("data_seed=18446744073709551615", r"not a valid TOML value"),
    ('aggregator={name="nope"}', r"aggregator"),
    ('aggregator={name="centered_clipping",tau=nan}', r"aggregator.tau.*finite"),
    ('aggregator={name="centered_clipping",tau=-1}', r"aggregator.tau"),
    ('aggregator={name="median",f=1}', r"unknown field `f`"),
    ('attack={name="alie",z=nan}', r"attack.z.*finite"),
    ('attack={name="alie",z=inf}', r"attack.z.*finite"),
    ('attack={name="gaussian",std=-1}', r"attack.std"),
    ('attack={name="label_flip",classes=9223372036854775807}', r"attack.classes"),
    ('attack={name="mimic",target=9223372036854775807}', r"target"),
    ('attack={name="nope"}', r"attack"),
    ('optimizer={name="dra",lr={name="constant",value=nan}}', r"optimizer.lr.value.*finite"),
    ('optimizer={name="dra",beta1=inf}', r"optimizer.beta1.*finite"),
    ('optimizer={name="dra",beta1=1.5}', r"beta1"),
    ('optimizer={name="dra",eps=-1}', r"eps"),
    ('optimizer={name="nope"}', r"optimizer"),
    ('preaggregators=[{name="nnm",f=9223372036854775807}]', r"preaggregators.*needs"),
    ('preaggregators=[{name="bucketing",s=0}]', r"preaggregators\[0\].s|s"),
    ('preaggregators=[{name="static_clipping",c=nan}]', r"finite"),
    ("eval_subset=[1,1,1]", r"eval_subset"),
    ("eval_subset=[99999]", r"eval_subset"),
    ('gradient={clip=nan}', r"gradient.clip.*finite"),
    ('gradient={clip=-1}', r"clip"),
    ('dataset="nope"', r"dataset"),
    ("nope=1", r"unknown field `nope`"),
    ("rounds=\"many\"", r"rounds"),
    ("rounds=1.5", r"rounds"),
    ("rounds", r"KEY=VALUE"),
    ("rounds=[1", r"rounds|TOML|invalid"),
]):
    cli_case(f"run-set-{i}-{setting[:40]}", RUN + ["--set", setting], 1, msg,
             env={"BYZADAM_DATA_DIR": "@data"},
             after=lambda d: _assert_absent(d / "out" / "summary.json"))

for name, spec, msg in [
    ("config-dev-zero", zero_link, r"not a regular file"),
    ("config-fifo", fifo, r"not a regular file"),
    ("config-directory", directory, r"not a regular file"),
    ("config-not-utf8", b"rounds = 1\n\xff\xfe\n", r"not UTF-8 text"),
    ("config-sparse-20MiB", sparse(20 << 20), r"over the limit of 16777216 bytes"),
    ("config-syntax", b"rounds = = 1\n", r"c\.toml"),
    ("config-nested", b"a = " + b"[" * 10000 + b"]" * 10000 + b"\n", r"c\.toml"),
    ("config-nan", b"rounds = 2\n[optimizer]\nname = \"sgd\"\nlr = nan\n", r"finite|lr"),
    ("config-type", b"workers = \"many\"\n", r"key `workers`"),
]:
    cli_case(f"run-{name}", ["run", "--quiet", "{d}/c.toml", "-o", "{d}/out"], 1, msg,
             files={"c.toml": spec}, env={"BYZADAM_DATA_DIR": "@data"})

for t in ["0", "1025", "100000", "-1"]:
    cli_case(f"run-threads={t}", ["run", "--quiet", "--threads", t, "-o", "{d}/out"],
             1 if t != "-1" else 2, r"threads|unexpected argument")

# -------------------------------------------------------------------------------------------
# 4. Runs mixed or overwritten in one results directory
# -------------------------------------------------------------------------------------------

TINY = ["--set", "rounds=2", "--set", "eval_samples=100", "--set", "eval_every=1"]


def _assert_absent(p: pathlib.Path) -> None:
    assert not p.exists(), f"{p} was written"


def _unchanged(name: str, content: bytes) -> Callable[[pathlib.Path], None]:
    def check(d: pathlib.Path) -> None:
        assert (d / name).read_bytes() == content, f"{name} was changed"
    return check


cli_case("run-out-foreign-file", ["run", "--quiet", "-o", "{d}/out"] + TINY, 1,
         r"holds \"notes.txt\", which byzadam run did not write",
         files={"out/notes.txt": b"mine"}, env={"BYZADAM_DATA_DIR": "@data"},
         after=_unchanged("out/notes.txt", b"mine"))
cli_case("run-out-foreign-file-overwrite", ["run", "--quiet", "-o", "{d}/out", "--overwrite"]
         + TINY, 1, r"did not write", files={"out/notes.txt": b"mine"},
         env={"BYZADAM_DATA_DIR": "@data"}, after=_unchanged("out/notes.txt", b"mine"))
cli_case("run-out-is-a-file", ["run", "--quiet", "-o", "{d}/out"] + TINY, 1,
         r"not a directory", files={"out": b"x"}, env={"BYZADAM_DATA_DIR": "@data"},
         after=_unchanged("out", b"x"))
cli_case("run-out-other-config", ["run", "--quiet", "-o", "{d}/out"] + TINY, 1,
         r"holds a run of another config \(they differ at `\w+`\)",
         files={"out/config.toml": b"rounds = 99\n", "out/metrics.jsonl": b""},
         env={"BYZADAM_DATA_DIR": "@data"}, after=_unchanged("out/config.toml", b"rounds = 99\n"))
cli_case("run-out-metrics-without-config", ["run", "--quiet", "-o", "{d}/out"] + TINY, 1,
         r"no config.toml", files={"out/metrics.jsonl": b"{}\n"},
         env={"BYZADAM_DATA_DIR": "@data"})
cli_case("run-checkpoint-every-negative", ["run", "--quiet", "--checkpoint-every", "-1"], 2,
         r"unexpected argument|invalid value")

# -------------------------------------------------------------------------------------------
# 5. Wrong data: a named data directory must hold the data; corrupt files are errors
# -------------------------------------------------------------------------------------------

_DATA = [""]  # the data directory, set by test_cli from the data_dir fixture
MNIST = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def mnist_with(name: str, content: Optional[bytes]) -> Callable[[pathlib.Path], None]:
    """A data directory (at the case's path) with MNIST, one file replaced or removed."""
    def make(path: pathlib.Path) -> None:
        (path / "mnist").mkdir(parents=True)
        src = pathlib.Path(_DATA[0]) / "mnist"
        for f in MNIST:
            if f != name:
                os.symlink(src / f, path / "mnist" / f)
        if content is not None:
            (path / "mnist" / name).write_bytes(content)
    return make


for i, (name, content, msg) in enumerate([
    ("t10k-labels-idx1-ubyte.gz", gzip.compress(b"\0" * 10008), r"SHA-256|checksum"),
    ("t10k-labels-idx1-ubyte.gz", b"not gzip at all", r"t10k-labels-idx1-ubyte"),
    ("t10k-labels-idx1-ubyte.gz", gzip.compress(b"\0" * 100)[:40], r"t10k-labels-idx1-ubyte"),
    ("t10k-labels-idx1-ubyte.gz", gzip.compress(b"\0" * 60_000_000),
     r"t10k-labels-idx1-ubyte.*(larger|limit|48000000)"),
    ("t10k-labels-idx1-ubyte.gz", None, r"t10k-labels-idx1-ubyte"),
    ("train-images-idx3-ubyte.gz", b"", r"train-images-idx3-ubyte"),
]):
    cli_case(f"data-corrupt-{i}", ["run", "--quiet", "--data-dir", "{d}/data", "-o", "{d}/out"]
             + TINY, 1, msg, files={"data": mnist_with(name, content)},
             after=lambda d: _assert_absent(d / "out" / "summary.json"))
    # The quickstart (no data directory named) never falls back on a corrupt file either.
cli_case("data-dir-empty-named", ["run", "--quiet", "--data-dir", "{d}/empty", "-o", "{d}/out"]
         + TINY, 1, r"mnist", files={"empty": directory},
         after=lambda d: _assert_absent(d / "out" / "summary.json"))
cli_case("data-partition-huge-workers", ["data", "partition", "mnist", "--workers",
                                         "1000000000000"],
         1, r"1000000000000 workers for 60000 samples", env={"BYZADAM_DATA_DIR": "@data"})
cli_case("data-partition-dirichlet-tiny", ["data", "partition", "mnist", "--workers", "10",
                                           "--scheme", "dirichlet:alpha=1e-9"],
         1, r"too small", env={"BYZADAM_DATA_DIR": "@data"})
cli_case("data-partition-zero-workers", ["data", "partition", "mnist", "--workers", "0"],
         1, r"at least one worker", env={"BYZADAM_DATA_DIR": "@data"})
cli_case("data-partition-unknown-scheme", ["data", "partition", "mnist", "--workers", "3",
                                           "--scheme", "nope"],
         1, r"nope|scheme", env={"BYZADAM_DATA_DIR": "@data"})

# -------------------------------------------------------------------------------------------
# 6. Grids: sizes, hangs, paths (nothing written outside the results directory)
# -------------------------------------------------------------------------------------------

GRID_BASE = (b"[base]\ndataset = \"synthetic\"\nmodel = { name = \"logistic_regression\" }\n"
             b"workers = 4\nbyzantine = 1\nbatch = 8\nrounds = 2\neval_every = 1\n"
             b"eval_samples = 40\naggregator = { name = \"median\" }\n"
             b"attack = { name = \"sign_flip\" }\n")


def grid(extra: bytes) -> bytes:
    return GRID_BASE + extra


for i, (text, msg) in enumerate([
    (GRID_BASE.replace(b"rounds = 2", b"rounds = 9223372036854775807") + b"[axes]\nseed = [0]\n",
     r"rounds.*at most 100000000"),
    (grid(b"[axes]\nseed = [" + b",".join(b"%d" % k for k in range(1000)) + b"]\n"
          b"data_seed = [" + b",".join(b"%d" % k for k in range(1000)) + b"]\n"
          b"workers = [4, 5]\n"), r"1,000,000|1000000|at most"),
    # 2^64 runs: the count never wraps to 0 ("nothing to do").
    (grid(b"[axes]\n" + b"".join(b"k%d = [1, 2]\n" % k for k in range(64))),
     r"its axes multiply to more than 1000000 runs"),
    (grid(b"[axes]\nk0 = [1, 2]\n"), r"k0"),
    (grid(b"[axes]\nseed = []\n"), r"seed"),
    (grid(b"[axes]\nseed = [1, 1]\n"), r"same config|twice|duplicate"),
    (grid(b"[axes]\nseed = [0]\n[[exclude]]\nseed = 5\n"), r"matches no run|match"),
    (grid(b"[axes]\nseed = [0]\n[[exclude]]\nnope = 5\n"), r"nope"),
    (grid(b"[axes]\nseed = [nan]\n"), r"finite"),
    (GRID_BASE.replace(b"batch = 8", b"batch = nan") + b"[axes]\nseed = [0]\n", r"finite"),
    (b"[axes\n", r"g\.toml"),
    (b"\xff\xfe", r"not UTF-8"),
]):
    cli_case(f"grid-{i}", ["grid", "{d}/g.toml", "--store", "{d}/g.db", "--dry-run", "--quiet"],
             1, msg, files={"g.toml": text})

for i, name in enumerate(["../../../evil", "/tmp/byzadam-evil-abs", ".hidden", "a/b", "a\\\\b",
                          "x" * 300, ""]):
    cli_case(f"grid-name-{i}", ["grid", "{d}/sub/g.toml", "--dry-run", "--quiet"], 1,
             r"name", files={"sub/g.toml": b"name = \"" + name.encode() + b"\"\n"
                             + grid(b"[axes]\nseed = [0]\n")},
             after=lambda d: (_assert_absent(d / "evil.db"), _assert_absent(d.parent / "evil.db"),
                              _assert_absent(pathlib.Path("/tmp/byzadam-evil-abs.db"))))
for name, spec in [("dev-zero", zero_link), ("fifo", fifo), ("directory", directory)]:
    cli_case(f"grid-file-{name}", ["grid", "{d}/g.toml", "--dry-run", "--quiet"], 1,
             r"not a regular file", files={"g.toml": spec})
for shard in ["3/2", "0/0", "a/b", "1", "-1/2"]:
    cli_case(f"grid-shard-{shard}", ["grid", "{d}/g.toml", "--dry-run", "--shard", shard], 2,
             r"shard|invalid value|unexpected argument",
             files={"g.toml": grid(b"[axes]\nseed = [0]\n")})
for jobs in ["0", "1025", "100000"]:
    cli_case(f"grid-jobs-{jobs}", ["grid", "{d}/g.toml", "--dry-run", "--jobs", jobs], 1,
             r"--jobs", files={"g.toml": grid(b"[axes]\nseed = [0]\n")})

# -------------------------------------------------------------------------------------------
# 7. Foreign files: read-only commands never write; a store is only ever byzadam's
# -------------------------------------------------------------------------------------------

FOREIGN: Dict[str, FileSpec] = {
    "sqlite": sqlite_db,
    "empty": b"",
    "csv": b"a,b\n1,2\n",
    "random": bytes(range(256)) * 16,
    "sqlite-header-only": b"SQLite format 3\0" + b"\0" * 84,
}


_CLI = [""]  # the CLI, set by test_cli from the cli fixture


def real_store(path: pathlib.Path) -> None:
    """A byzadam store: a one-run grid on synthetic digits, run by the CLI."""
    g = path.with_suffix(".toml")
    g.write_bytes(grid(b"[axes]\nseed = [0]\n"))
    subprocess.run([_CLI[0], "grid", str(g), "--store", str(path), "--quiet"], check=True,
                   capture_output=True, timeout=120)


def _same_as_made(name: str) -> Callable[[pathlib.Path], None]:
    def check(d: pathlib.Path) -> None:
        before = (d / ".before" / name).read_bytes()
        assert (d / name).read_bytes() == before, f"{name} was modified"
        for side in ["-wal", "-shm", "-journal"]:
            assert not (d / (name + side)).exists(), f"{name}{side} was created"
    return check


for kind, spec in FOREIGN.items():
    empty_ok = False  # read: an empty file is not a store either; refused, left as it is
    for cmd in [["store", "list", "{d}/s.db"], ["store", "export", "{d}/s.db", "--csv",
                                                 "{d}/out.csv"],
                ["report", "{d}/s.db", "-o", "{d}/report"]]:
        cli_case(f"{cmd[0]}-{cmd[1] if cmd[0] == 'store' else 'report'}-{kind}", cmd,
                 0 if empty_ok else 1,
                 r"" if empty_ok else r"not a byzadam (results )?store|s\.db",
                 files={"s.db": spec}, after=_same_as_made("s.db"))
    cli_case(f"store-merge-input-{kind}", ["store", "merge", "{d}/into.db", "{d}/s.db"],
             0 if empty_ok else 1, r"" if empty_ok else r"s\.db",
             files={"s.db": spec}, after=_same_as_made("s.db"))
    # Written into: an empty file is where a new store may go (as `touch results.db`); a
    # non-empty file that is not a store is refused and left as it was.
    writable = kind == "empty"
    cli_case(f"store-merge-output-{kind}", ["store", "merge", "{d}/s.db", "{d}/real.db"],
             0 if writable else 1, r"1 runs added" if writable else r"s\.db",
             files={"s.db": spec, "real.db": real_store},
             after=None if writable else _same_as_made("s.db"))
    cli_case(f"grid-store-{kind}", ["grid", "{d}/g.toml", "--store", "{d}/s.db", "--quiet"],
             0 if writable else 1, r"1 runs finished" if writable else r"s\.db",
             files={"s.db": spec, "g.toml": grid(b"[axes]\nseed = [0]\n")},
             after=None if writable else _same_as_made("s.db"))
for cmd in [["store", "list", "{d}/missing.db"], ["report", "{d}/missing.db", "-o", "{d}/r"]]:
    cli_case(f"{cmd[0]}-missing-store", cmd, 1, r"missing\.db",
             after=lambda d: _assert_absent(d / "missing.db"))
cli_case("store-list-directory", ["store", "list", "{d}/s.db"], 1, r"s\.db",
         files={"s.db": directory})
cli_case("report-reference-dev-zero", ["report", "{d}/s.db", "--reference", "{d}/ref.csv",
                                       "-o", "{d}/r"],
         1, r"not a regular file|s\.db", files={"ref.csv": zero_link, "s.db": b""})


# -------------------------------------------------------------------------------------------
# Running the CLI cases
# -------------------------------------------------------------------------------------------

def _materialise(d: pathlib.Path, files: Dict[str, FileSpec]) -> None:
    for name, spec in files.items():
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, bytes):
            path.write_bytes(spec)
        elif isinstance(spec, str):
            path.write_text(spec)
        else:
            spec(path)
    # A copy of each regular file as made, for the checks that it is left byte-identical.
    for name in files:
        path = d / name
        if path.is_file() and not path.is_symlink() and path.stat().st_size < (1 << 20):
            (d / ".before" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, d / ".before" / name)


def test_the_suite_has_at_least_300_cases():
    assert len(CASES) + len(PY_CASES) >= 300, (len(CASES), len(PY_CASES))
    ids = [c.id for c in CASES] + [c[0] for c in PY_CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli(case: Cli, cli, data_dir, tmp_path):
    import re

    _DATA[0] = data_dir
    _CLI[0] = cli
    _materialise(tmp_path, case.files)
    env = dict(os.environ)
    env.pop("BYZADAM_DATA_DIR", None)
    for k, v in case.env.items():
        env[k] = data_dir if v == "@data" else v
    if "--data-dir" not in case.args and "BYZADAM_DATA_DIR" not in case.env:
        # Never the network, never ./data: a data directory that holds no dataset.
        env["BYZADAM_DATA_DIR"] = str(tmp_path / "no-data")
    args = [a.replace("{d}", str(tmp_path)) for a in case.args]
    try:
        r = subprocess.run([cli, *args], capture_output=True, text=True, timeout=60, env=env,
                           cwd=tmp_path, errors="replace")
    except subprocess.TimeoutExpired:
        pytest.fail(f"byzadam {' '.join(args)} hung (no exit within 60 s)")
    out = r.stderr + r.stdout
    assert r.returncode == case.rc, f"exit {r.returncode}, expected {case.rc}:\n{out}"
    assert "panicked" not in out and "memory allocation" not in out, out
    assert re.search(case.message, out, re.MULTILINE), f"no /{case.message}/ in:\n{out}"
    if case.after is not None:
        case.after(tmp_path)


# -------------------------------------------------------------------------------------------
# 8. Python: every case an exception of the right type, naming the problem
# -------------------------------------------------------------------------------------------

X = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
PY_CASES: List[tuple] = []


def py_case(id: str, call: Callable[[], object], error: type, message: str) -> None:
    PY_CASES.append((id, call, error, message))


# Sizes.
for opt in ["SGD", "RESAM", "DRA", "MRA"]:
    for dim in [10**12, 2**63, 2**31]:
        py_case(f"py-{opt}-worker-{dim}", lambda o=opt, d=dim: getattr(byzadam.optim, o)().worker(d),
                byzadam.ByzadamError, r"dim: \d+ is over the limit of 1073741824")
    py_case(f"py-{opt}-worker-2^64", lambda o=opt: getattr(byzadam.optim, o)().worker(2**64),
            (OverflowError, ValueError, TypeError), r"dim|int|large")
    py_case(f"py-{opt}-worker-0", lambda o=opt: getattr(byzadam.optim, o)().worker(0),
            (ValueError, byzadam.ByzadamError), r"dim")
for attack in ["ALittleIsEnough", "SignFlipping", "Gaussian", "InnerProductManipulation"]:
    py_case(f"py-{attack}-forge-10^12",
            lambda a=attack: getattr(byzadam, a)().forge(10**12, honest=X, own=X[:3] if a ==
                                                            "SignFlipping" else None),
            (byzadam.ByzadamError, ValueError), r"over the limit|own vectors given")
py_case("py-round-worker-huge-dim", lambda: byzadam.Worker({"rounds": 1}, 10**12),
        byzadam.ByzadamError, r"dim: \d+ is over the limit")
py_case("py-sampler-batches-huge",
        lambda: byzadam.data.sampler(np.arange(10), 2, 0, 0).batches(10**15),
        byzadam.ByzadamError, r"rounds × batch")
# Requirement overflow.
for rule in ["TrMean", "Krum", "MultiKrum", "Meamed", "MoNNA", "CAF", "Bulyan", "MDA", "SMEA"]:
    for f in [2**63, 2**64 - 1]:
        py_case(f"py-{rule}-f={f}", lambda r=rule, f=f: getattr(byzadam, r)(f=f)(X),
                byzadam.ByzadamError, r"needs|budget")
    py_case(f"py-{rule}-f=2^64", lambda r=rule: getattr(byzadam, r)(f=2**64),
            ValueError, r"f must be an integer in 0..2\^64-1")
    py_case(f"py-{rule}-f=-1", lambda r=rule: getattr(byzadam, r)(f=-1), ValueError, r"f")
    py_case(f"py-{rule}-f=str", lambda r=rule: getattr(byzadam, r)(f="3"), TypeError,
            r"f must be an integer")
    py_case(f"py-{rule}-f=float", lambda r=rule: getattr(byzadam, r)(f=2.5), TypeError,
            r"f must be an integer")
py_case("py-aggregator-unknown-param", lambda: byzadam.Aggregator("median", foo=1), TypeError,
        r"median: unknown parameter 'foo' \(its parameters: none\)")
py_case("py-aggregator-list-param", lambda: byzadam.Aggregator("trimmed_mean", f=[1]), TypeError,
        r"f must be an integer")
py_case("py-attack-z-list", lambda: byzadam.Attack("alie", z=[1]), TypeError,
        r"z must be a number")
py_case("py-attack-base-enum", lambda: byzadam.Attack("sign_flip", base="nope"), ValueError,
        r"base must be one of own, honest_mean")
py_case("py-krum-byzfl-int", lambda: byzadam.Aggregator("krum", f=1, byzfl=1), TypeError,
        r"byzfl must be True or False")
py_case("py-nnm-segments-negative", lambda: byzadam.PreAggregator("nnm", f=1, segments=[-1]),
        TypeError, r"segments must be a list of integers")
# Numbers changed.
for rule in ["Average", "Median", "TrMean", "GeometricMedian", "Krum"]:
    big = X.astype(np.float64)
    big[3, 2] = 1e300
    py_case(f"py-{rule}-float64-1e300", lambda r=rule, b=big: (
        getattr(byzadam, r)(f=1) if r not in ("Average", "Median", "GeometricMedian")
        else getattr(byzadam, r)())(b), ValueError,
        r"row 3, column 2: 1e\+300 is outside float32's range")
    py_case(f"py-{rule}-list-float64-1e39", lambda r=rule: (
        getattr(byzadam, r)(f=1) if r not in ("Average", "Median", "GeometricMedian")
        else getattr(byzadam, r)())([np.ones(3), np.array([1.0, -1e39, 0.0]), np.ones(3)]),
        ValueError, r"row 1, column 1: -1e\+39 is outside")
    py_case(f"py-{rule}-masked", lambda r=rule: byzadam.Median()(np.ma.masked_array(
        X, mask=np.zeros_like(X, bool))), TypeError, r"masked array")
py_case("py-list-of-masked", lambda: byzadam.Median()([np.ma.masked_array(np.ones(3)),
                                                       np.ones(3)]),
        TypeError, r"element 0 is a masked array")
py_case("py-sampler-negative", lambda: byzadam.data.sampler([-1, 2], 1, 0, 0), ValueError,
        r"shard indices must be in 0\.\.4294967295, got -1\.\.2")
py_case("py-sampler-too-large", lambda: byzadam.data.sampler([2**32], 1, 0, 0), ValueError,
        r"shard indices")
py_case("py-sampler-floats", lambda: byzadam.data.sampler([1.5, 2.0], 1, 0, 0), TypeError,
        r"sample indices \(integers\)")
py_case("py-sampler-2d", lambda: byzadam.data.sampler([[1, 2]], 1, 0, 0), TypeError,
        r"1-D array")
py_case("py-sampler-strings", lambda: byzadam.data.sampler(["a"], 1, 0, 0), TypeError,
        r"integers")
# Config dicts: TOML injection, non-string keys, control characters.
for i, key in enumerate(["rounds = 1\nworkers", "workers\" = 3\n\"x", "a]\n[b", "x\\",
                         "rounds\r\nworkers", "rounds\x7f"]):
    py_case(f"py-config-injection-{i}", lambda k=key: byzadam.resolve({k: 3}),
            byzadam.ByzadamError, r"unknown field")
py_case("py-config-int-key", lambda: byzadam.resolve({3: 3}), TypeError,
        r"keys must be strings")
py_case("py-config-nested-int-key", lambda: byzadam.resolve({"aggregator": {1: 2}}), TypeError,
        r"keys must be strings")
py_case("py-config-value-injection",
        lambda: byzadam.resolve({"dataset": "mnist\"\nworkers = 3\nx = \""}),
        byzadam.ByzadamError, r"dataset")
py_case("py-config-nan", lambda: byzadam.resolve({"optimizer": {"name": "sgd", "lr": float("nan")}}),
        byzadam.ByzadamError, r"finite")
py_case("py-config-huge-workers", lambda: byzadam.resolve({"workers": 2**63 - 1}),
        byzadam.ByzadamError, r"at most 100000")
py_case("py-config-workers-2^64", lambda: byzadam.resolve({"workers": 2**64}),
        byzadam.ByzadamError, r"workers|integer|number")
py_case("py-config-dirichlet-tiny", lambda: byzadam.run(
    {"dataset": "synthetic", "partition": {"name": "dirichlet", "alpha": 1e-9}, "rounds": 1}),
    byzadam.ByzadamError, r"too small")
py_case("py-run-set-twice-is-override", lambda: byzadam.resolve(None, set=["rounds=nan"]),
        byzadam.ByzadamError, r"finite")


def _foreign_store(make: Callable[[pathlib.Path], None]) -> Callable[[], object]:
    """byzadam.Store on a foreign file, which must be refused and left as it was."""
    def call() -> object:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            path = pathlib.Path(d) / "other.db"
            make(path)
            before = path.read_bytes()
            try:
                return byzadam.Store(path)
            finally:
                assert path.read_bytes() == before, "the file was modified"
                assert not pathlib.Path(str(path) + "-wal").exists()
    return call


py_case("py-store-foreign-sqlite", _foreign_store(sqlite_db), byzadam.ByzadamError,
        r"not a byzadam results store")
py_case("py-store-text-file", _foreign_store(lambda p: p.write_bytes(b"a,b\n1,2\n")),
        byzadam.ByzadamError, r"not a byzadam|not a database|other\.db")
py_case("py-store-missing", lambda: byzadam.Store("/nonexistent/dir/x.db"),
        (byzadam.ByzadamError, FileNotFoundError, OSError), r"x\.db")


@pytest.mark.parametrize("case", PY_CASES, ids=[c[0] for c in PY_CASES])
def test_python(case):
    _, call, error, message = case
    try:
        call()
    except BaseException as e:  # noqa: B036 - PanicException is a BaseException
        assert isinstance(e, Exception), f"{type(e).__name__} (a panic?) reached Python: {e}"
        assert isinstance(e, error), f"{type(e).__name__}: {e}"
        import re

        assert re.search(message, str(e)), f"no /{message}/ in {type(e).__name__}: {e}"
    else:
        pytest.fail(f"no error: expected {error}")


# -------------------------------------------------------------------------------------------
# 9. State: copies are independent, objects in use by another thread say so
# -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy])
def test_copies_do_not_share_state(copier):
    rng = np.random.default_rng(1)
    a = byzadam.CenteredClipping(tau=0.5)
    a(X)
    b = copier(a)
    # The copy starts from the same centre as the original...
    assert np.array_equal(a(X + 1), b(X + 1))
    # ...and each then moves its own: more calls on one leave the other's centre alone.
    for _ in range(5):
        a(X + rng.normal(size=X.shape).astype(np.float32) * 10)
    fresh = byzadam.CenteredClipping(tau=0.5)
    fresh(X)
    fresh(X + 1)
    assert np.array_equal(b(X + 2), fresh(X + 2))
    # The same for an attack's random stream and a worker's moments.
    g = byzadam.Attack("gaussian", seed=3, std=1.0)
    h = copier(g)
    assert np.array_equal(g.forge(2, honest=X), h.forge(2, honest=X))
    w = byzadam.optim.DRA().worker(4)
    w.message(np.ones(4, np.float32))
    v = copier(w)
    w.message(np.ones(4, np.float32))
    assert v.t == 1 and w.t == 2
    r = byzadam.RobustAggregator({"name": "CenteredClipping", "parameters": {"tau": 0.5}})
    s = copier(r)
    r(X)
    assert np.array_equal(s(X + 1), byzadam.RobustAggregator(
        {"name": "CenteredClipping", "parameters": {"tau": 0.5}})(X + 1))


def test_an_object_used_by_two_threads_says_so():
    big = np.random.default_rng(2).normal(size=(400, 20000)).astype(np.float32)
    rule = byzadam.Krum(f=10)
    errors: List[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                rule(big)
        except BaseException as e:  # noqa: B036
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    seen = None
    while t.is_alive() and seen is None:
        try:
            rule(big[:25])
        except RuntimeError as e:
            seen = e
    t.join()
    errors = [e for e in errors if isinstance(e, RuntimeError)]
    seen = seen or (errors[0] if errors else None)
    assert seen is not None, "the two threads never overlapped"
    assert "in use by another thread" in str(seen) and "copy.copy" in str(seen), str(seen)
    assert "Already borrowed" not in str(seen)


def test_no_public_call_lets_a_panic_reach_python():
    """Every public class and function of the package, called with hostile arguments: each
    raises an ``Exception`` (never PyO3's ``PanicException``, a ``BaseException``) or
    returns."""
    hostile = [None, -1, 2**64, 2**63, float("nan"), float("inf"), "", "x" * 10_000, [],
               {}, np.zeros((0, 0), np.float32), np.full((3, 2), np.nan, np.float32),
               np.zeros((2, 3), np.int64), object()]
    skip = {"run", "grid", "Engine", "Store", "registry", "resolve", "byzfl_compat",
            "RESULTS_VERSION", "__version__", "ByzadamError", "Result", "data", "optim"}
    names = [n for n in byzadam.__all__ if n not in skip]
    names += [f"optim.{n}" for n in ("SGD", "RESAM", "DRA", "MRA")]
    names += ["data.sampler", "data.partition"]
    calls = 0
    for name in names:
        obj = byzadam
        for part in name.split("."):
            obj = getattr(obj, part)
        for h in hostile:
            for args, kwargs in [((h,), {}), ((), {"f": h}), ((X, h), {}), ((h, h, h, h), {})]:
                calls += 1
                try:
                    out = obj(*args, **kwargs)
                    if callable(out):  # a rule or an attack: call it on hostile input too
                        out(h)
                except Exception:
                    pass
                except BaseException as e:  # noqa: B036
                    pytest.fail(f"{name}{args!r:.60}{kwargs!r:.40}: {type(e).__name__}: {e}")
    assert calls > 1000
