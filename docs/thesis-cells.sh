#!/usr/bin/env bash
# Measures the thesis's Table 4.1 cells for Little and sign flip (homogeneous MNIST, 15 workers
# of which 5 Byzantine), each with the aggregator the thesis found best for that cell, with
# `byzadam run`. Writes results/thesis-cells/<optimizer>-<attack>/ and prints one line per cell.
#   ROUNDS=500 bash docs/thesis-cells.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-500}"
BIN=./target/release/byzadam
cargo build --release -p byzadam -q
sgd='{name="sgd", lr={name="constant", value=0.75}}'
resam='{name="resam", lr={name="constant", value=0.75}, beta=0.99}'
dra='{name="dra", lr={name="constant", value=0.001}, beta1=0.99, beta2=0.999}'
mra='{name="mra", lr={name="constant", value=0.001}, beta1=0.99, beta2=0.999}'
cwtm='{name="trimmed_mean", f=5}'
avg='{name="average"}'
run() { # name optimizer attack aggregator
  out="results/thesis-cells/$1"
  $BIN run --quiet --out "$out" --set "rounds=$ROUNDS" --set eval_every=50 \
    --set "optimizer=$2" --set "attack=$3" --set "aggregator=$4" >/dev/null
  printf '%-22s %s\n' "$1" "$(tr -d '\n ' < "$out/summary.json")"
}
run sgd-little "$sgd" '{name="little"}' "$cwtm"
run resam-little "$resam" '{name="little"}' "$cwtm"
run dra-little "$dra" '{name="little"}' "$cwtm"
run mra-little "$mra" '{name="little"}' "$cwtm"
run sgd-sign_flip "$sgd" '{name="sign_flip"}' "$avg"
run resam-sign_flip "$resam" '{name="sign_flip"}' "$cwtm"
run dra-sign_flip "$dra" '{name="sign_flip"}' "$cwtm"
run mra-sign_flip "$mra" '{name="sign_flip"}' "$cwtm"
