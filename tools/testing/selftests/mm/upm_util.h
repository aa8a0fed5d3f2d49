/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the MADV_UPM selftests (upm_*.c): counters, page-frame numbers,
 * smaps, deterministic page contents, helper processes driven over pipes,
 * and saving/restoring KSM's sysfs settings.
 */
#ifndef UPM_UTIL_H
#define UPM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/types.h>

#include "../kselftest.h"

/* Not in the C library's headers yet; the values of the uapi headers. */
#ifndef MADV_UPM
#define MADV_UPM 26
#endif
#ifndef PR_SET_UPM_DOMAIN
#define PR_SET_UPM_DOMAIN 0x55504d01
#define PR_GET_UPM_DOMAIN 0x55504d02
#endif

#define PG 4096UL
#define MIB (1024UL * 1024UL)

#define UPM_SYSFS "/sys/kernel/mm/upm/"
#define KSM_SYSFS "/sys/kernel/mm/ksm/"

/* Diagnostics in TAP comment form ("# ..."), usable from helper processes. */
void upm_msg(const char *fmt, ...) __printf(1, 2);

/* ---- files ---- */
int read_ulong(const char *path, unsigned long *val);
int read_str(const char *path, char *buf, size_t len);
int write_str(const char *path, const char *val);
/* "key value" or "Key:   value kB" line of a file; -1 when absent. */
long file_field(const char *path, const char *key);

/* ---- UPM and KSM counters ---- */
struct upm_stats {
	unsigned long calls, pages_scanned, pages_merged, pages_new_ksm,
		      pages_already_merged, pages_skipped, pages_zero, time_ns,
		      index_entries, pages_candidate, candidates;
};

/* 0 on success, -1 when /sys/kernel/mm/upm/ is missing or unreadable. */
int upm_stats_read(struct upm_stats *s);
/* d = b - a (as signed longs stored in unsigned fields) */
void upm_stats_delta(const struct upm_stats *a, const struct upm_stats *b,
		     struct upm_stats *d);
void upm_stats_print(const char *label, const struct upm_stats *d);
/*
 * Checks scanned == merged + candidate + already_merged + skipped, and that
 * no more KSM pages were made than pages merged (one per pair).
 */
bool upm_stats_balanced(const struct upm_stats *d, const char *label);
bool upm_present(void);
/*
 * Skips the whole test, before its plan, when not run as root (the test
 * needs it for @needs) or on a kernel without CONFIG_UPM.
 */
void upm_require(const char *needs);
/*
 * TAP header and plan; skips the program unless root, warns without UPM.
 * A macro: kselftest.h keeps its counters in each program's own statics.
 */
#define upm_test_start(plan) do {					\
	ksft_print_header();						\
	upm_require("PFNs in pagemap, KSM sysfs");			\
	ksft_set_plan(plan);						\
} while (0)

struct ksm_stats {
	long pages_shared, pages_sharing, pages_unshared, pages_volatile,
	     ksm_zero_pages, full_scans;
};

int ksm_stats_read(struct ksm_stats *k);
/*
 * KSM pages copied on write or unshare since boot (/proc/vmstat cow_ksm);
 * -1, with a message, when the kernel does not count them.
 */
long ksm_cow_count(void);
/*
 * Poll until pages_shared and pages_sharing are back at base (and
 * ksm_zero_pages too); returns true on success within timeout_ms.
 */
bool ksm_wait_back(const struct ksm_stats *base, int timeout_ms,
		   struct ksm_stats *seen);
/*
 * ksm_wait_back() for 10 s after the test's processes exited; says what it
 * saw when the counters did not come back. seen may be NULL.
 */
bool ksm_back_after_exit(const struct ksm_stats *base, struct ksm_stats *seen);

/* KSM sysfs settings that tests change; restored by ksm_settings_restore. */
struct ksm_settings {
	char run[32], pages_to_scan[32], sleep_millisecs[32],
	     use_zero_pages[32], merge_across_nodes[32], max_page_sharing[32];
	bool saved;
};

int ksm_settings_save(struct ksm_settings *s);
int ksm_settings_restore(const struct ksm_settings *s);
/* ksmd at its fastest (100000 pages, no sleep), started; -1 with errno. */
int ksm_run_fastest(void);

/* ---- pages ---- */
/* madvise(addr, len, MADV_UPM); returns 0 or errno. Says why on EINVAL. */
int upm_call(void *addr, size_t len);
uint64_t pfn_of(const void *addr);
/* PFNs of npages consecutive pages (0 when not present); 0 or -1. */
int pfns_of(const void *addr, size_t npages, uint64_t *out);
/* The same for process pid's pages (0: this process); needs root. */
int pfns_of_pid(pid_t pid, const void *addr, size_t npages, uint64_t *out);
/* /proc/kpageflags word of a PFN, 0 on failure */
uint64_t pfn_flags(uint64_t pfn);
/* KPF_KSM of a PFN (true when the flag is unreliable on this kernel) */
bool pfn_is_ksm(uint64_t pfn);
bool kpf_ksm_reliable(void);
/* /proc/kpagecount: how many times the frame is mapped; -1 on failure */
long pfn_mapcount(uint64_t pfn);
uint64_t zero_page_pfn(void);

/* mmap private anonymous memory: thp < 0 NOHUGEPAGE, 0 default,
 * > 0 2 MiB aligned and MADV_HUGEPAGE. NULL on failure.
 */
void *map_anon(size_t len, int thp);
void unmap_anon(void *p, size_t len);
/* shared (MAP_SHARED|MAP_ANONYMOUS) scratch memory for results */
void *shared_alloc(size_t len);

