// SPDX-License-Identifier: GPL-2.0
/*
 * Platform-side merging: process_madvise(pidfd, iov, vlen, MADV_UPM, 0)
 * merges another process's ranges exactly as that process's own call
 * would (pages, counters, its merge domain, its memory cgroup). The
 * permission rules of process_madvise() (EACCES without ptrace access,
 * EPERM without CAP_SYS_NICE, as for MADV_COLD), ESRCH for a target that
 * exited, bytes advised before an error, and a target that exits while it
 * is being merged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define NPAGES (8 * MIB / PG)
#define SEED 0x7e40
#define NOBODY 65534
#define BIG (512L * MIB)

enum {
	CMD_SETUP = 1,		/* NPAGES of the content SEED */
	CMD_ADVISE,		/* the process advises them itself */
	CMD_ADDR,		/* where they are */
	CMD_BAD,		/* pages that do not hold the content any more */
	CMD_SETUP_BIG,		/* BIG of one content, for the exit case */
	CMD_HOLE,		/* an address that was mapped, and is not */
	CMD_DOMAIN = 100,	/* + id: prctl(PR_SET_UPM_DOMAIN, id) */
};

static char *buf;

static long target(int idx, int cmd, void *arg)
{
	char *hole;

	(void)idx;
	(void)arg;
	if (cmd > CMD_DOMAIN)	/* join merge domain cmd - CMD_DOMAIN */
		return prctl(PR_SET_UPM_DOMAIN, cmd - CMD_DOMAIN, 0, 0, 0) ?
		       -errno : 0;
	switch (cmd) {
	case CMD_SETUP:
		buf = map_anon(NPAGES * PG, -1);
		if (!buf)
			return -ENOMEM;
		fill_pages(buf, NPAGES, SEED);
		return 0;
	case CMD_SETUP_BIG:
		buf = map_anon(BIG, -1);
		if (!buf)
			return -ENOMEM;
		memset(buf, 0x5b, BIG);
		return 0;
	case CMD_HOLE:
		hole = map_anon(2 * PG, -1);
		if (!hole)
			return -ENOMEM;
		unmap_anon(hole + PG, PG);
		return (long)(hole + PG);
	case CMD_ADVISE:
		return upm_call(buf, NPAGES * PG);
	case CMD_ADDR:
		return (long)buf;
	case CMD_BAD:
		return (long)count_bad_pages(buf, NPAGES, SEED);
	}
	return -EINVAL;
}

static int pidfd_of(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* process_madvise() of [addr, addr + len) of pid; returns it or -errno. */
static long remote_advise(pid_t pid, void *addr, size_t len, int advice)
{
	struct iovec iov = { .iov_base = addr, .iov_len = len };
	int fd = pidfd_of(pid);
	long r;

	if (fd < 0)
		return -errno;
	r = syscall(SYS_process_madvise, fd, &iov, 1, advice, 0);
	if (r < 0)
		r = -errno;
	close(fd);
	return r;
}

static bool start_targets(struct worker *w, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (worker_start(&w[i], i, target, NULL))
			return false;
		if (worker_call(&w[i], CMD_SETUP))
			return false;
	}
	return true;
}

static void stop_targets(struct worker *w, int n)
{
	while (n-- > 0)
		worker_stop(&w[n]);
}

/* Pages at the same index of a and b that are one frame. */
static long same_frames(pid_t a, pid_t b, void *addr)
{
	static uint64_t pa[NPAGES], pb[NPAGES];
	long n = 0;
	size_t j;

	if (pfns_of_pid(a, addr, NPAGES, pa) || pfns_of_pid(b, addr, NPAGES, pb))
		return -1;
	for (j = 0; j < NPAGES; j++)
		n += pa[j] && pa[j] == pb[j];
	return n;
}

/* What merging two processes' copies left: frames shared and counters. */
struct outcome {
	long ret[2], same, bad, merging[2], shared, sharing;
};

static void outcome_print(const char *how, const struct outcome *o)
{
	ksft_print_msg("%s: returned %ld and %ld; %ld of %ld pages one frame, %ld damaged; ksm_merging_pages %ld and %ld; pages_shared +%ld, pages_sharing +%ld\n",
		       how, o->ret[0], o->ret[1], o->same, (long)NPAGES, o->bad,
		       o->merging[0], o->merging[1], o->shared, o->sharing);
}

