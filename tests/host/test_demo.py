# SPDX-License-Identifier: GPL-2.0
"""make demo, reduced: two instances of AlexNet in the guest; with MADV_UPM
(by the functions, or by the platform with upmctl merge) the system uses
less memory than without merging, by at least 80% of
(instances - 1) x the size of the weights. AlexNet rather than a smaller
model: its weights (233 MiB) are large beside the noise of MemAvailable and
KSM's bookkeeping, and its inference is cheaper under TCG than ResNet-18's.
Installs PyTorch itself (scripts/setup-host); needs the guest built."""
import csv
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
MODEL = "alexnet"
INSTANCES = 2
PACKAGES = ["python3-torch", "python3-torchvision", "python3-pil", "gnuplot-nox"]


@unittest.skipUnless(KERNEL.exists() and INITRD.exists(),
                     "guest not built (make guest)")
class DemoReduced(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        r = subprocess.run([TOP / "scripts" / "setup-host", *PACKAGES],
                           capture_output=True, text=True)
        if r.returncode == 2:
            raise unittest.SkipTest(f"cannot install {' '.join(PACKAGES)}: {r.stderr.strip()}")
        if r.returncode != 0:
            raise AssertionError(f"setup-host failed: {r.stderr}")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = Path(cls.tmp.name)
        cls.proc = subprocess.run(
            [TOP / "scripts" / "demo", "--models", MODEL, "--counts", str(INSTANCES),
             "--modes", "none,upm-tensors,upm-process,upm-platform", "--mem", "3072",
             "--timeout", "900", "--out", cls.out],
            capture_output=True, text=True, timeout=1200)
        cls.rows = []
        if (cls.out / "results.csv").exists():
            with open(cls.out / "results.csv") as f:
                cls.rows = list(csv.DictReader(f))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def row(self, mode):
        self.assertEqual(self.proc.returncode, 0,
                         self.proc.stderr[-3000:] + self.proc.stdout[-2000:])
        for r in self.rows:
            if r["mode"] == mode and int(r["instances"]) == INSTANCES:
                return r
        self.fail(f"no result for {mode}: {self.rows}")

    def threshold_mib(self):
        weights = (BUILD / "demo" / f"{MODEL}.pt").stat().st_size / 2**20
        return 0.8 * (INSTANCES - 1) * weights

    def test_upm_tensors_saves_the_weights(self):
        """advising the model's tensors saves >= 80% of the duplicate weights"""
        none, upm = self.row("none"), self.row("upm-tensors")
        saved = float(none["used_mib"]) - float(upm["used_mib"])
        self.assertGreaterEqual(saved, self.threshold_mib(),
                                f"none {none['used_mib']} MiB, upm {upm['used_mib']} MiB")

    def test_upm_process_saves_the_weights(self):
        """advising the whole process saves >= 80% of the duplicate weights"""
        none, upm = self.row("none"), self.row("upm-process")
        saved = float(none["used_mib"]) - float(upm["used_mib"])
        self.assertGreaterEqual(saved, self.threshold_mib(),
                                f"none {none['used_mib']} MiB, upm {upm['used_mib']} MiB")

    def test_upm_platform_saves_the_weights(self):
        """upmctl merge on each instance (the functions advise nothing) saves
        >= 80% of the duplicate weights"""
        none, upm = self.row("none"), self.row("upm-platform")
        saved = float(none["used_mib"]) - float(upm["used_mib"])
        self.assertGreaterEqual(saved, self.threshold_mib(),
                                f"none {none['used_mib']} MiB, upm {upm['used_mib']} MiB")

    def test_instances_are_containers(self):
        """each instance ran in its own mount, PID, IPC and UTS namespaces
        and memory cgroup, whose figures every mode recorded"""
        self.row("none")
        recs = [json.loads(line) for line in open(self.out / f"results-{MODEL}.jsonl")]
        env = next(r for r in recs if r["kind"] == "env")
        cold = next(r for r in recs if r["kind"] == "cold" and r["n"] == INSTANCES)
        for ns, ours in env["namespaces"].items():
            theirs = [i[ns] for i in cold["namespaces"]]
            self.assertEqual(len(set(theirs)), INSTANCES, f"{ns}: {theirs}")
            self.assertNotIn(ours, theirs, ns)
        self.assertEqual(len(set(cold["cgroups"])), INSTANCES, cold["cgroups"])
        # the pid measured is the function's, not unshare's or the shell's
        self.assertTrue(all(c.startswith("python") for c in cold["comms"]), cold["comms"])
        for r in recs:
            if r["kind"] == "mode":
                cur = r["cgroup"]["current"]
                self.assertEqual(len(cur), INSTANCES, r["mode"])
                self.assertTrue(all(c > 0 for c in cur), f"{r['mode']}: {cur}")

    def test_report_written(self):
        """the run writes the table and the plots"""
        self.row("none")
        self.assertTrue((self.out / "results.md").exists())
        self.assertTrue((self.out / "fig6-memory.png").exists())


if __name__ == "__main__":
    unittest.main()
