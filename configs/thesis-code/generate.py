#!/usr/bin/env python3
"""Writes the grid files of this folder (edit this script, not them): the thesis's experiments
as its code ran them (GitHub TheBats/Master-Thesis @ dd4fad3), the Little-column ablation and
the seed grids that docs/thesis-code-reproduction.md is written from.

    python3 configs/thesis-code/generate.py
"""
import csv
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
TABLES = HERE.parent / "thesis" / "tables"

# The MNIST CNN's parameter tensors in PyTorch's order (conv1 weight, bias, conv2 weight, bias,
# fc1 weight, bias, fc2 weight, bias): the code sums per-tensor L2 distances over these.
MNIST_SEGMENTS = [500, 20, 10000, 20, 160000, 500, 5000, 10]

ATTACKS = {
    "No attack": '"none"', "Little": '{ name = "little" }', "Empire": '{ name = "empire" }',
    "Sign Flip": '{ name = "sign_flip" }', "Label Flip": '{ name = "label_flip" }',
    "Inf": '{ name = "positive_infinity" }', "-Inf": '{ name = "negative_infinity" }',
}
OPTIMIZERS = ["SGD", "RESAM", "DRA", "MRA"]


def optimizers(heterogeneous):
    # main.py, `match opt`: case 0 beta = (0, 0); case 1 beta = (0.9, 0); cases 2, 3
    # beta = (0.99, 0.999), lr 0.001; eps = 10e-8 = 1e-7. MNIST lr 0.75; heterogeneous:
    # lr = max_lr/(1 + floor(r/50)) set after round r's update (lag = 1).
    lr = ('{ name = "inverse_step", initial = 0.75, every = 50, lag = 1 }' if heterogeneous
          else '{ name = "constant", value = 0.75 }')
    return {
        "SGD": '{ name = "sgd", lr = %s }' % lr,
        "RESAM": '{ name = "resam", lr = %s, beta = 0.9 }' % lr,
        "DRA": '{ name = "dra", lr = { name = "constant", value = 0.001 }, beta1 = 0.99, beta2 = 0.999, eps = 1e-7 }',
        "MRA": '{ name = "mra", lr = { name = "constant", value = 0.001 }, beta1 = 0.99, beta2 = 0.999, eps = 1e-7, eps_placement = "outside_sqrt" }',
    }


def aggregators(f):
    return {
        "AVG": '{ name = "average" }',
        "CWTM": '{ name = "trimmed_mean", f = %d, low = %d }' % (f, f + 1),
        "MEAMED": '{ name = "mean_around_median", f = %d }' % f,
        "CWM": '{ name = "median" }',
        "MDA": '{ name = "largest_distance_filter", f = %d, segments = %s }' % (f, MNIST_SEGMENTS),
    }


COMMON = '''# Everything not set here is byzadam's default and the same in that code: the MNIST CNN
# (model.py, CnnMist), the SGD/RESAM/DRA/MRA updates (worker.py), Little (attacks.py: own
# genuine minus the sample std of the Byzantine rows), Empire (-0.9 x own), sign flip, label
# flip (9 - y), +/-inf in every message, one initial model for all workers.
#
# Aggregators (main.py passes n, f and n - f):
#   AVG    aggregation.avg
#   CWTM   aggregation.cwtm: sorted_m[range(f+1, n-f)]: low = f + 1, high = f
#   MEAMED aggregation.meamed: the n - f values nearest the median
#   CWM    aggregation.cwm: torch.median (n odd here: the middle value)
#   MDA    aggregation.mda: the largest-distance filter over summed per-tensor L2 norms
#          (segments: the MNIST CNN's 8 parameter tensors, 176,050 values)
# Optimizers (main.py, `match opt`, and worker.py):
#   SGD    beta = (0, 0)              RESAM  beta = (0.9, 0), m = 0.9 m + 0.1 g
#   DRA    beta = (0.99, 0.999), lr 0.001, eps = 10e-8 = 1e-7; sends m^/(sqrt(v^) + eps)
#   MRA    the same; the server steps m*/(sqrt(v*) + eps) (eps outside the root); under
#          Empire v^ is attacked with Little (main.py: attacks.little(moments2, ...))
# Still different from that code (docs/thesis-code-reproduction.md): the initial weights'
# random numbers (PyTorch's generator vs ours, the same distributions), the shuffles after the
# first epoch, and each epoch's last short batch (the code's loader yields it, byzadam's
# sampler drops it).
'''

