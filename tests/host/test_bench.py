# SPDX-License-Identifier: GPL-2.0
"""scripts/bench (make bench) in small: 16 MiB, one repetition, a short wait
for ksmd. Checks that the benchmark runs in the guest and that its CSV holds
the expected rows with sane numbers; the figures themselves are not judged.
Needs the guest built (make guest)."""
import csv
import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent.parent
KCONFIG = os.environ.get("KCONFIG", "default")
BUILD = Path(os.environ.get("UPM_BUILD", TOP / "build"))
KERNEL = BUILD / f"kernel-{KCONFIG}" / "arch/x86/boot/bzImage"
INITRD = BUILD / "initramfs.cpio.gz"

SIZE = 16
PAGES = SIZE * 1024 * 1024 // 4096
TIMED = ["first_call", "merging_call", "third_call", "third_call_threaded", "half_call",
         "upm_total", "memcmp", "cmp_words", "hash64", "memcpy", "cow_merged", "cow_private",
         "unique_call", "write_unique", "write_private",
         "ksm_fastest", "ksm_default"]
RATIOS = ["merge_vs_memcmp", "merge_vs_cmp_words", "cow_merged_over_private",
          "write_unique_over_private",
          "ksm_fastest_over_upm", "ksm_default_over_upm"]


@unittest.skipUnless(KERNEL.exists() and INITRD.exists(),
                     "guest not built (make guest)")
class Bench(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = Path(cls.tmp.name)
        cls.plots = shutil.which("gnuplot") is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        cmd = [str(TOP / "scripts" / "bench"), "--sizes", str(SIZE), "--reps", "1",
               "--ksm-reps", "1", "--ksm-cap", "10", "--mem", "1024",
               "--timeout", "240", "--out", str(cls.out)]
        if not cls.plots:
            cmd.append("--no-plots")
        cls.result = subprocess.run(cmd, capture_output=True, text=True, timeout=400,
                                 env=env)
        cls.rows = {}
        path = cls.out / "results.csv"
        if path.exists():
            with open(path, newline="") as f:
                for r in csv.DictReader(f):
                    cls.rows[(r["metric"], int(r["size_mib"]))] = r

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def row(self, metric):
        r = self.rows.get((metric, SIZE))
        self.assertIsNotNone(r, f"no {metric} row in results.csv")
        return r

    def test_runs(self):
        """the benchmark exits 0 and writes the CSVs and the markdown table"""
        self.assertEqual(self.result.returncode, 0,
                         self.result.stdout[-2000:] + self.result.stderr[-3000:])
        for name in ("results.csv", "raw.csv", "results.md", "guest.out"):
            self.assertTrue((self.out / name).is_file(), name)
        md = (self.out / "results.md").read_text()
        self.assertIn("| MiB |", md)
        self.assertIn("paper", md)
        self.assertIn("bench [", self.result.stderr)  # the progress line

    def test_times_positive(self):
        """every timed measurement is there, positive and ordered min <= median <= max"""
        for m in TIMED:
            r = self.row(m)
            lo, med, hi = float(r["min"]), float(r["median"]), float(r["max"])
            self.assertGreater(lo, 0, m)
            self.assertTrue(lo <= med <= hi, m)
            self.assertLess(hi, 300, m)
        for m in RATIOS:
            self.assertGreater(float(self.row(m)["median"]), 0, m)

    def test_upm_merged_everything(self):
        """the merging and third calls merged every page, the half-duplicate
        call half"""
        r = self.row("merging_call")
        self.assertEqual(int(r["pages"]), PAGES)
        self.assertEqual(float(r["merged"]), PAGES)
        self.assertEqual(float(self.row("third_call")["merged"]), PAGES)
        self.assertEqual(float(self.row("third_call_threaded")["merged"]), PAGES)
        self.assertEqual(float(self.row("half_call")["merged"]), PAGES // 2)
        self.assertEqual(float(self.row("first_call")["merged"]), 0)
        self.assertEqual(float(self.row("unique_call")["merged"]), 0)
        self.assertEqual(float(self.row("ksm_fastest")["target"]), PAGES)

    def test_two_calls(self):
        """the probe made calls alone and beside another process's call,
        which still merged every page (whether the probe's calls go on
        within the other call shows at sizes above one batch, in make bench)"""
        alone, beside = self.row("probe_alone_longest"), self.row("probe_beside_longest")
        self.assertGreater(float(alone["pages"]), 0)
        self.assertGreater(float(beside["pages"]), 0)
        self.assertLessEqual(float(beside["target"]), float(beside["pages"]))
        self.assertEqual(float(self.row("beside_probe")["merged"]), PAGES)

    def test_state_restored(self):
        """KSM's counters came back to their earlier values after every run"""
        r = self.row("ksm_state_restored")
        self.assertEqual(r["median"], r["target"])
        out = (self.out / "guest.out").read_text()
        self.assertIn("info,ksm_restored,run=0 pages_to_scan=100 sleep_millisecs=20", out)
        self.assertNotIn("\nerror,", out)

    def test_plots(self):
        """with gnuplot present, both plots are written"""
        if not self.plots:
            self.skipTest("gnuplot not installed")
        for name in ("upm_cost.png", "time_to_merge.png"):
            p = self.out / name
            self.assertTrue(p.is_file() and p.stat().st_size > 1000, name)


if __name__ == "__main__":
    unittest.main()
