// SPDX-License-Identifier: GPL-2.0
/*
 * Merge domains: pages merge only with pages of the same domain, by
 * MADV_UPM and by ksmd. The prctl interface (errors, CAP_SYS_ADMIN, fork,
 * exec, EBUSY after merging); isolation of assigned domains; a probe from
 * another domain sees what it sees for a unique page (counters, pagemap's
 * exclusive bit, write faults); the default domain of unassigned
 * processes (same effective uid) and the "global" switch; ksmd at full
 * speed over MADV_MERGEABLE memory of four processes in two domains; the
 * per-domain statistics in /sys/kernel/mm/upm/domains and ksm_stat.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define NPAGES (8 * MIB / PG)
#define SEED 0xd0a1
#define NOBODY 65534
#define NWORKERS 6

/* What the test's helpers are: in a domain (>0) or unassigned, and whose. */
struct who {
	int domain;
	bool nobody;
	int setup;
};

#define DEFAULT_DOMAIN UPM_SYSFS "default_domain"

enum {
	CMD_SETUP = 1,		/* NPAGES of the shared content */
	CMD_SETUP_UNIQUE,	/* NPAGES no one else has */
	CMD_SETUP_KSM,		/* the shared content, MADV_MERGEABLE */
	CMD_ADVISE,
	CMD_MEASURE,		/* exclusive pages into sh */
	CMD_ADDR,		/* returns where the pages are */
	CMD_WRITE,		/* writes every page: returns the minor faults */
	CMD_NOBODY,		/* becomes uid NOBODY */
	CMD_DOMAIN = 100,	/* + id: prctl(PR_SET_UPM_DOMAIN, id) */
};

struct shared {
	uint64_t pfn[NWORKERS][NPAGES];
	long exclusive[NWORKERS];
	long bad[NWORKERS];
};

static struct shared *sh;
static struct ksm_settings saved;
static char saved_default[32];
static char *buf;

/* Pages of [p, p + npages) mapped exclusively (pagemap bit 56). */
static long exclusive_pages(const char *p, size_t npages)
{
	uint64_t e;
	long n = 0;
	size_t j;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (j = 0; j < npages; j++) {
		off_t off = (off_t)((uintptr_t)(p + j * PG) / PG) * 8;

		if (pread(fd, &e, sizeof(e), off) != sizeof(e)) {
			n = -1;
			break;
		}
		n += (e >> 63) && ((e >> 56) & 1);
	}
	close(fd);
	return n;
}

static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static long helper(int idx, int cmd, void *arg)
{
	long f0;
	size_t j;

	(void)arg;
	if (cmd > CMD_DOMAIN)
		return prctl(PR_SET_UPM_DOMAIN, cmd - CMD_DOMAIN, 0, 0, 0) ?
		       -errno : 0;
	switch (cmd) {
	case CMD_SETUP:
	case CMD_SETUP_UNIQUE:
	case CMD_SETUP_KSM:
		buf = map_anon(NPAGES * PG, -1);
		if (!buf)
			return -ENOMEM;
		fill_pages(buf, NPAGES, cmd == CMD_SETUP_UNIQUE ?
			   SEED + 1 + idx : SEED);
		if (cmd == CMD_SETUP_KSM &&
		    madvise(buf, NPAGES * PG, MADV_MERGEABLE))
			return -errno;
		return 0;
	case CMD_ADVISE:
		return upm_call(buf, NPAGES * PG);
	case CMD_MEASURE:
		sh->exclusive[idx] = exclusive_pages(buf, NPAGES);
		return 0;
	case CMD_ADDR:
		return (long)buf;
	case CMD_WRITE:
		f0 = minor_faults();
		for (j = 0; j < NPAGES; j++)
			((volatile char *)buf)[j * PG] ^= 1;
		return minor_faults() - f0;
	case CMD_NOBODY:
		return setresuid(NOBODY, NOBODY, NOBODY) ? -errno : 0;
	}
	return -EINVAL;
}

static bool call_ok(struct worker *w, int cmd, const char *what);

/*
 * Starts n helpers as who[] says: domain first (it needs CAP_SYS_ADMIN),
 * then the uid, then their pages. False when a step failed.
 */