HOMOGENEOUS = '''dataset = "mnist"
model = { name = "mnist_cnn" }
# data_preparation.py, homogenous_data_preparation: for each digit the first
# floor(5421/15) x 15 = 361 x 15 images in file order, np.array_split into 15 chunks.
partition = { name = "homogeneous", order = "file_order" }
workers = 15                  # main.py: number_workers = 15
byzantine = 5                 # main.py: f (5 for these runs; the published file says 4)
byzantine_workers = "first"   # main.py: the attack only `if idx < f`
batch = 25                    # data_preparation.py: DataLoader(split, batch_size=25, shuffle=True)
'''

HETEROGENEOUS = '''dataset = "mnist"
model = { name = "mnist_cnn" }
# data_preparation.py, heterogenous_data_preparation: Dirichlet(0.1) proportions per worker,
# each class normalised over the workers, round(share x 5421) images of each class.
partition = { name = "dirichlet_per_worker", alpha = 0.1, min_samples = 25 }
workers = 17                  # main.py: number_workers (17 in the text; 13 honest + 4)
byzantine = 4                 # main.py: f = 4
byzantine_workers = "first"   # main.py: the attack only `if idx < f`
batch = 25
# main.py: pre_ag = "nnm" when heter: preaggregation.nnm(moments, n - f) before every rule,
# with the same summed per-tensor distances.
preaggregators = [{ name = "nearest_neighbor_mixing", f = 4, segments = %s }]
''' % MNIST_SEGMENTS

CODE = '''# main.py: torch.manual_seed(seed) right before every worker's model, and worker.py builds
# its loader's iterator in __init__: every worker's first epoch is the same permutation.
shared_first_shuffle = true
head = "softmax_then_cross_entropy"   # model.py: return F.softmax(out4); worker.py: nn.CrossEntropyLoss()
normalize_inputs = false              # data_preparation.py: transforms.ToTensor() only
# worker.py, take_step: clip_grad_norm_(params, 2), then _foreach_add_(grads, params,
# alpha=weight_decay) with main.py's weight_decay = 10e-4 (= 1e-3).
gradient = { l2 = 1e-3, clip = 2.0, order = "clip_then_l2" }
# main.py: accuracies[0, r] = worker[0].test(test_loader) at the start of round r; the tables
# report the last value, after rounds - 1 updates. 500 rounds for MNIST.
rounds = 500
eval_every = 500
eval_before_update = true
eval_subset = "thesis_code_mnist"     # data_preparation.py, get_test_set_mnist: 2,000 stratified
seed = 0
data_seed = 0
'''


# Run from the repository root, after `python3 configs/thesis-code/init/make_init.py`.
INIT = 'init = "configs/thesis-code/init/mnist-cnn-torch-seed-123.npy"   # main.py: torch.manual_seed(123); CnnMist()\n'


def cells(table):
    rows = list(csv.DictReader(open(TABLES / table)))
    rows.sort(key=lambda r: (OPTIMIZERS.index(r["optimizer"]), list(ATTACKS).index(r["attack"])))
    return rows


def include(opt, agg, attack, opts, aggs, comment="", extra=""):
    s = "\n[[include]]%s\n" % (("   # " + comment) if comment else "")
    s += "optimizer = %s\naggregator = %s\nattack = %s\n" % (opts[opt], aggs[agg], ATTACKS[attack])
    if opt == "MRA" and attack == "Empire":
        s += 'second_message_attack = { name = "little" }   # main.py: attacks.little(moments2, ...)\n'
    return s + extra


