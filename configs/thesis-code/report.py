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
        })
    return out


def reference(table):
    return {(r["optimizer"], r["attack"]): (float(r["accuracy"]), r["aggregator"])
            for r in csv.DictReader(open(TABLES / table))}


def by_cell(rs, seed=0):
    return {(r["optimizer"], r["attack"]): r for r in rs if r["seed"] == seed}


def fmt(x):
    return "—" if x is None else ("%.4f" % x)


def dead(recall):
    return [c for c, v in enumerate(recall) if v == v and v < 0.05]


def three_columns(table, code_grid, text_grid, attacks):
    ref = reference(table)
    code, text = by_cell(runs(code_grid)), by_cell(runs(text_grid))
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
            c = code.get((opt, a), {}).get("accuracy")
            t = text.get((opt, a), {}).get("accuracy")
            mark = ""
            if c is not None:
                total += 1
                if abs(c - acc) <= CLOSE:
                    close += 1
                else:
                    mark = " ✗"
                    recall = code[(opt, a)]["recall"]
                    far.append((opt, a, acc, agg, c, t,
                                ", ".join(map(str, dead(recall))) or "none" if recall else "not recorded"))
            cells.append("%.4f %s<br>**%s**%s<br>%s" % (acc, agg, fmt(c), mark, fmt(t)))
        lines.append("| %s | %s |" % (opt, " | ".join(cells)))
    return "\n".join(lines), close, total, far


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


def ablation():
    """The ablation's runs, each named by the variant of generate.py whose keys it has."""
    import tomllib
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
            want = tomllib.loads("".join("%s = %s\n" % (k, v) for k, v in keys.items() if v is not None))
            absent = [k for k, v in keys.items() if v is None]
            found = [r for r in rs if r["optimizer"] == opt
                     and all(same(v, r["config"].get(k)) for k, v in want.items())
                     and all(r["config"].get(k) is None for k in absent)]
            name = "**%s profile**" % label if label in ("code", "text") else label
            if not found:
                out.append("| %s | not run | | |" % name)
                continue
            r = found[0]
            out.append("| %s | %.4f | %s | %s |" % (
                name, r["accuracy"], ", ".join(map(str, dead(r["recall"]))) or "none",
                " ".join("%.2f" % v for v in r["recall"])))
    return "\n".join(out)


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


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    t1, c1, n1, far1 = three_columns("table-4.1.csv", "mnist-homogeneous-table", "text-table-4.1",
                                     ["No attack", "Little", "Empire", "Sign Flip", "Label Flip", "Inf", "-Inf"])
    print("## Table 4.1\n\n" + t1 + "\n\nWithin %.2f of the thesis in the code's profile: %d of %d cells.\n" % (CLOSE, c1, n1))
    for f in far1:
        print("- %s, %s: thesis %.4f (%s), code profile %s, text profile %s; dead classes: %s" % (
            f[0], f[1], f[2], f[3], fmt(f[4]), fmt(f[5]), f[6]))
    t2, c2, n2, far2 = three_columns("table-4.2.csv", "mnist-heterogeneous-table", "text-table-4.2",
                                     ["No attack", "Little", "Empire", "Sign Flip", "Label Flip", "Inf"])
    print("\n## Table 4.2\n\n" + t2 + "\n\nWithin %.2f of the thesis in the code's profile: %d of %d cells.\n" % (CLOSE, c2, n2))
    for f in far2:
        print("- %s, %s: thesis %.4f (%s), code profile %s, text profile %s; dead classes: %s" % (
            f[0], f[1], f[2], f[3], fmt(f[4]), fmt(f[5]), f[6]))
    print("\n## Ablation\n" + ablation())
    print("\n## Seeds\n\n" + seeds())
