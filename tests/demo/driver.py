#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The demo's measuring side; runs in the guest (scripts/demo boots it).

For each model it starts warm instances of tests/demo/function.py (PARALLEL
cold starts at a time) until COUNT are running, and for each COUNT measures
every mode on that same set in turn:
  none         nothing advised (the instances as they came up)
  upm-tensors  each instance, in start order, calls MADV_UPM on its model's
               tensors (what the first one advises becomes the KSM pages the
               later ones merge with)
  upm-process  the same over every private anonymous region of the process
  upm-tenants  upm-process with the first half of the instances in one merge
               domain and the rest in another
  upm-platform the functions do nothing: the platform runs `upmctl merge PID`
               on each instance in turn (process_madvise over every private
               anonymous region)
  ksm-fast     MADV_MERGEABLE over every private anonymous region, ksmd with
               sleep_millisecs=0 and a large pages_to_scan, until memory is
               stable (or --fast-cap)
  ksm-default  the same with ksmd at its boot defaults, for --ksm-cap seconds
Between modes every instance calls MADV_UNMERGEABLE on all its private
anonymous regions, which gives each mapping its own copy of every merged page
again, and ksmd is stopped; the driver checks that KSM holds no pages before
the next mode starts.

Output: progress lines, and one '@DATA {json}' line per measurement.
"""
import argparse
import json
import os
import selectors
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FUNCTION = os.path.join(HERE, "function.py")
KSM = "/sys/kernel/mm/ksm"
UPM = "/sys/kernel/mm/upm"
T0 = time.monotonic()
MiB = 1024 * 1024


def log(msg):
    t = int(time.monotonic() - T0)
    print(f"[{t // 60:3d}:{t % 60:02d}] {msg}", flush=True)


def data(**kw):
    print("@DATA " + json.dumps(kw, sort_keys=True), flush=True)


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            out[k] = int(v.split()[0]) * 1024
    return out


def pcp_free_bytes():
    """Free pages parked on the per-cpu lists (/proc/zoneinfo "count:"),
    which MemAvailable leaves out: the duplicates a merge just freed often
    sit there, tens of MiB on this guest."""
    pages = 0
    with open("/proc/zoneinfo") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "count:":
                pages += int(parts[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def used_bytes():
    m = meminfo()
    return m["MemTotal"] - m["MemAvailable"] - pcp_free_bytes()


def pss_bytes(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def sysfs(path, value=None):
    if value is None:
        with open(path) as f:
            return int(f.read().split()[0])
    with open(path, "w") as f:
        f.write(str(value))
    return value


def upm_counters():
    """UPM's counters: the files of /sys/kernel/mm/upm holding one integer
    (not default_domain or the per-domain table, domains)."""
    out = {}
    for k in os.listdir(UPM) if os.path.isdir(UPM) else ():
        try:
            with open(f"{UPM}/{k}") as f:
                out[k] = int(f.read())
        except (OSError, ValueError):
            pass
    return out


def sysfs_write_str(path, value):
    with open(path, "w") as f:
        f.write(value)


def ksm(name, value=None):
    return sysfs(f"{KSM}/{name}", value)


def ksmd_cpu_s():
    """ksmd's CPU time so far, seconds."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "ksmd":
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return 0.0