def full_grid(name, description, setting, heterogeneous, f, attacks):
    opts, aggs = optimizers(heterogeneous), aggregators(f)
    s = "# %s\n#\n#   byzadam grid configs/thesis-code/%s.toml\n#\n" % (description, name) + COMMON
    s += '\nname = "thesis-code-%s"\ndescription = "%s"\n\n[base]\n' % (name, description) + setting + CODE
    s += "\n[axes]\noptimizer = [\n" + "".join("  %s,\n" % opts[o] for o in OPTIMIZERS) + "]\n"
    s += "aggregator = [\n" + "".join("  %s,\n" % a for a in aggs.values()) + "]\n"
    s += "attack = [\n" + "".join("  %s,\n" % ATTACKS[a] for a in attacks) + "]\n"
    s += '\n# MRA under Empire: v^ attacked with Little (main.py), so those runs are listed below.\n'
    s += '[[exclude]]\noptimizer = %s\nattack = { name = "empire" }\n' % opts["MRA"]
    for a in aggs:
        s += include("MRA", a, "Empire", opts, aggs)
    (HERE / (name + ".toml")).write_text(s)


def table_grid(name, description, setting, heterogeneous, f, table):
    opts, aggs = optimizers(heterogeneous), aggregators(f)
    s = "# %s\n#\n#   byzadam grid configs/thesis-code/%s.toml\n" % (description, name)
    s += "#   byzadam report results/thesis-code-%s.db --reference configs/thesis/tables/%s\n#\n" % (name, table)
    common = COMMON
    if INIT in setting:  # the initial weights are the code's own here
        common = common.replace("""the initial weights'
# random numbers (PyTorch's generator vs ours, the same distributions), the shuffles after the
# first epoch, and each epoch's last short batch (the code's loader yields it, byzadam's
# sampler drops it).""", """the shuffles (the
# first epoch's shared permutation and every later one come from byzadam's generator, not
# PyTorch's) and each epoch's last short batch (the code's loader yields it, byzadam's sampler
# drops it).""")
    s += common + '\nname = "thesis-code-%s"\ndescription = "%s"\n\n[base]\n' % (name, description)
    s += setting + CODE
    for r in cells(table):
        s += include(r["optimizer"], r["aggregator"], r["attack"], opts, aggs,
                     "%s, %s: thesis %s with %s" % (r["optimizer"], r["attack"], r["accuracy"], r["aggregator"]))
    (HERE / (name + ".toml")).write_text(s)


# The Little column's ablation: from the code's profile, each departure turned back to the
# text's setting alone; from the text's profile, each departure turned on alone. Each is a
# set of keys; "optimizer" is per optimizer.
def text_optimizer(opt):
    return {
        "SGD": '{ name = "sgd", lr = { name = "constant", value = 0.75 } }',
        "RESAM": '{ name = "resam", lr = { name = "constant", value = 0.75 }, beta = 0.99 }',
        "DRA": '{ name = "dra", lr = { name = "constant", value = 0.001 }, beta1 = 0.99, beta2 = 0.999, eps = 1e-8 }',
        "MRA": '{ name = "mra", lr = { name = "constant", value = 0.001 }, beta1 = 0.99, beta2 = 0.999, eps = 1e-8 }',
    }[opt]


