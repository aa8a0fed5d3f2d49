// SPDX-License-Identifier: GPL-2.0
/*
 * Which memory MADV_UPM merges: zero-filled pages (with KSM's
 * use_zero_pages off and on), THPs (split first), the anonymous copies in a
 * MAP_PRIVATE file mapping; and which it leaves alone without an error:
 * MAP_SHARED anonymous memory, shmem (memfd), hugetlb, the shared part of a
 * range that mixes kinds; and that khugepaged does not collapse merged pages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define MAXPAGES 1024
#define SKIP_RC 4

static struct ksm_settings saved;

#define CHECK(cond, ...) do {				\
	if (!(cond)) {					\
		ksft_print_msg(__VA_ARGS__);		\
		fail = 1;				\
	}						\
} while (0)

/* ---------- zero-filled pages (one process) ---------- */

static int zero_case(void *arg)
{
	int use_zero = *(int *)arg;
	size_t n = 128, j, same = 0, zero = 0, nonzero_content = 0;
	uint64_t pfn[128], zpfn = zero_page_pfn();
	struct upm_stats a, b, d;
	struct ksm_stats ka, kb, kc;
	char *p = map_anon(n * PG, -1);
	int fail = 0, r;
	long shared_delta;

	if (!p)
		return 1;
	for (j = 0; j < n; j++)
		p[j * PG + 17] = 0;	/* a write fault: a zero-filled page */
	pfns_of(p, n, pfn);
	for (j = 0; j < n; j++)
		CHECK(pfn[j] && pfn[j] != zpfn,
		      "page %zu is not a private page before the call\n", j);

	upm_stats_read(&a);
	ksm_stats_read(&ka);
	r = upm_call(p, n * PG);
	upm_stats_read(&b);
	ksm_stats_read(&kb);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("zero pages", &d);
	if (r) {
		ksft_print_msg("madvise(MADV_UPM) failed: %s\n", strerror(r));
		return 1;
	}
	pfns_of(p, n, pfn);
	for (j = 0; j < n; j++) {
		same += pfn[j] == pfn[0];
		zero += pfn[j] == zpfn;
		nonzero_content += !page_is_zero(p + j * PG);
	}
	CHECK(nonzero_content == 0, "%zu pages no longer zero\n",
	      nonzero_content);
	CHECK(d.pages_scanned == n, "expected pages_scanned +%zu, saw %+ld\n",
	      n, (long)d.pages_scanned);
	CHECK(d.pages_zero == n, "expected pages_zero +%zu, saw %+ld\n", n,
	      (long)d.pages_zero);
	CHECK(d.pages_skipped == 0, "expected pages_skipped +0, saw %+ld\n",
	      (long)d.pages_skipped);
	if (!upm_stats_balanced(&d, "zero pages"))
		fail = 1;
	shared_delta = kb.pages_shared - ka.pages_shared;
	if (use_zero) {
		long stat = file_field("/proc/self/ksm_stat", "ksm_zero_pages");

		CHECK(d.pages_merged == n && d.pages_new_ksm == 0,
		      "expected pages_merged +%zu new_ksm +0, saw %+ld %+ld\n",
		      n, (long)d.pages_merged, (long)d.pages_new_ksm);
		CHECK(zero == n, "%zu of %zu pages map the zero page (pfn %#lx), first %#lx\n",
		      zero, n, (long)zpfn, (long)pfn[0]);
		CHECK(kb.ksm_zero_pages - ka.ksm_zero_pages == (long)n,
		      "expected ksm_zero_pages +%zu, saw %+ld\n", n,
		      kb.ksm_zero_pages - ka.ksm_zero_pages);
		CHECK(stat == (long)n, "ksm_stat ksm_zero_pages %ld, expected %zu\n",
		      stat, n);
		CHECK(shared_delta == 0 &&
		      kb.pages_sharing == ka.pages_sharing,
		      "expected no pages_shared/sharing change, saw %+ld %+ld\n",
		      shared_delta, kb.pages_sharing - ka.pages_sharing);
		/* A write gets a private copy and gives up one zero page. */
		p[5 * PG] = 1;
		ksm_stats_read(&kc);
		CHECK(pfn_of(p + 5 * PG) != zpfn && p[5 * PG + 1] == 0,
		      "write to a zero-page-merged page did not copy it\n");
		CHECK(kc.ksm_zero_pages == kb.ksm_zero_pages - 1,
		      "after a write ksm_zero_pages %ld, expected %ld\n",
		      kc.ksm_zero_pages, kb.ksm_zero_pages - 1);
	} else {
		/* The first page is a candidate its twins merge with. */
		CHECK(d.pages_merged + d.pages_candidate == n &&
		      d.pages_new_ksm == d.pages_candidate &&
		      d.pages_new_ksm <= 1,
		      "expected merged+candidate = %zu with candidate = new_ksm <= 1, saw %ld + %ld, new_ksm %ld\n",
		      n, (long)d.pages_merged, (long)d.pages_candidate,
		      (long)d.pages_new_ksm);
		CHECK(same == n && zero == 0,
		      "%zu of %zu pages share the first frame %#lx, %zu map the zero page\n",
		      same, n, (long)pfn[0], zero);
		CHECK(pfn_mapcount(pfn[0]) == (long)n,
		      "zero KSM page mapped %ld times, expected %zu\n",
		      pfn_mapcount(pfn[0]), n);
		CHECK(shared_delta == (long)d.pages_new_ksm &&
		      kb.pages_sharing - ka.pages_sharing ==
		      (long)(n - d.pages_new_ksm),
		      "pages_shared %+ld pages_sharing %+ld, expected %+ld %+ld\n",
		      shared_delta, kb.pages_sharing - ka.pages_sharing,
		      (long)d.pages_new_ksm, (long)(n - d.pages_new_ksm));
		CHECK(kb.ksm_zero_pages == ka.ksm_zero_pages,
		      "ksm_zero_pages moved (%+ld) with use_zero_pages=0\n",
		      kb.ksm_zero_pages - ka.ksm_zero_pages);
	}
	munmap(p, n * PG);
	return fail;
}