static bool start(struct worker *w, const struct who *who, int n)
{
	bool ok = true;
	int i;

	for (i = 0; i < n; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		if (who[i].domain)
			ok &= call_ok(&w[i], CMD_DOMAIN + who[i].domain,
				      "set domain");
		if (who[i].nobody)
			ok &= call_ok(&w[i], CMD_NOBODY, "setresuid");
		ok &= call_ok(&w[i], who[i].setup, "setup");
	}
	return ok;
}

/* PFNs of each helper's pages, read by this (root) process; 0 if absent. */
static void measure(struct worker *w, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		memset(sh->pfn[i], 0, sizeof(sh->pfn[i]));
		worker_call(&w[i], CMD_MEASURE);
		pfns_of_pid(w[i].pid, (void *)worker_call(&w[i], CMD_ADDR),
			    NPAGES, sh->pfn[i]);
	}
}

static void stop(struct worker *w, int n)
{
	int i;

	for (i = 0; i < n; i++)
		worker_stop(&w[i]);
}

static bool call_ok(struct worker *w, int cmd, const char *what)
{
	long r = worker_call(w, cmd);

	if (r)
		ksft_print_msg("%s: %s\n", what, strerror(-r));
	return !r;
}

/*
 * MADV_UPM by worker w; true when it merged `merged` pages and left
 * `candidate` pages private as candidates.
 */
static bool advise_expect(struct worker *w, const char *label,
			  unsigned long merged, unsigned long candidate,
			  struct upm_stats *d)
{
	long r = worker_call_counted(w, CMD_ADVISE, label, d);

	if (!r && d->pages_merged == merged && d->pages_candidate == candidate)
		return true;
	ksft_print_msg("%s: madvise %s, merged %lu candidate %lu (expected %lu, %lu)\n",
		       label, strerror(-r), d->pages_merged,
		       d->pages_candidate, merged, candidate);
	return false;
}

static long shared_with(int a, int b)
{
	long n = 0;
	size_t j;

	for (j = 0; j < NPAGES; j++)
		n += sh->pfn[a][j] && sh->pfn[a][j] == sh->pfn[b][j];
	return n;
}

/* ---- the prctl interface ---- */

static int print_domain_and_exit(void)
{
	return prctl(PR_GET_UPM_DOMAIN, 0, 0, 0, 0);
}

static bool expect_errno(long r, int err, const char *what)
{
	if (r == -1 && errno == err)
		return true;
	ksft_print_msg("%s: returned %ld (%s), expected %s\n", what, r,
		       r == -1 ? strerror(errno) : "no error", strerror(err));
	return false;
}