# (label, the code's keys, the text's keys)
DEPARTURES = [
    ("head", {"head": '"softmax_then_cross_entropy"'}, {"head": '"log_softmax"'}),
    ("inputs", {"normalize_inputs": "false"}, {"normalize_inputs": "true"}),
    ("gradient order", {"gradient": '{ l2 = 1e-3, clip = 2.0, order = "clip_then_l2" }'},
     {"gradient": '{ l2 = 1e-3, clip = 2.0 }'}),
    ("l2 1e-3", {"gradient": '{ l2 = 1e-3, clip = 2.0, order = "clip_then_l2" }'},
     {"gradient": '{ l2 = 1e-4, clip = 2.0, order = "clip_then_l2" }'}),
    ("optimizer", None, None),  # beta 0.9 (RESAM), eps 1e-7 (DRA), eps 1e-7 outside (MRA)
    ("trimmed mean", {"aggregator": '{ name = "trimmed_mean", f = 5, low = 6 }'},
     {"aggregator": '{ name = "trimmed_mean", f = 5 }'}),
    ("file-order split", {"partition": '{ name = "homogeneous", order = "file_order" }'},
     {"partition": '{ name = "homogeneous" }'}),
    ("shared first shuffle", {"shared_first_shuffle": "true"}, {"shared_first_shuffle": "false"}),
    ("first workers Byzantine", {"byzantine_workers": '"first"'}, {"byzantine_workers": '"last"'}),
    ("evaluation", {"eval_subset": '"thesis_code_mnist"', "eval_before_update": "true"},
     {"eval_subset": None, "eval_before_update": "false"}),
    ("500 rounds", {"rounds": "500", "eval_every": "500"}, {"rounds": "300", "eval_every": "300"}),
]

CODE_KEYS = {
    "head": '"softmax_then_cross_entropy"', "normalize_inputs": "false",
    "gradient": '{ l2 = 1e-3, clip = 2.0, order = "clip_then_l2" }',
    "aggregator": '{ name = "trimmed_mean", f = 5, low = 6 }',
    "partition": '{ name = "homogeneous", order = "file_order" }',
    "shared_first_shuffle": "true", "byzantine_workers": '"first"',
    "eval_subset": '"thesis_code_mnist"', "eval_before_update": "true",
    "rounds": "500", "eval_every": "500",
}
TEXT_KEYS = {
    "head": '"log_softmax"', "normalize_inputs": "true", "gradient": "{ l2 = 1e-4, clip = 2.0 }",
    "aggregator": '{ name = "trimmed_mean", f = 5 }', "partition": '{ name = "homogeneous" }',
    "shared_first_shuffle": "false", "byzantine_workers": '"last"', "eval_subset": None,
    "eval_before_update": "false", "rounds": "300", "eval_every": "300",
}


def keys_table(keys):
    return "".join("%s = %s\n" % (k, v) for k, v in keys.items() if v is not None)


def ablation_variants():
    """(optimizer, label, keys) of every run of the ablation, in grid order: from the code's
    profile first (the question the thesis's reader has), every optimizer; then from the
    text's. `keys` are the run's top-level keys beyond the grid's base (None: left out)."""
    opts = optimizers(False)
    for profile, start in [("code", CODE_KEYS), ("text", TEXT_KEYS)]:
        for opt in ["RESAM", "DRA", "MRA", "SGD"]:
            variants = [(profile, {})]
            for label, code, text in DEPARTURES:
                change = text if profile == "code" else code
                if label == "optimizer":
                    if opt == "SGD":
                        continue
                    variants.append((label, {"optimizer": text_optimizer(opt) if profile == "code" else opts[opt]}))
                    continue
                variants.append((label, change))
            base_opt = opts[opt] if profile == "code" else text_optimizer(opt)
            for label, change in variants:
                keys = dict(start)
                keys["optimizer"] = base_opt
                if label in ("gradient order", "l2 1e-3"):
                    # Each of the two gradient departures alone.
                    if profile == "code":
                        keys["gradient"] = change["gradient"]
                    else:
                        keys["gradient"] = ('{ l2 = 1e-4, clip = 2.0, order = "clip_then_l2" }'
                                            if label == "gradient order" else '{ l2 = 1e-3, clip = 2.0 }')
                else:
                    keys.update(change)
                name = profile if label == profile else ("%s %s %s" % (profile, "−" if profile == "code" else "+", label))
                yield opt, name, keys


