# SPDX-License-Identifier: GPL-2.0
"""upmctl in the guest (the host's root over 9p, so that Python parses its
--json output back): merge two processes that never advised themselves,
stat and watch, and the documented exit codes for a process that is gone,
permission denied, UPM switched off and bad usage. Needs the guest built
(make guest)."""
import json
import os
import subprocess
import tempfile
import unittest
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent.parent
KCONFIG = os.environ.get("KCONFIG", "default")
BUILD = Path(os.environ.get("UPM_BUILD", TOP / "build"))
KERNEL = BUILD / f"kernel-{KCONFIG}" / "arch/x86/boot/bzImage"
INITRD = BUILD / "initramfs.cpio.gz"
UPMCTL = BUILD / "guest" / "bin" / "upmctl"
NPAGES = 2048

# A process with NPAGES private anonymous pages (the same content in every
# instance); prints where they are, and on end of input how many changed.
TARGET = r"""
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
int main(int argc, char **argv)
{
	size_t n = %d, i, bad = 0;
	char *p = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 1;
	/* a name with an escape sequence, a quote and a byte above ASCII */
	if (argc > 1)
		prctl(PR_SET_NAME, "t\x1b[2J\"\\\xe9", 0, 0, 0);
	for (i = 0; i < n; i++) {
		memset(p + i * 4096, (int)(i & 0xff), 4096);
		memcpy(p + i * 4096, &i, sizeof(i));
	}
	printf("%%lx\n", (unsigned long)p);
	fflush(stdout);
	while (getchar() != EOF)
		;
	for (i = 0; i < n; i++)
		bad += memcmp(p + i * 4096, &i, sizeof(i)) != 0 ||
		       (unsigned char)p[i * 4096 + 100] != (i & 0xff);
	printf("%%zu\n", bad);
	return 0;
}
""" % NPAGES

# Runs in the guest: drives upmctl and reports what it saw, as one JSON line.
GUEST = r"""
import json, os, struct, subprocess, sys
upmctl, target, npages = sys.argv[1], "./target", int(sys.argv[2])
out = {}

def run(name, *args, user=None):
    kw = {"preexec_fn": lambda: os.setuid(65534)} if user else {}
    r = subprocess.run([upmctl, *args], capture_output=True, text=True, **kw)
    out[name] = {"rc": r.returncode, "out": r.stdout, "err": r.stderr}

def pfns(pid, addr):
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(addr // 4096 * 8)
        data = f.read(npages * 8)
    return [e & ((1 << 55) - 1) for e in struct.unpack(f"{npages}Q", data)]

def integers(d):
    vals = {}
    for name in os.listdir(d):
        try:
            vals[name] = int(open(os.path.join(d, name)).read())
        except (OSError, ValueError):
            pass
    return vals

open("/sys/kernel/mm/ksm/run", "w").write("0")
procs = [subprocess.Popen([target], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) for _ in range(2)]
addrs = [int(p.stdout.readline(), 16) for p in procs]
pids = [str(p.pid) for p in procs]
out["pids"] = [p.pid for p in procs]
run("merge", "merge", *pids)
a, b = (pfns(p.pid, addr) for p, addr in zip(procs, addrs))
def zero_page(pfn):
    with open("/proc/kpageflags", "rb") as f:
        f.seek(pfn * 8)
        return struct.unpack("Q", f.read(8))[0] >> 24 & 1   # KPF_ZERO_PAGE
# Page 0 is all zeroes. Splitting a THP maps such a page to the shared zero
# page (6.12), so in the process whose THP a merge split, it may map that
# page rather than the KSM page of zeroes its twin maps: shared either way.
out["same_frames"] = sum(1 for i, (x, y) in enumerate(zip(a, b))
                         if x and (x == y or (i == 0 and
                                              (zero_page(x) or zero_page(y)))))
run("stat_json", "--json", "stat", *pids)
out["sysfs_upm"] = integers("/sys/kernel/mm/upm")
out["ksm_stat"] = [dict(l.split() for l in open(f"/proc/{p}/ksm_stat"))
                   for p in pids]
run("merge_again_json", "--json", "merge", pids[0])
run("stat_all", "stat")
run("watch_json", "--json", "watch", "--interval", "0.2", "--count", "2")
run("denied", "merge", pids[0], user="nobody")
# nobody on a process of its own: ptrace access, but no CAP_SYS_NICE
own = subprocess.Popen([target], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       text=True, preexec_fn=lambda: os.setuid(65534))
own.stdout.readline()
run("denied_same_uid", "merge", str(own.pid), user="nobody")
own.communicate("")
odd = subprocess.Popen([target, "odd"], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, text=True)
odd.stdout.readline()
run("odd_merge", "merge", str(odd.pid))
run("odd_stat_json", "--json", "stat", str(odd.pid))
run("odd_stat", "stat", str(odd.pid))
odd.communicate("")
open("/sys/kernel/mm/upm/enabled", "w").write("0")
run("switched_off", "merge", pids[0])
open("/sys/kernel/mm/upm/enabled", "w").write("1")
gone = subprocess.Popen(["true"])
gone.wait()
run("gone_merge", "merge", str(gone.pid))
run("gone_stat", "stat", str(gone.pid))
run("gone_json", "--json", "merge", str(gone.pid), pids[0])
for name, args in {"no_command": [], "merge_no_pid": ["merge"],
                   "bad_command": ["frob"], "bad_pid": ["merge", "12x"],
                   "bad_range": ["merge", pids[0], "--range", "2000-1000"],
                   "unaligned": ["merge", pids[0], "--range", "1001-3000"],
                   "range_for_stat": ["stat", "--range", "1000-2000"],
                   "bad_option": ["stat", "--frob"]}.items():
    run(name, *args)
out["bad_pages"] = []
for p in procs:
    o, _ = p.communicate("")
    out["bad_pages"].append(int(o.split()[-1]))
print("UPMCTL-RESULT " + json.dumps(out))
"""


