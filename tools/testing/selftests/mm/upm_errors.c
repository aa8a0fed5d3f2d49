// SPDX-License-Identifier: GPL-2.0
/*
 * MADV_UPM's errors: EINVAL for a misaligned start, a length that wraps
 * and an unknown advice; 0 for an empty range; ENOMEM for a range with
 * unmapped holes, after the mapped parts were merged; and a process killed
 * in the middle of a long call dies promptly, leaving KSM consistent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define CHECK(cond, ...) do {				\
	if (!(cond)) {					\
		ksft_print_msg(__VA_ARGS__);		\
		fail = 1;				\
	}						\
} while (0)

/* madvise(addr, len, advice): 0 or errno */
static int adv(void *addr, size_t len, int advice)
{
	return madvise(addr, len, advice) ? errno : 0;
}

static const char *err_name(int e)
{
	return e ? strerror(e) : "success";
}

static int basic_cases(void *arg)
{
	int which = *(int *)arg, fail = 0, r;
	struct upm_stats a, b, d;
	char *p = map_anon(4 * PG, -1);
	size_t wrap;

	if (!p)
		return 1;
	memset(p, 0x11, 4 * PG);
	switch (which) {
	case 0:
		r = adv(p, 4 * PG, MADV_UPM);
		CHECK(r == 0, "aligned, mapped range: %s, expected success\n",
		      err_name(r));
		break;
	case 1:
		r = adv(p + 1, PG, MADV_UPM);
		CHECK(r == EINVAL, "start+1: %s, expected EINVAL\n",
		      err_name(r));
		r = adv(p + PG / 2, PG, MADV_UPM);
		CHECK(r == EINVAL, "start+2048: %s, expected EINVAL\n",
		      err_name(r));
		break;
	case 2:
		r = adv(p, (size_t)-1, MADV_UPM);
		CHECK(r == EINVAL, "len SIZE_MAX: %s, expected EINVAL\n",
		      err_name(r));
		/* start + len wraps past the end of the address space */
		wrap = (size_t)0 - (uintptr_t)p + 2 * PG;
		r = adv(p, wrap, MADV_UPM);
		CHECK(r == EINVAL, "len %#zx (end wraps to %#lx): %s, expected EINVAL\n",
		      wrap, (unsigned long)((uintptr_t)p + wrap), err_name(r));
		r = adv(p, (size_t)-PG, MADV_UPM);
		CHECK(r == EINVAL, "len -4096: %s, expected EINVAL\n",
		      err_name(r));
		break;
	case 3:
		upm_stats_read(&a);
		r = adv(p, 0, MADV_UPM);
		upm_stats_read(&b);
		upm_stats_delta(&a, &b, &d);
		CHECK(r == 0, "len 0: %s, expected success\n", err_name(r));
		CHECK(d.pages_scanned == 0, "len 0 scanned %ld pages\n",
		      (long)d.pages_scanned);
		r = adv((void *)PG, 0, MADV_UPM);
		CHECK(r == 0, "len 0 at an unmapped address: %s, expected success\n",
		      err_name(r));
		break;
	case 4:
		r = adv(p, 4 * PG, 27);
		CHECK(r == EINVAL, "advice 27: %s, expected EINVAL\n",
		      err_name(r));
		break;
	}
	munmap(p, 4 * PG);
	return fail;
}

static void test_basic(int which, const char *name)
{
	ksft_test_result(run_child(basic_cases, &which) == 0, "%s\n", name);
}

/* the counters in /sys/kernel/mm/upm/ cannot be written, even by root */
static void test_readonly(void)
{
	static const char *const names[] = {
		"calls", "pages_scanned", "pages_merged", "pages_new_ksm",
		"pages_already_merged", "pages_skipped", "pages_zero",
		"time_ns", "index_entries",
	};
	char path[128];
	int fail = 0;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(names); i++) {
		unsigned long v;

		snprintf(path, sizeof(path), UPM_SYSFS "%s", names[i]);
		CHECK(read_ulong(path, &v) == 0, "%s: not readable\n", path);
		CHECK(write_str(path, "0") != 0, "%s: writing succeeded\n",
		      path);
	}
	ksft_test_result(!fail, "UPM counters are there, readable and read-only\n");
}

/* ---- a range with holes ---- */

#define PART 64		/* pages per mapped part */

enum { CMD_SETUP = 1, CMD_ADVISE, CMD_HOLE, CMD_MEASURE };

