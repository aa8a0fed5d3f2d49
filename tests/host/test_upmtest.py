# SPDX-License-Identifier: GPL-2.0
"""Host-side tests of the console scanner and the guest-output parser."""
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "scripts"))
import upmtest  # noqa: E402

EXPECTED_KIND = {
    "oops": "oops", "gpf": "oops", "bug": "BUG", "bad_page": "BUG",
    "warning": "WARNING", "kasan": "KASAN", "ubsan": "UBSAN",
    "lockdep": "lockdep", "sleep_atomic": "BUG", "rcu_stall": "RCU stall",
    "hung_task": "hung task", "soft_lockup": "soft lockup",
    "panic": "panic", "kmemleak": "kmemleak",
}


class ConsoleScan(unittest.TestCase):
    def test_samples(self):
        """every sample report is found, with its kind"""
        for name, kind in EXPECTED_KIND.items():
            with self.subTest(sample=name):
                text = (HERE / "logs" / f"{name}.log").read_text()
                kinds = [k for k, _ in upmtest.scan_console(text)]
                self.assertIn(kind, kinds)

    def test_every_sample_has_an_expectation(self):
        """no sample log goes unchecked"""
        names = {p.stem for p in (HERE / "logs").glob("*.log")} - {"clean"}
        self.assertEqual(names, set(EXPECTED_KIND))

    def test_clean_boot(self):
        """a clean boot log of the guest reports nothing"""
        text = (HERE / "logs" / "clean.log").read_text()
        self.assertEqual(upmtest.scan_console(text), [])

    def test_report_inside_a_clean_log(self):
        """one report line in an otherwise clean log is found"""
        clean = (HERE / "logs" / "clean.log").read_text().splitlines()
        bad = (HERE / "logs" / "warning.log").read_text().splitlines()
        mixed = "\n".join(clean[:20] + bad + clean[20:])
        self.assertEqual([k for k, _ in upmtest.scan_console(mixed)], ["WARNING"])

    def test_harmless_words(self):
        """ordinary messages with similar words are not reports"""
        text = "\n".join([
            "[    0.1] ACPI: _OSC evaluation for CPUs failed, trying _PDC",
            "[    0.2] Spectre V2 : WARNING: Unprivileged eBPF is enabled",
            "[    0.3] debug: unmapping init [mem 0xffffffff82000000-0xffffffff8200ffff]",
            "[    0.4] hung_task: detector enabled",
        ])
        kinds = [k for k, _ in upmtest.scan_console(text)]
        self.assertEqual(kinds, [])


class GuestOutput(unittest.TestCase):
    def cases(self, text):
        return [(s, n) for s, n, _ in upmtest.parse_guest(text)]

    def test_tap_program(self):
        """a TAP program gives one case per result line"""
        out = "\n".join([
            "### UPM-BEGIN tap upm_merge", "TAP version 13", "1..3",
            "ok 1 two processes", "not ok 2 four processes",
            "ok 3 zero pages # SKIP no THP", "# Totals: pass:1 fail:1",
            "### UPM-END upm_merge rc=1"])
        self.assertEqual(self.cases(out), [
            ("PASS", "upm_merge: two processes"),
            ("FAIL", "upm_merge: four processes"),
            ("SKIP", "upm_merge: zero pages")])

    def test_skip_without_description(self):
        """a skip with no description before the directive, as kselftest's
        ksft_test_result_skip() prints it, counts as a skip, never a pass"""
        out = "\n".join([
            "### UPM-BEGIN tap upm_leakcheck", "1..4",
            "ok 1 # SKIP kmemleak scan: no kmemleak", "ok 2 a#b",
            "ok 3 #skip lower case", "ok 4 escaped \\# SKIP in a name",
            "### UPM-END upm_leakcheck rc=0"])
        self.assertEqual(self.cases(out), [
            ("SKIP", "upm_leakcheck: kmemleak scan: no kmemleak"),
            ("PASS", "upm_leakcheck: a#b"),
            ("SKIP", "upm_leakcheck: lower case"),
            ("PASS", "upm_leakcheck: escaped # SKIP in a name")])

    def test_whole_program_skipped(self):
        """'1..0 # SKIP why' with exit status 4 is one skip; with another
        status, or with cases after it, it is no skip"""
        out = "\n".join([
            "### UPM-BEGIN tap upm_merge", "TAP version 13",
            "1..0 # SKIP /sys/kernel/mm/upm/ is missing",
            "### UPM-END upm_merge rc=4",
            "### UPM-BEGIN tap t", "1..0 # SKIP no", "### UPM-END t rc=1"])
        self.assertEqual(self.cases(out), [
            ("SKIP", "upm_merge"), ("FAIL", "t")])

    def test_plain_program(self):
        """a plain program passes on 0, skips on 4 and fails otherwise"""
        out = "\n".join([
            "### UPM-BEGIN plain ksm_tests -M", "### UPM-END ksm_tests -M rc=0",
            "### UPM-BEGIN plain ksm_tests -N", "needs 2 nodes",
            "### UPM-END ksm_tests -N rc=4",
            "### UPM-BEGIN plain ksm_tests -U", "### UPM-END ksm_tests -U rc=1"])
        self.assertEqual(self.cases(out), [
            ("PASS", "ksm_tests -M"), ("SKIP", "ksm_tests -N"),
            ("FAIL", "ksm_tests -U")])

    def test_crash_mid_program(self):
        """a program that never ends fails, keeping the results it gave"""
        out = "\n".join(["### UPM-BEGIN tap t", "1..2", "ok 1 a"])
        self.assertEqual(self.cases(out), [("PASS", "t: a"), ("FAIL", "t")])

    def test_missing_results(self):
        """fewer results than planned fail, even with exit status 0"""
        out = "\n".join(["### UPM-BEGIN tap t", "1..3", "ok 1 a",
                         "### UPM-END t rc=0"])
        self.assertEqual(self.cases(out), [("PASS", "t: a"), ("FAIL", "t")])

    def test_bad_exit_without_failure(self):
        """a non-zero exit with all cases passing still fails"""
        out = "\n".join(["### UPM-BEGIN tap t", "1..1", "ok 1 a",
                         "### UPM-END t rc=139"])
        self.assertEqual(self.cases(out), [("PASS", "t: a"), ("FAIL", "t")])

    def test_nested_lines_are_diagnostics(self):
        """indented TAP lines and '# ok' lines are not cases"""
        out = "\n".join(["### UPM-BEGIN tap t", "1..1", "  ok 1 inner",
                         "# ok 7 noise", "ok 1 outer", "### UPM-END t rc=0"])
        self.assertEqual(self.cases(out), [("PASS", "t: outer")])


if __name__ == "__main__":
    unittest.main()
