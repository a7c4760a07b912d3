#!/usr/bin/env bash
# Table 4.3's 28 reported cells as the thesis's code would run them (homogeneous CIFAR-10,
# 1,500 rounds each, configs/thesis-code/cifar10-homogeneous-table.toml) through the torch
# backend on a GPU (issue 23), aimed at about ten minutes on one GPU with 16 CPU cores: P
# processes (default 14) each run one shard of the grid (`bt.grid(shard=(i, P))`) into one
# store; the gradients run on the GPU, each process's server half on one CPU thread. Then the
# table beside the thesis's. Not yet run on a GPU (no machine was lent to the session that wrote
# it): the ten minutes are an estimate, and the script prints the wall time it took.
#
#   BYZADAM_DATA_DIR=../shared/data PY=/path/to/venv/bin/python benchmarks/gpu_table_4_3.sh
#
# Environment: PY (python with the byzadam wheel and a CUDA torch), P (processes), DEVICE
# (default cuda), ROUNDS (default the grid's 1,500; fewer for a smoke test, e.g. DEVICE=cpu
# ROUNDS=2 P=2, whose store's name says so), STORE (default
# results/thesis-code-cifar10-homogeneous-table-torch.db; a second call skips the runs already
# there and resumes the one in flight in each shard).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
P="${P:-14}"
DEVICE="${DEVICE:-cuda}"
ROUNDS="${ROUNDS:-}"
STORE="${STORE:-results/thesis-code-cifar10-homogeneous-table${ROUNDS:+-$ROUNDS-rounds}-torch.db}"
LOGS="${STORE%.db}.logs"
mkdir -p "$LOGS"
if [ "$DEVICE" = cuda ]; then
    "$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name(0))'
fi
GRID=configs/thesis-code/cifar10-homogeneous-table.toml
if [ -n "$ROUNDS" ]; then  # a shorter grid of its own name (the file is generated: these lines are its own)
    "$PY" - "$GRID" "$LOGS/table-4.3-$ROUNDS-rounds.toml" "$ROUNDS" <<'PYEOF'
import sys
grid, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(grid).read()
for old, new in [("rounds = 1500 ", f"rounds = {rounds} "), ("eval_every = 1500", f"eval_every = {rounds}"),
                 ('name = "thesis-code-cifar10-homogeneous-table"',
                  f'name = "thesis-code-cifar10-homogeneous-table-{rounds}-rounds"')]:
    assert text.count(old) == 1, old
    text = text.replace(old, new)
open(out, "w").write(text)
PYEOF
    GRID="$LOGS/table-4.3-$ROUNDS-rounds.toml"
fi
started=$(date +%s)
pids=()
for i in $(seq 0 $((P - 1))); do
    RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 "$PY" - "$i" "$P" "$STORE" "$DEVICE" "$GRID" \
        > "$LOGS/shard-$i.log" 2>&1 <<'PYEOF' &
import sys
import torch
import byzadam.torch as bt

i, k, store, device, grid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
torch.set_num_threads(1)
bt.grid(grid, store=store, device=device, shard=(i, k))  # progress to the log
PYEOF
    pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "shard $i/$P failed: $LOGS/shard-$i.log" >&2
        failed=1
    fi
done
echo "$P shards on $DEVICE: $(( $(date +%s) - started )) s"
"$PY" - "$STORE" <<'PYEOF'
import csv, sys
import byzadam

names = {"average": "AVG", "trimmed_mean": "CWTM", "mean_around_median": "MEAMED",
         "median": "CWM", "largest_distance_filter": "MDA"}
attacks = {"none": "No attack", "little": "Little", "empire": "Empire", "sign_flip": "Sign Flip",
           "label_flip": "Label Flip", "positive_infinity": "Inf", "negative_infinity": "-Inf"}
order = ["SGD", "RESAM", "DRA", "MRA"]
thesis = sorted(csv.DictReader(open("configs/thesis/tables/table-4.3.csv")),
                key=lambda r: (order.index(r["optimizer"]), list(attacks.values()).index(r["attack"])))
runs = byzadam.Store(sys.argv[1]).runs()
stored = {}
for r in runs:
    c = r["config"]
    attack = c["attack"]["name"] if isinstance(c.get("attack"), dict) else "none"
    stored[(c["optimizer"]["name"].upper(), attacks[attack])] = r
print(f"{sys.argv[1]}:\n")
print("| optimizer | attack | aggregator | thesis | byzadam.torch | difference |")
print("| --- | --- | --- | ---: | ---: | ---: |")
close = 0
for t in thesis:
    r = stored.get((t["optimizer"], t["attack"]))
    if r is None:
        print(f"| {t['optimizer']} | {t['attack']} | {t['aggregator']} | {t['accuracy']} | not run | |")
        continue
    acc, ref = r["summary"]["final_accuracy"], float(t["accuracy"])
    close += abs(acc - ref) <= 0.03
    print(f"| {t['optimizer']} | {t['attack']} | {names[r['config']['aggregator']['name']]} | "
          f"{ref:.4f} | {acc:.4f} | {acc - ref:+.4f} |")
print(f"\n{len(runs)} runs stored; {close} within 0.03 of the thesis")
PYEOF
exit "$failed"
