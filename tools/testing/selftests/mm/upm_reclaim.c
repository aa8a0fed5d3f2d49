// SPDX-License-Identifier: GPL-2.0
/*
 * Reclaim and migration of pages merged by MADV_UPM.
 *
 * With swap on zram (set up here when the guest has none):
 * - MADV_PAGEOUT swaps merged pages out; they read back intact and merge
 *   again;
 * - a memory cgroup limit below the working set of three processes sharing
 *   merged pages swaps those pages out of all three; they read back intact
 *   and merge again.
 * On the guest's two NUMA nodes, merged pages shared by three processes are
 * moved by compaction (/proc/sys/vm/compact_memory), by move_pages(2) to the
 * other node and by migrate_pages(2) back; they read back intact and stay
 * merged: one page frame, the same in all three processes.
 * After each step KSM's counters must agree with the processes'
 * (/proc/PID/ksm_stat), and after the processes exit they are back where
 * they started. Swap, zram and the cgroup are taken down at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define NPAGES (16 * MIB / PG)
#define NHELPERS 3
#define CG "upm_reclaim"
#define CG_LIMIT "8M"
#define MPOL_DEFAULT_ 0
#define MPOL_BIND_ 2
#define MPOL_MF_MOVE_ALL_ (1 << 2)
#define PM_SWAP (1ULL << 62)
#define PM_PRESENT (1ULL << 63)

enum {
	CMD_FILL = 1,		/* map and fill the region */
	CMD_FILL_NODE0,		/* the same, on node 0, between filler pages */
	CMD_FREE_FILLER,
	CMD_UPM,
	CMD_PFNS,		/* PFNs into sh->pfn[idx] */
	CMD_CHECK,		/* pages that differ from what was written */
	CMD_PAGEOUT,
	CMD_SWAPPED,		/* pages swapped out */
	CMD_MOVE_TO_1,		/* move_pages(MPOL_MF_MOVE_ALL) to node 1 */
	CMD_ON_NODE0,		/* pages on node 0 */
	CMD_ON_NODE1,
	CMD_ENTER_CG,
	CMD_CLEAR_REFS,		/* the region's pages look unused since */
};

struct shared {
	uint64_t seed;
	uint64_t pfn[NHELPERS][NPAGES];
};

static struct shared *sh;
static struct worker w[NHELPERS];
static char *buf, *filler;

static long pages_on(int node)
{
	static void *pages[NPAGES];
	static int status[NPAGES];
	long n = 0;
	size_t i;

	for (i = 0; i < NPAGES; i++)
		pages[i] = buf + i * PG;
	if (syscall(__NR_move_pages, 0, NPAGES, pages, NULL, status, 0))
		return -errno;
	for (i = 0; i < NPAGES; i++)
		if (status[i] == node)
			n++;
	return n;
}

static long count_swapped(void)
{
	static uint64_t pm[NPAGES];
	int fd = open("/proc/self/pagemap", O_RDONLY);
	long n = 0;
	size_t i;

	if (fd < 0)
		return -errno;
	if (pread(fd, pm, sizeof(pm), (uintptr_t)buf / PG * 8) !=
	    (ssize_t)sizeof(pm)) {
		close(fd);
		return -EIO;
	}
	close(fd);
	for (i = 0; i < NPAGES; i++)
		if ((pm[i] & PM_SWAP) && !(pm[i] & PM_PRESENT))
			n++;
	return n;
}

