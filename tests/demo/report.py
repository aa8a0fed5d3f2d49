#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the demo's measurements (results.jsonl, one JSON object a line, as
tests/demo/driver.py prints them) into results.csv, results.md and PNG plots
(gnuplot): PSS per instance and system memory per mode and instance count
(as the paper's Fig. 5 and 6), and memory saved over time by KSM and UPM.

  report.py RESULTS.jsonl... OUTDIR

Several files (one per model, as scripts/demo writes them) make one report.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import time

MiB = 1024 * 1024
NAMES = {"resnet50": "ResNet-50", "alexnet": "AlexNet", "resnet18": "ResNet-18"}
MODES = ["none", "upm-tensors", "upm-process", "upm-tenants", "upm-platform",
         "ksm-fast", "ksm-default"]
TITLES = {"none": "no merging", "upm-tensors": "UPM, model tensors",
          "upm-process": "UPM, whole process",
          "upm-tenants": "UPM, whole process, 2 tenants",
          "upm-platform": "UPM by the platform (upmctl)",
          "ksm-fast": "KSM, fastest", "ksm-default": "KSM, defaults"}
PAPER = {"resnet50": ("21.4%", "12%"), "alexnet": ("54.9%", "42%")}
# The paper's Fig. 5 (PSS per container, MB) and Fig. 6 (system memory above
# baseline, GB) at 1, 2, 4, 8 and 16 containers, without and with UPM, as
# published (../shared/reference/anchors.md); drawn beside ours.
PAPER_COUNTS = [1, 2, 4, 8, 16]
PAPER_PSS = {"resnet50": ([303.3, 298.0, 296.3, 295.0, 293.6],
                          [304.0, 263.2, 248.3, 231.5, 224.7]),
             "alexnet": ([397.4, 392.9, 390.1, 386.6, 388.3],
                         [393.4, 272.1, 211.1, 179.3, 164.9])}
PAPER_USED = {"resnet50": ([0.31, 0.63, 1.27, 2.56, 5.17],
                           [0.30, 0.55, 1.07, 2.05, 4.06]),
              "alexnet": ([0.38, 0.78, 1.57, 3.14, 6.38],
                          [0.40, 0.57, 0.89, 1.54, 2.87])}
COLUMNS = ["model", "instances", "mode", "used_mib", "saved_mib", "saved_pct",
           "pss_sum_mib", "pss_per_instance_mib", "cold_start_s",
           "madvise_s", "madvise_share_pct", "stable_s", "ksmd_cpu_s",
           "saved_10s_mib", "saved_60s_mib", "saved_cap_mib", "cap_s",
           "weights_mib", "residual_mib", "cgroup_min_mib", "cgroup_max_mib",
           "cgroup_sum_mib"]


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def load(paths):
    env, cold, modes = {}, {}, []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line)
                if r["kind"] == "env":
                    env = r
                elif r["kind"] == "cold":
                    cold[(r["model"], r["n"])] = r
                elif r["kind"] == "mode":
                    modes.append(r)
    return env, cold, modes


