#!/usr/bin/env python3
"""Prints the tables of docs/thesis-code-reproduction.md from the stores of this folder's
grids (results/thesis-code-*.db, written by `byzadam grid configs/thesis-code/<grid>.toml`).

    python3 configs/thesis-code/report.py [RESULTS_DIR] > tables.md
"""
import csv
import json
import pathlib
import sqlite3
import statistics
import sys

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "results")
TABLES = HERE.parent / "thesis" / "tables"
OPTIMIZERS = ["SGD", "RESAM", "DRA", "MRA"]
ATTACK_NAMES = {
    "none": "No attack", "little": "Little", "empire": "Empire", "sign_flip": "Sign Flip",
    "label_flip": "Label Flip", "positive_infinity": "Inf", "negative_infinity": "-Inf",
}
AGGREGATORS = {  # byzadam's rule names, as the thesis's tables label them
    "average": "AVG", "trimmed_mean": "CWTM", "mean_around_median": "MEAMED", "median": "CWM",
    "largest_distance_filter": "MDA",  # the code's MDA
    "minimum_diameter_averaging": "MDA",  # the text's MDA (the text profile)
}
CLOSE = 0.03


def runs(grid):
    path = RESULTS / ("thesis-code-%s.db" % grid)
    if not path.exists():
        return []
    con = sqlite3.connect(path)
    columns = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
    recall = "r.class_recall" if "class_recall" in columns else "NULL"  # schema 2 stores
    # Every run of the store, whichever grid put it there (the seeds store holds the table
    # grids' seed-0 runs, merged in; the ablation store may be filled by its first half).
    rows = con.execute(
        "SELECT r.config, r.final_accuracy, %s, r.diverged_at FROM runs r ORDER BY r.id" % recall
    ).fetchall()
    out = []
    for config, acc, recall, diverged in rows:
        c = json.loads(config)
        attack = c["attack"] if isinstance(c["attack"], str) else c["attack"]["name"]
        out.append({
            "config": c, "optimizer": c["optimizer"]["name"].upper(),
            "attack": ATTACK_NAMES[attack], "accuracy": acc if acc is not None else float("nan"),
            "recall": json.loads(recall) if recall else [], "diverged": diverged,
            "seed": c.get("seed", 0),
            "aggregator": AGGREGATORS.get(c["aggregator"]["name"], c["aggregator"]["name"]),
        })
    return out


def reference(table):
    return {(r["optimizer"], r["attack"]): (float(r["accuracy"]), r["aggregator"])
            for r in csv.DictReader(open(TABLES / table))}


def by_cell(rs, seed=0):
    """(optimizer, attack, aggregator) -> run, for one seed."""
    return {(r["optimizer"], r["attack"], r["aggregator"]): r for r in rs if r["seed"] == seed}


def code_runs(grid):
    """The code profile's runs of a table: the full grid's store (every aggregator) where it
    exists, else the per-cell grid's (the thesis's reported aggregator only)."""
    return runs(grid) or runs(grid + "-table")


def fmt(x):
    return "—" if x is None else ("%.4f" % x)


def dead(recall):
    return [c for c, v in enumerate(recall) if v == v and v < 0.05]


def dead_text(recall):
    """The dead classes as the tables print them ("none"; "not recorded" for a run stored
    before the store kept recall)."""
    return (", ".join(map(str, dead(recall))) or "none") if recall else "not recorded"


def three_columns(table, code_grid, text_grid, attacks):
    ref = reference(table)
    code, text = by_cell(code_runs(code_grid)), by_cell(runs(text_grid))
    lines = ["| | " + " | ".join(attacks) + " |", "|---|" + "---:|" * len(attacks)]
    close = total = 0
    far = []
    for opt in OPTIMIZERS:
        cells = []
        for a in attacks:
            if (opt, a) not in ref:
                cells.append("")
                continue
            acc, agg = ref[(opt, a)]
            c = code.get((opt, a, agg), {}).get("accuracy")
            t = text.get((opt, a, agg), {}).get("accuracy")
            mark = ""
            if c is not None:
                total += 1
                if abs(c - acc) <= CLOSE:
                    close += 1
                else:
                    mark = " ✗"
                    recall = code[(opt, a, agg)]["recall"]
                    far.append((opt, a, acc, agg, c, t, dead_text(recall)))
            cells.append("%.4f %s<br>**%s**%s<br>%s" % (acc, agg, fmt(c), mark, fmt(t)))
        lines.append("| %s | %s |" % (opt, " | ".join(cells)))
    return "\n".join(lines), close, total, far