static long helper(int idx, int cmd, void *arg)
{
	static void *pages[NPAGES];
	static int nodes[NPAGES], status[NPAGES];
	unsigned long mask = 1;
	size_t i;
	long n;
	(void)arg;

	switch (cmd) {
	case CMD_FILL:
		buf = map_anon(NPAGES * PG, -1);
		if (!buf)
			return -ENOMEM;
		fill_pages(buf, NPAGES, sh->seed);
		return 0;
	case CMD_FILL_NODE0:
		/*
		 * Every other page of node 0 a filler page, freed later: the
		 * region's pages are then scattered over half-empty pageblocks,
		 * which compaction empties.
		 */
		if (syscall(__NR_set_mempolicy, MPOL_BIND_, &mask, 3))
			return -errno;
		buf = map_anon(NPAGES * PG, -1);
		filler = map_anon(NPAGES * PG, -1);
		if (!buf || !filler)
			return -ENOMEM;
		/*
		 * A page the merge had to copy back (a pair whose candidate got
		 * a reference between look and replacement) stays on node 0
		 * too; upm_numa tests that merging copies nothing.
		 */
		if (syscall(__NR_mbind, buf, NPAGES * PG, MPOL_BIND_, &mask, 3,
			    0))
			return -errno;
		for (i = 0; i < NPAGES; i++) {
			fill_page(buf + i * PG, sh->seed, i);
			filler[i * PG] = 1;
		}
		syscall(__NR_set_mempolicy, MPOL_DEFAULT_, NULL, 0);
		return 0;
	case CMD_FREE_FILLER:
		unmap_anon(filler, NPAGES * PG);
		filler = NULL;
		return 0;
	case CMD_UPM:
		return upm_call(buf, NPAGES * PG);
	case CMD_PFNS:
		return pfns_of(buf, NPAGES, sh->pfn[idx]);
	case CMD_CHECK:
		return count_bad_pages(buf, NPAGES, sh->seed);
	case CMD_PAGEOUT:
		return madvise(buf, NPAGES * PG, MADV_PAGEOUT) ? errno : 0;
	case CMD_SWAPPED:
		return count_swapped();
	case CMD_MOVE_TO_1:
		for (i = 0; i < NPAGES; i++) {
			pages[i] = buf + i * PG;
			nodes[i] = 1;
		}
		n = syscall(__NR_move_pages, 0, NPAGES, pages, nodes, status,
			    MPOL_MF_MOVE_ALL_);
		return n < 0 ? -errno : n;
	case CMD_ON_NODE0:
		return pages_on(0);
	case CMD_ON_NODE1:
		return pages_on(1);
	case CMD_ENTER_CG:
		return cg_enter(CG, 0) ? -errno : 0;
	case CMD_CLEAR_REFS:
		return write_str("/proc/self/clear_refs", "1") ? -errno : 0;
	}
	return -EINVAL;
}

/* ---- driving the helpers ---- */

static bool all_call(int cmd, const char *what)
{
	bool ok = true;
	long r;
	int i;

	for (i = 0; i < NHELPERS; i++) {
		r = worker_call(&w[i], cmd);
		if (r) {
			ksft_print_msg("helper %d: %s: %ld (%s)\n", i, what, r,
				       r < 0 && r != WORKER_DEAD ?
				       strerror((int)-r) : "");
			ok = false;
		}
	}
	return ok;
}

static void start_helpers(uint64_t seed)
{
	int i;

	sh->seed = seed;
	for (i = 0; i < NHELPERS; i++)
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
}

static void stop_helpers(void)
{
	int i;

	for (i = 0; i < NHELPERS; i++)
		worker_stop(&w[i]);
}

static pid_t pids[NHELPERS];

static bool counters_match(const struct ksm_stats *base, long base_rmap,
			   const char *label)
{
	int i;

	for (i = 0; i < NHELPERS; i++)
		pids[i] = w[i].pid;
	return ksm_counters_match(pids, NHELPERS, base, base_rmap, label);
}

/* Pages whose PFN differs between helpers, or is not a KSM page. */
static long unmerged_pages(int n)
{
	long bad = 0;
	size_t j;
	int i;

	for (i = 0; i < n; i++)
		if (worker_call(&w[i], CMD_PFNS))
			return NPAGES;
	for (j = 0; j < NPAGES; j++) {
		bool same = sh->pfn[0][j] != 0 && pfn_is_ksm(sh->pfn[0][j]);

		for (i = 1; i < n; i++)
			if (sh->pfn[i][j] != sh->pfn[0][j])
				same = false;
		if (!same)
			bad++;
	}
	return bad;
}

static long bad_pages(int n)
{
	long bad = 0, r;
	int i;

	for (i = 0; i < n; i++) {
		r = worker_call(&w[i], CMD_CHECK);
		if (r)
			ksft_print_msg("helper %d: %ld pages differ from what it wrote\n",
				       i, r);
		bad += r < 0 ? (long)NPAGES : r;
	}
	return bad;
}

/* ---- reclaim ---- */