def upmctl_merge(upmctl, pid):
    """`upmctl --json merge PID`: what an instance's advice would report."""
    r = subprocess.run([upmctl, "--json", "merge", str(pid)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"upmctl merge {pid}: status {r.returncode}: {r.stderr}")
    (m,) = json.loads(r.stdout)["merged"]
    return {"bytes": m["bytes_advised"], "seconds": m["seconds"]}


def drop_caches():
    os.sync()
    sysfs("/proc/sys/vm/drop_caches", 3)


CGROOT = "/sys/fs/cgroup"
CGDEMO = f"{CGROOT}/upm-demo"


def cgroup_setup():
    """cgroup v2 with the memory controller for the containers' cgroups,
    under CGDEMO; what a container runtime finds set up by its init."""
    if not os.path.exists(f"{CGROOT}/cgroup.controllers"):
        os.makedirs(CGROOT, exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup2", "cgroup2", CGROOT], check=True)
    for cg in (CGROOT, CGDEMO):
        os.makedirs(cg, exist_ok=True)
        with open(f"{cg}/cgroup.subtree_control") as f:
            if "memory" in f.read().split():
                continue
        sysfs_write_str(f"{cg}/cgroup.subtree_control", "+memory")


NAMESPACES = ("mnt", "pid", "ipc", "uts")


def namespaces(pid="self"):
    """The namespaces a process is in, as /proc names them ("pid:[4026...]")."""
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def cgroup_of(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        return f.read().strip()


def cgroup_memory(cg):
    """memory.current and memory.stat's anon, file and kernel of a cgroup,
    bytes."""
    out = {"current": sysfs(f"{cg}/memory.current")}
    with open(f"{cg}/memory.stat") as f:
        for line in f:
            k, v = line.split()
            if k in ("anon", "file", "kernel"):
                out[k] = int(v)
    return out


class Instance:
    """One function instance. With containers (the default) it runs as a
    container runtime would start it: in its own memory cgroup, and through
    unshare(1) in its own mount, PID, IPC and UTS namespaces, with its own
    /proc and host name; its pid here is that of its process in our PID
    namespace, found in its cgroup."""

    def __init__(self, model, weights, image, index, containers=True):
        self.index = index
        self.name = f"{model}-{index}"
        self.cgroup = None
        self.t_spawn = time.monotonic()
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        self.err = open(f"/tmp/instance-{self.name}.err", "w+")
        cmd = [sys.executable, FUNCTION, "serve", model, weights, image]
        enter = None
        if containers:
            self.cgroup = f"{CGDEMO}/{self.name}"
            if os.path.isdir(self.cgroup):
                os.rmdir(self.cgroup)
            os.mkdir(self.cgroup)
            procs = f"{self.cgroup}/cgroup.procs"

            def enter():
                sysfs_write_str(procs, str(os.getpid()))
            cmd = ["unshare", "--mount", "--uts", "--ipc", "--pid", "--fork",
                   "--kill-child", "--mount-proc", "--", "/bin/sh", "-c",
                   'hostname "$0" && exec "$@"', self.name] + cmd
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                text=True, bufsize=1, env=env, preexec_fn=enter)
        except (OSError, subprocess.SubprocessError):
            self.err.close()
            if self.cgroup:
                os.rmdir(self.cgroup)
            raise
        self.ready = None
        self._pid = None if containers else self.proc.pid

    @property
    def pid(self):
        """The function's process: in a container, the one of its cgroup
        that is not unshare(1) itself."""
        if self._pid is None:
            with open(f"{self.cgroup}/cgroup.procs") as f:
                # a pid may be listed twice (cgroup v2 does not sort them)
                pids = sorted({int(p) for p in f.read().split()} - {self.proc.pid})
            if len(pids) != 1:
                raise RuntimeError(f"container {self.name}: processes {pids}")
            self._pid = pids[0]
        return self._pid

    def memory(self):
        """The container's memory cgroup figures, or None without one."""
        return cgroup_memory(self.cgroup) if self.cgroup else None

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.err.seek(0)
            raise RuntimeError(f"instance {self.index} died:\n{self.err.read()[-3000:]}")
        return json.loads(line)

    def call(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        r = self.read()
        if not r.get("ok"):
            raise RuntimeError(f"instance {self.index}: {cmd}: {r}")
        return r

    def stop(self):
        try:
            self.call("exit")
        except (RuntimeError, BrokenPipeError, OSError):
            pass
        self.proc.wait()
        self.err.close()
        if self.cgroup:
            try:
                os.rmdir(self.cgroup)
            except OSError:
                pass


class Sampler:
    """Samples used memory (and KSM's counters) every interval seconds in a
    thread, from the moment it is started."""

    def __init__(self, interval=0.5):
        self.interval = interval
        self.samples = []	# (seconds, used bytes, pages_sharing, full_scans)
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self):
        self.t0 = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.thread.join()

    def run(self):
        while True:
            self.samples.append((time.monotonic() - self.t0, used_bytes(),
                                 ksm("pages_sharing"), ksm("full_scans")))
            if self.stop_ev.wait(self.interval):
                return

    def now(self):
        return time.monotonic() - self.t0

    def used_at(self, t):
        """used memory of the last sample at or before t seconds"""
        best = self.samples[0][1]
        for s in list(self.samples):
            if s[0] > t:
                break
            best = s[1]
        return best

    def plateau(self, window, tol):
        """True when the samples of the last window seconds differ by at
        most tol bytes."""
        s = list(self.samples)
        if not s or s[-1][0] < window:
            return False
        recent = [u for t, u, *_ in s if t >= s[-1][0] - window]
        return max(recent) - min(recent) <= tol

    def stable_at(self, tol):
        """Seconds from the start until memory stopped changing: the first
        sample after which every sample stays within tol of the last one."""
        s = list(self.samples)
        final = s[-1][1]
        at = s[-1][0]
        for t, u, *_ in reversed(s):
            if abs(u - final) > tol:
                break
            at = t
        return at


def tolerance(base_used):
    return max(4 * MiB, int(0.005 * max(base_used, 0)))


class Progress:
    """What is left of the run and about how long it will take, estimated
    from what this run measured so far. A step takes a fixed time (the
    settling, KSM's cap) and a time per instance: the wall time of a cold
    start (PARALLEL at a time), of a mode's advice and of the unmerge after
    it, taken from the same model if it has one, else from another; a step
    never measured yet counts at a nominal time."""

    def __init__(self, args):
        self.a = args
        self.steps = []
        for model in args.models:
            have = 0
            for n in args.counts:
                self.steps.append(("start", model, n, n - have))
                self.steps += [(mode, model, n, n) for mode in args.modes]
                have = n
        self.total = len(self.steps)
        self.per_instance = {}

    def fixed(self, kind):
        """The part of a step that does not grow with the instances."""
        a = self.a
        return {"start": 0.0, "ksm-default": a.ksm_cap}.get(kind, 2 * a.settle)

    def nominal(self, kind):
        """Seconds per instance, before any step of the kind was measured."""
        return {"start": 60.0 / max(self.a.parallel, 1), "ksm-fast": 15.0}.get(kind, 3.0)

    def estimate(self, kind, model, k):
        for key in [(kind, model)] + [(kind, m) for m in self.a.models]:
            if key in self.per_instance:
                return self.fixed(kind) + mean(self.per_instance[key]) * k
        return self.fixed(kind) + self.nominal(kind) * k

    def left(self, skip=None):
        """Seconds the steps not done yet should take, but skip."""
        return sum(self.estimate(k, m, c) for k, m, n, c in self.steps
                   if (k, m, n) != skip)

    def starting(self, model, n, ready, seconds):
        """ready of the instances of step ("start", model, n) are up after
        seconds: the time left, with the rest of them at that pace."""
        step = next(s for s in self.steps if s[:3] == ("start", model, n))
        rest = seconds / ready * (step[3] - ready)	# fixed: 0 for "start"
        return f"about {(rest + self.left(step[:3])) / 60:.0f} min left"

    def done(self, kind, model, n, seconds):
        """Step (kind, model, n) took seconds: log what is left."""
        step = next(s for s in self.steps if s[:3] == (kind, model, n))
        self.steps.remove(step)
        if step[3]:
            per = max(0.0, seconds - self.fixed(kind)) / step[3]
            self.per_instance.setdefault((kind, model), []).append(per)
        log(f"  progress: {self.total - len(self.steps)} of {self.total} steps "
            f"done, about {self.left() / 60:.0f} min left")


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


class Run:
    def __init__(self, args):
        self.args = args
        self.progress = Progress(args)
        self.ksm_defaults = {k: ksm(k) for k in ("pages_to_scan", "sleep_millisecs")}
        data(kind="env", thp=open("/sys/kernel/mm/transparent_hugepage/enabled").read().strip(),
         ksm_defaults=self.ksm_defaults, cpus=os.cpu_count(),
             mem_total=meminfo()["MemTotal"], kernel=os.uname().release,
             namespaces=namespaces(), cgroup=cgroup_of("self"),
             args=vars(args))

    def start(self, model, have, want):
        """Start instances until want are running; PARALLEL at a time."""
        weights = os.path.join(self.args.dir, f"{model}.pt")
        image = os.path.join(self.args.dir, "input.jpg")
        sel = selectors.DefaultSelector()
        running = 0
        t0, first = time.monotonic(), len(have)
        while len(have) < want or running:
            while running < self.args.parallel and len(have) < want:
                inst = Instance(model, weights, image, len(have) + 1,
                                self.args.containers)
                have.append(inst)
                sel.register(inst.proc.stdout, selectors.EVENT_READ, inst)
                running += 1
            for key, _ in sel.select():
                inst = key.data
                sel.unregister(key.fileobj)
                running -= 1
                r = inst.read()
                r["wall_s"] = time.monotonic() - inst.t_spawn
                inst.ready = r
                if "upm-tenants" in self.args.modes:
                    # The tenants mode moves every instance to domain 1 or 2
                    # and back to 1 after. Every instance is in domain 1
                    # from its start, so that in a sweep the instances
                    # added for a larger count merge with the earlier ones.
                    inst.call("domain 1")
                ready = sum(1 for i in have[first:] if i.ready)
                eta = self.progress.starting(model, want, ready, time.monotonic() - t0)
                log(f"{model}: instance {inst.index}/{want} ready: cold start "
                    f"{r['wall_s']:.1f} s (import {r['import_s']:.1f}, load "
                    f"{r['load_s']:.1f}, classify {r['classify_s']:.1f}), "
                    f"class {r['result']['class']}; {eta}")
        sel.close()

    def unmerge_all(self, insts, base, none_used):
        """Every instance unmerges all its private anonymous memory; then
        KSM's stale bookkeeping is dropped (run=2) and ksmd stopped."""
        ksm("run", 0)
        for inst in insts:
            inst.call("unmerge")
        ksm("run", 2)
        ksm("run", 0)
        time.sleep(1)
        used = used_bytes()
        log(f"  unmerged: used {(used - base) / MiB:.0f} MiB (no merging: "
            f"{(none_used - base) / MiB:.0f} MiB), KSM pages "
            f"{ksm('pages_shared') + ksm('pages_sharing')}")

    def measure(self, model, n, insts, mode, base, none_used):
        a = self.args
        rec = {"kind": "mode", "model": model, "n": n, "mode": mode}
        # The reference: memory in use just before this mode's advice. After
        # an earlier mode was undone it holds that mode's stale KSM
        # bookkeeping (slab) too, which this mode should not be charged for.
        rec["before"] = used_bytes() - base
        tol = tolerance((none_used or 0) - base)
        advice = []
        ksmd0 = ksmd_cpu_s()
        scans0 = ksm("full_scans")
        upm0 = upm_counters()
        with Sampler() as smp:
            if mode == "none":
                while smp.now() < a.settle and not smp.plateau(a.settle, tol):
                    time.sleep(0.5)
                while not smp.plateau(5, tol) and smp.now() < 60:
                    time.sleep(0.5)
            elif mode == "upm-platform":
                for inst in insts:
                    advice.append(upmctl_merge(a.upmctl, inst.pid))
                t_done = smp.now()
                while smp.now() < t_done + a.settle or (
                        not smp.plateau(a.settle, tol) and smp.now() < t_done + 60):
                    time.sleep(0.5)
            elif mode.startswith("upm-"):
                what = mode.split("-", 1)[1]
                if what == "tenants":
                    # Two tenants, the first half of the instances and the
                    # rest, each in its own merge domain: nothing is shared
                    # between them.
                    what = "process"
                    for i, inst in enumerate(insts):
                        inst.call(f"domain {1 + (2 * i >= n)}")
                for inst in insts:
                    advice.append(inst.call(f"advise {what}"))
                t_done = smp.now()
                while smp.now() < t_done + a.settle or (
                        not smp.plateau(a.settle, tol) and smp.now() < t_done + 60):
                    time.sleep(0.5)
            elif mode.startswith("ksm-"):
                fast = mode == "ksm-fast"
                if fast:
                    ksm("sleep_millisecs", 0)
                    ksm("pages_to_scan", a.fast_pages)
                else:
                    for k, v in self.ksm_defaults.items():
                        ksm(k, v)
                for inst in insts:
                    advice.append(inst.call("mergeable process"))
                ksm("run", 1)
                cap = a.fast_cap if fast else a.ksm_cap
                last = -1
                while smp.now() < cap:
                    time.sleep(0.5)
                    if fast and ksm("full_scans") >= scans0 + 2 and smp.plateau(10, tol):
                        break
                    tick = int(smp.now()) // 30
                    if tick != last and int(smp.now()) >= 30:
                        last = tick
                        saved = (rec["before"] + base - smp.samples[-1][1]) / MiB
                        log(f"  {mode}: {smp.now():.0f} s, saved {saved:.0f} MiB, "
                            f"full scans {ksm('full_scans') - scans0}")
                ksm("run", 0)
                rec["ksm_full_scans"] = ksm("full_scans") - scans0
                rec["ksm_pages_sharing"] = ksm("pages_sharing")
                rec["ksm_pages_shared"] = ksm("pages_shared")
                rec["capped"] = smp.now() >= cap
            pss = [pss_bytes(i.pid) for i in insts]
            cgs = [i.memory() for i in insts]
        used = smp.samples[-1][1]
        m = meminfo()
        rec["meminfo"] = {k: m.get(k, 0) for k in ("AnonPages", "AnonHugePages", "Slab", "Shmem")}
        rec.update(used=used - base, pss_sum=sum(pss), pss_mean=sum(pss) / n,
                   pss=pss, duration_s=smp.now(),
                   ksmd_cpu_s=ksmd_cpu_s() - ksmd0)
        if cgs and all(cgs):
            # Per container, from its memory cgroup. A KSM page stays charged
            # to the cgroup of the page it was made from, and a shared file
            # page to its first reader's: containers that share pay unevenly.
            rec["cgroup"] = {k: [c[k] for c in cgs] for k in cgs[0]}
        stable = smp.stable_at(tol)
        rec["stable_s"] = stable
        if mode.startswith("ksm-") and rec.get("capped") and not smp.plateau(10, tol):
            rec["stable_s"] = None		# still changing at the cap
        if upm0:
            now = upm_counters()
            rec["upm"] = {k: now[k] - v for k, v in upm0.items()
                          if k != "index_entries" and k in now}
        if advice:
            rec["advised_bytes"] = [r["bytes"] for r in advice]
            rec["madvise_s"] = [r["seconds"] for r in advice]
        if mode.startswith("ksm-") and none_used is not None:
            rec["saved_at"] = {str(t): rec["before"] + base - smp.used_at(t)
                               for t in (10, 60, smp.samples[-1][0]) if t <= smp.samples[-1][0]}
        rec["series"] = [(round(t, 2), u - base) for t, u, *_ in smp.samples]
        data(**rec)
        saved = ""
        if none_used is not None and mode != "none":
            sv = rec["before"] + base - used
            saved = f", saves {sv / MiB:.0f} MiB " \
                    f"({100 * sv / (none_used - base):.1f}%)"
        stable_txt = f"{rec['stable_s']:.1f} s" if rec["stable_s"] is not None else "not stable"
        extra = f", madvise mean {sum(rec['madvise_s']) / n:.2f} s" if mode.startswith("upm-") else ""
        if "cgroup" in rec:
            cur = rec["cgroup"]["current"]
            extra += (f", memory.current per container {min(cur) / MiB:.0f}"
                      f"-{max(cur) / MiB:.0f} MiB")
        log(f"{model} x{n} {mode}: used {(used - base) / MiB:.0f} MiB, PSS/instance "
            f"{sum(pss) / n / MiB:.0f} MiB{saved}; stable after {stable_txt}, "
            f"ksmd {rec['ksmd_cpu_s']:.1f} s CPU{extra}")
        return used

    def model(self, model):
        a = self.args
        drop_caches()
        time.sleep(1)
        base = used_bytes()
        log(f"{model}: idle baseline {base / MiB:.0f} MiB used")
        insts = []
        try:
            for n in a.counts:
                t = time.monotonic()
                self.start(model, insts, n)
                rs = [i.ready for i in insts]
                data(kind="cold", model=model, n=n, start_s=time.monotonic() - t,
                     cold=[r["wall_s"] for r in rs], import_s=[r["import_s"] for r in rs],
                     load_s=[r["load_s"] for r in rs],
                     classify_s=[r["classify_s"] for r in rs],
                     classes=[r["result"]["class"] for r in rs],
                     namespaces=[namespaces(i.pid) for i in insts],
                     comms=[comm(i.pid) for i in insts],
                     cgroups=[cgroup_of(i.pid) for i in insts],
                     weights=os.path.getsize(os.path.join(a.dir, f"{model}.pt")))
                self.progress.done("start", model, n, time.monotonic() - t)
                none_used = None
                for mode in a.modes:
                    t = time.monotonic()
                    used = self.measure(model, n, insts, mode, base, none_used)
                    if mode == "none":
                        none_used = used
                    else:
                        self.unmerge_all(insts, base, none_used)
                    if mode == "upm-tenants":
                        # One domain again for the modes after: unmerged,
                        # an instance may change domains.
                        for inst in insts:
                            inst.call("domain 1")
                    self.progress.done(mode, model, n, time.monotonic() - t)
        finally:
            for inst in insts:
                inst.stop()
            ksm("run", 0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet50,alexnet")
    p.add_argument("--counts", default="16")
    p.add_argument("--modes", default="none,upm-tensors,upm-process,upm-tenants,upm-platform,ksm-fast,ksm-default")
    p.add_argument("--upmctl", default=os.path.join(HERE, "..", "..", "build",
                                                    "guest", "bin", "upmctl"))
    p.add_argument("--dir", required=True, help="weights and input.jpg")
    p.add_argument("--parallel", type=int, default=os.cpu_count())
    p.add_argument("--settle", type=float, default=5.0)
    p.add_argument("--ksm-cap", type=float, default=180.0)
    p.add_argument("--fast-cap", type=float, default=300.0)
    p.add_argument("--fast-pages", type=int, default=20000)
    p.add_argument("--no-containers", dest="containers", action="store_false",
                   help="plain processes instead of containers")
    p.add_argument("--thp", choices=["always", "madvise", "never"],
                   help="transparent huge pages (default: as booted)")
    a = p.parse_args()
    a.models = a.models.split(",")
    a.counts = sorted(int(c) for c in a.counts.split(","))
    a.modes = a.modes.split(",")
    if a.thp:
        sysfs_write_str("/sys/kernel/mm/transparent_hugepage/enabled", a.thp)
    if a.modes[0] != "none":
        a.modes.insert(0, "none")
    if a.containers:
        cgroup_setup()
    run = Run(a)
    ksm("run", 0)
    for model in a.models:
        run.model(model)
    log("done")


if __name__ == "__main__":
    main()