def rows(cold, modes):
    none = {(r["model"], r["n"]): r["used"] for r in modes if r["mode"] == "none"}
    out = []
    for r in modes:
        key = (r["model"], r["n"])
        c = cold.get(key, {})
        base = none.get(key)
        colds = c.get("cold", [])
        row = {"model": r["model"], "instances": r["n"], "mode": r["mode"],
               "used_mib": r["used"] / MiB,
               "pss_sum_mib": r["pss_sum"] / MiB,
               "pss_per_instance_mib": r["pss_mean"] / MiB,
               "cold_start_s": mean(colds),
               "stable_s": r.get("stable_s"),
               "ksmd_cpu_s": r.get("ksmd_cpu_s", 0.0),
               "weights_mib": c.get("weights", 0) / MiB}
        if base:
            # saved against the memory in use just before the advice (see
            # driver.py); used = no merging minus that saving
            ref = r.get("before", base) if r["mode"] != "none" else base
            saved = ref - r["used"]
            row["used_mib"] = (base - saved) / MiB
            row["saved_mib"] = saved / MiB
            row["saved_pct"] = 100.0 * saved / base
            row["residual_mib"] = (ref - base) / MiB
        if r["mode"].startswith("upm-") and r.get("madvise_s"):
            m = r["madvise_s"]
            row["madvise_s"] = mean(m)
            if len(colds) == len(m):
                row["madvise_share_pct"] = 100.0 * mean(
                    [a / (a + c) for a, c in zip(m, colds)])
        if r.get("cgroup"):
            cur = r["cgroup"]["current"]
            row["cgroup_min_mib"] = min(cur) / MiB
            row["cgroup_max_mib"] = max(cur) / MiB
            row["cgroup_sum_mib"] = sum(cur) / MiB
        if r.get("saved_at"):
            at = {float(k): v / MiB for k, v in r["saved_at"].items()}
            cap = max(at)
            row["saved_10s_mib"] = at.get(10.0)
            row["saved_60s_mib"] = at.get(60.0)
            row["saved_cap_mib"] = at[cap]
            row["cap_s"] = cap
        out.append(row)
    order = {m: i for i, m in enumerate(MODES)}
    out.sort(key=lambda x: (x["model"], x["instances"], order.get(x["mode"], 99)))
    return out


def fmt(v, digits=1):
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def write_csv(path, table):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for row in table:
            w.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v)
                        for k, v in row.items() if k in COLUMNS})