/* Runs in a child: its domain changes must not leak into the test. */
static int prctl_child(void *arg)
{
	char *self = arg, *p;
	bool ok = true;
	int status;
	pid_t pid;

	if (prctl(PR_GET_UPM_DOMAIN, 0, 0, 0, 0) != 0) {
		ksft_print_msg("a new process is in domain %d, not 0\n",
			       prctl(PR_GET_UPM_DOMAIN, 0, 0, 0, 0));
		ok = false;
	}
	ok &= expect_errno(prctl(PR_SET_UPM_DOMAIN, 0, 0, 0, 0), EINVAL,
			   "domain 0");
	ok &= expect_errno(prctl(PR_SET_UPM_DOMAIN, 0x80000000UL, 0, 0, 0),
			   EINVAL, "domain 2^31");
	ok &= expect_errno(prctl(PR_SET_UPM_DOMAIN, 5, 1, 0, 0), EINVAL,
			   "SET with arg3");
	ok &= expect_errno(prctl(PR_GET_UPM_DOMAIN, 1, 0, 0, 0), EINVAL,
			   "GET with arg2");
	if (prctl(PR_SET_UPM_DOMAIN, 5, 0, 0, 0) ||
	    prctl(PR_GET_UPM_DOMAIN, 0, 0, 0, 0) != 5 ||
	    prctl(PR_SET_UPM_DOMAIN, 6, 0, 0, 0) ||
	    prctl(PR_GET_UPM_DOMAIN, 0, 0, 0, 0) != 6) {
		ksft_print_msg("set 5 then 6: %s, now %d\n", strerror(errno),
			       prctl(PR_GET_UPM_DOMAIN, 0, 0, 0, 0));
		ok = false;
	}
	if (proc_ksm_stat(getpid(), "upm_domain") != 6) {
		ksft_print_msg("ksm_stat upm_domain %ld, expected 6\n",
			       proc_ksm_stat(getpid(), "upm_domain"));
		ok = false;
	}

	/* inherited over fork; an unprivileged process cannot choose */
	pid = fork();
	if (pid == 0) {
		if (prctl(PR_GET_UPM_DOMAIN, 0, 0, 0, 0) != 6)
			_exit(1);
		if (setresuid(NOBODY, NOBODY, NOBODY))
			_exit(2);
		if (prctl(PR_SET_UPM_DOMAIN, 7, 0, 0, 0) != -1 ||
		    errno != EPERM)
			_exit(3);
		_exit(prctl(PR_GET_UPM_DOMAIN, 0, 0, 0, 0) == 6 ? 0 : 4);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status)) {
		ksft_print_msg("forked child: failed step %d (1 inherit, 3 EPERM as uid %d)\n",
			       WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			       NOBODY);
		ok = false;
	}

	/* kept over exec */
	pid = fork();
	if (pid == 0) {
		execl(self, self, "--print-domain", (char *)NULL);
		_exit(100);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 6) {
		ksft_print_msg("after exec: domain %d, expected 6\n",
			       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		ok = false;
	}

	/* once pages are merged in domain 6, it stays */
	p = map_anon(2 * PG, -1);
	if (!p)
		return 1;
	fill_page(p, SEED, 7);
	fill_page(p + PG, SEED, 7);
	if (upm_call(p, 2 * PG) || proc_ksm_stat(getpid(),
						 "ksm_merging_pages") != 2) {
		ksft_print_msg("set-up: two identical pages did not merge\n");
		ok = false;
	}
	ok &= expect_errno(prctl(PR_SET_UPM_DOMAIN, 8, 0, 0, 0), EBUSY,
			   "new domain after merging");
	/* a fork maps the KSM pages too, with no rmap_item of its own yet */
	pid = fork();
	if (pid == 0)
		_exit(prctl(PR_SET_UPM_DOMAIN, 9, 0, 0, 0) == -1 &&
		      errno == EBUSY ? 0 : 1);
	if (pid < 0 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status)) {
		ksft_print_msg("a fork that maps its parent's KSM pages changed domains\n");
		ok = false;
	}
	if (prctl(PR_SET_UPM_DOMAIN, 6, 0, 0, 0)) {
		ksft_print_msg("the same domain again: %s\n", strerror(errno));
		ok = false;
	}
	unmap_anon(p, 2 * PG);
	return ok ? 0 : 1;
}

/* ---- assigned domains, MADV_UPM, and a probe from another domain ---- */

/*
 * A (domain 1), B (domain 2), C (domain 1, uid nobody), U (domain 2, unique
 * content), N (unassigned): MADV_UPM merges A's and C's pages only.
 */