def every_aggregator(table, code_grid, attacks):
    """The full grid in the code profile: every aggregator's accuracy per cell, the best in
    bold, and how the best compares with the thesis's best (its tables report the best)."""
    ref = reference(table)
    code = by_cell(runs(code_grid))
    if not code:
        return "(the full grid `%s` has not run)" % code_grid, 0, 0, 0
    aggs = ["AVG", "CWTM", "MEAMED", "CWM", "MDA"]
    lines = ["| optimizer, attack | thesis (best) | " + " | ".join(aggs) + " | byzadam's best | dead classes (best) |",
             "|---|---:|" + "---:|" * len(aggs) + "---:|---|"]
    close = total = same_rule = 0
    for opt in OPTIMIZERS:
        for a in attacks:
            if (opt, a) not in ref:
                continue
            acc, agg = ref[(opt, a)]
            cells = {g: code.get((opt, a, g)) for g in aggs}
            done = {g: r["accuracy"] for g, r in cells.items() if r is not None}
            if not done:
                continue
            best = max(done, key=lambda g: (done[g] == done[g], done[g]))
            total += 1
            close += abs(done[best] - acc) <= CLOSE
            same_rule += done.get(agg) == done[best]  # the thesis's rule is best here (ties count)
            row = []
            for g in aggs:
                v = done.get(g)
                text = "—" if v is None else "%.4f" % v
                row.append("**%s**" % text if g == best else text)
            recall = cells[best]["recall"]
            lines.append("| %s, %s | %.4f %s | %s | %.4f %s%s | %s |" % (
                opt, a, acc, agg, " | ".join(row), done[best], best,
                "" if abs(done[best] - acc) <= CLOSE else " ✗", dead_text(recall)))
    return "\n".join(lines), close, total, same_rule


# The run config's defaults that the store leaves out of a config (crates/sim/src/config.rs:
# a key at its default is not serialised, so that older configs keep their run ids).
DEFAULTS = {
    "head": "log_softmax", "normalize_inputs": True, "shared_first_shuffle": False,
    "byzantine_workers": "last", "eval_before_update": False,
}


def stored(config, key):
    """A stored config's value of a top-level key, its default where the store left it out."""
    return config.get(key, DEFAULTS.get(key))


def same(want, have):
    """Whether `want` (parsed TOML) equals `have` (from a stored config), a key missing on
    either side read as null (the store writes some defaults, the grid file leaves them out)."""
    if isinstance(want, dict) or isinstance(have, dict):
        if not (isinstance(want, dict) and isinstance(have, dict)):
            return False
        return all(same(want.get(k), have.get(k)) for k in set(want) | set(have))
    if isinstance(want, float) or isinstance(have, float):
        return (want is not None and have is not None
                and abs(float(want) - float(have)) <= 1e-12 * abs(float(want)))
    return want == have


def matching(rs, opt, keys, seed=0):
    """The stored runs of optimizer `opt` and `seed` whose config has generate.py's `keys`."""
    import tomllib
    want = tomllib.loads("".join("%s = %s\n" % (k, v) for k, v in keys.items() if v is not None))
    absent = [k for k, v in keys.items() if v is None]
    return [r for r in rs if r["optimizer"] == opt and r["seed"] == seed
            and all(same(v, stored(r["config"], k)) for k, v in want.items())
            and all(stored(r["config"], k) is None for k in absent)]