/* Deterministic page contents: a pseudo-random page for (seed, idx). */
void fill_page(void *page, uint64_t seed, uint64_t idx);
bool page_matches(const void *page, uint64_t seed, uint64_t idx);
void fill_pages(void *p, size_t npages, uint64_t seed);
/* number of pages that do not match fill_pages(p, npages, seed) */
size_t count_bad_pages(const void *p, size_t npages, uint64_t seed);
uint64_t checksum(const void *p, size_t len);
bool page_is_zero(const void *p);

/* ---- smaps ---- */
struct vma_info {
	unsigned long start, end;
	long rss_kb, pss_kb, anon_huge_kb;
	char flags[256];
};

/* Fills vi for the VMA containing addr from /proc/self/smaps; 0 or -1. */
int vma_info(const void *addr, struct vma_info *vi);
bool vma_mergeable(const void *addr);
long pss_kb(void);	/* /proc/self/smaps_rollup Pss */

/* ---- helper processes ---- */
/* A helper runs fn(idx, cmd, arg) for each command it is sent; command 0
 * makes it exit. The value fn returns is sent back.
 */
typedef long (*worker_fn)(int idx, int cmd, void *arg);
struct worker {
	pid_t pid;
	int cmd_fd, res_fd;
	int idx;
};

#define WORKER_DEAD (-999999L)
int worker_start(struct worker *w, int idx, worker_fn fn, void *arg);
/* Sends cmd and waits for the answer; WORKER_DEAD when the helper died. */
long worker_call(struct worker *w, int cmd);
/* worker_call(), with the change of UPM's counters it caused in *d, printed. */
long worker_call_counted(struct worker *w, int cmd, const char *label,
			 struct upm_stats *d);
/* Sends cmd without waiting; collect with worker_result. */
int worker_send(struct worker *w, int cmd);
long worker_result(struct worker *w);
/* Stops the helper; returns its wait status. */
int worker_stop(struct worker *w);
/* Stops helpers w[0..n-1], then ksm_back_after_exit(base). */
bool workers_stop_back(struct worker *w, int n, const struct ksm_stats *base);

/* Runs fn(arg) in a child process; returns its exit status (fn's return
 * value), or -1 when it did not exit normally.
 */
int run_child(int (*fn)(void *), void *arg);

/* ---- KSM bookkeeping ---- */
/* sizeof(struct ksm_rmap_item) on 64-bit kernels */
#define KSM_RMAP_ITEM_SIZE 64
/*
 * KSM's rmap_items, derived from general_profit:
 * (pages_sharing + ksm_zero_pages) * PAGE_SIZE - rmap_items * 64.
 * -1 when the counters cannot be read.
 */
long ksm_rmap_items(void);
/* A "key value" field of /proc/PID/ksm_stat; -1 when absent or gone. */
long proc_ksm_stat(pid_t pid, const char *key);
/*
 * Like ksm_wait_back, and rmap items back at base_rmap too (when
 * base_rmap >= 0); *rmap_seen gets the last count.
 */
/*
 * ksm_wait_clean() after the test's processes exited; says what it saw when
 * the counters or rmap items did not come back.
 */
bool ksm_clean_after_exit(const struct ksm_stats *base, long base_rmap,
			  int timeout_ms);
bool ksm_wait_clean(const struct ksm_stats *base, long base_rmap,
		    int timeout_ms, struct ksm_stats *seen, long *rmap_seen);
/*
 * Checks KSM's global counters against the processes that use KSM, when
 * no other process does: the sum of their ksm_merging_pages must equal
 * pages_shared + pages_sharing, and the sum of their ksm_rmap_items the
 * rmap items, each above base. Says what differs.
 */
bool ksm_counters_match(const pid_t *pids, int n, const struct ksm_stats *base,
			long base_rmap, const char *label);
/* Polls index_entries until it is at most want; true on success. */
bool upm_wait_index(unsigned long want, int timeout_ms, unsigned long *seen);

/* ---- swap on zram ---- */
/* Number of active swap areas in /proc/swaps, -1 on failure. */
int swap_areas(void);
/*
 * Sets up a zram device of size_mb MiB as swap. Returns 0 with its path in
 * dev (for zram_swap_off), or -1 (says why).
 */
int zram_swap_on(unsigned long size_mb, char *dev, size_t len);
/* swapoff, and resets (and hot-removes, when added) the device; 0 or -1. */
int zram_swap_off(const char *dev);

/* ---- memory cgroups (v2) ---- */
#define CG_ROOT "/sys/fs/cgroup"
/* Mounts cgroup2 at CG_ROOT when needed and enables the memory controller
 * for children; 0 or -1 (says why).
 */
int cg_init(void);
/* mkdir CG_ROOT/name (an existing one is reused) with memory.max "max";
 * 0 or -1.
 */
int cg_create(const char *name);
int cg_write(const char *name, const char *file, const char *val);
/* A "key value" field of CG_ROOT/name/file (key NULL: the first number). */
long cg_read(const char *name, const char *file, const char *key);
/*
 * slab_unreclaimable of the cgroup's memory.stat, read until it is at least
 * want, for up to 10 s: memcg folds per-CPU updates in only past a batch
 * (128 pages' worth on two CPUs) or at its periodic flush, every 2 s.
 * *waited (if not NULL) gets the seconds that took.
 */
long cg_wait_slab(const char *name, long want, double *waited);
/* Moves pid (0: the caller) into the group; 0 or -1. */
int cg_enter(const char *name, pid_t pid);
/* Kills what is left in the group, then removes it; 0 or -1. */
int cg_destroy(const char *name);

double now_sec(void);
void sleep_ms(long ms);

#endif /* UPM_UTIL_H */