static bool test_assigned(bool *probe_ok)
{
	static const struct who who[] = {
		{ 1, false, CMD_SETUP }, { 2, false, CMD_SETUP },
		{ 1, true, CMD_SETUP }, { 2, false, CMD_SETUP_UNIQUE },
		{ 0, false, CMD_SETUP },
	};
	struct worker w[5];
	struct upm_stats d;
	bool ok;
	long fb, fu, fa;
	double tb, tu, t;

	ok = start(w, who, 5);
	if (!ok)
		goto out;
	ok &= advise_expect(&w[0], "A, domain 1", 0, NPAGES, &d);
	ok &= advise_expect(&w[1], "B, domain 2, A's content", 0, NPAGES, &d);
	ok &= advise_expect(&w[3], "U, domain 2, unique", 0, NPAGES, &d);
	ok &= advise_expect(&w[4], "N, unassigned, A's content", 0, NPAGES,
			    &d);
	ok &= advise_expect(&w[2], "C, domain 1 as nobody, A's content",
			    NPAGES, 0, &d);
	measure(w, 5);
	ksft_print_msg("pages shared: A-C %ld; A-B %ld, B-C %ld, A-N %ld, B-N %ld; exclusive: B %ld, U %ld\n",
		       shared_with(0, 2), shared_with(0, 1), shared_with(1, 2),
		       shared_with(0, 4), shared_with(1, 4), sh->exclusive[1],
		       sh->exclusive[3]);
	ok &= shared_with(0, 2) == NPAGES && !shared_with(0, 1) &&
	      !shared_with(1, 2) && !shared_with(0, 4) && !shared_with(1, 4);
	if (proc_ksm_stat(w[0].pid, "upm_domain") != 1 ||
	    proc_ksm_stat(w[1].pid, "upm_domain") != 2 ||
	    proc_ksm_stat(w[4].pid, "upm_domain") != 0) {
		ksft_print_msg("ksm_stat: upm_domain %ld, %ld and %ld, expected 1, 2 and 0\n",
			       proc_ksm_stat(w[0].pid, "upm_domain"),
			       proc_ksm_stat(w[1].pid, "upm_domain"),
			       proc_ksm_stat(w[4].pid, "upm_domain"));
		ok = false;
	}

	/* B probes: what it sees must be what U sees for its unique pages */
	*probe_ok = sh->exclusive[1] == NPAGES && sh->exclusive[3] == NPAGES;
	t = now_sec();
	fb = worker_call(&w[1], CMD_WRITE);
	tb = now_sec() - t;
	t = now_sec();
	fu = worker_call(&w[3], CMD_WRITE);
	tu = now_sec() - t;
	t = now_sec();
	fa = worker_call(&w[0], CMD_WRITE);
	t = now_sec() - t;
	ksft_print_msg("writing %lu pages: B %ld faults in %.1f ms, U %ld in %.1f ms (A, merged in its domain: %ld in %.1f ms)\n",
		       NPAGES, fb, tb * 1e3, fu, tu * 1e3, fa, t * 1e3);
	*probe_ok &= labs(fb - fu) <= 2 && fa >= (long)NPAGES;
out:
	stop(w, 5);
	return ok;
}

/* ---- the default domain: same effective uid; and "global" ---- */

static bool test_default(bool global)
{
	static const struct who who[] = {
		{ 0, false, CMD_SETUP }, { 0, true, CMD_SETUP },
		{ 0, true, CMD_SETUP },
	};
	struct worker w[3];	/* root, nobody, nobody */
	struct upm_stats d;
	bool ok;

	if (write_str(DEFAULT_DOMAIN, global ? "global" : "user")) {
		ksft_print_msg("cannot write %s\n", DEFAULT_DOMAIN);
		return false;
	}
	ok = start(w, who, 3);
	if (!ok)
		goto out;
	ok &= advise_expect(&w[0], "root", 0, NPAGES, &d);
	if (global) {
		ok &= advise_expect(&w[1], "nobody, global", NPAGES, 0, &d);
		measure(w, 2);
		ksft_print_msg("pages shared: root-nobody %ld\n",
			       shared_with(0, 1));
		ok &= shared_with(0, 1) == NPAGES;
	} else {
		ok &= advise_expect(&w[1], "nobody", 0, NPAGES, &d);
		ok &= advise_expect(&w[2], "second nobody", NPAGES, 0, &d);
		measure(w, 3);
		ksft_print_msg("pages shared: nobody-nobody %ld, root-nobody %ld and %ld\n",
			       shared_with(1, 2), shared_with(0, 1),
			       shared_with(0, 2));
		ok &= shared_with(1, 2) == NPAGES && !shared_with(0, 1) &&
		      !shared_with(0, 2);
	}
out:
	stop(w, 3);
	write_str(DEFAULT_DOMAIN, "user");
	return ok;
}

/* ---- ksmd: six processes, two domains and two users, one content ---- */

static long domains_line(const char *name, int field)
{
	char text[4096], *line, *save;
	long v = -1;
	int fd = open(UPM_SYSFS "domains", O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0)
		return -1;
	text[n] = 0;
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char dom[64];
		long shared, sharing;

		if (sscanf(line, "%63s %ld %ld", dom, &shared, &sharing) == 3 &&
		    !strcmp(dom, name))
			v = field ? sharing : shared;
	}
	return v;
}