static void test_zero(int use_zero)
{
	struct ksm_stats base, seen;
	bool ok;
	int r;

	if (write_str(KSM_SYSFS "use_zero_pages", use_zero ? "1" : "0")) {
		ksft_test_result_fail("could not set use_zero_pages=%d\n",
				      use_zero);
		return;
	}
	ksm_stats_read(&base);
	r = run_child(zero_case, &use_zero);
	ok = r == 0;
	if (!ksm_wait_back(&base, 10000, &seen)) {
		ksft_print_msg("after exit: pages_shared %ld (was %ld) pages_sharing %ld (was %ld) ksm_zero_pages %ld (was %ld)\n",
			       seen.pages_shared, base.pages_shared,
			       seen.pages_sharing, base.pages_sharing,
			       seen.ksm_zero_pages, base.ksm_zero_pages);
		ok = false;
	}
	ksm_settings_restore(&saved);
	ksft_test_result(ok, "zero-filled pages merge with use_zero_pages=%d, counters back after exit\n",
			 use_zero);
}

/* ---------- two processes: THP and MAP_PRIVATE file ---------- */

enum kind { K_THP, K_FILE };
enum { CMD_SETUP = 1, CMD_ADVISE, CMD_MEASURE };

#define FILE_PATH "/tmp/upm_kinds_file"
#define FILE_PAGES 64
#define FILE_DIRTY 48

#define HELPERS 4
#define THP_PAGES (2 * MIB / PG)

struct shared {
	enum kind kind;
	size_t npages;
	bool half[HELPERS];	/* K_THP: the second half of each THP its own */
	bool fork[HELPERS];	/* K_THP: a fork keeps the THPs mapped too */
	long fork_bad[HELPERS];
	uint64_t pfn_before[HELPERS][MAXPAGES], pfn[HELPERS][MAXPAGES];
	long ahp_before[HELPERS], ahp_after[HELPERS], bad[HELPERS];
};

static struct shared *sh;
static char *buf;

static uint64_t want_seed(int idx, size_t j)
{
	if (sh->kind == K_FILE && j >= FILE_DIRTY)
		return 0x4400;		/* the file's own contents */
	if (sh->kind == K_THP && sh->half[idx] && j % THP_PAGES >= THP_PAGES / 2)
		return 0x4500 + idx;
	return 0x4401;
}

static int keeper_pipe = -1;
static pid_t keeper;

/*
 * Fork a child that maps the helper's THPs as they are now, huge, until
 * told to check: then it reads them, writes every page and reads it back,
 * and exits with 1 if anything was wrong.
 */
static int fork_keeper(int idx)
{
	int fd[2];
	size_t j, bad = 0;
	char c;

	if (pipe(fd))
		return -errno;
	keeper = fork();
	if (keeper < 0)
		return -errno;
	if (keeper) {
		close(fd[0]);
		keeper_pipe = fd[1];
		return 0;
	}
	close(fd[1]);
	if (read(fd[0], &c, 1) != 1)
		_exit(2);		/* the helper is gone */
	for (j = 0; j < sh->npages; j++) {
		bad += !page_matches(buf + j * PG, want_seed(idx, j), j);
		fill_page(buf + j * PG, 0x4700, j);
		bad += !page_matches(buf + j * PG, 0x4700, j);
	}
	_exit(bad ? 1 : 0);
}

static long check_keeper(void)
{
	int status;

	if (write(keeper_pipe, "c", 1) != 1 ||
	    waitpid(keeper, &status, 0) != keeper)
		return -1;
	close(keeper_pipe);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static long helper(int idx, int cmd, void *arg)
{
	struct vma_info vi;
	size_t j, len = sh->npages * PG;
	int fd;
	(void)arg;

	switch (cmd) {
	case CMD_SETUP:
		if (sh->kind == K_THP) {
			buf = map_anon(len, 1);
			if (!buf)
				return -ENOMEM;
			for (j = 0; j < sh->npages; j++)
				fill_page(buf + j * PG, want_seed(idx, j), j);
			if (sh->fork[idx] && fork_keeper(idx))
				return -ECHILD;
		} else {
			fd = open(FILE_PATH, O_RDONLY);
			if (fd < 0)
				return -errno;
			buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE, fd, 0);
			close(fd);
			if (buf == MAP_FAILED)
				return -errno;
			/* read everything in, then dirty the first pages */
			for (j = 0; j < sh->npages; j++)
				(void)*(volatile char *)(buf + j * PG);
			for (j = 0; j < FILE_DIRTY; j++)
				fill_page(buf + j * PG, 0x4401, j);
		}
		vma_info(buf, &vi);
		sh->ahp_before[idx] = vi.anon_huge_kb;
		pfns_of(buf, sh->npages, sh->pfn_before[idx]);
		return 0;
	case CMD_ADVISE:
		return upm_call(buf, len);
	case CMD_MEASURE:
		/* The fork's writes first: they must not show here. */
		if (sh->kind == K_THP && sh->fork[idx])
			sh->fork_bad[idx] = check_keeper();
		vma_info(buf, &vi);
		sh->ahp_after[idx] = vi.anon_huge_kb;
		pfns_of(buf, sh->npages, sh->pfn[idx]);
		sh->bad[idx] = 0;
		for (j = 0; j < sh->npages; j++)
			if (!page_matches(buf + j * PG, want_seed(idx, j), j))
				sh->bad[idx]++;
		return 0;
	}
	return -EINVAL;
}

/* Sets up both helpers, advises 0 then 1; d[i] are the counter deltas. */
static bool run_pair(struct worker *w, struct upm_stats *d)
{
	bool ok = true;
	long r;
	int i;

	for (i = 0; i < 2; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		r = worker_call(&w[i], CMD_SETUP);
		if (r) {
			ksft_print_msg("helper %d: setup failed (%ld)\n", i, r);
			ok = false;
		}
	}
	for (i = 0; i < 2 && ok; i++) {
		r = worker_call_counted(&w[i], CMD_ADVISE,
					i ? "second caller" : "first caller",
					&d[i]);
		if (r) {
			ksft_print_msg("helper %d: madvise(MADV_UPM) failed: %s\n",
				       i, r > 0 ? strerror(r) : "helper error");
			ok = false;
		}
		ok &= upm_stats_balanced(&d[i], "call");
	}
	for (i = 0; i < 2 && ok; i++)
		worker_call(&w[i], CMD_MEASURE);
	return ok;
}

