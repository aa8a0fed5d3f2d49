// SPDX-License-Identifier: GPL-2.0
/*
 * Killing a process in the middle of MADV_UPM:
 * - SIGKILL during a MADV_UPM call on a large range (1 GiB by default,
 *   -m MIB to change; capped at 70% of MemAvailable) ends the process
 *   promptly, and its exit leaves nothing behind: KSM's counters, its rmap
 *   items and UPM's index entries go back to where they were;
 * - the out-of-memory killer of a memory cgroup (memory.max below what the
 *   process needs) killing the process while it merges leaves nothing
 *   behind either.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define NPAT 64
#define KILL_LIMIT_S 20.0	/* from SIGKILL to reaped, even under TCG */
#define OOM_CG "upm_kill_oom"
#define OOM_REGION (128 * MIB)
/*
 * The region and 18 MiB: room for the call's own rmap items and stable
 * nodes (about 5.5 MiB for 128 MiB, charged to the caller's cgroup), so
 * that the hog, not the call's bookkeeping, reaches the limit.
 */
#define OOM_MAX "146M"

struct shared {
	atomic_int filled, in_call, returned, hog_started;
	atomic_long hog_mb;
	int ret;
	double t_call, t_returned, t_hog;
};

static struct shared *sh;

/* One page in @every from a few patterns (they merge), the others unique. */
static void fill_mixed(char *buf, size_t npages, uint64_t seed, int every)
{
	static char pat[NPAT][PG];
	size_t i;

	for (i = 0; i < NPAT; i++)
		fill_page(pat[i], seed, 1000000 + i);
	for (i = 0; i < npages; i++) {
		if (i % every)
			fill_page(buf + i * PG, seed, i);
		else
			memcpy(buf + i * PG, pat[(i / every) % NPAT], PG);
	}
}

static void child_advise(char *buf, size_t len)
{
	sh->t_call = now_sec();
	atomic_store(&sh->in_call, 1);
	sh->ret = madvise(buf, len, MADV_UPM) ? errno : 0;
	sh->t_returned = now_sec();
	atomic_store(&sh->returned, 1);
}

/* ---- SIGKILL during a big call ---- */

static void big_child(size_t len)
{
	char *buf;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	buf = map_anon(len, 0);
	if (!buf)
		_exit(3);
	fill_mixed(buf, len / PG, 0x4b111, 2);
	atomic_store(&sh->filled, 1);
	child_advise(buf, len);
	for (;;)
		pause();
}

static bool wait_flag(atomic_int *flag, pid_t pid, double timeout)
{
	double end = now_sec() + timeout;
	int status;

	while (!atomic_load(flag)) {
		if (now_sec() > end || waitpid(pid, &status, WNOHANG) == pid)
			return false;
		sleep_ms(1);
	}
	return true;
}

