// SPDX-License-Identifier: GPL-2.0
/*
 * Merged pages are copy-on-write: contents survive merging, a write copies
 * the page for the writer only, fork shares merged pages and the counters
 * return to where they were once every user has exited; MADV_UNMERGEABLE
 * gives each process private pages again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define NPAGES (16 * MIB / PG)
#define STRIDE 7	/* a writer touches pages j with j % STRIDE == 3 */
#define MARK_WORD 100

enum { CMD_SETUP = 1, CMD_ADVISE, CMD_MEASURE, CMD_WRITE, CMD_FORK,
	CMD_UNMERGE };

/* result bits of CMD_FORK */
enum {
	FORK_CHILD_CONTENT = 1, FORK_CHILD_PFN = 2, FORK_CHILD_WRITE = 4,
	FORK_PARENT_CONTENT = 8, FORK_PARENT_PFN = 16, FORK_CHILD_DIED = 32,
};

struct shared {
	uint64_t seed;
	uint64_t pfn[2][NPAGES];
	uint64_t csum_setup[2], csum_now[2];
	long bad[2];
	int mergeable[2];
	uint64_t child_pfn[NPAGES];
};

static struct shared *sh;
static char *buf;
static bool wrote;	/* this helper wrote its stripe */

static bool is_written(size_t j)
{
	return wrote && j % STRIDE == 3;
}

static void mark(char *page, size_t j)
{
	((uint64_t *)page)[MARK_WORD] ^= 0x5eed0000ULL + j;
}

static bool page_ok(const char *page, size_t j, bool written)
{
	uint64_t want[PG / 8];

	fill_page(want, sh->seed, j);
	if (written)
		mark((char *)want, j);
	return memcmp(page, want, PG) == 0;
}

static long count_bad(const char *p, bool (*written)(size_t))
{
	long bad = 0;
	size_t j;

	for (j = 0; j < NPAGES; j++)
		if (!page_ok(p + j * PG, j, written(j)))
			bad++;
	return bad;
}

static bool never(size_t j)
{
	(void)j;
	return false;
}

static bool stripe(size_t j)
{
	return j % STRIDE == 3;
}

static long fork_check(int idx)
{
	uint64_t *before = malloc(NPAGES * sizeof(uint64_t));
	uint64_t *after = malloc(NPAGES * sizeof(uint64_t));
	long res = 0;
	int status;
	size_t j;
	pid_t pid;

	if (!before || !after || pfns_of(buf, NPAGES, before))
		return -ENOMEM;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int r = 0;

		if (count_bad(buf, never))
			r |= FORK_CHILD_CONTENT;
		pfns_of(buf, NPAGES, sh->child_pfn);
		for (j = 0; j < NPAGES; j++)
			if (sh->child_pfn[j] != before[j])
				r |= FORK_CHILD_PFN;
		for (j = 0; j < NPAGES; j++)
			if (stripe(j))
				mark(buf + j * PG, j);
		if (count_bad(buf, stripe))
			r |= FORK_CHILD_WRITE;
		pfns_of(buf, NPAGES, sh->child_pfn);
		/* exactly the written pages moved to new frames */
		for (j = 0; j < NPAGES; j++) {
			bool moved = sh->child_pfn[j] != before[j];

			if (moved != stripe(j))
				r |= FORK_CHILD_WRITE;
		}
		fflush(stdout);
		_exit(r);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		res |= FORK_CHILD_DIED;
	else
		res |= WEXITSTATUS(status);
	if (count_bad(buf, never))
		res |= FORK_PARENT_CONTENT;
	pfns_of(buf, NPAGES, after);
	if (memcmp(before, after, NPAGES * sizeof(uint64_t)))
		res |= FORK_PARENT_PFN;
	(void)idx;
	free(before);
	free(after);
	return res;
}

static long helper(int idx, int cmd, void *arg)
{
	size_t len = NPAGES * PG, j;
	struct vma_info vi;
	(void)arg;

	switch (cmd) {
	case CMD_SETUP:
		buf = map_anon(len, 0);
		if (!buf)
			return -ENOMEM;
		fill_pages(buf, NPAGES, sh->seed);
		wrote = false;
		sh->csum_setup[idx] = checksum(buf, len);
		return 0;
	case CMD_ADVISE:
		return upm_call(buf, len);
	case CMD_MEASURE:
		if (pfns_of(buf, NPAGES, sh->pfn[idx]))
			return -EIO;
		sh->bad[idx] = count_bad(buf, is_written);
		sh->csum_now[idx] = checksum(buf, len);
		sh->mergeable[idx] = vma_info(buf, &vi) == 0 &&
				     strstr(vi.flags, " mg");
		return 0;
	case CMD_WRITE:
		for (j = 0; j < NPAGES; j++)
			if (stripe(j))
				mark(buf + j * PG, j);
		wrote = true;
		return 0;
	case CMD_FORK:
		return fork_check(idx);
	case CMD_UNMERGE:
		return madvise(buf, len, MADV_UNMERGEABLE) ? errno : 0;
	}
	return -EINVAL;
}

