// SPDX-License-Identifier: GPL-2.0
/*
 * MADV_UPM across processes: N processes each write the same buffer on
 * their own, advise it in turn, and end up mapping one KSM page per page
 * of content; the counters account for every page. Also: a buffer of which
 * only half is duplicate content merges exactly that half, and pages that
 * another CPU still holds in its LRU batch merge all the same.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define MAXN 4
#define HALF_DUP_PAGES (16 * MIB / PG)
/* not a multiple of the LRU batch's 31: pages are left in it */
#define REMOTE_BATCH_PAGES 1020

enum { CMD_SETUP = 1, CMD_SETUP_ON_CPU1, CMD_ADVISE, CMD_MEASURE };

enum layout {
	ALL_SAME,	/* every process: page j = (seed, j) */
	HALF_DUP,	/* processes > 0: odd pages unique to the process */
};

struct shared {
	size_t npages;
	uint64_t seed;
	enum layout layout;
	uint64_t *pfn[MAXN];
	uint64_t csum_before[MAXN], csum_after[MAXN];
	long bad[MAXN];
	long merging[MAXN], stat_merging[MAXN];
	long rollup_pss[MAXN];
	struct vma_info vi[MAXN];
};

static struct shared *sh;
static char *buf;		/* a helper's own buffer */

static uint64_t page_seed(int proc, size_t j)
{
	if (sh->layout == HALF_DUP && proc > 0 && (j & 1))
		return sh->seed + 1000 + proc;
	return sh->seed;
}

static int run_on_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

static long helper(int idx, int cmd, void *arg)
{
	size_t len = sh->npages * PG, j;
	int r;
	(void)arg;

	switch (cmd) {
	case CMD_SETUP:
	case CMD_SETUP_ON_CPU1:
		/*
		 * Faulted in on CPU 1, advised on CPU 0: the last pages stay
		 * in CPU 1's LRU batch, with a reference that keeps them from
		 * being write-protected until lru_add_drain_all().
		 */
		if (cmd == CMD_SETUP_ON_CPU1) {
			r = run_on_cpu(1);
			if (r)
				return r;
		}
		buf = map_anon(len, -1);
		if (!buf)
			return -ENOMEM;
		for (j = 0; j < sh->npages; j++)
			fill_page(buf + j * PG, page_seed(idx, j), j);
		sh->csum_before[idx] = checksum(buf, len);
		if (cmd == CMD_SETUP_ON_CPU1)
			return run_on_cpu(0);
		return 0;
	case CMD_ADVISE:
		return upm_call(buf, len);
	case CMD_MEASURE:
		if (pfns_of(buf, sh->npages, sh->pfn[idx]))
			return -EIO;
		vma_info(buf, &sh->vi[idx]);
		{
			unsigned long m = 0;

			sh->merging[idx] = read_ulong("/proc/self/ksm_merging_pages",
						      &m) ? -1 : (long)m;
		}
		sh->stat_merging[idx] = file_field("/proc/self/ksm_stat",
						   "ksm_merging_pages");
		sh->rollup_pss[idx] = pss_kb();
		sh->bad[idx] = 0;
		for (j = 0; j < sh->npages; j++)
			if (!page_matches(buf + j * PG, page_seed(idx, j), j))
				sh->bad[idx]++;
		sh->csum_after[idx] = checksum(buf, len);
		return 0;
	}
	return -EINVAL;
}

static bool check_ksm_delta(const char *label, const struct ksm_stats *a,
			    const struct ksm_stats *b, long want_shared,
			    long want_sharing)
{
	long ds = b->pages_shared - a->pages_shared;
	long dg = b->pages_sharing - a->pages_sharing;

	if (ds == want_shared && dg == want_sharing)
		return true;
	ksft_print_msg("%s: expected pages_shared %+ld pages_sharing %+ld, saw %+ld %+ld\n",
		       label, want_shared, want_sharing, ds, dg);
	return false;
}

static bool expect(const char *label, const char *what, long want, long got)
{
	if (want == got)
		return true;
	ksft_print_msg("%s: expected %s %ld, saw %ld\n", label, what, want,
		       got);
	return false;
}

static bool setup(struct worker *w, int n, size_t npages, uint64_t seed,
		  enum layout layout)
{
	int i;

