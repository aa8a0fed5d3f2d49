// SPDX-License-Identifier: GPL-2.0
/*
 * MADV_UPM on a two-node guest: with KSM's merge_across_nodes=1 (the
 * default) pages on different nodes merge; with merge_across_nodes=0 they
 * merge only with pages on their own node, as ksmd would do.
 * A pair merge that must wait, because the candidate's page is still in
 * another CPU's LRU batch, leaves the caller's page where it was: it is not
 * made a KSM page and unmerged again, which would copy it to the caller's
 * node.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define NPAGES (8 * MIB / PG)
#define MPOL_DEFAULT_ 0
#define MPOL_BIND_ 2

enum { CMD_SETUP0 = 1, CMD_SETUP1, CMD_ADVISE, CMD_MEASURE,
	CMD_SETUP0_THEN_LOCAL,	/* filled on node 0, later pages local */
	CMD_ON_CPU0, CMD_ON_CPU1,
	CMD_NOT_ON_LRU };	/* pages of the region not on the LRU */

#define HELD 16		/* pages left in a CPU's LRU batch (31 at most) */

struct shared {
	uint64_t seed;
	uint64_t pfn[3][NPAGES];
	int node[3][NPAGES];
	long bad[3];
};

static struct shared *sh;
static struct ksm_settings saved;
static char *buf;

static long helper(int idx, int cmd, void *arg)
{
	unsigned long mask;
	void *pages[64];
	cpu_set_t cpus;
	size_t j, k, n;
	(void)arg;

	switch (cmd) {
	case CMD_ON_CPU0:
	case CMD_ON_CPU1:
		CPU_ZERO(&cpus);
		CPU_SET(cmd == CMD_ON_CPU0 ? 0 : 1, &cpus);
		return sched_setaffinity(0, sizeof(cpus), &cpus) ? -errno : 0;
	case CMD_SETUP0_THEN_LOCAL:
		mask = 1;
		if (syscall(__NR_set_mempolicy, MPOL_BIND_, &mask, 3))
			return -errno;
		/* Small pages: a THP leaves the LRU batch at once. */
		buf = map_anon(NPAGES * PG, -1);
		if (!buf)
			return -ENOMEM;
		fill_pages(buf, NPAGES, sh->seed);
		/* The last HELD pages again, alone in this CPU's batch. */
		if (madvise(buf + (NPAGES - HELD) * PG, HELD * PG,
			    MADV_DONTNEED) ||
		    madvise(buf, PG, MADV_COLD))
			return -errno;
		fill_pages(buf, NPAGES, sh->seed);
		return syscall(__NR_set_mempolicy, MPOL_DEFAULT_, NULL, 0) ?
		       -errno : 0;
	case CMD_SETUP0:
	case CMD_SETUP1:
		mask = 1UL << (cmd == CMD_SETUP0 ? 0 : 1);
		if (syscall(__NR_set_mempolicy, MPOL_BIND_, &mask, 3))
			return -errno;
		buf = map_anon(NPAGES * PG, 0);
		if (!buf)
			return -ENOMEM;
		fill_pages(buf, NPAGES, sh->seed);
		return 0;
	case CMD_ADVISE:
		return upm_call(buf, NPAGES * PG);
	case CMD_NOT_ON_LRU:
		if (pfns_of(buf, NPAGES, sh->pfn[idx]))
			return -EIO;
		for (j = 0, n = 0; j < NPAGES; j++)
			n += !(pfn_flags(sh->pfn[idx][j]) & (1ULL << 5));
		return n;	/* KPF_LRU */
	case CMD_MEASURE:
		pfns_of(buf, NPAGES, sh->pfn[idx]);
		for (j = 0; j < NPAGES; j += n) {
			n = NPAGES - j < 64 ? NPAGES - j : 64;
			for (k = 0; k < n; k++)
				pages[k] = buf + (j + k) * PG;
			if (syscall(__NR_move_pages, 0, n, pages, NULL,
				    &sh->node[idx][j], 0))
				return -errno;
		}
		sh->bad[idx] = count_bad_pages(buf, NPAGES, sh->seed);
		return 0;
	}
	return -EINVAL;
}

/*
 * Helpers 0 and 2 on node 0, helper 1 on node 1, same contents; advised
 * in the order 0, 1, 2. d[i]: counters moved by helper i's call.
 */