static bool stop_pair(struct worker *w, const struct ksm_stats *base)
{
	worker_stop(&w[0]);
	worker_stop(&w[1]);
	return ksm_back_after_exit(base, NULL);
}

static void test_thp(void)
{
	struct worker w[2];
	struct upm_stats d[2];
	struct ksm_stats base;
	size_t n = 4 * MIB / PG, j, differ = 0;
	bool ok, have_thp, split;
	int fail = 0;

	sh->kind = K_THP;
	sh->npages = n;
	ksm_stats_read(&base);
	ok = run_pair(w, d);
	have_thp = sh->ahp_before[0] > 0 && sh->ahp_before[1] > 0;
	if (ok) {
		for (j = 0; j < n; j++)
			differ += sh->pfn[0][j] != sh->pfn[1][j] ||
				  !sh->pfn[0][j];
		CHECK(d[0].pages_candidate == n && !d[0].pages_new_ksm,
		      "first caller: expected candidate +%zu new_ksm +0, saw %+ld %+ld\n",
		      n, (long)d[0].pages_candidate,
		      (long)d[0].pages_new_ksm);
		CHECK(d[1].pages_merged == n && d[1].pages_new_ksm == n,
		      "second caller: expected merged and new_ksm +%zu, saw %+ld %+ld\n",
		      n, (long)d[1].pages_merged, (long)d[1].pages_new_ksm);
		CHECK(differ == 0, "%zu of %zu pages not shared\n", differ, n);
		CHECK(!sh->bad[0] && !sh->bad[1],
		      "contents changed: %ld %ld pages\n", sh->bad[0],
		      sh->bad[1]);
		ok = !fail;
	}
	ksft_print_msg("AnonHugePages before %ld/%ld kB, after %ld/%ld kB\n",
		       sh->ahp_before[0], sh->ahp_before[1], sh->ahp_after[0],
		       sh->ahp_after[1]);
	split = sh->ahp_after[0] == 0 && sh->ahp_after[1] == 0;
	ok &= stop_pair(w, &base);
	ksft_test_result(ok, "2 MiB-aligned MADV_HUGEPAGE region merges completely\n");
	if (!have_thp)
		ksft_test_result_skip("THP-backed before merging (no THP was allocated)\n");
	else
		ksft_test_result(split, "THPs were split by merging (AnonHugePages 0 after)\n");
}

/*
 * THPs whose pages are replaced by KSM pages: a THP whose pages all are is
 * not split, only the PMD that mapped it, and it is freed whole; one only
 * half replaced is split by the call, which frees the replaced pages now.
 * Only the second caller's THPs are split whole: its pages become the KSM
 * pages, which are small pages. The first and third callers' THPs are
 * mapped by a fork too, huge, which keeps them, reads and writes them.
 */
static void test_thp_replaced(void)
{
	static const char *const label[HELPERS] = {
		"first caller", "second caller", "third caller",
		"half-duplicate caller",
	};
	long splits[HELPERS], want[HELPERS], thps[HELPERS];
	size_t n = 4 * MIB / PG, j, differ = 0;
	struct upm_stats d[HELPERS];
	struct worker w[HELPERS];
	struct ksm_stats base;
	bool ok = true, have_thp = true;
	int i, fail = 0;
	long r;

	for (i = 0; i < HELPERS; i++)
		splits[i] = -1;
	sh->kind = K_THP;
	sh->npages = n;
	memset(sh->half, 0, sizeof(sh->half));
	sh->half[3] = true;
	sh->fork[0] = true;	/* the candidates' THPs */
	sh->fork[2] = true;	/* THPs replaced by KSM pages' twins */
	ksm_stats_read(&base);
	for (i = 0; i < HELPERS; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		r = worker_call(&w[i], CMD_SETUP);
		if (r) {
			ksft_print_msg("helper %d: setup failed (%ld)\n", i, r);
			ok = false;
		}
		thps[i] = sh->ahp_before[i] * 1024 / (2 * MIB);
		have_thp &= thps[i] == (long)(n / THP_PAGES);
	}
	for (i = 0; i < HELPERS && ok; i++) {
		long before = file_field("/proc/vmstat", "thp_split_page");

		r = worker_call_counted(&w[i], CMD_ADVISE, label[i], &d[i]);
		splits[i] = file_field("/proc/vmstat", "thp_split_page") -
			    before;
		if (r) {
			ksft_print_msg("helper %d: madvise(MADV_UPM) failed: %s\n",
				       i, r > 0 ? strerror(r) : "helper error");
			ok = false;
		}
		ok &= upm_stats_balanced(&d[i], "call");
	}
	for (i = 0; i < HELPERS && ok; i++)
		worker_call(&w[i], CMD_MEASURE);
	if (ok) {
		CHECK(d[0].pages_candidate == n && d[1].pages_merged == n &&
		      d[1].pages_new_ksm == n && d[2].pages_merged == n &&
		      d[3].pages_merged == n / 2 && !d[2].pages_new_ksm &&
		      !d[3].pages_new_ksm,
		      "expected candidate +%zu, merged +%zu +%zu +%zu (new_ksm +%zu +0 +0), saw %+ld, %+ld %+ld %+ld (%+ld %+ld %+ld)\n",
		      n, n, n, n / 2, n, (long)d[0].pages_candidate,
		      (long)d[1].pages_merged, (long)d[2].pages_merged,
		      (long)d[3].pages_merged, (long)d[1].pages_new_ksm,
		      (long)d[2].pages_new_ksm, (long)d[3].pages_new_ksm);
		for (j = 0; j < n; j++) {
			bool dup = !sh->half[3] || j % THP_PAGES < THP_PAGES / 2;

			differ += !sh->pfn[0][j] ||
				  sh->pfn[1][j] != sh->pfn[0][j] ||
				  sh->pfn[2][j] != sh->pfn[0][j] ||
				  (sh->pfn[3][j] == sh->pfn[0][j]) != dup;
		}
		CHECK(differ == 0, "%zu of %zu pages not shared as expected\n",
		      differ, n);
		for (i = 0; i < HELPERS; i++) {
			CHECK(!sh->bad[i], "%s: contents changed in %ld pages\n",
			      label[i], sh->bad[i]);
			CHECK(!sh->fork[i] || !sh->fork_bad[i],
			      "%s: its fork's THPs read or wrote wrong (%ld)\n",
			      label[i], sh->fork_bad[i]);
		}
		ok = !fail;
	}
	for (i = 0; i < HELPERS; i++) {
		want[i] = i == 1 || i == 3 ? thps[i] : 0;
		ksft_print_msg("%s: %ld THPs, %ld split by the call (%ld expected)\n",
			       label[i], thps[i], splits[i], want[i]);
	}
	ok &= workers_stop_back(w, HELPERS, &base);
	memset(sh->half, 0, sizeof(sh->half));
	memset(sh->fork, 0, sizeof(sh->fork));
	ksft_test_result(ok, "four THP-backed copies, two shared with a fork, the last half duplicate: merged as expected, contents intact, the forks' THPs intact and their own\n");
	if (!have_thp) {
		ksft_test_result_skip("THPs replaced by KSM pages (no THP was allocated)\n");
		return;
	}
	fail = !ok;
	for (i = 0; i < HELPERS; i++)
		fail |= splits[i] != want[i];
	ksft_test_result(!fail, "THPs whose pages all were replaced were not split; the half-replaced ones were, by the call\n");
}