# The ablation grids' shared base (homogeneous MNIST under Little; each run names the rest).
LITTLE_BASE = '''[base]
dataset = "mnist"
model = { name = "mnist_cnn" }
workers = 15
byzantine = 5
batch = 25
attack = { name = "little" }
'''


def ablation():
    s = '''# The Little column of Table 4.1 (every optimizer with the thesis's best rule there, the
# trimmed mean), from the thesis's code's profile with each departure turned back to the
# text's setting alone ("code - X"), and from the text's profile with each departure turned
# on alone ("text + X"); "code" and "text" are the two profiles themselves. The text's
# profile is configs/thesis/mnist-homogeneous.toml's (300 rounds, the whole test set after
# the last update, RESAM beta 0.99, eps 1e-8, l2 1e-4 then clipping).
#
#   byzadam grid configs/thesis-code/ablation-little.toml
#
# Generated by generate.py. The departures, as docs/config.md names them: head, inputs
# (normalize_inputs), gradient order, l2 1e-3, optimizer (RESAM beta 0.9; DRA eps 1e-7; MRA
# eps 1e-7 outside the root), trimmed mean (low = f + 1), file-order split, shared first
# shuffle, first workers Byzantine, evaluation (2,000 stratified images, before the update),
# 500 rounds.
name = "thesis-code-ablation-little"
description = "Table 4.1's Little column: each departure of the thesis's code alone, both ways"

''' + LITTLE_BASE + '''seed = 0
data_seed = 0
'''
    head = s
    for opt, name, keys in ablation_variants():
        s += "\n[[include]]   # %s, %s\n" % (opt, name) + keys_table(keys)
    (HERE / "ablation-little.toml").write_text(s)
    # Its first half alone (from the code's profile), for a machine short of time: same runs,
    # same ids; `--store results/thesis-code-ablation-little.db` puts them with the rest.
    s = head.replace('name = "thesis-code-ablation-little"', 'name = "thesis-code-ablation-little-code"')
    s = s.replace("#   byzadam grid configs/thesis-code/ablation-little.toml",
                  "#   byzadam grid configs/thesis-code/ablation-little-code.toml \\\n"
                  "#     --store results/thesis-code-ablation-little.db\n#\n"
                  "# (only the runs from the code's profile: the first half of ablation-little.toml)")
    for opt, name, keys in ablation_variants():
        if name.startswith("code"):
            s += "\n[[include]]   # %s, %s\n" % (opt, name) + keys_table(keys)
    (HERE / "ablation-little-code.toml").write_text(s)


def seeds():
    opts = optimizers(False)
    aggs = aggregators(5)
    best = {r["optimizer"] + r["attack"]: r["aggregator"] for r in cells("table-4.1.csv")}
    text_aggs = {
        "AVG": '{ name = "average" }', "CWTM": '{ name = "trimmed_mean", f = 5 }',
        "CWM": '{ name = "median" }',
    }
    s = '''# Three seeds (seed = data_seed = 0, 1, 2) of Table 4.1's Little and no-attack cells, with the
# thesis's reported aggregator, in the code's profile and in the text's.
#
#   byzadam grid configs/thesis-code/seeds.toml
#
# Generated by generate.py.
name = "thesis-code-seeds"
description = "Table 4.1's Little and no-attack cells, three seeds, in both profiles"

[base]
dataset = "mnist"
model = { name = "mnist_cnn" }
workers = 15
byzantine = 5
batch = 25
'''
    for seed in [0, 1, 2]:
        for opt in OPTIMIZERS:
            for attack in ["No attack", "Little"]:
                agg = best[opt + attack]
                code = dict(CODE_KEYS, optimizer=opts[opt], aggregator=aggs[agg], attack=ATTACKS[attack])
                text = dict(TEXT_KEYS, optimizer=text_optimizer(opt), aggregator=text_aggs[agg],
                            attack=ATTACKS[attack])
                for profile, keys in [("code", code), ("text", text)]:
                    keys = dict(keys, seed=str(seed), data_seed=str(seed))
                    s += "\n[[include]]   # %s, %s, %s, seed %d\n" % (opt, attack, profile, seed) + keys_table(keys)
    (HERE / "seeds.toml").write_text(s)


