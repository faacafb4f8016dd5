#!/usr/bin/env python3
"""Renders the runs of scripts/bench-faults.sh into docs/faults.md, between its faults markers."""
import csv, json, os, re, sys

work, out, only = sys.argv[1], sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else "")

def rounds(name):
    with open(os.path.join(work, name, "rounds.csv")) as f:
        return list(csv.DictReader(f))

def final(name):
    return json.load(open(os.path.join(work, name, "summary.json")))["final_test_accuracy"]

def faults_conf(name):
    text = open(os.path.join(work, name + ".conf")).read()
    m = re.search(r"faults = \[ (.*) \]", text)
    return m.group(1).strip() if m and m.group(1).strip() else "—"

def did(name):
    rs = rounds(name)
    counted = ", ".join(f"{r['succeeded']}/{r['sampled']}" for r in rs)
    reasons = []
    for r in rs:
        for item in filter(None, (x.strip() for x in r["rejected"].split(";"))):
            client, _, reason = item.partition(": ")
            reason = re.sub(r"round \d+", "round r", reason)
            reason = re.sub(r"current \d+", "current r", reason)
            reason = re.sub(r" in round \d+", "", reason)
            reason = re.sub(r"update norm [\d.e+-]+", "update norm n", reason)
            reason = re.sub(r"median \([\d.e+-]+\)", "median (m)", reason)
            key = f"{client}: {reason}"
            if key not in reasons:
                reasons.append(key)
    fired = sum(1 for r in rs for x in r["faults"].split(";") if x.strip())
    text = f"counted per round {counted}; {fired} faults fired"
    if reasons:
        text += "; rejected: " + "; ".join(reasons[:3]) + ("; …" if len(reasons) > 3 else "")
    return text.replace("|", "\\|")

def replace(doc, marker, body):
    begin, end = f"<!-- faults:{marker}:begin -->", f"<!-- faults:{marker}:end -->"
    i, j = doc.index(begin) + len(begin), doc.index(end)
    return doc[:i] + "\n" + body + doc[j:]

doc = open(out).read()
if only in ("", "survive"):
    rows = ["| fault (`fedavg.faults` entry) | strategy | what the run did | final accuracy | fault-free, same seed |",
            "|---|---|---|---|---|"]
    for name in ["crash", "stop", "delay", "stall", "drop", "twice", "stale", "nan", "inf", "wrong-length",
                 "samples-0", "samples-1e6", "scale100-fedavg", "scale100-fedavg-norm", "scale100-median"]:
        strategy = "median" if name.endswith("median") else "fedavg"
        base = "none-median" if strategy == "median" else "none"
        label = strategy + (", `--max-update-norm 3`" if name.endswith("-norm") else "")
        rows.append(f"| `{faults_conf(name)}` | {label} | {did(name)} | {final(name):.4f} | {final(base):.4f} |")
    doc = replace(doc, "survive", "\n".join(rows) + "\n")
if only in ("", "byzantine"):
    strategies = ["fedavg", "median", "trimmed-mean", "krum", "multi-krum", "bulyan"]
    seeds = [1, 2]
    base = {seed: final(f"b-none-fedavg-s{seed}") for seed in seeds}
    rows = ["| attack (20% of 50 clients) | " + " | ".join(strategies) + " |", "|---|" + "---|" * len(strategies)]
    agg = {}
    for attack in ["sign-flip", "scale10", "noise1"]:
        cells = []
        for s in strategies:
            accs = [final(f"b-{attack}-{s}-s{seed}") for seed in seeds]
            mean_diff = sum(a - base[seed] for a, seed in zip(accs, seeds)) / len(seeds)
            cells.append(" / ".join(f"{a:.4f}" for a in accs) + f" ({mean_diff:+.4f})")
            for seed in seeds:
                agg.setdefault(s, []).extend(float(r["aggregation_s"]) for r in rounds(f"b-{attack}-{s}-s{seed}"))
        label = {"sign-flip": "sign-flip", "scale10": "scale:10", "noise1": "noise:1"}[attack]
        rows.append(f"| `{label}` | " + " | ".join(cells) + " |")
    rows.append("")
    rows.append("Each cell: seed 1 / seed 2, in brackets the mean difference to fault-free FedAvg of the same seed, "
                + " and ".join(f"**{base[seed]:.4f}** (seed {seed})" for seed in seeds) + ".")
    rows.append("")
    rows.append("| strategy | mean aggregation time per round (s), 50 updates of 199,210 weights |")
    rows.append("|---|---|")
    for s in strategies:
        mean = sum(agg[s]) / len(agg[s])
        rows.append(f"| {s} | {mean:.4f} |")
    doc = replace(doc, "byzantine", "\n".join(rows) + "\n")
if only in ("", "noniid"):
    last = len(rounds("n-fedavg"))
    rows = [f"| strategy | rounds to 0.95 | final accuracy (round {last}) |", "|---|---|---|"]
    for s, label in [("fedavg", "fedavg"), ("fedprox", "fedprox (μ 0.01)"), ("fedavgm", "fedavgm (lr 1, momentum 0.9)"),
                     ("fedadam", "fedadam (η 0.01, η_l 0.05, τ 0.001)")]:
        rs = rounds(f"n-{s}")
        reached = next((r["round"] for r in rs if float(r["test_accuracy"]) >= 0.95), f"not in {len(rs)}")
        rows.append(f"| {label} | {reached} | {final(f'n-{s}'):.4f} |")
    doc = replace(doc, "noniid", "\n".join(rows) + "\n")
open(out, "w").write(doc)