static void test_sigkill(size_t mib)
{
	size_t len = mib * MIB, npages = len / PG;
	struct ksm_stats base;
	struct upm_stats ua, ub;
	long base_rmap, items = 0;
	unsigned long idx;
	double t_kill, t_dead, t0, rate, remaining;
	bool killed_in_call, ok;
	int status;
	pid_t pid;

	memset(sh, 0, sizeof(*sh));
	/* stale entries of earlier tests' pages leave in the background */
	upm_wait_index(0, 10000, NULL);
	ksm_stats_read(&base);
	base_rmap = ksm_rmap_items();
	upm_stats_read(&ua);

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	if (pid == 0)
		big_child(len);
	t0 = now_sec();
	if (!wait_flag(&sh->filled, pid, 600) ||
	    !wait_flag(&sh->in_call, pid, 60)) {
		ksft_print_msg("the child died or hung before its call\n");
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		ksft_test_result_fail("SIGKILL during a %zu MiB MADV_UPM call\n",
				      mib);
		ksft_test_result_skip("SIGKILL: nothing left behind (no call)\n");
		ksft_test_result_skip("SIGKILL: UPM index back (no call)\n");
		return;
	}
	ksft_print_msg("child filled %zu MiB in %.1f s\n", mib,
		       sh->t_call - t0);
	/* kill once it merged a few percent: it is inside the call */
	while (!atomic_load(&sh->returned)) {
		items = proc_ksm_stat(pid, "ksm_rmap_items");
		if (items >= (long)(npages / 20))
			break;
		if (now_sec() - sh->t_call > 300)
			break;
		sleep_ms(1);
	}
	t_kill = now_sec();
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	t_dead = now_sec();
	killed_in_call = !atomic_load(&sh->returned) && items < (long)npages;
	rate = items / (t_kill - sh->t_call);
	remaining = rate > 0 ? (npages - items) / rate : 0;
	ksft_print_msg("killed after %.2f s in the call at %ld of %zu pages (%.0f pages/s, %.1f s to go); dead %.2f s after SIGKILL\n",
		       t_kill - sh->t_call, items, npages, rate, remaining,
		       t_dead - t_kill);
	if (!killed_in_call)
		ksft_print_msg("the call returned (%s) before the kill\n",
			       strerror(sh->ret));
	ksft_test_result(killed_in_call && WIFSIGNALED(status) &&
			 WTERMSIG(status) == SIGKILL &&
			 t_dead - t_kill < KILL_LIMIT_S,
			 "SIGKILL during a %zu MiB MADV_UPM call ends the process within %.0f s\n",
			 mib, KILL_LIMIT_S);

	ok = ksm_clean_after_exit(&base, base_rmap, 20000);
	ksft_test_result(ok, "SIGKILL: KSM counters and rmap items back after exit\n");
	upm_stats_read(&ub);
	ok = upm_wait_index(ua.index_entries, 10000, &idx);
	ksft_print_msg("index_entries %lu, %lu before; calls %+ld\n", idx,
		       (unsigned long)ua.index_entries,
		       (long)(ub.calls - ua.calls));
	ksft_test_result(ok, "SIGKILL: UPM index back after exit\n");
}

/* ---- OOM kill in a memory cgroup during merging ---- */

#define HOG_SIZE (512 * MIB)

static char *hog_area;
static long hog_target;

/*
 * ksm_rmap_items of this process, from a /proc/self/ksm_stat opened before
 * the call: no malloc() here, whose first use in a thread maps an arena
 * and would so wait for the call's mmap_lock.
 */
static long my_rmap_items(int fd)
{
	char buf[512], *p;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "ksm_rmap_items ");
	return p ? strtol(p + 15, NULL, 10) : -1;
}

static void *hog(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *p = hog_area;
	size_t off;

	/* start once the call has merged a few percent */
	while (!atomic_load(&sh->in_call) || my_rmap_items(fd) < hog_target) {
		if (atomic_load(&sh->returned))
			break;
		sleep_ms(1);
	}
	sh->t_hog = now_sec();
	atomic_store(&sh->hog_started, 1);
	for (off = 0; off < HOG_SIZE; off += PG) {
		p[off] = 1;
		if (off % MIB == 0)
			atomic_fetch_add(&sh->hog_mb, 1);
	}
	return NULL;
}