/* Two targets with the same content, merged by themselves or remotely. */
static bool merge_pair(bool remote, struct outcome *o)
{
	struct ksm_stats k0, k1;
	struct worker w[2];
	void *addr;
	int i;

	memset(o, 0, sizeof(*o));
	ksm_stats_read(&k0);
	if (!start_targets(w, 2)) {
		stop_targets(w, 2);
		return false;
	}
	addr = (void *)worker_call(&w[0], CMD_ADDR);
	for (i = 0; i < 2; i++) {
		void *at = (void *)worker_call(&w[i], CMD_ADDR);

		if (remote)
			o->ret[i] = remote_advise(w[i].pid, at, NPAGES * PG,
						  MADV_UPM);
		else
			o->ret[i] = worker_call(&w[i], CMD_ADVISE);
	}
	ksm_stats_read(&k1);
	if ((void *)worker_call(&w[1], CMD_ADDR) == addr)
		o->same = same_frames(w[0].pid, w[1].pid, addr);
	for (i = 0; i < 2; i++) {
		o->bad += worker_call(&w[i], CMD_BAD);
		o->merging[i] = proc_ksm_stat(w[i].pid, "ksm_merging_pages");
	}
	o->shared = k1.pages_shared - k0.pages_shared;
	o->sharing = k1.pages_sharing - k0.pages_sharing;
	stop_targets(w, 2);
	return true;
}

/*
 * Two processes merged by process_madvise() end as two that advised
 * themselves: the same frames, counters and ksm_stat.
 */
static bool remote_as_own(void)
{
	struct outcome own, remote;

	if (!merge_pair(false, &own) || !merge_pair(true, &remote))
		return false;
	outcome_print("advised themselves", &own);
	outcome_print("through process_madvise", &remote);
	return own.ret[0] == 0 && own.ret[1] == 0 &&
	       remote.ret[0] == (long)(NPAGES * PG) &&
	       remote.ret[1] == (long)(NPAGES * PG) &&
	       remote.same == (long)NPAGES && remote.bad == 0 &&
	       remote.same == own.same && remote.bad == own.bad &&
	       remote.merging[0] == own.merging[0] &&
	       remote.merging[1] == own.merging[1] &&
	       remote.shared == own.shared && remote.sharing == own.sharing;
}

/* Remote merging keeps to the targets' domains, not the caller's. */
static bool remote_in_target_domain(void)
{
	struct worker w[3];
	long r[3], same01, same02;
	void *addr;
	int i;
	bool ok = false;

	/* The caller is unassigned (root's default); 0 and 1 in 7, 2 in 8. */
	for (i = 0; i < 3; i++)
		if (worker_start(&w[i], i, target, NULL) ||
		    worker_call(&w[i], CMD_DOMAIN + (i < 2 ? 7 : 8)) ||
		    worker_call(&w[i], CMD_SETUP))
			goto out;
	addr = (void *)worker_call(&w[0], CMD_ADDR);
	for (i = 0; i < 3; i++) {
		/* forks of one process: their first mapping lies alike */
		if ((void *)worker_call(&w[i], CMD_ADDR) != addr)
			goto out;
		r[i] = remote_advise(w[i].pid, addr, NPAGES * PG, MADV_UPM);
	}
	same01 = same_frames(w[0].pid, w[1].pid, addr);
	same02 = same_frames(w[0].pid, w[2].pid, addr);
	ksft_print_msg("returned %ld, %ld, %ld; one frame: %ld pages in domain 7, %ld across 7 and 8; upm_domain %ld, %ld, %ld\n",
		       r[0], r[1], r[2], same01, same02,
		       proc_ksm_stat(w[0].pid, "upm_domain"),
		       proc_ksm_stat(w[1].pid, "upm_domain"),
		       proc_ksm_stat(w[2].pid, "upm_domain"));
	ok = r[0] == (long)(NPAGES * PG) && r[1] == r[0] && r[2] == r[0] &&
	     same01 == (long)NPAGES && same02 == 0;
out:
	stop_targets(w, 3);
	return ok;
}

/* The rmap_items of remotely merged pages are charged to the target. */
static bool remote_charged_to_target(void)
{
	long before, after = 0, r = -1;
	struct worker w;
	bool ok = false;

	if (cg_init() || cg_create("upm_remote"))
		return false;
	if (worker_start(&w, 0, target, NULL))
		goto out;
	if (cg_enter("upm_remote", w.pid) || worker_call(&w, CMD_SETUP))
		goto stop;
	before = cg_read("upm_remote", "memory.stat", "slab_unreclaimable");
	r = remote_advise(w.pid, (void *)worker_call(&w, CMD_ADDR),
			  NPAGES * PG, MADV_UPM);
	after = cg_wait_slab("upm_remote",
			     before + (long)(NPAGES * KSM_RMAP_ITEM_SIZE), NULL);
	ksft_print_msg("returned %ld; unreclaimable slab of the target's cgroup: %ld -> %ld KiB for %ld pages\n",
		       r, before / 1024, after / 1024, (long)NPAGES);
	ok = r == (long)(NPAGES * PG) &&
	     after - before >= (long)(NPAGES * KSM_RMAP_ITEM_SIZE);
stop:
	worker_stop(&w);
out:
	cg_destroy("upm_remote");
	return ok;
}