static bool test_ksmd(void)
{
	static const struct who who[] = {
		{ 3, false, CMD_SETUP_KSM }, { 4, false, CMD_SETUP_KSM },
		{ 3, true, CMD_SETUP_KSM }, { 4, false, CMD_SETUP_KSM },
		{ 0, false, CMD_SETUP_KSM }, { 0, true, CMD_SETUP_KSM },
	};
	struct worker w[6];
	bool ok;
	double t0;
	int i, j;

	if (write_str(KSM_SYSFS "run", "0") ||
	    write_str(KSM_SYSFS "pages_to_scan", "100000") ||
	    write_str(KSM_SYSFS "sleep_millisecs", "0")) {
		ksft_print_msg("cannot set ksmd up\n");
		return false;
	}
	ok = start(w, who, 6);
	if (!ok)
		goto out;
	write_str(KSM_SYSFS "run", "1");
	t0 = now_sec();
	while (now_sec() - t0 < 180) {
		measure(w, 4);
		if (shared_with(0, 2) == NPAGES && shared_with(1, 3) == NPAGES)
			break;
		sleep_ms(200);
	}
	/* two more full scans, for anything that would merge across */
	{
		struct ksm_stats k0, k;

		ksm_stats_read(&k0);
		do {
			sleep_ms(100);
			ksm_stats_read(&k);
		} while (k.full_scans < k0.full_scans + 2 && now_sec() - t0 < 240);
	}
	measure(w, 6);
	ksft_print_msg("after %.1f s: shared in domain 3 %ld (root and nobody), in 4 %ld\n",
		       now_sec() - t0, shared_with(0, 2), shared_with(1, 3));
	ok &= shared_with(0, 2) == NPAGES && shared_with(1, 3) == NPAGES;
	/* 0-2 and 1-3 share; no other pair of the six may */
	for (i = 0; i < 6; i++)
		for (j = i + 1; j < 6; j++) {
			if ((i == 0 && j == 2) || (i == 1 && j == 3))
				continue;
			if (shared_with(i, j)) {
				ksft_print_msg("helpers %d and %d (domains %d, %d) share %ld pages\n",
					       i, j, who[i].domain, who[j].domain,
					       shared_with(i, j));
				ok = false;
			}
		}
	ksft_print_msg("domains: 3 shared %ld sharing %ld; 4 shared %ld sharing %ld\n",
		       domains_line("3", 0), domains_line("3", 1),
		       domains_line("4", 0), domains_line("4", 1));
	ok &= domains_line("3", 0) == NPAGES && domains_line("3", 1) == NPAGES &&
	      domains_line("4", 0) == NPAGES && domains_line("4", 1) == NPAGES;
out:
	write_str(KSM_SYSFS "run", "0");
	stop(w, 6);
	return ok;
}

static void restore(void)
{
	ksm_settings_restore(&saved);
	if (saved_default[0])
		write_str(DEFAULT_DOMAIN, saved_default);
}

int main(int argc, char **argv)
{
	struct ksm_stats base;
	bool probe_ok = false;
	long base_rmap;
	int r;

	if (argc == 2 && !strcmp(argv[1], "--print-domain"))
		return print_domain_and_exit();

	upm_test_start(7);
	if (ksm_settings_save(&saved))
		ksft_exit_fail_msg("cannot read KSM settings\n");
	read_str(DEFAULT_DOMAIN, saved_default, sizeof(saved_default));
	atexit(restore);
	sh = shared_alloc(sizeof(*sh));
	if (!sh)
		ksft_exit_fail_msg("no memory for results\n");
	ksm_stats_read(&base);
	base_rmap = ksm_rmap_items();

	r = run_child(prctl_child, "/proc/self/exe");
	ksft_test_result(r == 0, "prctl: EINVAL for bad ids and arguments, EPERM unprivileged, inherited over fork and exec, EBUSY once merged or forked merged\n");
	ksft_test_result(test_assigned(&probe_ok), "MADV_UPM merges within a domain only (across uids), not with another domain or unassigned\n");
	ksft_test_result(probe_ok, "a probe from another domain sees a unique page: exclusive in pagemap, no write fault\n");
	ksft_test_result(test_default(false), "unassigned processes merge only with their own effective uid\n");
	ksft_test_result(test_default(true), "default_domain global: unassigned processes of any uid merge\n");
	ksft_test_result(test_ksmd(), "ksmd at full speed merges within each domain only, across uids; domains counts them\n");
	ksft_test_result(ksm_clean_after_exit(&base, base_rmap, 10000),
			 "nothing left behind\n");
	ksft_finished();
}
