# SPDX-License-Identifier: GPL-2.0
"""The kernel side follows kernel conventions: checkpatch.pl --strict."""
import subprocess
import unittest
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent.parent


class Checkpatch(unittest.TestCase):
    def test_series_and_new_files(self):
        """the patch series and the new kernel files are checkpatch clean"""
        r = subprocess.run([TOP / "scripts" / "checkpatch"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