static void test_file(void)
{
	struct worker w[2];
	struct upm_stats d[2];
	struct ksm_stats base;
	char page[PG];
	size_t j, bad = 0;
	bool ok;
	int fd, fail = 0;

	fd = open(FILE_PATH, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		ksft_exit_fail_msg("create %s: %s\n", FILE_PATH,
				   strerror(errno));
	for (j = 0; j < FILE_PAGES; j++) {
		fill_page(page, 0x4400, j);
		if (write(fd, page, PG) != (ssize_t)PG)
			ksft_exit_fail_msg("write %s failed\n", FILE_PATH);
	}
	close(fd);

	sh->kind = K_FILE;
	sh->npages = FILE_PAGES;
	ksm_stats_read(&base);
	ok = run_pair(w, d);
	if (ok) {
		CHECK(d[0].pages_candidate == FILE_DIRTY &&
		      d[0].pages_merged == 0,
		      "first caller: expected candidate +%d merged +0, saw %+ld %+ld\n",
		      FILE_DIRTY, (long)d[0].pages_candidate,
		      (long)d[0].pages_merged);
		CHECK(d[1].pages_merged == FILE_DIRTY &&
		      d[1].pages_new_ksm == FILE_DIRTY,
		      "second caller: expected merged and new_ksm +%d, saw %+ld %+ld\n",
		      FILE_DIRTY, (long)d[1].pages_merged,
		      (long)d[1].pages_new_ksm);
		for (j = 0; j < FILE_PAGES; j++) {
			bool dirty = j < FILE_DIRTY;
			bool good = sh->pfn[0][j] && sh->pfn[0][j] ==
				    sh->pfn[1][j];

			/*
			 * Clean pages stay the page-cache frame; of two dirty
			 * copies, one was replaced by the other.
			 */
			if (!dirty)
				good &= sh->pfn[0][j] == sh->pfn_before[0][j];
			else
				good &= sh->pfn[0][j] != sh->pfn_before[0][j] ||
					sh->pfn[1][j] != sh->pfn_before[1][j];
			if (!good && bad++ < 3)
				ksft_print_msg("page %zu (%s): pfns %#lx %#lx, before %#lx %#lx\n",
					       j, dirty ? "dirty" : "clean",
					       (long)sh->pfn[0][j],
					       (long)sh->pfn[1][j],
					       (long)sh->pfn_before[0][j],
					       (long)sh->pfn_before[1][j]);
		}
		CHECK(bad == 0, "%zu pages with unexpected frames\n", bad);
		CHECK(!sh->bad[0] && !sh->bad[1],
		      "contents changed: %ld %ld pages\n", sh->bad[0],
		      sh->bad[1]);
		ok = !fail;
	}
	ok &= stop_pair(w, &base);
	unlink(FILE_PATH);
	ksft_test_result(ok, "dirtied pages of a MAP_PRIVATE tmpfs file mapping merge, clean ones stay page cache\n");
}

/* ---------- memory that must be left alone ---------- */

enum shared_kind { S_ANON, S_MEMFD, S_HUGETLB };

static int shared_case(void *arg)
{
	enum shared_kind kind = *(enum shared_kind *)arg;
	size_t n = kind == S_HUGETLB ? 1024 : 32, j, changed = 0, altered = 0;
	static uint64_t before[1024], after[1024];
	struct upm_stats a, b, d;
	int fd = -1, fail = 0, r;
	char *p;

	if (kind == S_ANON) {
		p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	} else if (kind == S_MEMFD) {
		fd = memfd_create("upm_kinds", 0);
		if (fd < 0 || ftruncate(fd, n * PG))
			return 1;
		p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_SHARED,
			 fd, 0);
	} else {
		p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		if (p == MAP_FAILED) {
			ksft_print_msg("MAP_HUGETLB: %s\n", strerror(errno));
			return SKIP_RC;
		}
	}
	if (p == MAP_FAILED)
		return 1;
	/* identical pages: anything merging them would show */
	for (j = 0; j < n; j++)
		fill_page(p + j * PG, 0x4500, 0);
	pfns_of(p, n, before);
	upm_stats_read(&a);
	r = upm_call(p, n * PG);
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("left alone", &d);
	pfns_of(p, n, after);
	for (j = 0; j < n; j++) {
		changed += before[j] != after[j];
		altered += !page_matches(p + j * PG, 0x4500, 0);
	}
	CHECK(r == 0, "madvise(MADV_UPM) returned %s, expected 0\n",
	      strerror(r));
	CHECK(d.pages_scanned == 0 && d.pages_merged == 0 &&
	      d.pages_new_ksm == 0,
	      "expected no pages scanned/merged, saw scanned %+ld merged %+ld new_ksm %+ld\n",
	      (long)d.pages_scanned, (long)d.pages_merged,
	      (long)d.pages_new_ksm);
	CHECK(changed == 0, "%zu pages changed frames\n", changed);
	CHECK(altered == 0, "%zu pages changed contents\n", altered);
	CHECK(!vma_mergeable(p), "VMA became VM_MERGEABLE\n");
	munmap(p, n * PG);
	if (fd >= 0)
		close(fd);
	return fail;
}