def head_seeds():
    """The ablation's decisive pair, the head alone both ways (code - head, text + head), with
    seeds 1 and 2: with the seeds grid's profiles and the ablation's seed 0, three seeds each."""
    s = '''# The Little ablation's head runs (code - head: the code's profile with the text's
# log-softmax; text + head: the text's profile with the code's softmax-then-cross-entropy) with
# seeds 1 and 2 (seed = data_seed). Seed 0 is in ablation-little.toml, the two profiles'
# three seeds in seeds.toml.
#
#   byzadam grid configs/thesis-code/ablation-head-seeds.toml
#
# Generated by generate.py.
name = "thesis-code-ablation-head-seeds"
description = "The Little ablation's head runs, both ways, seeds 1 and 2"

''' + LITTLE_BASE
    for seed in [1, 2]:
        for opt, name, keys in ablation_variants():
            if name in ("code − head", "text + head"):
                keys = dict(keys, seed=str(seed), data_seed=str(seed))
                s += "\n[[include]]   # %s, %s, seed %d\n" % (opt, name, seed) + keys_table(keys)
    (HERE / "ablation-head-seeds.toml").write_text(s)


TEXT_HETEROGENEOUS = {
    "partition": '{ name = "dirichlet", alpha = 0.1 }', "workers": "17", "byzantine": "4",
    "preaggregators": '[{ name = "nearest_neighbor_mixing", f = 4 }]',
}


def text_tables():
    """Both tables' cells in the text's profile (configs/thesis/*.toml's settings), with the
    thesis's reported aggregator: the third column of docs/thesis-code-reproduction.md."""
    for table, name, hetero, f in [("table-4.1.csv", "text-table-4.1", False, 5),
                                   ("table-4.2.csv", "text-table-4.2", True, 4)]:
        lr = ('{ name = "inverse_step", initial = 0.75, every = 50 }' if hetero
              else '{ name = "constant", value = 0.75 }')
        opts = {
            "SGD": '{ name = "sgd", lr = %s }' % lr,
            "RESAM": '{ name = "resam", lr = %s, beta = 0.99 }' % lr,
            "DRA": text_optimizer("DRA"), "MRA": text_optimizer("MRA"),
        }
        aggs = {
            "AVG": '{ name = "average" }', "CWTM": '{ name = "trimmed_mean", f = %d }' % f,
            "MEAMED": '{ name = "mean_around_median", f = %d }' % f, "CWM": '{ name = "median" }',
            "MDA": '{ name = "minimum_diameter_averaging", f = %d }' % f,
        }
        s = ("# %s's cells in the text's profile (the settings of configs/thesis/mnist-%s.toml:\n"
             "# 300 rounds, the whole test set), each with the thesis's reported aggregator.\n#\n"
             "#   byzadam grid configs/thesis-code/%s.toml\n#\n# Generated by generate.py.\n"
             % (table[:-4].replace("table", "Table"), "heterogeneous" if hetero else "homogeneous", name))
        s += 'name = "thesis-code-%s"\ndescription = "%s in the text\'s profile, reported aggregators"\n\n[base]\n' % (name, table[:-4])
        s += 'dataset = "mnist"\nmodel = { name = "mnist_cnn" }\nbatch = 25\nrounds = 300\neval_every = 300\n'
        s += 'gradient = { l2 = 1e-4, clip = 2.0 }\nseed = 0\ndata_seed = 0\n'
        s += keys_table(TEXT_HETEROGENEOUS) if hetero else 'partition = { name = "homogeneous" }\nworkers = 15\nbyzantine = 5\n'
        for r in cells(table):
            s += "\n[[include]]   # %s, %s: thesis %s with %s\n" % (r["optimizer"], r["attack"], r["accuracy"], r["aggregator"])
            s += "optimizer = %s\naggregator = %s\nattack = %s\n" % (opts[r["optimizer"]], aggs[r["aggregator"]], ATTACKS[r["attack"]])
        (HERE / (name + ".toml")).write_text(s)


