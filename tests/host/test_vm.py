# SPDX-License-Identifier: GPL-2.0
"""scripts/vm run: a static program built on the host runs in the guest and
its output and exit status come back. Needs the guest built (make guest)."""
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

PROG = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv)
{
	FILE *f = fopen("data.txt", "r");
	char line[64] = "";

	if (f && fgets(line, sizeof(line), f))
		line[strcspn(line, "\n")] = 0;
	for (int i = 2; i < argc; i++)
		printf("arg[%s]\n", argv[i]);
	printf("data[%s]\n", line);
	return atoi(argv[1]);
}
"""


@unittest.skipUnless(KERNEL.exists() and INITRD.exists(),
                     "guest not built (make guest)")
class VmRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = Path(cls.tmp.name)
        (d / "prog.c").write_text(PROG)
        (d / "data.txt").write_text("from the host\n")
        subprocess.run(["gcc", "-static", "-O2", "-o", d / "prog", d / "prog.c"],
                       check=True)
        cls.dir = d

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def vm(self, *cmd):
        return subprocess.run(
            [TOP / "scripts" / "vm", "--timeout", "120", "--mem", "512", "run",
             "--add", self.dir / "prog", "--add", self.dir / "data.txt", "--",
             *cmd], capture_output=True, text=True, timeout=300)

    def test_exit_zero(self):
        """a program that exits 0 gives 0, its output and the added files"""
        r = self.vm("./prog", "0", "two words", "it's")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(), [
            "arg[two words]", "arg[it's]", "data[from the host]"])

    def test_exit_nonzero(self):
        """a program's non-zero exit status comes back unchanged"""
        r = self.vm("./prog", "3")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("data[from the host]", r.stdout)

    def test_missing_file(self):
        """--add of a file that does not exist fails before booting"""
        r = subprocess.run([TOP / "scripts" / "vm", "run", "--add",
                            "/nonexistent/x", "--", "true"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no such file", r.stderr)

    def test_guest_crash(self):
        """a guest that panics ends with status 125 and the console tail"""
        r = subprocess.run(
            [TOP / "scripts" / "vm", "--timeout", "120", "--mem", "512", "run",
             "--", "sh", "-c", "echo c > /proc/sysrq-trigger"],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 125, r.stderr)
        self.assertIn("guest crashed", r.stderr)
        self.assertIn("Kernel panic", r.stderr)

    def test_guest_timeout(self):
        """a guest that overruns --timeout is killed: status 124"""
        r = subprocess.run(
            [TOP / "scripts" / "vm", "--timeout", "8", "--mem", "512", "run",
             "--", "sleep", "100"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 124, r.stderr)
        self.assertIn("timed out", r.stderr)


if __name__ == "__main__":
    unittest.main()
