"""Runs the thesis's own code on homogeneous MNIST, the way its main.py runs it, for reference
values: docs/thesis-code-reproduction.md's "the code itself" numbers come from this script.

It imports model.py, worker.py, aggregation.py and attacks.py from a checkout of
TheBats/Master-Thesis at dd4fad3 (not part of byzadam: clone it yourself), with two adaptations
made in memory as they are loaded: the device ("cuda" becomes "cpu") and torchvision's unused
import. main.py's round loop is re-expressed here because main.py itself reads pickled
DataLoaders and plots with dash; the data are built as data_preparation.py builds them: the
MNIST IDX files read with NumPy, each digit's first 361 x 15 images in file order split into 15
chunks, DataLoader(batch_size=25, shuffle=True, num_workers=2) as the saved loaders have it,
and the 2,000 stratified test indices (crates/data/subsets/mnist-test-subset.txt).

    pip install torch numpy scipy
    git clone https://github.com/TheBats/Master-Thesis && git -C Master-Thesis checkout dd4fad3
    THESIS_CODE=Master-Thesis SEED=123 python run_thesis_code.py OPT ATTACK AGG [ROUNDS]

OPT is main.py's `opt` (0 SGD, 1 RESAM, 2 DRA, 3 MRA); ATTACK one of none, little, empire,
sign_flip, label_flip, inf, -inf; AGG one of avg, cwtm, meamed, cwm, mda. Prints one JSON line:
the accuracy main.py records at the start of the last round and the per-class recall.

HEAD=log_softmax makes one more change to the code, for the ablation's "code - head" in the
code itself: model.py's `F.softmax(..., dim=1)` outputs become `F.log_softmax(..., dim=1)`,
so that worker.py's `nn.CrossEntropyLoss()` is the usual cross-entropy of the logits
(log_softmax is shift-invariant: log_softmax(log_softmax(z)) = log_softmax(z)); predictions
(the argmax) are unchanged.
"""
import gzip
import json
import os
import sys
import types

import numpy as np
import torch

torch.set_num_threads(1)
CODE = os.environ.get("THESIS_CODE", "Master-Thesis")
HEAD = os.environ.get("HEAD", "softmax")
if HEAD not in ("softmax", "log_softmax"):
    raise SystemExit("HEAD must be softmax (the code as it is) or log_softmax")
HERE = os.path.dirname(os.path.abspath(__file__))


def load(name):
    """One of the code's modules, with the device set to the CPU."""
    text = open(os.path.join(CODE, name + ".py")).read()
    text = text.replace('"cuda"', '"cpu"').replace(".cuda()", "")
    text = text.replace("from torchvision import datasets", "datasets = None")
    if name == "model" and HEAD == "log_softmax":
        assert text.count("F.softmax(") == 2, "model.py: expected two softmax outputs"
        text = text.replace("F.softmax(", "F.log_softmax(")
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(text, name + ".py", "exec"), module.__dict__)
    return module


CnnMist = load("model").CnnMist
Worker = load("worker").Worker
aggregation, attacks = load("aggregation"), load("attacks")

opt, attack, agg = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 500
f = int(os.environ.get("F", 5))
number_workers = 15
data_dir = os.path.join(os.environ.get("BYZADAM_DATA_DIR", "data"), "mnist")

def idx(name):
    for n in (name, name + ".gz"):
        p = os.path.join(data_dir, n)
        if os.path.exists(p):
            raw = (gzip.open if p.endswith(".gz") else open)(p, "rb").read()
            dims = raw[3]
            shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    raise FileNotFoundError(name)

xtr, ytr = idx("train-images-idx3-ubyte"), idx("train-labels-idx1-ubyte")
xte, yte = idx("t10k-images-idx3-ubyte"), idx("t10k-labels-idx1-ubyte")
to_tensor = lambda img: torch.from_numpy(img.astype(np.float32) / 255.0).unsqueeze(0)  # ToTensor

seed = int(os.environ.get("SEED", 123))
np.random.seed(seed)
eps, weight_decay = 10e-8, 10e-4
beta, number_moments, get_two_moments, lr = {
    0: ((0, 0), 1, False, 0.75), 1: ((0.9, 0), 1, False, 0.75),
    2: ((0.99, 0.999), 2, False, 0.001), 3: ((0.99, 0.999), 2, True, 0.001)}[opt]