# The code's CIFAR-10 network's parameter tensors in byzadam's (forward) order; the sum of
# per-tensor distances does not depend on the order (PyTorch lists the batch norms last).
CIFAR_SEGMENTS = [1728, 64, 36864, 64, 64, 64, 73728, 128, 128, 128, 147456, 128, 128, 128,
                  1048576, 128, 1280, 10]


def cifar10():
    """Tables 4.3 and 4.4 as the code would run them (configured, not run here: 1,500 rounds
    of the CIFAR-10 CNN on 15 workers is about a day on two cores)."""
    for hetero in [False, True]:
        name = "cifar10-%s" % ("heterogeneous" if hetero else "homogeneous")
        f = 4 if hetero else 5
        lr = '{ name = "constant", value = 0.25 }'  # main.py: cifar10 lr 0.25; the heterogeneous decay only at r == 1500
        opts = {
            "SGD": '{ name = "sgd", lr = %s }' % lr,
            "RESAM": '{ name = "resam", lr = %s, beta = 0.9 }' % lr,
            "DRA": optimizers(False)["DRA"], "MRA": optimizers(False)["MRA"],
        }
        aggs = aggregators(f)
        aggs["MDA"] = '{ name = "largest_distance_filter", f = %d, segments = %s }' % (f, CIFAR_SEGMENTS)
        s = "# Table %s as the thesis's code would run it on CIFAR-10 (configured; not run here).\n" % ("4.4" if hetero else "4.3")
        s += "#\n#   byzadam grid configs/thesis-code/%s.toml\n#\n# Generated by generate.py.\n" % name
        s += "# model.py, CnnCifar10: dropout after the first ReLU, batch norms without running\n"
        s += "# statistics; worker.py, test(): self.model.train(), test batches of 25.\n"
        s += "# data_preparation.py's CIFAR-10 branch does not run as published (it uses an undefined\n"
        s += "# `transform`); the text's 330 images per class and batch 25 are used.\n"
        s += 'name = "thesis-code-%s"\ndescription = "Table %s as the thesis\'s code would run it"\n\n[base]\n' % (name, "4.4" if hetero else "4.3")
        s += 'dataset = "cifar10"\nmodel = { name = "cifar10_cnn_thesis_code", dropout = 0.25 }\n'
        if hetero:
            s += ('partition = { name = "dirichlet_per_worker", alpha = 0.1, min_samples = 25 }\n'
                  'workers = 15\nbyzantine = 4\n'
                  'preaggregators = [{ name = "nearest_neighbor_mixing", f = 4, segments = %s }]\n' % CIFAR_SEGMENTS)
        else:
            s += 'partition = { name = "homogeneous", per_class = 330, order = "file_order" }\nworkers = 15\nbyzantine = 5\n'
        s += 'byzantine_workers = "first"\nbatch = 25\nshared_first_shuffle = true\nhead = "softmax_then_cross_entropy"\n'
        s += 'normalize_inputs = false\ngradient = { l2 = 1e-3, clip = 2.0, order = "clip_then_l2" }\n'
        s += 'rounds = 1500                          # main.py: rounds = 1500\neval_every = 1500\neval_before_update = true\n'
        s += 'eval_subset = "thesis_code_cifar10"    # get_test_set_cifar10: 2,000 stratified\n'
        s += 'training_mode_eval = { batch = 25 }    # test(): self.model.train(), batches of 25\nseed = 0\ndata_seed = 0\n'
        s += "\n[axes]\noptimizer = [\n" + "".join("  %s,\n" % opts[o] for o in OPTIMIZERS) + "]\n"
        s += "aggregator = [\n" + "".join("  %s,\n" % a for a in aggs.values()) + "]\n"
        s += "attack = [\n" + "".join("  %s,\n" % ATTACKS[a] for a in ATTACKS if not (hetero and a == "-Inf")) + "]\n"
        base = s[s.index("[base]"):]
        s += '\n[[exclude]]\noptimizer = %s\nattack = { name = "empire" }\n' % opts["MRA"]
        for a in aggs:
            s += include("MRA", a, "Empire", opts, aggs)
        (HERE / (name + ".toml")).write_text(s)
        if hetero:
            continue
        # Table 4.3's 28 reported cells alone, each with its reported aggregator: what
        # benchmarks/gpu_table_4_3.sh runs through the torch backend on a GPU.
        base = base[:base.index("\n[axes]")] + "\n"
        t = "# Table 4.3's 28 cells as the thesis's code would run them on CIFAR-10, each with the\n"
        t += "# thesis's reported aggregator (configured; 1,500 rounds of the CIFAR-10 CNN each).\n#\n"
        t += "#   byzadam grid configs/thesis-code/cifar10-homogeneous-table.toml\n"
        t += "#   benchmarks/gpu_table_4_3.sh        # the torch backend on a GPU, shards in parallel\n"
        t += "#   byzadam report results/thesis-code-cifar10-homogeneous-table.db --reference configs/thesis/tables/table-4.3.csv\n"
        t += "#\n# Generated by generate.py, from cifar10-homogeneous.toml's base.\n"
        t += 'name = "thesis-code-cifar10-homogeneous-table"\n'
        t += 'description = "Table 4.3\'s 28 cells as the thesis\'s code would run them, each with the thesis\'s reported aggregator"\n\n'
        t += base
        for r in cells("table-4.3.csv"):
            t += include(r["optimizer"], r["aggregator"], r["attack"], opts, aggs,
                         "%s, %s: thesis %s with %s" % (r["optimizer"], r["attack"], r["accuracy"], r["aggregator"]))
        (HERE / "cifar10-homogeneous-table.toml").write_text(t)