@unittest.skipUnless(KERNEL.exists() and INITRD.exists() and UPMCTL.exists(),
                     "guest not built (make guest)")
class Upmctl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = Path(cls.tmp.name)
        (d / "target.c").write_text(TARGET)
        (d / "check.py").write_text(GUEST)
        subprocess.run(["gcc", "-static", "-O2", "-o", d / "target",
                        d / "target.c"], check=True)
        cls.proc = subprocess.run(
            [TOP / "scripts" / "vm", "--hostfs", "--timeout", "600", "run",
             "--add", d / "target", "--add", d / "check.py", "--",
             "python3", "check.py", str(UPMCTL), str(NPAGES)],
            capture_output=True, text=True, timeout=900, cwd=d)
        cls.r = None
        for line in cls.proc.stdout.splitlines():
            if line.startswith("UPMCTL-RESULT "):
                cls.r = json.loads(line.split(" ", 1)[1])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def result(self, name=None):
        self.assertIsNotNone(self.r, "the guest script did not finish: " +
                             self.proc.stdout[-2000:] + self.proc.stderr[-2000:])
        return self.r if name is None else self.r[name]

    def test_merge(self):
        """upmctl merge merges two processes that never advised themselves:
        one frame for each pair of pages, contents intact, a table row each"""
        m = self.result("merge")
        self.assertEqual(m["rc"], 0, m)
        self.assertEqual(self.result("same_frames"), NPAGES)
        self.assertEqual(self.result("bad_pages"), [0, 0])
        rows = [l.split() for l in m["out"].splitlines()]
        self.assertEqual(rows[0][:2], ["PID", "COMMAND"], m["out"])
        self.assertEqual([int(r[0]) for r in rows[1:]], self.result("pids"))
        # the second process's pages merged with the first's (MERGED; the
        # first's, candidates until then, became KSM pages: NEW_KSM)
        self.assertGreaterEqual(int(rows[2][5]), NPAGES, m["out"])
        self.assertGreaterEqual(int(rows[2][6]), NPAGES, m["out"])

    def test_stat_json(self):
        """upmctl --json stat: UPM's counters named as in sysfs, with their
        values, and each process's ksm_stat and PSS"""
        s = self.result("stat_json")
        self.assertEqual(s["rc"], 0, s)
        doc = json.loads(s["out"])
        sysfs = self.result("sysfs_upm")
        self.assertEqual(set(doc["upm"]), set(sysfs))
        for key in ("calls", "pages_merged", "pages_new_ksm", "index_entries"):
            self.assertEqual(doc["upm"][key], sysfs[key], key)
        self.assertIn("pages_sharing", doc["ksm"])
        self.assertEqual([p["pid"] for p in doc["processes"]], self.result("pids"))
        for p, ksm_stat in zip(doc["processes"], self.result("ksm_stat")):
            self.assertEqual(p["ksm_merging_pages"],
                             int(ksm_stat["ksm_merging_pages"]))
            self.assertGreaterEqual(p["ksm_merging_pages"], NPAGES)
            self.assertGreater(p["pss_kb"], 0)

    def test_merge_again_json(self):
        """merging again finds every page merged already, and --json says so"""
        m = self.result("merge_again_json")
        self.assertEqual(m["rc"], 0, m)
        doc = json.loads(m["out"])
        (one,) = doc["merged"]
        self.assertEqual(one["pid"], self.result("pids")[0])
        self.assertIsNone(one["error"])
        self.assertGreaterEqual(one["pages_already_merged"], NPAGES)

    def test_stat_all_and_watch(self):
        """stat without PIDs lists the processes with merged pages; watch
        --count 2 prints two reports"""
        s = self.result("stat_all")
        self.assertEqual(s["rc"], 0, s)
        listed = [int(l.split()[0]) for l in s["out"].splitlines()
                  if l.split() and l.split()[0].isdigit()]
        for pid in self.result("pids"):
            self.assertIn(pid, listed)
        w = self.result("watch_json")
        self.assertEqual(w["rc"], 0, w)
        reports = [json.loads(l) for l in w["out"].splitlines()]
        self.assertEqual(len(reports), 2)
        self.assertIn("pages_merged", reports[1]["upm"])

    def test_exit_codes(self):
        """no such process 4, permission denied 5, UPM switched off 3, bad
        usage 2; each with a message on stderr and nothing on stdout"""
        want = {"gone_merge": 4, "gone_stat": 4, "denied": 5,
                "denied_same_uid": 5,
                "switched_off": 3, "no_command": 2, "merge_no_pid": 2,
                "bad_command": 2, "bad_pid": 2, "bad_range": 2,
                "unaligned": 2, "range_for_stat": 2, "bad_option": 2}
        for name, rc in want.items():
            r = self.result(name)
            self.assertEqual(r["rc"], rc, f"{name}: {r}")
            self.assertTrue(r["err"].startswith("upmctl: "), f"{name}: {r}")
        self.assertIn("no such process", self.result("gone_merge")["err"])
        self.assertIn("permission", self.result("denied")["err"].lower())
        # the kernel's EPERM: the tool could read the maps, not merge
        self.assertIn("Operation not permitted",
                      self.result("denied_same_uid")["err"])
        for name in want:
            # stat prints the global counters before the processes
            if name not in ("switched_off", "denied_same_uid", "gone_stat"):
                self.assertEqual(self.result(name)["out"], "", name)

    def test_json_lists_failures(self):
        """--json merge of a reaped pid and a live one: both listed, the
        first with its error and exit code; the status is the failure's"""
        r = self.result("gone_json")
        self.assertEqual(r["rc"], 4, r)
        gone, live = json.loads(r["out"])["merged"]
        self.assertEqual((gone["error"], gone["exit_code"]),
                         ("no such process", 4))
        self.assertEqual(live["pid"], self.result("pids")[0])
        self.assertIsNone(live["error"])

    def test_odd_process_name(self):
        """a process named with an escape sequence, a quote and a byte
        above ASCII: valid JSON with the name, and a table without them"""
        for name in ("odd_merge", "odd_stat_json", "odd_stat"):
            self.assertEqual(self.result(name)["rc"], 0, self.result(name))
        doc = json.loads(self.result("odd_stat_json")["out"])
        self.assertEqual(doc["processes"][0]["comm"], "t\x1b[2J\"\\\xe9")
        for name in ("odd_merge", "odd_stat"):
            out = self.result(name)["out"]
            self.assertFalse(any(c == "\x1b" or ord(c) > 0x7e for c in out),
                             repr(out))


if __name__ == "__main__":
    unittest.main()