def ablation():
    """The ablation's runs, each named by the variant of generate.py whose keys it has."""
    from generate import ablation_variants
    rs = runs("ablation-little")
    out = []
    variants = list(ablation_variants())
    for opt in OPTIMIZERS:
        out.append("\n### %s, trimmed mean, Little\n" % opt)
        out.append("| run | accuracy | dead classes (recall < 0.05) | recall per class 0–9 |")
        out.append("|---|---:|---|---|")
        for o, label, keys in variants:
            if o != opt:
                continue
            found = matching(rs, opt, keys)
            name = "**%s profile**" % label if label in ("code", "text") else label
            if not found:
                out.append("| %s | not run | | |" % name)
                continue
            if len(found) > 1:
                raise SystemExit("%s, %s: %d stored runs match" % (opt, label, len(found)))
            r = found[0]
            out.append("| %s | %.4f | %s | %s |" % (
                name, r["accuracy"], dead_text(r["recall"]),
                " ".join("%.2f" % v for v in r["recall"])))
    return "\n".join(out)


def head_seeds():
    """The head alone, both ways, over seeds 0, 1, 2: the two profiles from the seeds grid,
    the head runs from the ablation (seed 0) and its head-seeds grid (seeds 1, 2)."""
    from generate import ablation_variants
    rs = [r for r in runs("ablation-little") + runs("ablation-head-seeds") + runs("seeds")
          if r["attack"] == "Little"]
    lines = ["| (seeds 0, 1, 2) | code profile | code − head | text profile | text + head |",
             "|---|---:|---:|---:|---:|"]
    variants = {(o, n): k for o, n, k in ablation_variants()}
    for opt in OPTIMIZERS:
        cells = []
        for label in ["code", "code − head", "text", "text + head"]:
            keys = variants[(opt, label)]
            vals = []
            for seed in [0, 1, 2]:
                found = matching(rs, opt, keys, seed)
                # The seeds store holds the two profiles' seed-0 runs too (the same ids).
                ids = {json.dumps(r["config"], sort_keys=True) for r in found}
                if len(ids) > 1:
                    raise SystemExit("%s, %s, seed %d: %d configs match" % (opt, label, seed, len(ids)))
                if found:
                    vals.append((found[0]["accuracy"], len(dead(found[0]["recall"]))))
            if not vals:
                cells.append("—")
                continue
            acc = [v for v, _ in vals]
            spread = " ± %.4f" % statistics.stdev(acc) if len(acc) >= 2 else ""
            cells.append("%.4f%s (%s)" % (statistics.mean(acc), spread,
                                          ", ".join("%.4f/%d" % v for v in vals)))
        lines.append("| %s | %s |" % (opt, " | ".join(cells)))
    return "\n".join(lines)


def seeds():
    rs = runs("seeds")
    lines = ["| (seeds 0, 1, 2) | code: no attack | code: Little | text: no attack | text: Little |",
             "|---|---:|---:|---:|---:|"]
    for opt in OPTIMIZERS:
        cells = []
        for profile in ["code", "text"]:
            for a in ["No attack", "Little"]:
                vals = [r["accuracy"] for r in sorted(rs, key=lambda r: r["seed"])
                        if r["optimizer"] == opt and r["attack"] == a
                        and (r["config"].get("head") == "softmax_then_cross_entropy") == (profile == "code")]
                if len(vals) >= 2:
                    cells.append("%.4f ± %.4f (%s)" % (statistics.mean(vals), statistics.stdev(vals),
                                                      ", ".join("%.4f" % v for v in vals)))
                else:
                    cells.append(", ".join("%.4f" % v for v in vals) or "—")
        lines.append("| %s | %s |" % (opt, " | ".join(cells)))
    return "\n".join(lines)


REPORTED = [  # (reference, code profile's grid, text profile's grid, columns)
    ("table-4.1.csv", "mnist-homogeneous", "text-table-4.1",
     ["No attack", "Little", "Empire", "Sign Flip", "Label Flip", "Inf", "-Inf"]),
    ("table-4.2.csv", "mnist-heterogeneous", "text-table-4.2",
     ["No attack", "Little", "Empire", "Sign Flip", "Label Flip", "Inf"]),
]