/*
 * Without privilege, in a child: EACCES on another user's process, EPERM
 * (no CAP_SYS_NICE) on one of its own uid's, each as for MADV_COLD; the
 * targets' pages are not touched.
 */
struct perm_case {
	pid_t root_target, own_target;
	void *root_addr, *own_addr;
};

static int unprivileged(void *arg)
{
	struct perm_case *c = arg;
	long upm_root, cold_root, upm_own, cold_own;

	if (setresuid(NOBODY, NOBODY, NOBODY))
		return 2;
	upm_root = remote_advise(c->root_target, c->root_addr, NPAGES * PG,
				 MADV_UPM);
	cold_root = remote_advise(c->root_target, c->root_addr, NPAGES * PG,
				  MADV_COLD);
	upm_own = remote_advise(c->own_target, c->own_addr, NPAGES * PG,
				MADV_UPM);
	cold_own = remote_advise(c->own_target, c->own_addr, NPAGES * PG,
				 MADV_COLD);
	ksft_print_msg("without privilege: root's process: MADV_UPM %s, MADV_COLD %s; its own uid's: MADV_UPM %s, MADV_COLD %s\n",
		       strerror(-upm_root), strerror(-cold_root),
		       strerror(-upm_own), strerror(-cold_own));
	return upm_root == -EACCES && cold_root == -EACCES &&
	       upm_own == -EPERM && cold_own == -EPERM ? 0 : 1;
}

static long become_nobody(int idx, int cmd, void *arg)
{
	/* dumpable again after the uid change, or ptrace access is refused */
	if (cmd == CMD_DOMAIN)
		return setresuid(NOBODY, NOBODY, NOBODY) ||
		       prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) ? -errno : 0;
	return target(idx, cmd, arg);
}

static bool remote_permissions(void)
{
	struct ksm_stats k0, k1;
	struct perm_case c;
	struct worker w[2];
	long merged[2] = { -1, -1 };
	int r = -1, i;

	ksm_stats_read(&k0);
	if (worker_start(&w[0], 0, target, NULL) ||
	    worker_start(&w[1], 1, become_nobody, NULL) ||
	    worker_call(&w[0], CMD_SETUP) || worker_call(&w[1], CMD_DOMAIN) ||
	    worker_call(&w[1], CMD_SETUP))
		goto out;
	c.root_target = w[0].pid;
	c.own_target = w[1].pid;
	c.root_addr = (void *)worker_call(&w[0], CMD_ADDR);
	c.own_addr = (void *)worker_call(&w[1], CMD_ADDR);
	r = run_child(unprivileged, &c);
	ksm_stats_read(&k1);
	for (i = 0; i < 2; i++)
		merged[i] = proc_ksm_stat(w[i].pid, "ksm_merging_pages");
	ksft_print_msg("targets' ksm_merging_pages %ld and %ld; pages_shared +%ld\n",
		       merged[0], merged[1], k1.pages_shared - k0.pages_shared);
out:
	stop_targets(w, 2);
	return r == 0 && merged[0] <= 0 && merged[1] <= 0 &&
	       k1.pages_shared == k0.pages_shared;
}

/* A target that exited: ESRCH, whether reaped or not. */
static bool remote_exited(void)
{
	long zombie, reaped;
	siginfo_t info;
	int fd, status;
	pid_t pid;
	char *p = map_anon(PG, -1);
	struct iovec iov = { .iov_base = p, .iov_len = PG };

	if (!p)
		return false;
	pid = fork();
	if (pid == 0)
		_exit(0);
	fd = pidfd_of(pid);
	if (fd < 0) {
		ksft_print_msg("pidfd_open: %s\n", strerror(errno));
		waitpid(pid, &status, 0);
		unmap_anon(p, PG);
		return false;
	}
	/* Exited, not reaped: a zombie without an mm. */
	while (waitid(P_PID, pid, &info, WEXITED | WNOWAIT) < 0 &&
	       errno == EINTR)
		;
	zombie = syscall(SYS_process_madvise, fd, &iov, 1, MADV_UPM, 0);
	zombie = zombie < 0 ? -errno : zombie;
	waitpid(pid, &status, 0);
	reaped = syscall(SYS_process_madvise, fd, &iov, 1, MADV_UPM, 0);
	reaped = reaped < 0 ? -errno : reaped;
	close(fd);
	unmap_anon(p, PG);
	ksft_print_msg("exited, not reaped: %s; reaped: %s\n",
		       strerror(-zombie), strerror(-reaped));
	return zombie == -ESRCH && reaped == -ESRCH;
}

