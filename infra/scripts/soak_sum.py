#!/usr/bin/env python3
"""Sums the tables of many `eddo-local soak` runs (one file per seed) into one: flows by
function, faults by kind and boundary, dead-lettered and identical republications, the deploy
builds in each project the policy named, and every violation with its seed. Exit 1 if any, or
if any run did not end (a run that did not report proved nothing), or if there was none."""

import collections
import pathlib
import re
import sys

ROW = re.compile(r"^\| (\d+) \| ([a-z-]+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", re.M)
FAULT = re.compile(r"^\| ([^|]+) \| (\d+) \|$", re.M)
DEPLOYS = re.compile(r"(\d+) in (\S+), (\d+) in (\S+)$")


def main(folder: str) -> int:
    flows, dead, copies = collections.Counter(), collections.Counter(), collections.Counter()
    faults, deploys = collections.Counter(), collections.Counter()
    violations, seeds, unfinished = [], 0, []
    for path in sorted(pathlib.Path(folder).glob("seed-*.log")):
        text = path.read_text()
        if "| fault | injected |" not in text:
            print(f"{path.name}: no report (the run did not end)", file=sys.stderr)
            unfinished.append(path.stem)
            continue
        seeds += 1
        for m in ROW.finditer(text):
            flows[m[2]] += int(m[3])
            dead[m[2]] += int(m[7])
            copies[m[2]] += int(m[8])
        section = text.split("| fault | injected |")[1].split("\n\n")[0]
        for m in FAULT.finditer(section):
            faults[m[1].strip()] += int(m[2])
        for line in text.splitlines():
            if line.startswith("VIOLATION"):
                violations.append(f"{path.stem}: {line}")
            if "deploy builds:" in line and (m := DEPLOYS.search(line)):
                deploys[m[2]] += int(m[1])
                deploys[m[4]] += int(m[3])
    print(f"{seeds} seeds, {sum(flows.values()):,} flows\n")
    print("| function | flows | dead-lettered, then redriven | identical republications |")
    print("|---|---|---|---|")
    for f in flows:
        print(f"| {f} | {flows[f]:,} | {dead[f]:,} | {copies[f]:,} |")
    print("\n| fault | injected |\n|---|---|")
    for kind, n in sorted(faults.items()):
        print(f"| {kind} | {n:,} |")
    if deploys:
        print("\ndeploy builds: " + ", ".join(f"{n:,} in {p}" for p, n in deploys.items()))
    print(f"\nviolations: {len(violations)}")
    for v in violations:
        print(v)
    if unfinished:
        print(f"unfinished: {len(unfinished)} ({', '.join(unfinished)}): see their .err")
    return 1 if violations or unfinished or seeds == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
