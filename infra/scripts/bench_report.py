#!/usr/bin/env python3
"""Writes the figures `make bench` measured into BENCHMARKS.md, between its generated markers.

Usage: bench_report.py BENCHMARKS.md [--criterion] [--functions FILE] [--size FILE]

Each part replaces only its own section (`<!-- generated: NAME -->` ... `<!-- end: NAME -->`),
so one part can be measured again without the others; the hand-written text around the
sections explains them.
"""

import datetime
import glob
import json
import os
import platform
import re
import subprocess
import sys


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f", {kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{platform.machine()}, {cpu}, {os.cpu_count()} cores{mem}, "
        f"{platform.system()} {platform.release()}, {rustc}; "
        f"measured {datetime.date.today().isoformat()}"
    )


def criterion(root: str = "target/criterion") -> str:
    rows = []
    for path in sorted(glob.glob(f"{root}/**/new/benchmark.json", recursive=True)):
        with open(path) as f:
            bench = json.load(f)
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
            est = json.load(f)
        median = est["median"]
        ns = median["point_estimate"]
        lo, hi = median["confidence_interval"]["lower_bound"], median["confidence_interval"]["upper_bound"]
        group, function = bench["group_id"], bench.get("function_id") or ""
        if not function and "/" in group:
            group, function = group.split("/", 1)
        rows.append((group, function, ns, lo, hi))
    if not rows:
        raise SystemExit(f"no criterion results under {root}: run the benches first")

    def fmt(ns: float) -> str:
        return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"

    out = ["| group | benchmark | median | 95% interval |", "|---|---|---|---|"]
    for group, function, ns, lo, hi in rows:
        out.append(f"| {group} | {function} | **{fmt(ns)}** | {fmt(lo)} – {fmt(hi)} |")
    return "\n".join(out)


def replace(doc: str, name: str, body: str) -> str:
    pattern = re.compile(
        rf"(<!-- generated: {re.escape(name)} -->\n).*?(\n<!-- end: {re.escape(name)} -->)", re.S
    )
    if not pattern.search(doc):
        raise SystemExit(f"BENCHMARKS.md has no generated section {name!r}")
    return pattern.sub(lambda m: m.group(1) + body.strip() + m.group(2), doc)


def main() -> None:
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    path, rest = args[0], args[1:]
    with open(path) as f:
        doc = f.read()
    i = 0
    while i < len(rest):
        flag = rest[i]
        if flag == "--criterion":
            doc = replace(doc, "criterion", f"_{machine()}_\n\n{criterion()}")
            i += 1
        elif flag in ("--functions", "--size"):
            with open(rest[i + 1]) as f:
                body = f.read()
            doc = replace(doc, flag[2:], f"_{machine()}_\n\n{body}")
            i += 2
        else:
            raise SystemExit(__doc__)
    with open(path, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    main()