/* Two helpers with the same buffer, both advised. */
static bool start_merged(struct worker *w, uint64_t seed)
{
	bool ok = true;
	long r;
	int i;

	sh->seed = seed;
	for (i = 0; i < 2; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		if (worker_call(&w[i], CMD_SETUP))
			ok = false;
	}
	for (i = 0; i < 2 && ok; i++) {
		r = worker_call(&w[i], CMD_ADVISE);
		if (r) {
			ksft_print_msg("helper %d: madvise(MADV_UPM) failed: %s\n",
				       i, r > 0 ? strerror(r) : "helper error");
			ok = false;
		}
	}
	return ok;
}

static size_t count_same(const uint64_t *a, const uint64_t *b)
{
	size_t j, n = 0;

	for (j = 0; j < NPAGES; j++)
		if (a[j] && a[j] == b[j])
			n++;
	return n;
}

static void test_cow(void)
{
	static uint64_t a_before[NPAGES], b_before[NPAGES];
	struct worker w[2];
	struct ksm_stats base;
	bool ok_data = true, ok_cow = true;
	size_t j, nwritten = 0, bad = 0;

	ksm_stats_read(&base);
	if (!start_merged(w, 0x2000)) {
		ok_data = false;
		ok_cow = false;
		goto out;
	}
	worker_call(&w[0], CMD_MEASURE);
	worker_call(&w[1], CMD_MEASURE);
	memcpy(a_before, sh->pfn[0], sizeof(a_before));
	memcpy(b_before, sh->pfn[1], sizeof(b_before));
	for (j = 0; j < 2; j++)
		if (sh->bad[j] || sh->csum_now[j] != sh->csum_setup[j]) {
			ksft_print_msg("process %zu: checksum %#lx before merging, %#lx after; %ld pages differ\n",
				       j, (long)sh->csum_setup[j],
				       (long)sh->csum_now[j], sh->bad[j]);
			ok_data = false;
		}
	if (count_same(a_before, b_before) != NPAGES) {
		ksft_print_msg("only %zu of %lu pages merged before the write\n",
			       count_same(a_before, b_before), NPAGES);
		ok_cow = false;
	}

	worker_call(&w[1], CMD_WRITE);
	worker_call(&w[0], CMD_MEASURE);
	worker_call(&w[1], CMD_MEASURE);
	if (sh->bad[0]) {
		ksft_print_msg("reader: %ld pages changed by the other's writes\n",
			       sh->bad[0]);
		ok_cow = false;
	}
	if (sh->bad[1]) {
		ksft_print_msg("writer: %ld pages do not hold what it wrote\n",
			       sh->bad[1]);
		ok_cow = false;
	}
	for (j = 0; j < NPAGES; j++) {
		bool w_ = stripe(j);
		bool ok = sh->pfn[0][j] == a_before[j] &&
			  (w_ ? sh->pfn[1][j] != b_before[j] &&
				sh->pfn[1][j] != sh->pfn[0][j] &&
				pfn_mapcount(sh->pfn[1][j]) == 1 :
				sh->pfn[1][j] == b_before[j]);

		nwritten += w_;
		if (!ok && bad++ < 3)
			ksft_print_msg("page %zu (%s): reader pfn %#lx -> %#lx, writer %#lx -> %#lx\n",
				       j, w_ ? "written" : "not written",
				       (long)a_before[j], (long)sh->pfn[0][j],
				       (long)b_before[j], (long)sh->pfn[1][j]);
	}
	if (bad) {
		ksft_print_msg("%zu pages with wrong frames after writing %zu pages\n",
			       bad, nwritten);
		ok_cow = false;
	}
out:
	ksft_test_result(ok_data, "contents and checksums unchanged by merging\n");
	ksft_test_result(ok_cow, "a write to merged pages copies them for the writer only\n");
	ksft_test_result(workers_stop_back(w, 2, &base),
			 "cow: KSM counters back after exit\n");
}

static void test_fork(void)
{
	struct worker w[2];
	struct ksm_stats base;
	long r = -1;

	ksm_stats_read(&base);
	if (start_merged(w, 0x5000)) {
		r = worker_call(&w[0], CMD_FORK);
		if (r)
			ksft_print_msg("fork after merge: result %#lx (1 child content, 2 child pfn, 4 child write, 8 parent content, 16 parent pfn, 32 child died)\n",
				       r);
	}
	ksft_test_result(r == 0, "fork after merging: child sees the merged pages, its writes stay its own\n");
	ksft_test_result(workers_stop_back(w, 2, &base),
			 "fork: pages_shared/pages_sharing back after every user exited\n");
}