	sh->npages = npages;
	sh->seed = seed;
	sh->layout = layout;
	for (i = 0; i < n; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		if (worker_call(&w[i], CMD_SETUP)) {
			ksft_print_msg("helper %d could not set up its buffer\n",
				       i);
			return false;
		}
	}
	return true;
}

/* One advise call by helper i, with the counters it moved. */
static int advise(struct worker *w, struct upm_stats *d, struct ksm_stats *ka,
		  struct ksm_stats *kb, double *secs)
{
	struct upm_stats a, b;
	long r;
	double t0;

	upm_stats_read(&a);
	ksm_stats_read(ka);
	t0 = now_sec();
	r = worker_call(w, CMD_ADVISE);
	*secs = now_sec() - t0;
	upm_stats_read(&b);
	ksm_stats_read(kb);
	upm_stats_delta(&a, &b, d);
	return (int)r;
}

static void test_merge_n(int n, size_t npages)
{
	struct worker w[MAXN];
	struct ksm_stats base, ka, kb;
	struct upm_stats d;
	char label[64];
	bool ok_calls = true, ok_pfn = true, ok_pss = true, ok_data = true;
	bool ok_again = true;
	size_t j, nonksm = 0, differ = 0;
	long size_kb = npages * PG / 1024;
	double secs;
	int i, r;

	ksm_stats_read(&base);
	if (!setup(w, n, npages, 0x1000 + n, ALL_SAME)) {
		ok_calls = false;
		ok_pfn = false;
		ok_pss = false;
		ok_data = false;
		ok_again = false;
		goto report;
	}

	for (i = 0; i < n; i++) {
		snprintf(label, sizeof(label), "%d procs, caller %d", n, i);
		r = advise(&w[i], &d, &ka, &kb, &secs);
		upm_stats_print(label, &d);
		ksft_print_msg("%s: madvise took %.3f s\n", label, secs);
		if (r) {
			ksft_print_msg("%s: madvise(MADV_UPM) failed: %s\n",
				       label, strerror(r));
			ok_calls = false;
			continue;
		}
		ok_calls &= expect(label, "calls delta", 1, d.calls);
		ok_calls &= expect(label, "pages_scanned delta", npages,
				   d.pages_scanned);
		/*
		 * The first caller's pages have no twin yet and stay private
		 * candidates; the second's merge with them into new KSM pages,
		 * the later ones' with those.
		 */
		ok_calls &= expect(label, "pages_candidate delta",
				   i == 0 ? npages : 0, d.pages_candidate);
		ok_calls &= expect(label, "candidates delta",
				   i == 0 ? npages : i == 1 ? -(long)npages : 0,
				   d.candidates);
		ok_calls &= expect(label, "pages_new_ksm delta",
				   i == 1 ? npages : 0, d.pages_new_ksm);
		ok_calls &= expect(label, "pages_merged delta",
				   i == 0 ? 0 : npages, d.pages_merged);
		ok_calls &= expect(label, "pages_already_merged delta", 0,
				   d.pages_already_merged);
		ok_calls &= expect(label, "pages_skipped delta", 0,
				   d.pages_skipped);
		ok_calls &= expect(label, "pages_zero delta", 0, d.pages_zero);
		ok_calls &= upm_stats_balanced(&d, label);
		if (d.time_ns == 0 || d.time_ns > (unsigned long)(secs * 1e9) + 1000000) {
			ksft_print_msg("%s: time_ns %+ld, the call took %.0f ns\n",
				       label, (long)d.time_ns, secs * 1e9);
			ok_calls = false;
		}
		ok_calls &= check_ksm_delta(label, &ka, &kb,
					    i == 1 ? npages : 0,
					    i == 0 ? 0 : npages);
	}

	/* A second call by the first process finds its pages merged. */
	snprintf(label, sizeof(label), "%d procs, caller 0 again", n);
	r = advise(&w[0], &d, &ka, &kb, &secs);
	upm_stats_print(label, &d);
	if (r) {
		ksft_print_msg("%s: madvise(MADV_UPM) failed: %s\n", label,
			       strerror(r));
		ok_again = false;
	} else {
		ok_again &= expect(label, "pages_scanned delta", npages,
				   d.pages_scanned);
		ok_again &= expect(label, "pages_already_merged delta", npages,
				   d.pages_already_merged);
		ok_again &= expect(label, "pages_merged+new_ksm+skipped delta",
				   0, d.pages_merged + d.pages_new_ksm +
				   d.pages_skipped);
		ok_again &= check_ksm_delta(label, &ka, &kb, 0, 0);
	}

	for (i = 0; i < n; i++) {
		if (worker_call(&w[i], CMD_MEASURE)) {
			ok_pfn = false;
			ok_pss = false;
			ok_data = false;
		}
	}

	for (j = 0; j < npages && ok_pfn; j++) {
		for (i = 1; i < n; i++)
			if (sh->pfn[i][j] != sh->pfn[0][j] || !sh->pfn[i][j]) {
				if (differ++ < 3)
					ksft_print_msg("page %zu: pfn %#lx in process 0, %#lx in process %d\n",
						       j, (long)sh->pfn[0][j],
						       (long)sh->pfn[i][j], i);
			}
		if ((!pfn_is_ksm(sh->pfn[0][j]) ||
		     pfn_mapcount(sh->pfn[0][j]) != n) && nonksm++ < 3)
			ksft_print_msg("page %zu: pfn %#lx: KPF_KSM %d, mapped %ld times (expected %d)\n",
				       j, (long)sh->pfn[0][j],
				       pfn_is_ksm(sh->pfn[0][j]),
				       pfn_mapcount(sh->pfn[0][j]), n);
	}
	if (differ || nonksm) {
		ksft_print_msg("%d procs: %zu of %zu pages not mapped to one shared frame, %zu frames not KSM or not mapped %d times\n",
			       n, differ, npages, nonksm, n);
		ok_pfn = false;
	}

	for (i = 0; i < n; i++) {
		struct vma_info *vi = &sh->vi[i];
		long want = size_kb / n, slack = want * 3 / 100;

		ksft_print_msg("process %d: Rss %ld kB Pss %ld kB AnonHugePages %ld kB (rollup Pss %ld kB) ksm_merging_pages %ld ksm_stat %ld flags%s\n",
			       i, vi->rss_kb, vi->pss_kb, vi->anon_huge_kb,
			       sh->rollup_pss[i], sh->merging[i],
			       sh->stat_merging[i], vi->flags);
		if (vi->pss_kb < want - slack || vi->pss_kb > want + slack) {
			ksft_print_msg("process %d: buffer Pss %ld kB, expected %ld kB +-3%%\n",
				       i, vi->pss_kb, want);
			ok_pss = false;
		}
		if (sh->rollup_pss[i] < want - slack) {
			ksft_print_msg("process %d: smaps_rollup Pss %ld kB below %ld kB\n",
				       i, sh->rollup_pss[i], want - slack);
			ok_pss = false;
		}
		snprintf(label, sizeof(label), "process %d", i);
		ok_pss &= expect(label, "buffer Rss kB", size_kb, vi->rss_kb);
		ok_pss &= expect(label, "ksm_merging_pages", npages,
				 sh->merging[i]);
		ok_pss &= expect(label, "ksm_stat ksm_merging_pages",
				 npages, sh->stat_merging[i]);
		if (!strstr(vi->flags, " mg")) {
			ksft_print_msg("process %d: advised VMA lacks VM_MERGEABLE (mg)\n",
				       i);
			ok_pss = false;
		}
		if (sh->bad[i] || sh->csum_before[i] != sh->csum_after[i]) {
			ksft_print_msg("process %d: %ld pages changed by merging (checksum %#lx -> %#lx)\n",
				       i, sh->bad[i], (long)sh->csum_before[i],
				       (long)sh->csum_after[i]);
			ok_data = false;
		}
	}

report:
	ksft_test_result(ok_calls, "%d procs x %zu MiB: each MADV_UPM returns 0; counters: first candidate, second merged into new KSM pages, later merged, pages_shared/sharing\n",
			 n, npages * PG / MIB);
	ksft_test_result(ok_again, "%d procs: advising merged pages again counts pages_already_merged only\n",
			 n);
	ksft_test_result(ok_pfn, "%d procs: every page maps one KSM frame in all processes\n",
			 n);
	ksft_test_result(ok_pss, "%d procs: Pss = size/%d, ksm_merging_pages, VM_MERGEABLE\n",
			 n, n);
	ksft_test_result(ok_data, "%d procs: contents unchanged by merging\n",
			 n);
	ksft_test_result(workers_stop_back(w, n, &base),
			 "%d procs: pages_shared/pages_sharing back to their earlier values after exit\n",
			 n);
}

