# SPDX-License-Identifier: GPL-2.0
# UPM: User-guided Page Merging. See README.md.
#   make test     build everything needed, boot the guest, run all tests
#   make kernel   the patched kernel (KCONFIG=debug for the debug build)
#   make vm       interactive shell in the guest
SHELL := /bin/bash
export KCONFIG ?= default

.PHONY: all setup kernel tests initramfs guest test vm checkpatch clean distclean
all: guest

setup:
	@scripts/setup-host

kernel: setup
	@scripts/build-kernel

tests: kernel
	@scripts/build-tests

initramfs: tests
	@scripts/make-initramfs

guest: kernel initramfs

test: setup
	@scripts/run-tests

vm: guest
	@scripts/vm

checkpatch: setup
	@scripts/checkpatch

clean:
	rm -rf build/kernel-* build/guest build/logs build/initramfs.cpio.gz

distclean:
	rm -rf build