static void oom_child(void)
{
	size_t npages = OOM_REGION / PG;
	pthread_t th;
	char *buf;
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (cg_enter(OOM_CG, 0))
		_exit(3);
	buf = map_anon(OOM_REGION, 0);
	if (!buf)
		_exit(3);
	/* mostly unique: merging frees little, the hog soon hits the limit */
	fill_mixed(buf, npages, 0x00f, 64);
	/*
	 * The hog's memory is mapped before the call: an mmap() during it
	 * would wait for the mmap_lock that the call holds, a batch of pages
	 * at a time, for reading. Faults do not.
	 */
	hog_area = mmap(NULL, HOG_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (hog_area == MAP_FAILED)
		_exit(3);
	madvise(hog_area, HOG_SIZE, MADV_NOHUGEPAGE);
	hog_target = npages / 100;
	atomic_store(&sh->filled, 1);
	fd = open("/proc/self/ksm_stat", O_RDONLY);
	if (fd < 0 || pthread_create(&th, NULL, hog, (void *)(intptr_t)fd))
		_exit(3);
	child_advise(buf, OOM_REGION);
	for (;;)
		pause();
}

/* One try; true when the OOM kill came during the call. */
static bool oom_try(int attempt, int *status, long *ooms)
{
	bool in_call;
	double t0;
	pid_t pid;

	memset(sh, 0, sizeof(*sh));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	if (pid == 0)
		oom_child();
	t0 = now_sec();
	while (waitpid(pid, status, WNOHANG) == 0) {
		if (now_sec() - t0 > 300) {
			ksft_print_msg("the child was not killed within 300 s\n");
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			break;
		}
		sleep_ms(10);
	}
	*ooms = cg_read(OOM_CG, "memory.events", "oom_kill");
	in_call = atomic_load(&sh->in_call) && !atomic_load(&sh->returned);
	ksft_print_msg("try %d: child ended with status %#x after %.1f s; oom_kill %ld; hog allocated %ld MiB; %s\n",
		       attempt, *status, now_sec() - t0, *ooms,
		       atomic_load(&sh->hog_mb),
		       in_call ? "killed during MADV_UPM" :
		       atomic_load(&sh->returned) ?
		       (sh->ret ? strerror(sh->ret) : "the call had returned") :
		       "before the call");
	if (atomic_load(&sh->hog_started))
		ksft_print_msg("hog started %.2f s into the call%s%.2f s\n",
			       sh->t_hog - sh->t_call,
			       atomic_load(&sh->returned) ?
			       ", which returned after " : "; killed within ",
			       (atomic_load(&sh->returned) ? sh->t_returned :
				now_sec()) - sh->t_call);
	return in_call;
}

static void test_oom(void)
{
	struct ksm_stats base;
	struct upm_stats ua;
	long base_rmap, ooms = 0;
	unsigned long idx;
	bool ok, in_call = false;
	int status = 0, attempt;

	if (cg_init() || cg_create(OOM_CG) ||
	    cg_write(OOM_CG, "memory.max", OOM_MAX)) {
		ksft_test_result_skip("OOM kill in a memory cgroup: no memory cgroup\n");
		ksft_test_result_skip("OOM kill: nothing left behind\n");
		cg_destroy(OOM_CG);
		return;
	}
	/* no way out through swap */
	cg_write(OOM_CG, "memory.swap.max", "0");
	upm_wait_index(0, 10000, NULL);
	ksm_stats_read(&base);
	base_rmap = ksm_rmap_items();
	upm_stats_read(&ua);
	/* the kill must come while the call runs: timing, so a few tries */
	for (attempt = 1; attempt <= 3; attempt++) {
		in_call = oom_try(attempt, &status, &ooms);
		if (in_call || !WIFSIGNALED(status))
			break;
	}
	ksft_test_result(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
			 ooms >= 1 && in_call,
			 "OOM kill in a memory cgroup (memory.max %s) during MADV_UPM\n",
			 OOM_MAX);

	ok = ksm_clean_after_exit(&base, base_rmap, 20000);
	if (!upm_wait_index(ua.index_entries, 10000, &idx)) {
		ksft_print_msg("index_entries %lu, %lu before\n", idx,
			       (unsigned long)ua.index_entries);
		ok = false;
	}
	if (cg_destroy(OOM_CG))
		ok = false;
	ksft_test_result(ok, "OOM kill: KSM counters, rmap items and UPM index back, cgroup removed\n");
}

int main(int argc, char **argv)
{
	size_t mib = 1024, cap;
	long avail;
	int opt;

	while ((opt = getopt(argc, argv, "m:")) != -1) {
		if (opt == 'm') {
			mib = strtoul(optarg, NULL, 0);
		} else {
			fprintf(stderr, "usage: %s [-m MIB]\n", argv[0]);
			return 2;
		}
	}
	ksft_print_header();
	upm_require("KSM sysfs, cgroups");
	ksft_set_plan(5);
	avail = file_field("/proc/meminfo", "MemAvailable");
	cap = avail > 0 ? (size_t)avail * 7 / 10 / 1024 : mib;
	if (mib > cap) {
		ksft_print_msg("%zu MiB do not fit (MemAvailable %ld kB): %zu MiB instead; boot the guest with more memory (--mem) for the full size\n",
			       mib, avail, cap);
		mib = cap;
	}
	sh = shared_alloc(sizeof(*sh));
	if (!sh)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	test_sigkill(mib);
	test_oom();
	ksft_finished();
}