static void test_pageout(const struct ksm_stats *base, long base_rmap)
{
	long swapped, bad, unmerged;
	bool ok;
	int r;

	start_helpers(0x7a9e0);
	ok = worker_call(&w[0], CMD_FILL) == 0 &&
	     worker_call(&w[0], CMD_UPM) == 0;
	unmerged = unmerged_pages(1);
	if (!ok || unmerged)
		ksft_print_msg("helper 0: fill and MADV_UPM %s, %ld pages not KSM pages\n",
			       ok ? "done" : "failed", unmerged);
	r = worker_call(&w[0], CMD_PAGEOUT);
	swapped = worker_call(&w[0], CMD_SWAPPED);
	ksft_print_msg("MADV_PAGEOUT (%s): %ld of %lu merged pages swapped out\n",
		       r ? strerror(r) : "ok", swapped, NPAGES);
	ok = ok && !unmerged && r == 0 && swapped >= (long)NPAGES * 9 / 10;
	if (!counters_match(base, base_rmap, "swapped out"))
		ok = false;
	bad = bad_pages(1);
	ksft_test_result(ok && bad == 0,
			 "MADV_PAGEOUT swaps merged pages out, they read back intact\n");

	/* merged again, now with a second process */
	ok = worker_call(&w[0], CMD_UPM) == 0 &&
	     worker_call(&w[1], CMD_FILL) == 0 &&
	     worker_call(&w[1], CMD_UPM) == 0;
	unmerged = unmerged_pages(2);
	if (unmerged)
		ksft_print_msg("%ld pages not merged between the two processes\n",
			       unmerged);
	ok = ok && !unmerged && bad_pages(2) == 0 &&
	     counters_match(base, base_rmap, "merged again");
	ksft_test_result(ok, "swapped-in pages merge again across processes\n");
	stop_helpers();
}

static void test_memcg(const struct ksm_stats *base, long base_rmap)
{
	long swapped[NHELPERS], bad, unmerged, cur;
	struct ksm_stats before, after;
	bool ok, all_swapped = true;
	int i;

	if (cg_init() || cg_create(CG)) {
		ksft_test_result_skip("memory.max: no memory cgroup\n");
		ksft_test_result_skip("memory.max: pages read back\n");
		return;
	}
	start_helpers(0x3e3c6);
	ok = all_call(CMD_ENTER_CG, "enter the cgroup") &&
	     all_call(CMD_FILL, "fill") && all_call(CMD_UPM, "MADV_UPM");
	unmerged = unmerged_pages(NHELPERS);
	cur = cg_read(CG, "memory.current", NULL);
	ksft_print_msg("3 processes x %lu MiB, merged: memory.current %ld kB, %ld pages not merged\n",
		       NPAGES * PG / MIB, cur / 1024, unmerged);
	/*
	 * Merging marks a KSM page accessed (PG_referenced) and its ptes are
	 * young, so the first reclaim pass activates it; within the one
	 * reclaim that writing memory.max runs, the memcg's LRU statistics
	 * (flushed at most every 2 s) still show the pages inactive, nothing
	 * is deactivated, and the writer OOM-kills the cgroup instead: KSM's
	 * pages merged by ksmd behave the same. So let the pages look unused
	 * since the merge, as pages are when memory runs short.
	 */
	ok = ok && all_call(CMD_CLEAR_REFS, "clear_refs");
	ksm_stats_read(&before);
	/* below the working set: reclaim must swap the merged pages out */
	if (cg_write(CG, "memory.max", CG_LIMIT)) {
		ksft_print_msg("memory.max %s: %s\n", CG_LIMIT,
			       strerror(errno));
		ok = false;
	}
	cur = cg_read(CG, "memory.current", NULL);
	for (i = 0; i < NHELPERS; i++) {
		swapped[i] = worker_call(&w[i], CMD_SWAPPED);
		if (swapped[i] < (long)NPAGES / 2)
			all_swapped = false;
	}
	ksm_stats_read(&after);
	ksft_print_msg("memory.max %s: memory.current %ld kB; swapped out: %ld, %ld, %ld pages of %lu\n",
		       CG_LIMIT, cur / 1024, swapped[0], swapped[1], swapped[2],
		       NPAGES);
	/*
	 * A KSM page that left the swap cache leaves a stale stable node,
	 * which KSM prunes when it meets it (its sharers then drop out of
	 * pages_shared and pages_sharing); the processes' counts must agree.
	 */
	ksft_print_msg("pages_shared %ld -> %ld, pages_sharing %ld -> %ld while swapped\n",
		       before.pages_shared, after.pages_shared,
		       before.pages_sharing, after.pages_sharing);
	if (!counters_match(base, base_rmap, "memory.max"))
		ok = false;
	ksft_test_result(ok && !unmerged && all_swapped,
			 "memory.max below the working set swaps merged pages out of all sharers\n");

	cg_write(CG, "memory.max", "max");
	bad = bad_pages(NHELPERS);
	ok = all_call(CMD_UPM, "MADV_UPM again");
	unmerged = unmerged_pages(NHELPERS);
	if (unmerged)
		ksft_print_msg("%ld pages not merged after swap-in\n", unmerged);
	ok = ok && !bad && !unmerged &&
	     counters_match(base, base_rmap, "after swap-in");
	ksft_test_result(ok, "they read back intact in all sharers and merge again\n");
	stop_helpers();
}