static void test_half_dup(size_t npages)
{
	struct worker w[2];
	struct ksm_stats base, ka, kb;
	struct upm_stats d;
	bool ok_cnt = true, ok_pfn = true;
	size_t j, bad = 0;
	double secs;
	int r;

	ksm_stats_read(&base);
	if (!setup(w, 2, npages, 0x3000, HALF_DUP)) {
		ok_cnt = false;
		ok_pfn = false;
		goto report;
	}
	r = advise(&w[0], &d, &ka, &kb, &secs);
	upm_stats_print("half dup, first", &d);
	if (r || d.pages_candidate != npages || d.pages_new_ksm) {
		ksft_print_msg("first caller: madvise %s, candidate %ld new_ksm %ld (expected %zu, 0)\n",
			       strerror(r), (long)d.pages_candidate,
			       (long)d.pages_new_ksm, npages);
		ok_cnt = false;
	}
	r = advise(&w[1], &d, &ka, &kb, &secs);
	upm_stats_print("half dup, second", &d);
	if (r) {
		ksft_print_msg("second caller: madvise failed: %s\n",
			       strerror(r));
		ok_cnt = false;
	}
	ok_cnt &= expect("second caller", "pages_merged delta", npages / 2,
			 d.pages_merged);
	ok_cnt &= expect("second caller", "pages_new_ksm delta", npages / 2,
			 d.pages_new_ksm);
	ok_cnt &= expect("second caller", "pages_candidate delta", npages / 2,
			 d.pages_candidate);
	ok_cnt &= expect("second caller", "pages_scanned delta", npages,
			 d.pages_scanned);
	ok_cnt &= upm_stats_balanced(&d, "second caller");
	ok_cnt &= check_ksm_delta("second caller", &ka, &kb, npages / 2,
				  npages / 2);

	if (worker_call(&w[0], CMD_MEASURE) || worker_call(&w[1], CMD_MEASURE))
		ok_pfn = false;
	for (j = 0; j < npages && ok_pfn; j++) {
		bool same = sh->pfn[0][j] == sh->pfn[1][j];
		bool want_same = !(j & 1);

		long cnt = pfn_mapcount(sh->pfn[1][j]);

		/*
		 * Unique pages stay private in both processes: the KSM
		 * counters above (pages_shared + pages_sharing, one per
		 * duplicate in each process) leave no KSM page for them.
		 */
		if (same != want_same ||
		    (want_same && !pfn_is_ksm(sh->pfn[1][j])) ||
		    cnt != (want_same ? 2 : 1)) {
			if (bad++ < 3)
				ksft_print_msg("page %zu (%s): pfns %#lx %#lx, ksm %d, mapped %ld times\n",
					       j, want_same ? "dup" : "unique",
					       (long)sh->pfn[0][j],
					       (long)sh->pfn[1][j],
					       pfn_is_ksm(sh->pfn[1][j]), cnt);
		}
	}
	if (bad) {
		ksft_print_msg("%zu pages shared/unshared wrongly\n", bad);
		ok_pfn = false;
	}
	if (sh->bad[0] || sh->bad[1]) {
		ksft_print_msg("contents changed: %ld and %ld pages\n",
			       sh->bad[0], sh->bad[1]);
		ok_pfn = false;
	}
report:
	ksft_test_result(ok_cnt, "half duplicate: second caller merges exactly the %zu duplicates, %zu new KSM pages\n",
			 npages / 2, npages / 2);
	ksft_test_result(ok_pfn, "half duplicate: exactly the duplicate pages share KSM frames, unique ones stay private, contents intact\n");
	ksft_test_result(workers_stop_back(w, 2, &base),
			 "half duplicate: KSM counters back after exit\n");
}