def from_code_init():
    """Table 4.1's cells from the code's own initial weights (mnist-homogeneous-table-init) on
    the built-in engine and, when its store exists, through byzadam.torch
    (mnist-homogeneous-table-init-torch, written by `bt.grid`), beside the same cells from
    byzadam's draw (the code profile) and the thesis."""
    ref = reference("table-4.1.csv")
    drawn = by_cell(code_runs("mnist-homogeneous"))
    init = by_cell(runs("mnist-homogeneous-table-init"))
    torch_runs = by_cell(runs("mnist-homogeneous-table-init-torch"))
    if not init:
        return "(no store: byzadam grid configs/thesis-code/mnist-homogeneous-table-init.toml)"
    attacks = list(ATTACK_NAMES.values())
    lines = ["| | " + " | ".join(attacks) + " |", "|---|" + "---:|" * len(attacks)]
    counts = {"drawn": 0, "init": 0, "torch": 0}
    total = 0
    notes = []
    for opt in OPTIMIZERS:
        cells = []
        for a in attacks:
            if (opt, a) not in ref:
                cells.append("")
                continue
            acc, agg = ref[(opt, a)]
            d = drawn.get((opt, a, agg), {}).get("accuracy")
            r = init.get((opt, a, agg))
            i = r["accuracy"] if r else None
            t = torch_runs.get((opt, a, agg), {}).get("accuracy")
            total += 1
            marks = {}
            for key, x in (("drawn", d), ("init", i), ("torch", t)):
                ok = x is not None and abs(x - acc) <= CLOSE
                counts[key] += ok
                marks[key] = "" if ok or x is None else " ✗"
            if r and abs(i - acc) > CLOSE:
                notes.append("- %s, %s: thesis %.4f (%s), from the code's weights %s (torch %s), "
                             "from byzadam's draw %s; dead classes: %s" % (
                                 opt, a, acc, agg, fmt(i), fmt(t), fmt(d), dead_text(r["recall"])))
            cell = "%.4f %s<br>**%s**%s" % (acc, agg, fmt(i), marks["init"])
            if torch_runs:
                cell += "<br>_%s_%s" % (fmt(t), marks["torch"])
            cells.append(cell + "<br>%s%s" % (fmt(d), marks["drawn"]))
        lines.append("| %s | %s |" % (opt, " | ".join(cells)))
    summary = "Within %.2f of the thesis: %d of %d cells from the code's initial weights" % (
        CLOSE, counts["init"], total)
    if torch_runs:
        summary += " (%d of %d through byzadam.torch)" % (counts["torch"], total)
    summary += ", %d of %d from byzadam's draw.\n\n" % (counts["drawn"], total)
    return "\n".join(lines) + "\n\n" + summary + "\n".join(notes)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    for i, (table, code_grid, text_grid, attacks) in enumerate(REPORTED):
        t, close, total, far = three_columns(table, code_grid, text_grid, attacks)
        print("%s## Table %s\n\n" % ("\n" if i else "", table[6:9]) + t
              + "\n\nWithin %.2f of the thesis in the code's profile: %d of %d cells.\n" % (CLOSE, close, total))
        for f in far:
            print("- %s, %s: thesis %.4f (%s), code profile %s, text profile %s; dead classes: %s" % (
                f[0], f[1], f[2], f[3], fmt(f[4]), fmt(f[5]), f[6]))
    for table, grid, _, attacks in REPORTED:
        t, close, total, same_rule = every_aggregator(table, grid, attacks)
        print("\n## %s, every aggregator (code profile)\n\n%s\n" % (grid, t))
        print("byzadam's best within %.2f of the thesis's best: %d of %d cells; the thesis's best rule is also byzadam's best (or tied with it): %d of %d.\n"
              % (CLOSE, close, total, same_rule, total))
    print("\n## Table 4.1 from the code's initial weights\n\n" + from_code_init())
    print("\n## Ablation\n" + ablation())
    print("\n## The head alone, three seeds (accuracy/number of dead classes per seed)\n\n" + head_seeds())
    print("\n## Seeds\n\n" + seeds())