if __name__ == "__main__":
    cifar10()
    text_tables()
    full_grid("mnist-homogeneous", "Table 4.1 as the thesis's code ran it: homogeneous MNIST, 4 optimizers x 5 aggregators x 7 attacks",
              HOMOGENEOUS, False, 5, list(ATTACKS))
    table_grid("mnist-homogeneous-table", "Table 4.1's 28 cells as the thesis's code ran them, each with the thesis's reported aggregator",
               HOMOGENEOUS, False, 5, "table-4.1.csv")
    # The same cells from the code's own initial weights (init/make_init.py writes the file:
    # torch.manual_seed(123), then model.py's layers in model.py's order).
    table_grid("mnist-homogeneous-table-init", "Table 4.1's 28 cells as the thesis's code ran them, from its initial weights (torch.manual_seed(123))",
               HOMOGENEOUS + INIT, False, 5, "table-4.1.csv")
    full_grid("mnist-heterogeneous", "Table 4.2 as the thesis's code ran it: heterogeneous MNIST with NNM, 4 optimizers x 5 aggregators x 6 attacks",
              HETEROGENEOUS, True, 4, [a for a in ATTACKS if a != "-Inf"])
    table_grid("mnist-heterogeneous-table", "Table 4.2's 24 cells as the thesis's code ran them, each with the thesis's reported aggregator",
               HETEROGENEOUS, True, 4, "table-4.2.csv")
    ablation()
    head_seeds()
    seeds()