/*
 * Pages of the second and third caller faulted in on another CPU: their
 * first merge attempt fails on the batch's reference, and the call must
 * retry them, with a candidate's page (second caller) and with a KSM page
 * (third caller), not give up on them nor record them as candidates.
 */
static void test_remote_batch(size_t npages)
{
	struct worker w[3];
	struct ksm_stats base, ka, kb;
	struct upm_stats d;
	bool ok_cnt = true, ok_pfn = true;
	size_t j, bad = 0;
	double secs;
	int i, r;

	ksm_stats_read(&base);
	sh->npages = npages;
	sh->seed = 0x4000;
	sh->layout = ALL_SAME;
	for (i = 0; i < 3; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		r = (int)worker_call(&w[i], i ? CMD_SETUP_ON_CPU1 : CMD_SETUP);
		if (r) {
			ksft_print_msg("helper %d: set-up failed: %s\n", i,
				       strerror(-r));
			ok_cnt = false;
			ok_pfn = false;
			i++;
			goto report;
		}
		r = advise(&w[i], &d, &ka, &kb, &secs);
		upm_stats_print(i == 0 ? "remote batch, first" :
				i == 1 ? "remote batch, second" :
				"remote batch, third", &d);
		if (r) {
			ksft_print_msg("helper %d: madvise failed: %s\n", i,
				       strerror(r));
			ok_cnt = false;
		}
		ok_cnt &= upm_stats_balanced(&d, "remote batch");
		if (i == 0) {
			ok_cnt &= expect("first caller", "pages_candidate delta",
					 npages, d.pages_candidate);
			continue;
		}
		ok_cnt &= expect(i == 1 ? "second caller" : "third caller",
				 "pages_merged delta", npages, d.pages_merged);
		ok_cnt &= expect(i == 1 ? "second caller" : "third caller",
				 "pages_candidate delta", 0, d.pages_candidate);
		ok_cnt &= expect(i == 1 ? "second caller" : "third caller",
				 "pages_skipped delta", 0, d.pages_skipped);
	}
	ok_cnt &= check_ksm_delta("three callers", &base, &kb, npages,
				  2 * npages);

	for (i = 0; i < 3; i++)
		if (worker_call(&w[i], CMD_MEASURE))
			ok_pfn = false;
	for (j = 0; j < npages && ok_pfn; j++) {
		if (sh->pfn[0][j] == sh->pfn[1][j] &&
		    sh->pfn[0][j] == sh->pfn[2][j] && pfn_is_ksm(sh->pfn[0][j]))
			continue;
		if (bad++ < 3)
			ksft_print_msg("page %zu: pfns %#lx %#lx %#lx\n", j,
				       (long)sh->pfn[0][j], (long)sh->pfn[1][j],
				       (long)sh->pfn[2][j]);
	}
	if (bad) {
		ksft_print_msg("%zu of %zu pages not one KSM frame for all three\n",
			       bad, npages);
		ok_pfn = false;
	}
	for (i = 0; i < 3; i++)
		if (sh->bad[i]) {
			ksft_print_msg("helper %d: %ld pages changed\n", i,
				       sh->bad[i]);
			ok_pfn = false;
		}
report:
	ksft_test_result(ok_cnt, "pages still in another CPU's LRU batch: the second and third caller merge all %zu, none skipped nor left a candidate\n",
			 npages);
	ksft_test_result(ok_pfn, "pages still in another CPU's LRU batch: one KSM frame for all three callers, contents intact\n");
	ksft_test_result(workers_stop_back(w, i, &base),
			 "pages still in another CPU's LRU batch: KSM counters back after exit\n");
}

int main(int argc, char **argv)
{
	size_t npages = 64 * MIB / PG, maxpages;
	int i;

	if (argc > 1)
		npages = strtoul(argv[1], NULL, 0) * MIB / PG;
	ksft_print_header();
	upm_require("PFNs in pagemap, KSM sysfs");
	ksft_set_plan(6 + 6 + 3 + 3);

	/* room for the PFNs of the largest test */
	maxpages = npages > HALF_DUP_PAGES ? npages : HALF_DUP_PAGES;
	sh = shared_alloc(sizeof(*sh) + MAXN * maxpages * sizeof(uint64_t));
	if (!sh)
		ksft_exit_fail_msg("no memory for results\n");
	for (i = 0; i < MAXN; i++)
		sh->pfn[i] = (uint64_t *)(sh + 1) + i * maxpages;

	test_merge_n(2, npages);
	test_merge_n(4, npages);
	test_half_dup(HALF_DUP_PAGES);
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		for (i = 0; i < 3; i++)
			ksft_test_result_skip("remote LRU batch: needs two CPUs\n");
	} else {
		test_remote_batch(REMOTE_BATCH_PAGES);
	}
	ksft_finished();
}