/* ---- migration ---- */

static long moved_pages(const uint64_t *before, const uint64_t *after)
{
	long n = 0;
	size_t j;

	for (j = 0; j < NPAGES; j++)
		if (before[j] != after[j])
			n++;
	return n;
}

static void test_migration(const struct ksm_stats *base, long base_rmap)
{
	static uint64_t pfn0[NPAGES];
	unsigned long from = 2, to = 1;	/* node masks */
	struct ksm_stats before, after;
	long r, moved, unmerged, on[NHELPERS];
	bool ok, ok2;
	int i;

	start_helpers(0x919a7e);
	ok = all_call(CMD_FILL_NODE0, "fill on node 0");
	/*
	 * One helper's pages become the KSM pages, the others' are freed;
	 * with every filler page freed too, the KSM pages are left in
	 * half-empty pageblocks.
	 */
	ok = ok && all_call(CMD_UPM, "MADV_UPM") &&
	     all_call(CMD_FREE_FILLER, "free the filler");
	unmerged = unmerged_pages(NHELPERS);
	/* The move below assumes every page starts on node 0. */
	on[0] = worker_call(&w[0], CMD_ON_NODE0);
	if (!ok || unmerged || on[0] != (long)NPAGES) {
		ksft_print_msg("setup failed, %ld pages not merged, %ld of %lu on node 0\n",
			       unmerged, on[0], NPAGES);
		ok = false;
	}
	memcpy(pfn0, sh->pfn[0], sizeof(pfn0));

	/* compaction */
	ksm_stats_read(&before);
	for (i = 0; i < 3; i++) {
		if (write_str("/proc/sys/vm/compact_memory", "1"))
			ksft_print_msg("compact_memory: %s\n", strerror(errno));
		unmerged = unmerged_pages(NHELPERS);
		moved = moved_pages(pfn0, sh->pfn[0]);
		if (moved)
			break;
	}
	ksm_stats_read(&after);
	ksft_print_msg("compaction moved %ld of %lu merged pages; %ld not merged after\n",
		       moved, NPAGES, unmerged);
	ok2 = ok && moved > 0 && !unmerged && bad_pages(NHELPERS) == 0 &&
	      after.pages_shared == before.pages_shared &&
	      after.pages_sharing == before.pages_sharing &&
	      counters_match(base, base_rmap, "compaction");
	if (ok && !moved)
		ksft_test_result_skip("compaction moved none of the merged pages: nothing tested\n");
	else
		ksft_test_result(ok2, "compaction moves merged pages: intact, still one page for all sharers\n");

	/* move_pages to node 1, from helper 0 */
	memcpy(pfn0, sh->pfn[0], sizeof(pfn0));
	ksm_stats_read(&before);
	r = worker_call(&w[0], CMD_MOVE_TO_1);
	for (i = 0; i < NHELPERS; i++)
		on[i] = worker_call(&w[i], CMD_ON_NODE1);
	unmerged = unmerged_pages(NHELPERS);
	moved = moved_pages(pfn0, sh->pfn[0]);
	ksm_stats_read(&after);
	ksft_print_msg("move_pages: %ld; on node 1: %ld, %ld, %ld of %lu; %ld moved; %ld not merged\n",
		       r, on[0], on[1], on[2], NPAGES, moved, unmerged);
	ok2 = ok && r == 0 && moved == (long)NPAGES && !unmerged &&
	      bad_pages(NHELPERS) == 0 &&
	      after.pages_shared == before.pages_shared &&
	      after.pages_sharing == before.pages_sharing &&
	      counters_match(base, base_rmap, "move_pages");
	for (i = 0; i < NHELPERS; i++)
		if (on[i] != (long)NPAGES)
			ok2 = false;
	ksft_test_result(ok2, "move_pages(MPOL_MF_MOVE_ALL) moves merged pages to node 1: intact, still merged\n");

	/* migrate_pages of helper 1 back to node 0 */
	memcpy(pfn0, sh->pfn[0], sizeof(pfn0));
	ksm_stats_read(&before);
	r = syscall(__NR_migrate_pages, w[1].pid, 3, &from, &to);
	if (r < 0)
		r = -errno;
	for (i = 0; i < NHELPERS; i++)
		on[i] = worker_call(&w[i], CMD_ON_NODE0);
	unmerged = unmerged_pages(NHELPERS);
	moved = moved_pages(pfn0, sh->pfn[0]);
	ksm_stats_read(&after);
	ksft_print_msg("migrate_pages: %ld; on node 0: %ld, %ld, %ld of %lu; %ld moved; %ld not merged\n",
		       r, on[0], on[1], on[2], NPAGES, moved, unmerged);
	ok2 = ok && r == 0 && moved == (long)NPAGES && !unmerged &&
	      bad_pages(NHELPERS) == 0 &&
	      after.pages_shared == before.pages_shared &&
	      after.pages_sharing == before.pages_sharing &&
	      counters_match(base, base_rmap, "migrate_pages");
	for (i = 0; i < NHELPERS; i++)
		if (on[i] != (long)NPAGES)
			ok2 = false;
	ksft_test_result(ok2, "migrate_pages moves them back to node 0: intact, still merged\n");
	stop_helpers();
}