static void test_unmerge(void)
{
	struct worker w[2];
	struct ksm_stats base, k0, k1;
	bool ok = false;
	size_t j, bad = 0;
	long r;

	ksm_stats_read(&base);
	if (!start_merged(w, 0x5100))
		goto out;
	ksm_stats_read(&k0);
	r = worker_call(&w[0], CMD_UNMERGE);
	ksm_stats_read(&k1);
	ksft_print_msg("MADV_UNMERGEABLE: pages_shared %+ld pages_sharing %+ld\n",
		       k1.pages_shared - k0.pages_shared,
		       k1.pages_sharing - k0.pages_sharing);
	if (r) {
		ksft_print_msg("MADV_UNMERGEABLE failed: %s\n", strerror(r));
		goto out;
	}
	worker_call(&w[0], CMD_MEASURE);
	worker_call(&w[1], CMD_MEASURE);
	ok = true;
	for (j = 0; j < NPAGES; j++) {
		if (!sh->pfn[0][j] || sh->pfn[0][j] == sh->pfn[1][j] ||
		    pfn_mapcount(sh->pfn[0][j]) != 1) {
			if (bad++ < 3)
				ksft_print_msg("page %zu: pfn %#lx (other process %#lx), mapped %ld times\n",
					       j, (long)sh->pfn[0][j],
					       (long)sh->pfn[1][j],
					       pfn_mapcount(sh->pfn[0][j]));
		}
	}
	if (bad) {
		ksft_print_msg("%zu pages still shared after MADV_UNMERGEABLE\n",
			       bad);
		ok = false;
	}
	if (sh->bad[0] || sh->bad[1]) {
		ksft_print_msg("contents changed: %ld (unmerged) %ld (other)\n",
			       sh->bad[0], sh->bad[1]);
		ok = false;
	}
	if (sh->mergeable[0]) {
		ksft_print_msg("VMA still VM_MERGEABLE after MADV_UNMERGEABLE\n");
		ok = false;
	}
out:
	ksft_test_result(ok, "MADV_UNMERGEABLE: private frames again, contents intact\n");
	ksft_test_result(workers_stop_back(w, 2, &base),
			 "unmerge: KSM counters back after exit\n");
}

/*
 * Pages still shared with a fork child (not yet copied) are advised by
 * the parent: they merge, the child keeps its view, its writes stay its
 * own.
 */
#define FORKED_PAGES 256

static int forked_case(void *arg)
{
	static uint64_t after[FORKED_PAGES];
	char *p = map_anon(FORKED_PAGES * PG, -1);
	char *twin = map_anon(FORKED_PAGES * PG, -1);
	struct upm_stats a, b, d;
	int go[2], status, fail = 0, r;
	size_t j;
	pid_t pid;
	(void)arg;

	if (!p || !twin || pipe(go))
		return 1;
	for (j = 0; j < FORKED_PAGES; j++)
		fill_page(p + j * PG, 0x5200, j);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char c;
		int bad = 0;

		if (read(go[0], &c, 1) != 1)
			_exit(2);
		for (j = 0; j < FORKED_PAGES; j++)
			bad += !page_matches(p + j * PG, 0x5200, j);
		for (j = 0; j < FORKED_PAGES; j += 2)
			p[j * PG + 9] = 0x33;
		_exit(bad ? 1 : 0);
	}
	/* Twins advised first: the pages shared with the child merge. */
	memcpy(twin, p, FORKED_PAGES * PG);
	if (upm_call(twin, FORKED_PAGES * PG))
		fail = 1;
	upm_stats_read(&a);
	r = upm_call(p, FORKED_PAGES * PG);
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("shared with a fork child", &d);
	if (r) {
		ksft_print_msg("madvise(MADV_UPM): %s\n", strerror(r));
		fail = 1;
	}
	if (d.pages_scanned != FORKED_PAGES ||
	    d.pages_merged != FORKED_PAGES) {
		ksft_print_msg("expected scanned and merged +%d, saw %+ld %+ld\n",
			       FORKED_PAGES, (long)d.pages_scanned,
			       (long)d.pages_merged);
		fail = 1;
	}
	if (write(go[1], "g", 1) != 1 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status)) {
		ksft_print_msg("the child saw changed contents (status %#x)\n",
			       status);
		fail = 1;
	}
	pfns_of(p, FORKED_PAGES, after);
	if (count_bad_pages(p, FORKED_PAGES, 0x5200)) {
		ksft_print_msg("the child's writes reached the parent\n");
		fail = 1;
	}
	for (j = 0; j < FORKED_PAGES; j++)
		if (!after[j]) {
			ksft_print_msg("page %zu not present any more\n", j);
			fail = 1;
			break;
		}
	munmap(twin, FORKED_PAGES * PG);
	munmap(p, FORKED_PAGES * PG);
	return fail;
}

static void test_forked(void)
{
	struct ksm_stats base;
	bool ok;

	ksm_stats_read(&base);
	ok = run_child(forked_case, NULL) == 0;
	if (!ksm_back_after_exit(&base, NULL))
		ok = false;
	ksft_test_result(ok, "pages still shared with a fork child merge; the child's view and writes stay its own\n");
}

int main(void)
{
	upm_test_start(8);
	sh = shared_alloc(sizeof(*sh));
	if (!sh)
		ksft_exit_fail_msg("no memory for results\n");
	test_cow();
	test_fork();
	test_unmerge();
	test_forked();
	ksft_finished();
}