def write_md(path, env, cold, table):
    lines = []
    when = time.strftime("%Y-%m-%d %H:%M")
    lines.append(f"Run of {when}: kernel {env.get('kernel', '?')}, "
                 f"{env.get('cpus', '?')} vCPUs (QEMU TCG), "
                 f"{env.get('mem_total', 0) / 2**30:.1f} GiB guest memory; "
                 f"ksmd defaults {env.get('ksm_defaults', {})}.")
    lines.append("")
    lines.append("| model | n | mode | system memory MiB | saved | PSS/instance MiB "
                 "| cold start s | madvise s (share) | stable after s | ksmd CPU s "
                 "| KSM saved at 10 s / 60 s / cap MiB "
                 "| memory.current per container, min–max (sum) MiB |")
    lines.append("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in table:
        saved = (f"{fmt(r.get('saved_mib'), 0)} MiB ({fmt(r.get('saved_pct'))}%)"
                 if r["mode"] != "none" else "")
        madv = (f"{fmt(r.get('madvise_s'), 2)} ({fmt(r.get('madvise_share_pct'))}%)"
                if r.get("madvise_s") is not None else "")
        ksm = ""
        if r.get("cap_s"):
            ksm = (f"{fmt(r.get('saved_10s_mib'), 0)} / {fmt(r.get('saved_60s_mib'), 0)}"
                   f" / {fmt(r.get('saved_cap_mib'), 0)} ({r['cap_s']:.0f} s)")
        stable = fmt(r.get("stable_s")) if r.get("stable_s") is not None else "not by the cap"
        cg = ""
        if r.get("cgroup_min_mib") is not None:
            cg = (f"{fmt(r['cgroup_min_mib'], 0)}–{fmt(r['cgroup_max_mib'], 0)}"
                  f" ({fmt(r['cgroup_sum_mib'], 0)})")
        lines.append(f"| {NAMES.get(r['model'], r['model'])} | {r['instances']} | "
                     f"{TITLES.get(r['mode'], r['mode'])} | {fmt(r['used_mib'], 0)} | "
                     f"{saved} | {fmt(r['pss_per_instance_mib'], 0)} | "
                     f"{fmt(r['cold_start_s'])} | {madv} | {stable} | "
                     f"{fmt(r['ksmd_cpu_s'])} | {ksm} | {cg} |")
    lines.append("")
    for (model, n), c in sorted(cold.items()):
        lines.append(f"- {NAMES.get(model, model)}, {n} instances: weights "
                     f"{c['weights'] / MiB:.1f} MiB; cold start mean {mean(c['cold']):.1f} s "
                     f"(import {mean(c['import_s']):.1f}, load {mean(c['load_s']):.1f}, "
                     f"classify {mean(c['classify_s']):.1f}); starting all took "
                     f"{c['start_s']:.0f} s.")
    top = {}
    for r in table:
        if r["mode"] == "upm-process" and r["model"] in PAPER:
            if r["instances"] >= top.get(r["model"], {}).get("instances", 0):
                top[r["model"]] = r
    for model, r in sorted(top.items()):
        lines.append(f"- {NAMES[model]} at {r['instances']} instances, whole process: "
                     f"saves {fmt(r.get('saved_pct'))}% (paper, 16 containers: "
                     f"{PAPER[model][0]}); madvise {fmt(r.get('madvise_share_pct'))}% "
                     f"of the cold start (paper: {PAPER[model][1]}).")
    lines += targets(table)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def targets(table):
    """At each model's largest count: what the issue's targets compare. The
    whole-process and platform modes against KSM at its fastest (memory
    saved, and the CPU: all the madvise calls against ksmd's time), and two
    tenants against one."""
    out = []
    for model in sorted({r["model"] for r in table}):
        n = max(r["instances"] for r in table if r["model"] == model)
        at = {r["mode"]: r for r in table if (r["model"], r["instances"]) == (model, n)}
        fast = at.get("ksm-fast")
        for mode in ("upm-process", "upm-platform"):
            r = at.get(mode)
            if not r or r.get("saved_mib") is None:
                continue
            txt = f"- {NAMES.get(model, model)} x{n}, {TITLES[mode]}: saves {fmt(r['saved_pct'])}%"
            if fast and fast.get("saved_mib"):
                cpu = (r.get("madvise_s") or 0) * n
                txt += (f", {r['saved_mib'] / fast['saved_mib']:.2f}x what KSM at its fastest "
                        f"saved, in {cpu:.1f} s of madvise against {fmt(fast['ksmd_cpu_s'])} s "
                        f"of ksmd CPU")
                if cpu > 0:
                    txt += f" ({fast['ksmd_cpu_s'] / cpu:.1f}x less CPU)"
            out.append(txt + ".")
        one, two = at.get("upm-process"), at.get("upm-tenants")
        if n >= 2 and one and two and one.get("saved_mib") and \
                two.get("saved_mib") is not None:
            # Two tenants share n - 2 copies, one tenant n - 1.
            out.append(f"- {NAMES.get(model, model)} x{n}, two tenants of {(n + 1) // 2} and "
                       f"{n // 2} save {two['saved_mib'] / one['saved_mib']:.3f} of what one "
                       f"tenant of {n} saves (the target: at least {(n - 2) / (n - 1):.3f}).")
    return out


def plots(outdir, modes, table):
    gp = shutil.which("gnuplot")
    if not gp:
        print("report: gnuplot not found, no plots", file=sys.stderr)
        return
    present = [m for m in MODES if any(r["mode"] == m for r in table)]
    groups = sorted({(r["model"], r["instances"]) for r in table})
    dat = os.path.join(outdir, "bars.dat")
    with open(dat, "w") as f:
        f.write("# group " + " ".join(f"pss_{m} used_{m}" for m in present) +
                " paper_pss_none paper_used_none paper_pss_upm paper_used_upm\n")
        for model, n in groups:
            vals = []
            for m in present:
                r = next((x for x in table if (x["model"], x["instances"], x["mode"]) == (model, n, m)), None)
                vals += [f"{r['pss_per_instance_mib']:.1f}" if r else "NaN",
                         f"{r['used_mib'] / 1024:.3f}" if r else "NaN"]
            # the paper's (MB and GB, beside our MiB and GiB)
            at = PAPER_COUNTS.index(n) if n in PAPER_COUNTS else None
            for which in (0, 1):
                for fig in (PAPER_PSS, PAPER_USED):
                    vals.append(str(fig[model][which][at]) if model in fig and at is not None
                                else "NaN")
            f.write(f"\"{NAMES.get(model, model)} x{n}\" " + " ".join(vals) + "\n")
    colors = {"none": "#555555", "upm-tensors": "#9ecae1", "upm-process": "#3182bd",
              "upm-tenants": "#08519c", "upm-platform": "#6baed6",
              "ksm-fast": "#fdae6b", "ksm-default": "#e6550d"}
    common = ("set terminal pngcairo size 1300,600 font ',11'\n"
              "set style data histograms\nset style histogram cluster gap 1\n"
              "set style fill solid 0.9 border -1\nset boxwidth 0.9\n"
              "set key outside right top\nset grid ytics\nset yrange [0:*]\n")
    paper_col = 2 + 2 * len(present)
    for name, col0, ylabel, title in (
            ("fig5-pss.png", 2, "PSS per instance (MiB; paper: MB)", "PSS per instance (cf. paper Fig. 5)"),
            ("fig6-memory.png", 3, "system memory above idle (GiB; paper: GB)", "System memory used (cf. paper Fig. 6)")):
        parts = []
        for i, m in enumerate(present):
            c = col0 + 2 * i
            parts.append(f"'{dat}' using {c}:xtic(1) title '{TITLES[m]}' lc rgb '{colors[m]}'")
        off = col0 - 2
        parts.append(f"'{dat}' using {paper_col + off} title 'paper: no UPM' "
                     "fs pattern 4 border -1 lc rgb '#555555'")
        parts.append(f"'{dat}' using {paper_col + 2 + off} title 'paper: UPM' "
                     "fs pattern 4 border -1 lc rgb '#3182bd'")
        script = common + (f"set output '{os.path.join(outdir, name)}'\n"
                           f"set title '{title}'\nset ylabel '{ylabel}'\n"
                           "plot " + ", ".join(parts) + "\n")
        subprocess.run([gp], input=script, text=True, check=True)
    # memory saved over time at the largest count, per model
    series = []
    for model in sorted({r["model"] for r in modes}):
        n = max(r["n"] for r in modes if r["model"] == model)
        none = next((r for r in modes if (r["model"], r["n"], r["mode"]) == (model, n, "none")), None)
        if not none:
            continue
        for r in modes:
            if (r["model"], r["n"]) != (model, n) or r["mode"] == "none":
                continue
            path = os.path.join(outdir, f"series-{model}-{r['mode']}.dat")
            with open(path, "w") as f:
                for t, u in r["series"]:
                    f.write(f"{t} {(r.get('before', none['used']) - u) / MiB:.1f}\n")
            series.append((path, f"{NAMES.get(model, model)} x{n}, {TITLES[r['mode']]}",
                           colors[r["mode"]], 1 if model == "alexnet" else 2))
    if series:
        parts = [f"'{p}' using 1:2 with lines lw 2 dt {dt} lc rgb '{c}' title '{t}'"
                 for p, t, c, dt in series]
        script = ("set terminal pngcairo size 1100,600 font ',11'\n"
                  f"set output '{os.path.join(outdir, 'saved-over-time.png')}'\n"
                  "set title 'Memory saved over time after the advice (all instances warm)'\n"
                  "set xlabel 'seconds since the first madvise'\n"
                  "set ylabel 'saved vs. no merging (MiB)'\nset key outside right\n"
                  "set grid\nplot " + ", ".join(parts) + "\n")
        subprocess.run([gp], input=script, text=True, check=True)


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    *srcs, outdir = argv
    env, cold, modes = load(srcs)
    table = rows(cold, modes)
    os.makedirs(outdir, exist_ok=True)
    write_csv(os.path.join(outdir, "results.csv"), table)
    write_md(os.path.join(outdir, "results.md"), env, cold, table)
    plots(outdir, modes, table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