int main(void)
{
	struct ksm_settings saved;
	struct ksm_stats base;
	long base_rmap;
	unsigned long idx = 0;
	char swapdev[64] = "";
	bool ok, have_swap;

	ksft_print_header();
	signal(SIGPIPE, SIG_IGN);	/* a helper killed by the OOM killer */
	upm_require("KSM sysfs, swap, cgroups");
	ksft_set_plan(8);
	sh = shared_alloc(sizeof(*sh));
	if (!sh)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	ksm_settings_save(&saved);
	/* merged pages may then sit on either node */
	write_str(KSM_SYSFS "merge_across_nodes", "1");
	ksm_stats_read(&base);
	base_rmap = ksm_rmap_items();

	have_swap = swap_areas() > 0;
	if (!have_swap && zram_swap_on(256, swapdev, sizeof(swapdev)) == 0)
		have_swap = true;
	if (have_swap) {
		ksft_print_msg("swap: %s\n", swapdev[0] ? swapdev :
			       "the guest's own");
		test_pageout(&base, base_rmap);
		test_memcg(&base, base_rmap);
	} else {
		ksft_test_result_skip("MADV_PAGEOUT: no swap\n");
		ksft_test_result_skip("merge again: no swap\n");
		ksft_test_result_skip("memory.max: no swap\n");
		ksft_test_result_skip("memory.max: no swap\n");
	}
	if (access("/sys/devices/system/node/node1", F_OK) == 0) {
		test_migration(&base, base_rmap);
	} else {
		ksft_test_result_skip("compaction: needs two NUMA nodes\n");
		ksft_test_result_skip("move_pages: needs two NUMA nodes\n");
		ksft_test_result_skip("migrate_pages: needs two NUMA nodes\n");
	}

	ok = ksm_clean_after_exit(&base, base_rmap, 15000);
	if (!upm_wait_index(0, 10000, &idx)) {
		ksft_print_msg("index_entries %lu after exit\n", idx);
		ok = false;
	}
	if (swapdev[0] && zram_swap_off(swapdev))
		ok = false;
	if (cg_destroy(CG))
		ok = false;
	ksm_settings_restore(&saved);
	ksft_test_result(ok, "all exited: KSM counters, rmap items and UPM index back; swap, zram and cgroup gone\n");
	ksft_finished();
}
