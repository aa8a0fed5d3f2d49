# SPDX-License-Identifier: GPL-2.0
# UPM: User-guided Page Merging. See README.md.
#   make test     build everything needed, boot the guest, run all tests
#   make kernel   the patched kernel (KCONFIG=debug for the debug build)
#   make vm       interactive shell in the guest
#   make series   the upstream form of the series, for git am (build/series/out)
#   make series-check  it applies, each patch builds, UPM=n and KSM=n boot
#   make demo     PyTorch functions in the guest: memory with none / KSM / UPM
#   make bench    MADV_UPM against memcmp and KSM, results in build/bench
#                 (BENCH_SIZES=16,64,256,1024 BENCH_REPS=5 BENCH_KSM_REPS=1
#                 BENCH_KSM_CAP=120 BENCH_MEM=... BENCH_OUT=build/bench)
SHELL := /bin/bash
export KCONFIG ?= default

.PHONY: all setup kernel tests initramfs guest test vm demo bench checkpatch series series-check clean distclean
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

# Builds what changed first; DEMO_ARGS, e.g. --sweep.
demo: guest
	@scripts/demo $(DEMO_ARGS)

# Builds what changed first, so that the figures are the current kernel's;
# options through the environment: scripts/bench reads BENCH_* itself.
export BENCH_SIZES BENCH_REPS BENCH_KSM_REPS BENCH_KSM_CAP BENCH_MEM BENCH_OUT BENCH_TIMEOUT
bench: guest
	@scripts/bench

checkpatch: setup
	@scripts/checkpatch

series: setup
	@scripts/series

series-check: kernel
	@scripts/series-check --summary

clean:
	rm -rf build/kernel-* build/guest build/logs build/initramfs.cpio.gz

distclean:
	rm -rf build
