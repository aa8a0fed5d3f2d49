# SPDX-License-Identifier: GPL-2.0
# Shared settings for the UPM scripts; sourced, not run.

# The one place the kernel base is pinned.
UPM_KERNEL_PKG=linux-source-6.12
UPM_KERNEL_PKG_VERSION=6.12.117-1~deb12u1
UPM_KERNEL_SERIES=6.12

UPM_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UPM_BUILD=${UPM_BUILD:-$UPM_TOP/build}
UPM_CACHE=${UPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upm}
KCONFIG=${KCONFIG:-default}
UPM_KBUILD=$UPM_BUILD/kernel-$KCONFIG	# out-of-tree object directory
UPM_KSRC_PATCHED=$UPM_BUILD/src		# derived, patched source tree

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
info() { echo "==> $*" >&2; }

# kernel_version DIR: "6.12.117" from a tree's top-level Makefile.
kernel_version() {
	awk -F' *= *' '/^VERSION/{v=$2} /^PATCHLEVEL/{p=$2} /^SUBLEVEL/{s=$2}
		/^EXTRAVERSION/{print v "." p "." s; exit}' "$1/Makefile"
}
