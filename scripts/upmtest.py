#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Test results for UPM: scan a guest console for kernel reports, turn the
guest suite's output into test cases, run the host-side tests, and print the
summary that `make test` ends with.

  upmtest.py scan CONSOLE_LOG
  upmtest.py host-tests                      (TAP on stdout)
  upmtest.py summary [--tap PREFIX=FILE]...
                     [--run KERNEL GUEST_OUTPUT VM_STATUS CONSOLE_LOG]...
"""
import argparse
import re
import sys
import unittest
from pathlib import Path

# Kernel reports that fail a run. Order matters: the first match names a line.
REPORTS = [
    ("KASAN", re.compile(r"BUG: KASAN: ")),
    ("KFENCE", re.compile(r"BUG: KFENCE: ")),
    ("UBSAN", re.compile(r"UBSAN: ")),
    ("lockdep", re.compile(
        r"WARNING: (possible (recursive|circular|irq)|inconsistent lock state"
        r"|suspicious RCU usage|bad unlock balance|held lock freed"
        r"|lock held when returning|nested lock)")),
    ("lockdep", re.compile(r"INFO: possible (recursive|circular|irq) ")),
    ("hung task", re.compile(r"INFO: task \S+ blocked for more than")),
    ("RCU stall", re.compile(r"rcu: INFO: \S+ (self-)?detected stall")),
    ("RCU stall", re.compile(r"rcu_\w+ (self-)?detected stalls? on")),
    ("soft lockup", re.compile(r"BUG: soft lockup")),
    ("kmemleak", re.compile(r"kmemleak: \d+ new suspected memory leaks")),
    ("BUG", re.compile(r"(kernel BUG at |BUG: )")),
    ("oops", re.compile(r"(Oops: |general protection fault|"
                        r"Unable to handle kernel|stack-protector: Kernel)")),
    ("panic", re.compile(r"Kernel panic - not syncing")),
    ("WARNING", re.compile(r"WARNING: (CPU: \d+ PID: \d+|at )")),
]


def scan_console(text):
    """Return [(kind, line)] for every kernel report in a console log."""
    found = []
    for line in text.splitlines():
        for kind, pattern in REPORTS:
            if pattern.search(line):
                found.append((kind, line.strip()))
                break
    return found


TAP_CASE = re.compile(
    r"^(not )?ok\b(?: \d+)?(?: -)?\s*(.*?)\s*(?:(?<=\s)#\s*(SKIP|TODO)\b\s*(.*))?$",
    re.IGNORECASE)
PLAN = re.compile(r"^1\.\.(\d+)")
SKIP_ALL = re.compile(r"^1\.\.0\s*#\s*SKIP\b\s*(.*)$", re.IGNORECASE)
BEGIN = re.compile(r"^### UPM-BEGIN (tap|plain) (.+)$")
END = re.compile(r"^### UPM-END (.+) rc=(-?\d+)$")
KSFT_SKIP = 4


def parse_tap(lines, prefix):
    """Return [(status, name, detail)] from TAP lines; status is PASS, FAIL
    or SKIP. Indented (nested) lines are diagnostics."""
    cases = []
    seen = set()
    for line in lines:
        m = TAP_CASE.match(line.rstrip("\r\n"))
        if not m:
            continue
        bad, name, directive, reason = m.groups()
        if not name and reason:	# kselftest's "ok N # SKIP reason"
            name, reason = reason, ""
        name = f"{prefix}{name.strip()}".replace("\\#", "#")	# TAP escape
        if name in seen:	# keep repeated descriptions apart
            name = f"{name} (#{len(cases) + 1})"
        seen.add(name)
        if directive and directive.upper() == "SKIP":
            cases.append(("SKIP", name, reason or ""))
        elif bad and not (directive and directive.upper() == "TODO"):
            cases.append(("FAIL", name, ""))
        else:
            cases.append(("PASS", name, ""))
    return cases


def parse_guest(text):
    """Turn the guest runner's output into cases. Each program is framed by
    '### UPM-BEGIN tap|plain NAME' and '### UPM-END NAME rc=N'. A TAP program
    gives its own cases; a plain one gives one case from its exit status
    (0 pass, 4 skip). A program that exits non-zero without reporting a
    failure, reports fewer cases than planned, or never ends, fails."""
    cases = []
    current = None
    for line in text.splitlines():
        line = line.rstrip("\r")
        m = BEGIN.match(line)
        if m:
            current = {"kind": m.group(1), "name": m.group(2), "lines": []}
            continue
        m = END.match(line)
        if m and current and m.group(1) == current["name"]:
            cases.extend(_program_cases(current, int(m.group(2))))
            current = None
            continue
        if current:
            current["lines"].append(line)
    if current:
        cases.extend(_program_cases(current, None))
    return cases


def _program_cases(prog, rc):
    name = prog["name"]
    if rc is None:
        got = (parse_tap(prog["lines"], f"{name}: ")
               if prog["kind"] == "tap" else [])
        return got + [("FAIL", name, "did not finish (guest crashed or timed out)")]
    if prog["kind"] == "plain":
        if rc == 0:
            return [("PASS", name, "")]
        if rc == KSFT_SKIP:
            reason = next((l for l in reversed(prog["lines"]) if l.strip()), "")
            return [("SKIP", name, reason.strip())]
        return [("FAIL", name, f"exit status {rc}")]
    cases = parse_tap(prog["lines"], f"{name}: ")
    plans = [int(m.group(1)) for m in map(PLAN.match, prog["lines"]) if m]
    # "1..0 # SKIP why": the whole program skipped, as kselftest's
    # ksft_exit_skip() says it before any plan (exit status 4).
    whole = [m.group(1) for m in map(SKIP_ALL.match, prog["lines"]) if m]
    if whole and not cases and rc == KSFT_SKIP:
        return [("SKIP", name, whole[-1].strip())]
    if plans and len(cases) < plans[-1]:
        cases.append(("FAIL", name,
                      f"reported {len(cases)} of {plans[-1]} planned cases"))
    if rc not in (0, KSFT_SKIP) and not any(c[0] == "FAIL" for c in cases):
        cases.append(("FAIL", name, f"exit status {rc}"))
    if not cases:
        cases.append(("FAIL", name, "reported no test case"))
    return cases


def guest_run_cases(kernel, output, status, console):
    """Cases of one guest suite run: the programs' own, whether the suite
    ran to completion, and whether the console stayed clean."""
    tag = "guest" if kernel == "default" else f"guest[{kernel}]"
    text = output.read_text(errors="replace") if output.exists() else ""
    cases = [(s, f"{tag}/{n}", d) for s, n, d in parse_guest(text)]
    if status:
        why = {124: "timed out", 125: "crashed"}.get(status, f"exit status {status}")
        cases.append(("FAIL", f"{tag}: suite ran to completion", why))
    else:
        cases.append(("PASS", f"{tag}: suite ran to completion", ""))
    found = (scan_console(console.read_text(errors="replace"))
             if console.exists() else [("missing", str(console))])
    for kind, line in found:
        print(f"# {tag} console: {kind}: {line}")
    cases.append(("FAIL" if found else "PASS",
                  f"{tag} console: no oops, BUG, WARNING, KASAN, UBSAN, "
                  "lockdep, RCU-stall or hung-task report",
                  f"{len(found)} report line(s) in {console}" if found else ""))
    return cases


def summarize(cases):
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for status, name, detail in cases:
        counts[status] += 1
        print(f"{status:4}  {name}" + (f"  ({detail})" if detail else ""))
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, "
          f"{counts['SKIP']} skipped")
    return counts["FAIL"]


class _TapResult(unittest.TextTestResult):
    """Prints one TAP line per host test."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.n = 0

    def _line(self, test, word, extra=""):
        self.n += 1
        doc = test.shortDescription() or test.id().split(".")[-1]
        name = f"{test.id().split('.')[-2]}: {doc}".replace("#", "\\#")
        print(f"{word} {self.n} - {name}{extra}", flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(test, "not ok")

    def addError(self, test, err):
        super().addError(test, err)
        self._line(test, "not ok")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(test, "ok", f" # SKIP {reason}")


def host_tests():
    top = Path(__file__).resolve().parent.parent
    suite = unittest.defaultTestLoader.discover(str(top / "tests" / "host"),
                                                top_level_dir=str(top / "tests" / "host"))
    runner = unittest.TextTestRunner(stream=sys.stderr, resultclass=_TapResult,
                                     verbosity=0)
    print(f"1..{suite.countTestCases()}", flush=True)
    result = runner.run(suite)
    return 0 if result.wasSuccessful() else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scan")
    s.add_argument("log")
    sub.add_parser("host-tests")
    s = sub.add_parser("summary")
    s.add_argument("--tap", action="append", default=[], metavar="PREFIX=FILE")
    s.add_argument("--run", action="append", nargs=4, default=[],
                   metavar=("KERNEL", "OUTPUT", "STATUS", "CONSOLE"),
                   help="one guest suite run: kernel build name, its output, "
                   "scripts/vm's exit status and the console log")
    args = ap.parse_args()

    if args.cmd == "scan":
        found = scan_console(Path(args.log).read_text(errors="replace"))
        for kind, line in found:
            print(f"{kind}: {line}")
        return 1 if found else 0
    if args.cmd == "host-tests":
        return host_tests()

    cases = []
    for spec in args.tap:
        prefix, _, path = spec.partition("=")
        p = Path(path)
        if p.exists():
            cases += parse_tap(p.read_text(errors="replace").splitlines(), prefix)
        else:
            cases.append(("FAIL", prefix.rstrip("/: "), f"{path} missing"))
    for kernel, output, status, console in args.run:
        cases += guest_run_cases(kernel, Path(output), int(status), Path(console))
    return 1 if summarize(cases) else 0


if __name__ == "__main__":
    sys.exit(main())