struct shared {
	uint64_t pfn[2][3 * PART];
	int err[2];
	struct upm_stats d[2];
};

static struct shared *sh;
static char *buf;

static long helper(int idx, int cmd, void *arg)
{
	struct upm_stats a, b;
	size_t j;
	(void)arg;

	switch (cmd) {
	case CMD_SETUP:
		buf = map_anon(3 * PART * PG, -1);
		if (!buf)
			return -ENOMEM;
		for (j = 0; j < 3 * PART; j++)
			fill_page(buf + j * PG, 0x8800, j);
		return 0;
	case CMD_ADVISE:
		return upm_call(buf, 3 * PART * PG);
	case CMD_HOLE:
		/* part 1 | hole | part 3: advise it all, then hole..end */
		munmap(buf + PART * PG, PART * PG);
		upm_stats_read(&a);
		sh->err[0] = adv(buf, 3 * PART * PG, MADV_UPM);
		upm_stats_read(&b);
		upm_stats_delta(&a, &b, &sh->d[0]);
		sh->err[1] = adv(buf + PART * PG, 2 * PART * PG, MADV_UPM);
		upm_stats_read(&a);
		upm_stats_delta(&b, &a, &sh->d[1]);
		return 0;
	case CMD_MEASURE:
		pfns_of(buf, 3 * PART, sh->pfn[idx]);
		for (j = 0; j < 3 * PART; j++) {
			if (idx == 0 && j >= PART && j < 2 * PART)
				continue;
			if (!page_matches(buf + j * PG, 0x8800, j))
				return 1;
		}
		return 0;
	}
	return -EINVAL;
}

static void test_hole(void)
{
	struct worker w[2];
	struct ksm_stats base, seen;
	int fail = 0, i;
	size_t j, differ = 0;
	long r;

	ksm_stats_read(&base);
	for (i = 0; i < 2; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		CHECK(worker_call(&w[i], CMD_SETUP) == 0, "setup failed\n");
	}
	upm_stats_read(&sh->d[0]);
	r = worker_call(&w[1], CMD_ADVISE);
	upm_stats_read(&sh->d[1]);
	upm_stats_delta(&sh->d[0], &sh->d[1], &sh->d[1]);
	upm_stats_print("first caller", &sh->d[1]);
	CHECK(r == 0, "first caller: madvise(MADV_UPM) failed: %s\n",
	      strerror(r));
	CHECK(sh->d[1].pages_candidate == 3 * PART,
	      "first caller: expected pages_candidate +%d, saw %+ld\n",
	      3 * PART, (long)sh->d[1].pages_candidate);
	r = worker_call(&w[0], CMD_HOLE);
	CHECK(r == 0, "hole helper failed\n");
	upm_stats_print("part|hole|part", &sh->d[0]);
	upm_stats_print("hole|part", &sh->d[1]);
	CHECK(sh->err[0] == ENOMEM, "part|hole|part: %s, expected ENOMEM\n",
	      err_name(sh->err[0]));
	CHECK(sh->d[0].pages_scanned == 2 * PART &&
	      sh->d[0].pages_merged == 2 * PART,
	      "part|hole|part: expected scanned and merged +%d, saw %+ld %+ld\n",
	      2 * PART, (long)sh->d[0].pages_scanned,
	      (long)sh->d[0].pages_merged);
	CHECK(upm_stats_balanced(&sh->d[0], "part|hole|part"), "unbalanced\n");
	CHECK(sh->err[1] == ENOMEM, "hole|part: %s, expected ENOMEM\n",
	      err_name(sh->err[1]));
	CHECK(sh->d[1].pages_scanned == PART &&
	      sh->d[1].pages_already_merged == PART,
	      "hole|part: expected scanned and already_merged +%d, saw %+ld %+ld\n",
	      PART, (long)sh->d[1].pages_scanned,
	      (long)sh->d[1].pages_already_merged);
	CHECK(worker_call(&w[0], CMD_MEASURE) == 0 &&
	      worker_call(&w[1], CMD_MEASURE) == 0, "contents changed\n");
	for (j = 0; j < 3 * PART; j++) {
		if (j >= PART && j < 2 * PART)
			continue;
		if (!sh->pfn[0][j] || sh->pfn[0][j] != sh->pfn[1][j])
			differ++;
	}
	CHECK(differ == 0, "%zu pages on either side of the hole not merged\n",
	      differ);
	worker_stop(&w[0]);
	worker_stop(&w[1]);
	if (!ksm_wait_back(&base, 10000, &seen)) {
		ksft_print_msg("after exit pages_shared %ld (was %ld)\n",
			       seen.pages_shared, base.pages_shared);
		fail = 1;
	}
	ksft_test_result(!fail, "range with an unmapped hole: ENOMEM, mapped parts on both sides merged\n");
}