static bool run3(struct worker *w, struct upm_stats *d, uint64_t seed)
{
	bool ok = true;
	long r;
	int i;

	sh->seed = seed;
	for (i = 0; i < 3; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		r = worker_call(&w[i], i == 1 ? CMD_SETUP1 : CMD_SETUP0);
		if (r) {
			ksft_print_msg("helper %d: setup failed: %s\n", i,
				       strerror(-r));
			ok = false;
		}
	}
	for (i = 0; i < 3 && ok; i++) {
		r = worker_call_counted(&w[i], CMD_ADVISE,
					i == 1 ? "node 1" : "node 0",
					&d[i]);
		if (r) {
			ksft_print_msg("helper %d: madvise(MADV_UPM): %s\n", i,
				       strerror(r));
			ok = false;
		}
	}
	for (i = 0; i < 3 && ok; i++)
		if (worker_call(&w[i], CMD_MEASURE)) {
			ksft_print_msg("helper %d: move_pages failed\n", i);
			ok = false;
		}
	return ok;
}

static bool stop3(struct worker *w, const struct ksm_stats *base)
{
	int i;

	for (i = 0; i < 3; i++)
		worker_stop(&w[i]);
	return ksm_back_after_exit(base, NULL);
}

static size_t count(int x, int y, bool same)
{
	size_t j, n = 0;

	for (j = 0; j < NPAGES; j++)
		n += (sh->pfn[x][j] == sh->pfn[y][j]) == same;
	return n;
}

static void test_across(void)
{
	struct worker w[3];
	struct upm_stats d[3];
	struct ksm_stats base;
	bool ok;
	int fail = 0;

	ksm_stats_read(&base);
	ok = run3(w, d, 0xa100);
	if (ok) {
		if (d[1].pages_merged != NPAGES || d[2].pages_merged != NPAGES) {
			ksft_print_msg("expected pages_merged +%lu for the later callers, saw %+ld %+ld\n",
				       NPAGES, (long)d[1].pages_merged,
				       (long)d[2].pages_merged);
			fail = 1;
		}
		if (count(0, 1, true) != NPAGES || count(0, 2, true) != NPAGES) {
			ksft_print_msg("pages shared across nodes: %zu, on node 0: %zu of %lu\n",
				       count(0, 1, true), count(0, 2, true),
				       NPAGES);
			fail = 1;
		}
		if (sh->bad[0] || sh->bad[1] || sh->bad[2]) {
			ksft_print_msg("contents changed\n");
			fail = 1;
		}
		ok = !fail;
	}
	ok &= stop3(w, &base);
	ksft_test_result(ok, "merge_across_nodes=1: pages on both nodes merge\n");
}

static void test_per_node(void)
{
	struct worker w[3];
	struct upm_stats d[3];
	struct ksm_stats base;
	size_t j, wrong_node = 0;
	bool ok;
	int fail = 0;

	ksm_stats_read(&base);
	if (write_str(KSM_SYSFS "merge_across_nodes", "0")) {
		ksft_test_result_skip("merge_across_nodes=0: cannot set it (%s; pages_shared %ld)\n",
				      strerror(errno), base.pages_shared);
		return;
	}
	ok = run3(w, d, 0xa200);
	if (ok) {
		/* Node 0's candidates are no twins for node 1's pages. */
		if (d[1].pages_candidate != NPAGES || d[1].pages_merged) {
			ksft_print_msg("node 1 caller: expected candidate +%lu merged +0, saw %+ld %+ld\n",
				       NPAGES, (long)d[1].pages_candidate,
				       (long)d[1].pages_merged);
			fail = 1;
		}
		if (d[2].pages_merged != NPAGES) {
			ksft_print_msg("second node 0 caller: expected merged +%lu, saw %+ld\n",
				       NPAGES, (long)d[2].pages_merged);
			fail = 1;
		}
		if (count(0, 1, false) != NPAGES ||
		    count(0, 2, true) != NPAGES) {
			ksft_print_msg("node 0/1 pairs apart: %zu, node 0 pairs shared: %zu, of %lu\n",
				       count(0, 1, false), count(0, 2, true),
				       NPAGES);
			fail = 1;
		}
		for (j = 0; j < NPAGES; j++)
			wrong_node += sh->node[0][j] != 0 ||
				      sh->node[1][j] != 1 ||
				      sh->node[2][j] != 0;
		if (wrong_node) {
			ksft_print_msg("%zu pages on the wrong node (first: %d %d %d)\n",
				       wrong_node, sh->node[0][0],
				       sh->node[1][0], sh->node[2][0]);
			fail = 1;
		}
		if (sh->bad[0] || sh->bad[1] || sh->bad[2]) {
			ksft_print_msg("contents changed\n");
			fail = 1;
		}
		ok = !fail;
	}
	ok &= stop3(w, &base);
	if (write_str(KSM_SYSFS "merge_across_nodes", saved.merge_across_nodes)) {
		ksft_print_msg("cannot restore merge_across_nodes: %s\n",
			       strerror(errno));
		ok = false;
	}
	ksft_test_result(ok, "merge_across_nodes=0: pages merge only with pages on their node\n");
}