/* Bytes advised before an error: the range with a hole gives only the first. */
static bool remote_partial(void)
{
	struct iovec iov[2];
	struct worker w;
	long r = -1;
	int fd;

	if (worker_start(&w, 0, target, NULL) || worker_call(&w, CMD_SETUP))
		goto out;
	iov[0].iov_base = (void *)worker_call(&w, CMD_ADDR);
	iov[0].iov_len = NPAGES * PG;
	iov[1].iov_base = (void *)worker_call(&w, CMD_HOLE);
	iov[1].iov_len = PG;
	fd = pidfd_of(w.pid);
	r = syscall(SYS_process_madvise, fd, iov, 2, MADV_UPM, 0);
	r = r < 0 ? -errno : r;
	close(fd);
	ksft_print_msg("a mapped range, then a hole: returned %ld (the first is %ld bytes)\n",
		       r, (long)(NPAGES * PG));
out:
	worker_stop(&w);
	return r == (long)(NPAGES * PG);
}

/*
 * The target is killed while process_madvise() merges its 512 MiB: the
 * call ends with ESRCH at its next batch, and when both are gone, nothing
 * is left behind. Returns 0 (ESRCH), 3 (the call merged everything: the
 * kill came too late, on a starved vCPU) or 1 (anything else).
 */
static int merge_big(pid_t pid, void *addr)
{
	long r = remote_advise(pid, addr, BIG, MADV_UPM);

	ksft_print_msg("process_madvise of the target's %d MiB: %s\n",
		       (int)(BIG / MIB), r < 0 ? strerror(-r) : "done");
	return r == -ESRCH ? 0 : r == BIG ? 3 : 1;
}

static int kill_during_merge(void)
{
	struct worker w;
	void *addr;
	pid_t caller;
	int status = -1;
	long merged;

	if (worker_start(&w, 0, target, NULL) ||
	    worker_call(&w, CMD_SETUP_BIG)) {
		worker_stop(&w);
		return 1;
	}
	addr = (void *)worker_call(&w, CMD_ADDR);
	fflush(stdout);
	caller = fork();
	if (caller == 0)
		_exit(merge_big(w.pid, addr));
	/* Kill the target once the call has merged some of its pages. */
	while ((merged = proc_ksm_stat(w.pid, "ksm_merging_pages")) <= 0 &&
	       waitpid(caller, &status, WNOHANG) == 0)
		sleep_ms(5);
	kill(w.pid, SIGKILL);
	waitpid(w.pid, NULL, 0);
	w.pid = 0;
	close(w.cmd_fd);
	close(w.res_fd);
	if (status == -1)
		waitpid(caller, &status, 0);
	ksft_print_msg("target killed when %ld of its %d pages were merged\n",
		       merged, (int)(BIG / PG));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static bool remote_target_killed(const struct ksm_stats *base,
				 long base_rmap)
{
	struct upm_stats u0;
	int r = 3, tries;

	upm_stats_read(&u0);
	/* up to 3 tries while the kill comes only after the call's end */
	for (tries = 0; tries < 3 && r == 3; tries++)
		r = kill_during_merge();
	return ksm_clean_after_exit(base, base_rmap, 10000) &&
	       upm_wait_index(u0.index_entries, 10000, NULL) && r == 0;
}

int main(void)
{
	struct ksm_settings saved;
	struct ksm_stats base;
	long base_rmap;

	upm_test_start(7);
	if (ksm_settings_save(&saved))
		ksft_exit_fail_msg("set-up failed\n");
	write_str(KSM_SYSFS "run", "0");
	ksm_stats_read(&base);
	base_rmap = ksm_rmap_items();

	ksft_test_result(remote_as_own(),
			 "process_madvise(MADV_UPM) merges two processes exactly as their own calls: frames, counters, ksm_stat\n");
	ksft_test_result(remote_in_target_domain(),
			 "process_madvise(MADV_UPM) merges in the target's merge domain, not the caller's\n");
	ksft_test_result(remote_charged_to_target(),
			 "the rmap items of remotely merged pages are charged to the target's memory cgroup\n");
	ksft_test_result(remote_permissions(),
			 "unprivileged: EACCES on another user's process, EPERM without CAP_SYS_NICE, as MADV_COLD; nothing merged\n");
	ksft_test_result(remote_exited(),
			 "a target that exited: ESRCH, reaped or not\n");
	ksft_test_result(remote_partial(),
			 "a mapped range, then a hole: the bytes of the first are returned\n");
	ksft_test_result(remote_target_killed(&base, base_rmap),
			 "a target killed while it is merged: the call ends, nothing is left behind\n");
	ksm_settings_restore(&saved);
	ksft_finished();
}