/* ---- SIGKILL in the middle of a long call ---- */

#define BIG (256 * MIB)

struct kill_state {
	volatile int calling, returned, err;
};

static void test_kill(void)
{
	struct kill_state *ks = shared_alloc(sizeof(*ks));
	struct ksm_stats base, seen;
	struct upm_stats a, b, d;
	double t_kill, t_dead;
	int status, fail = 0;
	bool mid;
	pid_t pid;

	if (!ks)
		ksft_exit_fail_msg("no memory\n");
	ksm_stats_read(&base);
	upm_stats_read(&a);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char *p = map_anon(BIG, 0);

		if (!p)
			_exit(1);
		fill_pages(p, BIG / PG, 0x8900);
		ks->calling = 1;
		ks->err = upm_call(p, BIG);
		ks->returned = 1;
		pause();
		_exit(0);
	}
	while (!ks->calling)
		sleep_ms(1);
	sleep_ms(100);
	t_kill = now_sec();
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	t_dead = now_sec();
	mid = !ks->returned;
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("killed call", &d);
	ksft_print_msg("killed %s the call; dead %.3f s after SIGKILL\n",
		       mid ? "during" : "after", t_dead - t_kill);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	      "child status %#x, expected killed by SIGKILL\n", status);
	CHECK(t_dead - t_kill < 5.0, "child took %.1f s to die\n",
	      t_dead - t_kill);
	CHECK(upm_stats_balanced(&d, "killed call"), "unbalanced\n");
	if (!ksm_wait_back(&base, 10000, &seen)) {
		ksft_print_msg("after the kill pages_shared %ld (was %ld) pages_sharing %ld (was %ld)\n",
			       seen.pages_shared, base.pages_shared,
			       seen.pages_sharing, base.pages_sharing);
		fail = 1;
	}
	if (!mid)
		ksft_test_result_skip("SIGKILL during MADV_UPM: the %lu MiB call finished within 100 ms (%s)\n",
				      BIG / MIB, err_name(ks->err));
	else
		ksft_test_result(!fail, "SIGKILL during a %lu MiB MADV_UPM: dies promptly, counters consistent\n",
				 BIG / MIB);
	munmap(ks, sizeof(*ks));
}

/* after the kill: two processes still merge */
static void test_after_kill(void)
{
	struct worker w[2];
	struct ksm_stats base;
	size_t j, differ = 0;
	int fail = 0, i;

	ksm_stats_read(&base);
	for (i = 0; i < 2; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		CHECK(worker_call(&w[i], CMD_SETUP) == 0, "setup failed\n");
		CHECK(worker_call(&w[i], CMD_ADVISE) == 0,
		      "madvise(MADV_UPM) failed after the kill\n");
	}
	for (i = 0; i < 2; i++)
		worker_call(&w[i], CMD_MEASURE);
	for (j = 0; j < 3 * PART; j++)
		if (!sh->pfn[0][j] || sh->pfn[0][j] != sh->pfn[1][j])
			differ++;
	CHECK(differ == 0, "%zu of %d pages not merged after the kill\n",
	      differ, 3 * PART);
	worker_stop(&w[0]);
	worker_stop(&w[1]);
	CHECK(ksm_wait_back(&base, 10000, NULL), "counters not back\n");
	ksft_test_result(!fail, "after the kill two processes still merge\n");
}

int main(void)
{
	upm_test_start(9);
	sh = shared_alloc(sizeof(*sh));
	if (!sh)
		ksft_exit_fail_msg("no memory for results\n");
	test_readonly();
	test_basic(0, "MADV_UPM on an aligned, mapped range returns 0");
	test_basic(1, "misaligned start: EINVAL");
	test_basic(2, "length that wraps the address space: EINVAL");
	test_basic(3, "length 0: 0, nothing scanned");
	test_basic(4, "unknown advice 27: EINVAL");
	test_hole();
	test_kill();
	test_after_kill();
	ksft_finished();
}