# homogenous_data_preparation: ratio = floor(5421 / n); per digit the first ratio*n in file
# order, np.array_split into n chunks, each worker's list digit by digit.
ratio = 5421 // number_workers
all_idx = np.arange(len(ytr))
new = [[] for _ in range(number_workers)]
for i in range(10):
    chunks = np.array_split(all_idx[np.where(ytr == i)][: ratio * number_workers], number_workers)
    for x in range(number_workers):
        for sp in chunks[x]:
            new[x].append((to_tensor(xtr[sp]), int(ytr[sp])))
# num_workers=2 as the saved loaders have it: the first batch is prefetched at iter(), so
# every worker draws its first permutation right after torch.manual_seed(123).
data = [torch.utils.data.DataLoader(s, batch_size=25, shuffle=True, num_workers=2) for s in new]
subset = [int(l) for l in open(os.path.join(HERE, "..", "..", "..", "crates", "data", "subsets", "mnist-test-subset.txt"))]
test_loader = torch.utils.data.DataLoader([(to_tensor(xte[i]), int(yte[i])) for i in subset],
                                          batch_size=25, shuffle=False)

torch.manual_seed(seed)
model = CnnMist()
worker = []
for w, d in enumerate(data):
    torch.manual_seed(seed)
    local_model = CnnMist()
    worker.append(Worker(dataset=d, model=local_model, loss=None, number_moments=number_moments,
                         attack=attack if w < f and attack in ["sign_flip", "label_flip", "-inf", "inf"] else "none",
                         beta=beta, get_two_moments=get_two_moments, weight_decay=weight_decay))
keys = list(worker[1].model.state_dict().keys())
accuracy = None
for r in range(rounds):
    if r == rounds - 1:
        accuracy = worker[0].test(test_loader)
    else:
        iter(test_loader)  # test() creates the loader's iterator every round: the same RNG draws
    moments1, moments2 = [], []
    for w in range(number_workers):
        out = worker[w].take_step()
        m1 = out[1]
        if not moments1:
            moments1 = [torch.unsqueeze(m, 0) for m in m1]
            if get_two_moments:
                moments2 = [torch.unsqueeze(m, 0) for m in out[2]]
        else:
            moments1 = [torch.cat((a, torch.unsqueeze(m, 0))) for a, m in zip(moments1, m1)]
            if get_two_moments:
                moments2 = [torch.cat((a, torch.unsqueeze(m, 0))) for a, m in zip(moments2, out[2])]
    if attack == "little":
        attacks.little(moments1, number_workers, f)
        if get_two_moments:
            attacks.little(moments2, number_workers, f)
    elif attack == "empire":
        attacks.empire(moments1, f)
        if get_two_moments:
            attacks.little(moments2, number_workers, f)
    call = {"avg": lambda m: aggregation.avg(m), "cwtm": lambda m: aggregation.cwtm(m, number_workers, f),
            "meamed": lambda m: aggregation.meamed(m, number_workers - f), "cwm": lambda m: aggregation.cwm(m),
            "mda": lambda m: aggregation.mda(m, number_workers - f)}[agg]
    aggregated = call(moments1)
    if get_two_moments:
        aggregated2 = call(moments2)
        sqrt = torch._foreach_sqrt(aggregated2)
        torch._foreach_add_(sqrt, eps)
        aggregated = torch._foreach_div(aggregated, sqrt)
    new_state = {keys[i]: p - lr * m.cpu().detach() for i, (p, m) in enumerate(zip(model.parameters(), aggregated))}
    model.load_state_dict(new_state)
    for w in worker:
        w.model.load_state_dict(model.state_dict())
# Per-class recall on the subset, with worker 0's model as test() uses it.
worker[0].model.train()
hits, counts = np.zeros(10), np.zeros(10)
with torch.no_grad():
    for x, y in test_loader:
        p = torch.max(worker[0].model(x), 1)[1]
        for c in range(10):
            counts[c] += (y == c).sum().item(); hits[c] += ((y == c) & (p == c)).sum().item()
print(json.dumps({"seed": seed, "num_workers": 2, **({"head": HEAD} if HEAD != "softmax" else {}), "opt": opt, "attack": attack, "agg": agg, "rounds": rounds, "f": f,
                  "accuracy": accuracy, "recall": (hits / counts).round(4).tolist()}))