/*
 * Helper 0 fills its pages on CPU 0 (node 0), the last HELD of them after
 * draining CPU 0's LRU batch, moves to CPU 1 and advises: its MADV_UPM
 * drains CPU 1's batch only, so those pages stay in CPU 0's, with a
 * reference each (not on the LRU, as /proc/kpageflags shows). Helper 1,
 * on CPU 1 with its pages on node 0 too, advises the same contents: the
 * pairs whose candidate is held wait for the retry pass, which drains
 * every CPU's batch. All pages merge, none is copied (cow_ksm), all stay
 * on node 0. This process stays on CPU 1, away from CPU 0's batch.
 */
static void test_held_candidate(void)
{
	const char *name = "a pair whose candidate is in another CPU's LRU batch";
	size_t j, off_node = 0, shared = 0;
	cpu_set_t cpus, saved_cpus;
	struct worker w[2];
	struct upm_stats d;
	struct ksm_stats base;
	long r, held, cow0, cow_ksm = 0;
	bool ok = true;
	int i;

	CPU_ZERO(&cpus);
	CPU_SET(1, &cpus);
	if (sched_getaffinity(0, sizeof(saved_cpus), &saved_cpus) ||
	    sched_setaffinity(0, sizeof(cpus), &cpus)) {
		ksft_test_result_skip("%s: needs CPUs 0 and 1 (%s)\n", name,
				      strerror(errno));
		return;
	}
	ksm_stats_read(&base);
	sh->seed = 0xa300;
	for (i = 0; i < 2; i++)
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	r = worker_call(&w[0], CMD_ON_CPU0);
	r = r ?: worker_call(&w[0], CMD_SETUP0_THEN_LOCAL);
	r = r ?: worker_call(&w[0], CMD_ON_CPU1);
	r = r ?: worker_call(&w[0], CMD_ADVISE);
	r = r ?: worker_call(&w[1], CMD_SETUP0_THEN_LOCAL);
	held = r ? 0 : worker_call(&w[0], CMD_NOT_ON_LRU);
	if (r || held < 0) {
		ksft_print_msg("%s: setup: %ld, %ld\n", name, r, held);
		ok = false;
		goto out;
	}
	if (!held) {
		/* Something else drained CPU 0's batch: nothing to test. */
		for (i = 0; i < 2; i++)
			worker_stop(&w[i]);
		sched_setaffinity(0, sizeof(saved_cpus), &saved_cpus);
		ksft_test_result_skip("%s: no candidate was left in CPU 0's LRU batch\n",
				      name);
		return;
	}
	cow0 = ksm_cow_count();
	r = worker_call_counted(&w[1], CMD_ADVISE, "second caller", &d);
	cow_ksm = ksm_cow_count() - cow0;
	if (r || d.pages_merged != NPAGES) {
		ksft_print_msg("second caller: expected pages_merged +%lu, saw %+ld (%s)\n",
			       NPAGES, (long)d.pages_merged, strerror(r));
		ok = false;
	}
	if (worker_call(&w[0], CMD_MEASURE) || worker_call(&w[1], CMD_MEASURE))
		ok = false;
	for (j = 0; j < NPAGES; j++) {
		shared += sh->pfn[0][j] == sh->pfn[1][j];
		off_node += sh->node[0][j] != 0 || sh->node[1][j] != 0;
	}
	ksft_print_msg("candidates held in CPU 0's LRU batch: %ld; KSM pages copied during the call: %ld; pages shared: %zu, off node 0: %zu, of %lu\n",
		       held, cow_ksm, shared, off_node, NPAGES);
	if (cow0 < 0 || cow_ksm || shared != NPAGES || off_node ||
	    sh->bad[0] || sh->bad[1])
		ok = false;
out:
	for (i = 0; i < 2; i++)
		worker_stop(&w[i]);
	sched_setaffinity(0, sizeof(saved_cpus), &saved_cpus);
	ok &= ksm_back_after_exit(&base, NULL);
	ksft_test_result(ok, "%s waits: no copy, the page stays on its node\n",
			 name);
}

static void restore(void)
{
	ksm_settings_restore(&saved);
}

int main(void)
{
	ksft_print_header();
	upm_require("PFNs in pagemap, KSM sysfs");
	if (access("/sys/devices/system/node/node1", F_OK))
		ksft_exit_skip("needs two NUMA nodes\n");
	ksft_set_plan(3);
	if (ksm_settings_save(&saved))
		ksft_exit_fail_msg("cannot read KSM settings\n");
	atexit(restore);
	sh = shared_alloc(sizeof(*sh));
	if (!sh)
		ksft_exit_fail_msg("no memory for results\n");
	test_across();
	test_per_node();
	test_held_candidate();
	ksft_finished();
}