static void test_shared(enum shared_kind kind)
{
	static const char *const names[] = {
		"MAP_SHARED anonymous memory", "memfd MAP_SHARED (shmem)",
		"hugetlb (MAP_HUGETLB)",
	};
	char old[32] = "";
	int r;

	if (kind == S_HUGETLB) {
		read_str("/proc/sys/vm/nr_hugepages", old, sizeof(old));
		write_str("/proc/sys/vm/nr_hugepages", "2");
	}
	r = run_child(shared_case, &kind);
	if (kind == S_HUGETLB && old[0])
		write_str("/proc/sys/vm/nr_hugepages", old);
	if (r == SKIP_RC)
		ksft_test_result_skip("%s: not available\n", names[kind]);
	else
		ksft_test_result(r == 0, "%s is left alone: 0, nothing scanned or merged\n",
				 names[kind]);
}

/* private | shared | private, advised as one range */
static int mixed_case(void *arg)
{
	size_t n = 16, j;
	struct upm_stats a, b, d;
	int fail = 0, r;
	char *base, *p1, *p2, *p3;
	(void)arg;

	base = mmap(NULL, 3 * n * PG, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return 1;
	p1 = mmap(base, n * PG, PROT_READ | PROT_WRITE,
		  MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p2 = mmap(base + n * PG, n * PG, PROT_READ | PROT_WRITE,
		  MAP_FIXED | MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	p3 = mmap(base + 2 * n * PG, n * PG, PROT_READ | PROT_WRITE,
		  MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p1 == MAP_FAILED || p2 == MAP_FAILED || p3 == MAP_FAILED)
		return 1;
	for (j = 0; j < 3 * n; j++)
		fill_page(base + j * PG, 0x4600, j);
	upm_stats_read(&a);
	r = upm_call(base, 3 * n * PG);
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("mixed range", &d);
	CHECK(r == 0, "madvise(MADV_UPM) returned %s, expected 0\n",
	      strerror(r));
	CHECK(d.pages_scanned == 2 * n && d.pages_candidate == 2 * n,
	      "expected scanned and candidate +%zu (private parts only), saw %+ld %+ld\n",
	      2 * n, (long)d.pages_scanned, (long)d.pages_candidate);
	CHECK(vma_mergeable(p1) && vma_mergeable(p3) && !vma_mergeable(p2),
	      "VM_MERGEABLE: private %d %d shared %d, expected 1 1 0\n",
	      vma_mergeable(p1), vma_mergeable(p3), vma_mergeable(p2));
	for (j = 0; j < 3 * n; j++)
		CHECK(page_matches(base + j * PG, 0x4600, j),
		      "page %zu changed\n", j);
	munmap(base, 3 * n * PG);
	return fail;
}

/* ---------- more single-process cases ---------- */

/* pages never touched stay not present */
static int not_present_case(void *arg)
{
	size_t n = 64, j, present = 0;
	uint64_t pfn[64];
	struct upm_stats a, b, d;
	struct vma_info vi;
	char *p = map_anon(n * PG, -1);
	int fail = 0, r;
	(void)arg;

	if (!p)
		return 1;
	for (j = 0; j < n; j += 2)
		fill_page(p + j * PG, 0x4700, j);
	upm_stats_read(&a);
	r = upm_call(p, n * PG);
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("half present", &d);
	pfns_of(p, n, pfn);
	for (j = 1; j < n; j += 2)
		present += pfn[j] != 0;
	vma_info(p, &vi);
	CHECK(r == 0, "madvise(MADV_UPM): %s\n", strerror(r));
	CHECK(present == 0, "%zu untouched pages became present\n", present);
	CHECK(vi.rss_kb == (long)(n / 2 * PG / 1024),
	      "Rss %ld kB, expected %zu kB\n", vi.rss_kb, n / 2 * PG / 1024);
	CHECK(d.pages_scanned == n / 2, "expected pages_scanned +%zu, saw %+ld\n",
	      n / 2, (long)d.pages_scanned);
	for (j = 0; j < n; j += 2)
		CHECK(page_matches(p + j * PG, 0x4700, j), "page %zu changed\n",
		      j);
	munmap(p, n * PG);
	return fail;
}

/* advising the middle of a VMA marks only that part mergeable */
static int partial_case(void *arg)
{
	size_t n = 64;
	struct upm_stats a, b, d;
	char *p = map_anon(n * PG, -1);
	int fail = 0, r;
	(void)arg;

	if (!p)
		return 1;
	fill_pages(p, n, 0x4800);
	upm_stats_read(&a);
	r = upm_call(p + 16 * PG, 32 * PG);
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("middle of a VMA", &d);
	CHECK(r == 0, "madvise(MADV_UPM): %s\n", strerror(r));
	CHECK(d.pages_scanned == 32, "expected pages_scanned +32, saw %+ld\n",
	      (long)d.pages_scanned);
	CHECK(!vma_mergeable(p) && vma_mergeable(p + 16 * PG) &&
	      vma_mergeable(p + 47 * PG) && !vma_mergeable(p + 48 * PG),
	      "VM_MERGEABLE at pages 0/16/47/48: %d %d %d %d, expected 0 1 1 0\n",
	      vma_mergeable(p), vma_mergeable(p + 16 * PG),
	      vma_mergeable(p + 47 * PG), vma_mergeable(p + 48 * PG));
	CHECK(count_bad_pages(p, n, 0x4800) == 0, "contents changed\n");
	munmap(p, n * PG);
	return fail;
}

/* a read-only private mapping of written pages merges too: two copies */
static int readonly_case(void *arg)
{
	size_t n = 32, j;
	struct upm_stats a, b, d;
	char *p = map_anon(2 * n * PG, -1);
	int fail = 0, r;
	(void)arg;

	if (!p)
		return 1;
	for (j = 0; j < 2 * n; j++)
		fill_page(p + j * PG, 0x4900, j % n);
	mprotect(p, 2 * n * PG, PROT_READ);
	upm_stats_read(&a);
	r = upm_call(p, 2 * n * PG);
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("read-only", &d);
	CHECK(r == 0, "madvise(MADV_UPM): %s\n", strerror(r));
	CHECK(d.pages_scanned == 2 * n && d.pages_candidate == n &&
	      d.pages_merged == n && d.pages_new_ksm == n,
	      "expected scanned +%zu, candidate, merged and new_ksm +%zu, saw %+ld %+ld %+ld %+ld\n",
	      2 * n, n, (long)d.pages_scanned, (long)d.pages_candidate,
	      (long)d.pages_merged, (long)d.pages_new_ksm);
	for (j = 0; j < n; j++)
		CHECK(pfn_of(p + j * PG) == pfn_of(p + (n + j) * PG),
		      "copies of page %zu do not share a frame\n", j);
	CHECK(count_bad_pages(p, n, 0x4900) == 0 &&
	      count_bad_pages(p + n * PG, n, 0x4900) == 0, "contents changed\n");
	munmap(p, 2 * n * PG);
	return fail;
}

/*
 * A candidate written after it was advised is no twin any more. The pair
 * merge compares the two pages once, with the candidate's PTE cleared,
 * and puts it back as it was; the page that found it stays private and
 * becomes a candidate itself. Both keep their contents and stay writable
 * in place: neither is left a KSM page.
 */
static int stale_candidate_case(void *arg)
{
	size_t n = 64, j;
	struct upm_stats a, b, d;
	char *x = map_anon(n * PG, 0), *y = map_anon(n * PG, 0);
	uint64_t pfn;
	int fail = 0, r;
	(void)arg;

	if (!x || !y)
		return 1;
	fill_pages(x, n, 0x4a80);
	CHECK(upm_call(x, n * PG) == 0, "first call failed\n");
	for (j = 1; j < n; j += 2)		/* every other one changes */
		fill_page(x + j * PG, 0x4a81, j);
	fill_pages(y, n, 0x4a80);
	upm_stats_read(&a);
	r = upm_call(y, n * PG);
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("stale candidates", &d);
	CHECK(r == 0, "madvise(MADV_UPM): %s\n", strerror(r));
	CHECK(d.pages_merged == n / 2 && d.pages_new_ksm == n / 2 &&
	      d.pages_candidate == n / 2 && d.pages_skipped == 0,
	      "expected merged, new_ksm and candidate +%zu, skipped 0, saw %+ld %+ld %+ld %+ld\n",
	      n / 2, (long)d.pages_merged, (long)d.pages_new_ksm,
	      (long)d.pages_candidate, (long)d.pages_skipped);
	for (j = 0; j < n; j++) {
		bool shared = pfn_of(x + j * PG) == pfn_of(y + j * PG);

		CHECK(shared == !(j & 1), "page %zu: %s a frame with its %s twin\n",
		      j, shared ? "shares" : "does not share",
		      j & 1 ? "changed" : "unchanged");
		CHECK(page_matches(x + j * PG, j & 1 ? 0x4a81 : 0x4a80, j) &&
		      page_matches(y + j * PG, 0x4a80, j),
		      "page %zu: contents changed\n", j);
	}
	/* A write to a KSM page would copy it to another frame. */
	for (j = 1; j < n; j += 2) {
		pfn = pfn_of(x + j * PG);
		x[j * PG] ^= 1;
		CHECK(pfn_of(x + j * PG) == pfn,
		      "changed candidate %zu moved when written\n", j);
		pfn = pfn_of(y + j * PG);
		y[j * PG] ^= 1;
		CHECK(pfn_of(y + j * PG) == pfn,
		      "page %zu, whose twin changed, moved when written\n", j);
	}
	munmap(x, n * PG);
	munmap(y, n * PG);
	return fail;
}

/* more identical pages than one KSM page may be shared by */
static int many_case(void *arg)
{
	size_t n = 600, j, k, frames = 0, bad = 0;
	static uint64_t pfn[600], seen[600];
	unsigned long maxshare = 256;
	struct upm_stats a, b, d;
	char *p = map_anon(n * PG, -1);
	long most = 0, cnt;
	int fail = 0, r;
	(void)arg;

	if (!p)
		return 1;
	read_ulong(KSM_SYSFS "max_page_sharing", &maxshare);
	for (j = 0; j < n; j++)
		fill_page(p + j * PG, 0x4a00, 0);
	upm_stats_read(&a);
	r = upm_call(p, n * PG);
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("600 identical pages", &d);
	pfns_of(p, n, pfn);
	for (j = 0; j < n; j++) {
		bad += !page_matches(p + j * PG, 0x4a00, 0);
		for (k = 0; k < frames && seen[k] != pfn[j]; k++)
			;
		if (k == frames) {
			seen[frames++] = pfn[j];
			cnt = pfn_mapcount(pfn[j]);
			if (cnt > most)
				most = cnt;
		}
	}
	ksft_print_msg("600 identical pages: %zu frames, the most shared mapped %ld times (max_page_sharing %lu)\n",
		       frames, most, maxshare);
	CHECK(r == 0, "madvise(MADV_UPM): %s\n", strerror(r));
	CHECK(d.pages_merged + d.pages_candidate == n &&
	      d.pages_skipped == 0,
	      "expected merged+candidate = %zu and no skips, saw %ld + %ld, skipped %ld\n",
	      n, (long)d.pages_merged, (long)d.pages_candidate,
	      (long)d.pages_skipped);
	CHECK(most <= (long)maxshare, "a frame is mapped %ld times, more than max_page_sharing %lu\n",
	      most, maxshare);
	CHECK(frames <= (n + maxshare - 1) / maxshare + 1,
	      "%zu frames for %zu identical pages\n", frames, n);
	CHECK(bad == 0, "%zu pages changed\n", bad);
	munmap(p, n * PG);
	return fail;
}

/*
 * khugepaged must not undo merging. Two copies merge; once the copy is
 * unmapped, its twins' KSM pages are mapped once and look private to
 * khugepaged's max_ptes_shared check; a write to a quarter of each former
 * THP gives it the writable PTEs it wants to collapse the range, copying
 * the KSM pages out.
 */
#define KHP "/sys/kernel/mm/transparent_hugepage/khugepaged/"

static const char *const khp_knobs[] = {
	"scan_sleep_millisecs", "alloc_sleep_millisecs", "pages_to_scan",
};

static int khugepaged_case(void *arg)
{
	static const char *const fast[] = { "10", "10", "4096" };
	char old[3][32], path[128];
	size_t n = 8 * MIB / PG, moved = 0, j;
	static uint64_t before[8 * MIB / PG], after[8 * MIB / PG];
	unsigned long scans0 = 0, scans = 0;
	struct vma_info vi;
	char *p = map_anon(n * PG, 1), *copy = map_anon(n * PG, 1);
	int fail = 0, r, i, set, waited;
	(void)arg;

	if (!p || !copy)
		return 1;
	fill_pages(p, n, 0x4b00);
	fill_pages(copy, n, 0x4b00);
	r = upm_call(copy, n * PG);
	CHECK(r == 0, "madvise(MADV_UPM) of the copy: %s\n", strerror(r));
	r = upm_call(p, n * PG);
	CHECK(r == 0, "madvise(MADV_UPM): %s\n", strerror(r));
	munmap(copy, n * PG);
	copy = NULL;
	for (j = 0; j < n; j++)
		if (j % (2 * MIB / PG) >= 3 * MIB / 2 / PG)
			fill_page(p + j * PG, 0x4b00, j);	/* copy on write */
	/*
	 * Merging marked the KSM pages accessed: per-cpu LRU batches hold
	 * references, which khugepaged takes for pins. Compaction drains them.
	 */
	write_str("/proc/sys/vm/compact_memory", "1");
	pfns_of(p, n, before);
	for (set = 0; set < 3; set++) {
		snprintf(path, sizeof(path), KHP "%s", khp_knobs[set]);
		if (read_str(path, old[set], sizeof(old[set])) ||
		    write_str(path, fast[set]))
			break;
	}
	/* two full scans: the second sees this mm whatever the first did */
	read_ulong(KHP "full_scans", &scans0);
	for (waited = 0; set == 3 && waited < 60000; waited += 50) {
		read_ulong(KHP "full_scans", &scans);
		if (scans >= scans0 + 2)
			break;
		usleep(50000);
	}
	for (i = 0; i < set; i++) {
		snprintf(path, sizeof(path), KHP "%s", khp_knobs[i]);
		write_str(path, old[i]);
	}
	if (set < 3)
		return SKIP_RC;	/* no khugepaged to tune */
	pfns_of(p, n, after);
	for (j = 0; j < n; j++)
		if (j % (2 * MIB / PG) < 3 * MIB / 2 / PG)	/* not written */
			moved += before[j] != after[j];
	vma_info(p, &vi);
	ksft_print_msg("khugepaged: %lu full scans in %d ms; %zu of %zu merged pages moved, AnonHugePages %ld kB\n",
		       scans - scans0, waited, moved, 3 * n / 4, vi.anon_huge_kb);
	CHECK(scans >= scans0 + 2, "khugepaged did not finish two scans\n");
	CHECK(moved == 0 && vi.anon_huge_kb == 0,
	      "khugepaged collapsed merged pages into THPs\n");
	CHECK(count_bad_pages(p, n, 0x4b00) == 0, "contents changed\n");
	munmap(p, n * PG);
	return fail;
}

/*
 * Unique content stays as it was: private, writable without a fault, and
 * huge. Only a twin advised later would make its pages KSM pages.
 */
static int unique_case(void *arg)
{
	size_t n = 4 * MIB / PG, j, moved = 0;
	static uint64_t before[4 * MIB / PG], after[4 * MIB / PG];
	struct vma_info v0, v1;
	struct upm_stats a, b, d;
	struct ksm_stats ka, kb;
	char *p = map_anon(n * PG, 1);
	int fail = 0, r;
	(void)arg;

	if (!p)
		return 1;
	fill_pages(p, n, 0x4c00);
	vma_info(p, &v0);
	pfns_of(p, n, before);
	upm_stats_read(&a);
	ksm_stats_read(&ka);
	r = upm_call(p, n * PG);
	upm_stats_read(&b);
	ksm_stats_read(&kb);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("unique content", &d);
	CHECK(r == 0, "madvise(MADV_UPM): %s\n", strerror(r));
	CHECK(d.pages_candidate == n && d.pages_merged == 0 &&
	      d.pages_new_ksm == 0 && d.candidates == n,
	      "expected candidate +%zu (now in the index +%zu), merged and new_ksm +0, saw %+ld (%+ld) %+ld %+ld\n",
	      n, n, (long)d.pages_candidate, (long)d.candidates,
	      (long)d.pages_merged, (long)d.pages_new_ksm);
	CHECK(kb.pages_shared == ka.pages_shared &&
	      kb.pages_sharing == ka.pages_sharing,
	      "pages_shared %+ld pages_sharing %+ld, expected no KSM page\n",
	      kb.pages_shared - ka.pages_shared,
	      kb.pages_sharing - ka.pages_sharing);
	vma_info(p, &v1);
	ksft_print_msg("unique content: AnonHugePages %ld kB before, %ld kB after\n",
		       v0.anon_huge_kb, v1.anon_huge_kb);
	CHECK(v1.anon_huge_kb == v0.anon_huge_kb,
	      "THPs of unique content were split\n");
	/* A write to every page: in place, no copy-on-write. */
	for (j = 0; j < n; j++)
		p[j * PG + 8] ^= 1;
	pfns_of(p, n, after);
	for (j = 0; j < n; j++) {
		moved += before[j] != after[j];
		p[j * PG + 8] ^= 1;
	}
	CHECK(moved == 0,
	      "after a write to each page: %zu moved (copied on write)\n",
	      moved);
	CHECK(count_bad_pages(p, n, 0x4c00) == 0, "contents changed\n");
	munmap(p, n * PG);
	upm_stats_read(&b);
	CHECK(b.candidates == a.candidates,
	      "munmap left %+ld candidates in the index\n",
	      (long)(b.candidates - a.candidates));
	return fail;
}

/*
 * The stable tree orders KSM pages by their first eight bytes before their
 * contents. Pages with the same j / 8 differ only in those bytes, pages with
 * the same j % 8 only after them; the first byte and the last of the eight
 * disagree on the order, as memcmp() and a little-endian load would.
 */
#define PREFIX_PAGES 512

static void fill_prefix_page(char *page, size_t j)
{
	fill_page(page, 0x4d00, j / 8);
	memset(page, 0, 8);
	page[0] = 7 - j % 8;
	page[7] = j % 8;
}

static size_t count_bad_prefix_pages(const char *p)
{
	static char want[PG];
	size_t j, bad = 0;

	for (j = 0; j < PREFIX_PAGES; j++) {
		fill_prefix_page(want, j);
		bad += memcmp(p + j * PG, want, PG) != 0;
	}
	return bad;
}

/* Advises @p and checks the counters: @merged pages merged, @new_ksm new. */
static int prefix_call(const char *label, char *p, size_t candidates,
		       size_t merged, size_t new_ksm)
{
	struct upm_stats a, b, d;
	int fail = 0, r;

	upm_stats_read(&a);
	r = upm_call(p, PREFIX_PAGES * PG);
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print(label, &d);
	CHECK(r == 0, "%s: madvise(MADV_UPM): %s\n", label, strerror(r));
	CHECK(d.pages_candidate == candidates && d.pages_merged == merged &&
	      d.pages_new_ksm == new_ksm && d.pages_skipped == 0,
	      "%s: expected candidate %zu merged %zu new_ksm %zu, saw %ld %ld %ld (skipped %ld)\n",
	      label, candidates, merged, new_ksm, (long)d.pages_candidate,
	      (long)d.pages_merged, (long)d.pages_new_ksm,
	      (long)d.pages_skipped);
	return fail;
}

static int prefix_case(void *arg)
{
	size_t n = PREFIX_PAGES, j, k, unshared = 0, shared_frames = 0;
	static uint64_t pfn[4][PREFIX_PAGES];
	char *p[4];
	double t0;
	int fail = 0, i;
	(void)arg;

	for (i = 0; i < 4; i++) {
		p[i] = map_anon(n * PG, -1);
		if (!p[i])
			return 1;
		for (j = 0; j < n; j++)
			fill_prefix_page(p[i] + j * PG, j);
	}
	fail |= prefix_call("prefixes: first copy", p[0], n, 0, 0);
	fail |= prefix_call("prefixes: second copy", p[1], 0, n, n);
	fail |= prefix_call("prefixes: third copy", p[2], 0, n, 0);
	for (i = 0; i < 3; i++)
		pfns_of(p[i], n, pfn[i]);
	for (j = 0; j < n; j++) {
		if (!pfn[0][j] || pfn[0][j] != pfn[1][j] ||
		    pfn[0][j] != pfn[2][j]) {
			if (unshared++ < 3)
				ksft_print_msg("page %zu: frames %#lx %#lx %#lx\n",
					       j, (long)pfn[0][j],
					       (long)pfn[1][j], (long)pfn[2][j]);
			continue;
		}
		for (k = 0; k < j && pfn[0][k] != pfn[0][j]; k++)
			;
		shared_frames += k == j;
	}
	CHECK(unshared == 0 && shared_frames == n,
	      "%zu pages not shared by the three copies, %zu frames for %zu contents\n",
	      unshared, shared_frames, n);

	/* ksmd finds them in the stable tree for a MADV_MERGEABLE copy. */
	if (madvise(p[3], n * PG, MADV_MERGEABLE) || ksm_run_fastest()) {
		ksft_print_msg("cannot start ksmd: %s\n", strerror(errno));
		return 1;
	}
	t0 = now_sec();
	do {
		sleep_ms(200);
		pfns_of(p[3], n, pfn[3]);
		for (j = 0, unshared = 0; j < n; j++)
			unshared += pfn[3][j] != pfn[0][j];
	} while (unshared && now_sec() - t0 < 30);
	write_str(KSM_SYSFS "run", "0");
	ksft_print_msg("prefixes: ksmd left %zu pages of the MADV_MERGEABLE copy unmerged after %.1f s\n",
		       unshared, now_sec() - t0);
	CHECK(unshared == 0, "ksmd did not merge %zu pages with their KSM twins\n",
	      unshared);
	for (i = 0; i < 4; i++) {
		j = count_bad_prefix_pages(p[i]);
		CHECK(j == 0, "copy %d: %zu pages changed\n", i, j);
		munmap(p[i], n * PG);
	}
	return fail;
}

static void test_single(int (*fn)(void *), const char *name)
{
	struct ksm_stats base;
	bool ok;
	int r;

	ksm_stats_read(&base);
	r = run_child(fn, NULL);
	if (r == SKIP_RC) {
		ksft_test_result_skip("%s (not available)\n", name);
		return;
	}
	ok = r == 0;
	if (!ksm_back_after_exit(&base, NULL))
		ok = false;
	ksft_test_result(ok, "%s\n", name);
}

static void restore(void)
{
	ksm_settings_restore(&saved);
}

int main(void)
{
	upm_test_start(19);
	if (ksm_settings_save(&saved))
		ksft_exit_fail_msg("cannot read KSM settings\n");
	atexit(restore);
	sh = shared_alloc(sizeof(*sh));
	if (!sh)
		ksft_exit_fail_msg("no memory for results\n");

	test_zero(0);
	test_zero(1);
	test_thp();
	test_thp_replaced();
	test_file();
	test_shared(S_ANON);
	test_shared(S_MEMFD);
	test_shared(S_HUGETLB);
	test_single(mixed_case, "a range of private, shared and private VMAs: private parts merged, 0 returned");
	test_single(not_present_case, "pages not present are not faulted in, present ones scanned");
	test_single(partial_case, "advising the middle of a VMA: only that part scanned and VM_MERGEABLE");
	test_single(readonly_case, "written pages in a read-only private mapping merge");
	test_single(stale_candidate_case, "a candidate written since it was advised: compared once, left as it was, the page that found it stays private");
	test_single(many_case, "600 identical pages: all merged, no frame beyond max_page_sharing");
	test_single(prefix_case, "pages alike in their first bytes, or only in them: each merges with its twins only, by MADV_UPM and ksmd");
	test_single(unique_case, "unique content stays private, writable in place and huge; munmap takes its candidates");
	test_single(khugepaged_case, "khugepaged leaves merged pages alone when their twins are gone and a quarter of each THP was written");
	ksft_finished();
}
