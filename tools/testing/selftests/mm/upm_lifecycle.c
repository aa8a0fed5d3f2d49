// SPDX-License-Identifier: GPL-2.0
/*
 * The life of merged pages around them: forks that outlive their parents,
 * exits, unmapped and discarded ranges, full KSM pages that empty again,
 * the administrator's switches, userfaultfd write protection, memory
 * cgroup charging and pages written while they are merged. Each case is a
 * finding of an mm review that the rest of the suite did not catch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define UPM_ENABLED UPM_SYSFS "enabled"
#define MPOL_MF_MOVE_ALL_ (1 << 2)

static struct ksm_settings saved;

/* Shared with the processes a case forks. */
struct shared {
	long moved, bad, merging;
	pid_t subreaper;
	int ready;
};

static struct shared *sh;

/* ---- forks that outlive their parents ---- */

/* Moves the pages to the node they are not on; returns how many moved. */
static long move_to_other_node(char *p, size_t npages)
{
	int node[64], want[64], status[64];
	void *pages[64];
	long moved = 0;
	size_t j, k, n;

	for (j = 0; j < npages; j += n) {
		n = npages - j < 64 ? npages - j : 64;
		for (k = 0; k < n; k++)
			pages[k] = p + (j + k) * PG;
		if (syscall(__NR_move_pages, 0, n, pages, NULL, node, 0))
			return -errno;
		for (k = 0; k < n; k++)
			want[k] = node[k] == 0 ? 1 : 0;
		if (syscall(__NR_move_pages, 0, n, pages, want, status,
			    MPOL_MF_MOVE_ALL_) < 0)
			return -errno;
		for (k = 0; k < n; k++)
			moved += status[k] == want[k];
	}
	return moved;
}

/* In a forked child: npages advised pages of the content 0x1f00. */
static char *advised_region(size_t npages)
{
	char *p = map_anon(npages * PG, -1), *twin = map_anon(npages * PG, -1);

	if (!p || !twin)
		_exit(1);
	fill_pages(p, npages, 0x1f00);
	fill_pages(twin, npages, 0x1f00);
	/* Twins first, so that the pages of p are merged, KSM pages. */
	if (upm_call(twin, npages * PG) || upm_call(p, npages * PG))
		_exit(1);
	return p;
}

/* Once reparented to the test (its ancestors gone), move the pages. */
static void measure_when_orphaned(char *p, size_t npages)
{
	while (getppid() != sh->subreaper)
		sleep_ms(10);
	sh->merging = proc_ksm_stat(getpid(), "ksm_merging_pages");
	sh->moved = move_to_other_node(p, npages);
	sh->bad = count_bad_pages(p, npages, 0x1f00);
}

static void outlive_reset(void)
{
	memset(sh, 0, sizeof(*sh));
	sh->subreaper = getpid();
	sh->moved = -1;
}

/*
 * The last of a line of forks (depth processes deep) waits until the
 * others have exited (it is reparented to the test), then moves its
 * inherited merged pages.
 */
static void fork_line(char *p, size_t npages, int depth)
{
	while (depth-- > 0) {
		pid_t pid = fork();

		if (pid < 0)
			_exit(1);
		if (pid > 0)
			_exit(0);	/* this generation exits first */
	}
	measure_when_orphaned(p, npages);
	_exit(0);
}

static bool fork_outlives(int generations)
{
	const size_t npages = 256;
	int status;

	outlive_reset();
	if (fork() == 0)
		fork_line(advised_region(npages), npages, generations);
	/* The ancestors exit; the last fork is reparented to this process. */
	while (wait(&status) > 0)
		;
	ksft_print_msg("%d generation(s) gone: the fork maps %ld merged pages, moved %ld of %zu, %ld damaged\n",
		       generations, sh->merging, sh->moved, npages, sh->bad);
	return sh->merging >= (long)npages && sh->moved == (long)npages &&
	       sh->bad == 0;
}

/*
 * Two forks, A and B; A advises its inherited pages itself (its own
 * rmap_items, in its own anon_vma), then the parent exits: B must still
 * be reachable, through the parent's items, now B's.
 */
static bool siblings_outlive(void)
{
	const size_t npages = 256;
	int status;
	char *p;

	outlive_reset();
	if (fork() == 0) {
		p = advised_region(npages);
		if (fork() == 0) {
			upm_call(p, npages * PG);
			sh->ready = 1;
			while (sh->ready != 2)
				sleep_ms(10);
			_exit(0);
		}
		if (fork() == 0) {
			measure_when_orphaned(p, npages);
			sh->ready = 2;
			_exit(0);
		}
		while (!sh->ready)
			sleep_ms(10);
		_exit(0);	/* the parent exits first */
	}
	while (wait(&status) > 0)
		;
	ksft_print_msg("parent gone, sibling advised: the other fork maps %ld merged pages, moved %ld of %zu, %ld damaged\n",
		       sh->merging, sh->moved, npages, sh->bad);
	return sh->merging >= (long)npages && sh->moved == (long)npages &&
	       sh->bad == 0;
}

/* ---- exits ---- */

static long exit_helper(int idx, int cmd, void *arg)
{
	static char *p;
	(void)idx;
	(void)arg;

	size_t n = 4 * MIB / PG, j;

	p = map_anon(4 * MIB, -1);
	if (!p)
		return -ENOMEM;
	/* Two copies of 2 MiB: merged pages, and candidates before them. */
	for (j = 0; j < n; j++)
		fill_page(p + j * PG, 0x2e00 + cmd, j % (n / 2));
	return upm_call(p, 4 * MIB);
}

/*
 * The index and KSM's counters are right as soon as waitpid() returns.
 * An exit frees its items at once only when ksm_thread_mutex is free; one
 * that found it held (by a concurrent exit, say: the forks of the cases
 * before end together) is finished by a work item. Start from the state
 * without them, or a late work item moves the counters under the test.
 */
static bool exit_is_exact(const struct ksm_stats *base, long base_rmap)
{
	struct upm_stats a, b;
	struct ksm_stats k0, k1, k2;
	struct worker w;
	long r;

	if (!ksm_wait_clean(base, base_rmap, 10000, &k0, &r)) {
		ksft_print_msg("the earlier cases' exits are not accounted for after 10 s: pages_shared %ld, rmap items %ld\n",
			       k0.pages_shared, r);
		return false;
	}
	upm_stats_read(&a);
	ksm_stats_read(&k0);
	if (worker_start(&w, 0, exit_helper, NULL))
		return false;
	r = worker_call(&w, 1);
	ksm_stats_read(&k1);
	worker_stop(&w);
	upm_stats_read(&b);
	ksm_stats_read(&k2);
	ksft_print_msg("merged: pages_shared %ld -> %ld; right after waitpid: index %lu (was %lu), candidates %lu (was %lu), pages_shared %ld\n",
		       k0.pages_shared, k1.pages_shared, b.index_entries,
		       a.index_entries, b.candidates, a.candidates,
		       k2.pages_shared);
	return r == 0 && k1.pages_shared >= k0.pages_shared + 500 &&
	       b.index_entries == a.index_entries &&
	       b.candidates == a.candidates &&
	       k2.pages_shared == k0.pages_shared &&
	       k2.pages_sharing == k0.pages_sharing;
}

/* An exit does not wait while KSM unmerges everything (run=2). */
static long sharer(int idx, int cmd, void *arg)
{
	static char *p;
	(void)arg;

	if (cmd == 1) {
		p = map_anon(64 * MIB, -1);
		if (!p)
			return -ENOMEM;
		fill_pages(p, idx < 2 ? 64 * MIB / PG : 1, 0x3e00 + idx / 2);
		return upm_call(p, idx < 2 ? 64 * MIB : PG);
	}
	return -EINVAL;
}

static bool exit_during_unmerge(void)
{
	struct worker w[3];
	double t0, t1, t_unmerge, t_exit;
	int i, status;
	pid_t writer;
	bool ok = true;

	for (i = 0; i < 3; i++)
		if (worker_start(&w[i], i, sharer, NULL) ||
		    worker_call(&w[i], 1) != 0)
			ok = false;
	if (!ok)
		return false;
	t0 = now_sec();
	writer = fork();
	if (writer == 0)
		_exit(write_str(KSM_SYSFS "run", "2") ? 1 : 0);
	sleep_ms(100);
	/* helper 2 uses KSM too: it has one merged page */
	t1 = now_sec();
	worker_send(&w[2], 0);
	close(w[2].cmd_fd);
	close(w[2].res_fd);
	waitpid(w[2].pid, &status, 0);
	t_exit = now_sec() - t1;
	waitpid(writer, &status, 0);
	t_unmerge = now_sec() - t0;
	write_str(KSM_SYSFS "run", "0");
	worker_stop(&w[0]);
	worker_stop(&w[1]);
	ksft_print_msg("run=2 took %.2f s; an exit during it %.3f s\n",
		       t_unmerge, t_exit);
	if (t_unmerge < 0.4) {
		ksft_print_msg("the unmerge was too short to tell\n");
		return false;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	       t_exit < t_unmerge / 4;
}

/*
 * ksmd passes over an exiting mm without freeing it (the exit does, after
 * exit_mmap()); a long exit_mmap() under ksmd at full speed spans several
 * passes, after which the mm's items of the unstable tree must still be
 * freed cleanly (their age is checked by a BUG_ON).
 */
static int exit_spans_passes(void)
{
	struct ksm_stats k0, k, seen = { 0 };
	char smart[32] = "";
	double end;
	int status;
	pid_t x;
	bool ok = false;

	sh->ready = 0;
	x = fork();
	if (x == 0) {
		char *p = map_anon(256 * PG, -1), *big = map_anon(512 * MIB, -1);

		if (!p || !big)
			_exit(1);
		fill_pages(p, 256, 0xb000);
		memset(big, 1, 512 * MIB);
		if (madvise(p, 256 * PG, MADV_MERGEABLE))
			_exit(1);
		sh->ready = 1;
		while (sh->ready != 2)
			sleep_ms(10);
		_exit(0);
	}
	while (!sh->ready)
		sleep_ms(10);
	ksm_stats_read(&k0);
	/*
	 * smart_scan skips pages that did not merge for a while, and takes
	 * their items out of the unstable tree: then all 256 are there only
	 * now and then (seen after 60 s of full-speed passes under load).
	 */
	read_str(KSM_SYSFS "smart_scan", smart, sizeof(smart));
	write_str(KSM_SYSFS "smart_scan", "0");
	write_str(KSM_SYSFS "pages_to_scan", "1000");
	write_str(KSM_SYSFS "sleep_millisecs", "0");
	write_str(KSM_SYSFS "run", "1");
	for (end = now_sec() + 60; now_sec() < end; sleep_ms(50)) {
		ksm_stats_read(&k);
		seen = k;
		if (k.full_scans >= k0.full_scans + 3 && k.pages_unshared >= 256) {
			ok = true;
			break;
		}
	}
	sh->ready = 2;
	waitpid(x, &status, 0);
	sleep_ms(500);		/* more passes while nothing is left */
	write_str(KSM_SYSFS "run", "0");
	ksm_stats_read(&k);
	write_str(KSM_SYSFS "pages_to_scan", saved.pages_to_scan);
	write_str(KSM_SYSFS "sleep_millisecs", saved.sleep_millisecs);
	if (smart[0])
		write_str(KSM_SYSFS "smart_scan", smart);
	ksft_print_msg("before the exit: full_scans +%ld, pages_unshared %ld; after: pages_unshared %ld\n",
		       seen.full_scans - k0.full_scans, seen.pages_unshared,
		       k.pages_unshared);
	if (!ok)
		return -1;	/* ksmd did not get the pages into the tree */
	return WIFEXITED(status) && k.pages_unshared == 0;
}

/* ---- dead rmap_items ---- */

/* Maps, fills, advises and unmaps 256 pages 40 times, at new addresses. */
static int remap_many(void *arg)
{
	const size_t npages = 256, rounds = 40;
	char *reserve, *p;
	long items;
	size_t i;
	(void)arg;

	reserve = mmap(NULL, rounds * npages * PG, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (reserve == MAP_FAILED)
		return 1;
	for (i = 0; i < rounds; i++) {
		p = mmap(reserve + i * npages * PG, npages * PG,
			 PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED)
			return 1;
		madvise(p, npages * PG, MADV_NOHUGEPAGE);
		fill_pages(p, npages, 0x4e00);
		if (upm_call(p, npages * PG))
			return 1;
		munmap(p, npages * PG);
	}
	items = proc_ksm_stat(getpid(), "ksm_rmap_items");
	ksft_print_msg("after %zu rounds of %zu pages: %ld rmap items, %ld merging pages\n",
		       rounds, npages, items,
		       proc_ksm_stat(getpid(), "ksm_merging_pages"));
	return items >= 0 && items <= 4 * (long)npages ? 0 : 1;
}

/* MADV_DONTNEED'd pages lose their rmap_items when advised again. */
static int discard_readvise(void *arg)
{
	const size_t npages = 256;
	long before, after;
	char *p;
	(void)arg;

	p = map_anon(npages * PG, -1);
	if (!p)
		return 1;
	fill_pages(p, npages, 0x4f00);
	if (upm_call(p, npages * PG))
		return 1;
	before = proc_ksm_stat(getpid(), "ksm_rmap_items");
	madvise(p, npages * PG, MADV_DONTNEED);
	if (upm_call(p, npages * PG))
		return 1;
	after = proc_ksm_stat(getpid(), "ksm_rmap_items");
	ksft_print_msg("rmap items: %ld advised, %ld after MADV_DONTNEED and advising again\n",
		       before, after);
	return before == (long)npages && after == 0 ? 0 : 1;
}

/*
 * A KSM page that was full (max_page_sharing) and lost a sharer can take
 * sharers again: a later caller merges with it.
 */
static long full_helper(int idx, int cmd, void *arg)
{
	static char *p;
	(void)arg;
	(void)idx;

	switch (cmd) {
	case 1:
		p = map_anon(PG, -1);
		if (!p)
			return -ENOMEM;
		fill_page(p, 0x5e00, 0);
		return upm_call(p, PG);
	case 2:
		madvise(p, PG, MADV_DONTNEED);
		return upm_call(p, PG);
	case 3:
		return (long)pfn_of(p);
	}
	return -EINVAL;
}

static bool full_page_returns(void)
{
	struct worker w[3];
	long pfn[3];
	int i;
	bool ok = true;

	if (write_str(KSM_SYSFS "max_page_sharing", "2")) {
		ksft_print_msg("cannot set max_page_sharing (KSM pages left?)\n");
		return false;
	}
	for (i = 0; i < 3; i++)
		ok &= !worker_start(&w[i], i, full_helper, NULL);
	/* 0 and 1 fill the KSM page; 1 then drops out; 2 comes */
	ok = ok && worker_call(&w[0], 1) == 0 && worker_call(&w[1], 1) == 0;
	ok = ok && worker_call(&w[1], 2) == 0 && worker_call(&w[2], 1) == 0;
	pfn[0] = worker_call(&w[0], 3);
	pfn[2] = worker_call(&w[2], 3);
	for (i = 0; i < 3; i++)
		worker_stop(&w[i]);
	write_str(KSM_SYSFS "max_page_sharing", saved.max_page_sharing);
	ksft_print_msg("first sharer's frame %#lx, the newcomer's %#lx\n",
		       pfn[0], pfn[2]);
	return ok && pfn[0] > 0 && pfn[0] == pfn[2];
}

/* ---- the administrator's switches ---- */

/* Fails with want and changes nothing: no flag, no merge, no call counted. */
static bool refused(int want, const char *label)
{
	struct upm_stats a, b;
	char *p = map_anon(16 * PG, -1);
	int r;

	if (!p)
		return false;
	fill_pages(p, 16, 0x6e00);
	upm_stats_read(&a);
	r = upm_call(p, 16 * PG);
	upm_stats_read(&b);
	ksft_print_msg("%s: MADV_UPM gave %s, range %s\n", label,
		       r ? strerror(r) : "success",
		       vma_mergeable(p) ? "made mergeable" : "unchanged");
	r = r == want && !vma_mergeable(p) && a.calls == b.calls &&
	    a.pages_scanned == b.pages_scanned;
	unmap_anon(p, 16 * PG);
	return r;
}

static int run2_refused(void *arg)
{
	bool ok;
	(void)arg;

	if (write_str(KSM_SYSFS "run", "2"))
		return 1;
	ok = refused(EBUSY, "run=2");
	write_str(KSM_SYSFS "run", "0");
	return ok ? 0 : 1;
}

static int disabled_refused(void *arg)
{
	char *p;
	bool ok;
	(void)arg;

	if (write_str(UPM_ENABLED, "0")) {
		ksft_print_msg("cannot write %s\n", UPM_ENABLED);
		return 1;
	}
	ok = refused(EPERM, "enabled=0");
	write_str(UPM_ENABLED, "1");
	p = map_anon(16 * PG, -1);
	if (!p)
		return 1;
	fill_pages(p, 16, 0x6f00);
	ok = ok && upm_call(p, 16 * PG) == 0 && vma_mergeable(p);
	return ok ? 0 : 1;
}

/* ---- userfaultfd write protection ---- */

struct wp_writer {
	char *p;
	atomic_int done;
};

static void *wp_write(void *arg)
{
	struct wp_writer *w = arg;

	w->p[100] = 0x5a;
	atomic_store(&w->done, 1);
	return NULL;
}

/*
 * With arg, the twin is a KSM page already (two pages of one process
 * merged), so the protected page is replaced with its page table's other
 * twins of KSM pages, not in a pair merge: both must keep the uffd-wp bit.
 */
static int uffd_wp_case(void *arg)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };
	struct uffdio_writeprotect wp = { 0 };
	struct wp_writer w = { 0 };
	struct uffd_msg msg;
	struct pollfd pfd;
	char *twin, *p;
	pthread_t th;
	size_t twins = arg ? 2 : 1, j;
	int uffd, got = 0;

	twin = map_anon(twins * PG, -1);
	p = map_anon(PG, -1);
	if (!twin || !p)
		return 1;
	for (j = 0; j < twins; j++)
		fill_page(twin + j * PG, 0x7e00, 0);
	fill_page(p, 0x7e00, 0);
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		ksft_print_msg("userfaultfd: %s\n", strerror(errno));
		return 1;
	}
	reg.range.start = (unsigned long)p;
	reg.range.len = PG;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	wp.range = reg.range;
	wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) ||
	    ioctl(uffd, UFFDIO_WRITEPROTECT, &wp)) {
		ksft_print_msg("uffd-wp: %s\n", strerror(errno));
		return 1;
	}
	if (upm_call(twin, twins * PG) ||
	    (arg && pfn_of(twin) != pfn_of(twin + PG))) {
		ksft_print_msg("the twins did not merge\n");
		return 1;
	}
	if (upm_call(p, PG) || pfn_of(p) != pfn_of(twin)) {
		ksft_print_msg("the protected page did not merge\n");
		return 1;
	}
	w.p = p;
	pthread_create(&th, NULL, wp_write, &w);
	pfd.fd = uffd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 3000) == 1 && read(uffd, &msg, sizeof(msg)) ==
	    sizeof(msg) && msg.event == UFFD_EVENT_PAGEFAULT &&
	    (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
		got = 1;
	ksft_print_msg("write to the merged, write-protected page: %s\n",
		       got ? "reached the handler" :
		       atomic_load(&w.done) ? "went through unseen" :
		       "neither handled nor done");
	wp.mode = 0;
	ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
	pthread_join(th, NULL);
	return got && p[100] == 0x5a && page_matches(twin, 0x7e00, 0) ? 0 : 1;
}

/* ---- memory cgroup charging ---- */

static int charged_case(void *arg)
{
	const size_t npages = 32 * MIB / PG;
	long before, after;
	double waited;
	char *p;
	(void)arg;

	if (cg_enter("upm_charge", 0))
		return 1;
	p = map_anon(npages * PG, -1);
	if (!p)
		return 1;
	fill_pages(p, npages, 0x8e00);
	before = cg_read("upm_charge", "memory.stat", "slab_unreclaimable");
	if (upm_call(p, npages * PG))
		return 1;
	/* at least an rmap_item (64 bytes) per page */
	after = cg_wait_slab("upm_charge",
			     before + (long)(npages * KSM_RMAP_ITEM_SIZE),
			     &waited);
	ksft_print_msg("unreclaimable slab of the caller's cgroup: %ld -> %ld KiB for %zu new KSM pages (%.1f s after the call)\n",
		       before / 1024, after / 1024, npages, waited);
	return after - before >= (long)(npages * KSM_RMAP_ITEM_SIZE) ? 0 : 1;
}

static bool charged(void)
{
	bool ok;

	if (cg_init() || cg_create("upm_charge"))
		return false;
	ok = run_child(charged_case, NULL) == 0;
	cg_destroy("upm_charge");
	return ok;
}

/* ---- pages written while they are merged ---- */

/*
 * A page written between the hash MADV_UPM looks it up by and its write
 * protection must not be filed under the hash of what it held before: a
 * later page with that content would find it, fail to merge and be
 * skipped. A writer stores once into each page, in random order, paced to
 * the length of the call, so that about one store per round lands in that
 * window; the pages stay as written, so their KSM pages live on.
 */
#define RACE_PAGES 1024
#define RACE_ROUNDS 12

struct race {
	char *p;
	double t0, per_page;
	unsigned int perm[RACE_PAGES];
};

static void *paced_writer(void *arg)
{
	struct race *r = arg;
	size_t k;

	for (k = 0; k < RACE_PAGES; k++) {
		r->p[r->perm[k] * PG + 64] ^= 0x80;
		while (now_sec() < r->t0 + (k + 1) * r->per_page)
			;
	}
	return NULL;
}

static int written_during_call(void *arg)
{
	static struct race r;
	pthread_t th;
	double t;
	size_t i, k, j;
	uint64_t x = 0x243f6a8885a308d3ULL;
	char *cal;
	(void)arg;

	/* the length of a call over unique pages, without a writer */
	cal = map_anon(RACE_PAGES * PG, -1);
	if (!cal)
		return 1;
	fill_pages(cal, RACE_PAGES, 0xa000);
	t = now_sec();
	upm_call(cal, RACE_PAGES * PG);
	r.per_page = (now_sec() - t) / RACE_PAGES;
	unmap_anon(cal, RACE_PAGES * PG);

	for (i = 0; i < RACE_ROUNDS; i++) {
		r.p = map_anon(RACE_PAGES * PG, -1);
		if (!r.p)
			return 1;
		fill_pages(r.p, RACE_PAGES, 0xa100 + i);
		for (k = 0; k < RACE_PAGES; k++)
			r.perm[k] = k;
		for (k = RACE_PAGES - 1; k > 0; k--) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			j = x % (k + 1);
			t = r.perm[k];
			r.perm[k] = r.perm[j];
			r.perm[j] = t;
		}
		r.t0 = now_sec();
		pthread_create(&th, NULL, paced_writer, &r);
		upm_call(r.p, RACE_PAGES * PG);
		pthread_join(th, NULL);
	}
	/* keep them (and their KSM pages) while the other process advises */
	sh->ready = 1;
	while (sh->ready != 2)
		sleep_ms(10);
	return 0;
}

static int same_content(void *arg)
{
	char *p = map_anon(RACE_ROUNDS * RACE_PAGES * PG, -1);
	struct upm_stats a, b, d;
	size_t i;
	(void)arg;

	if (!p)
		return 1;
	for (i = 0; i < RACE_ROUNDS; i++)
		fill_pages(p + i * RACE_PAGES * PG, RACE_PAGES, 0xa100 + i);
	upm_stats_read(&a);
	if (upm_call(p, RACE_ROUNDS * RACE_PAGES * PG))
		return 1;
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("the content as it was before the writes", &d);
	return d.pages_skipped == 0 ? 0 : 1;
}

static bool written_while_merged(void)
{
	int status, r;
	pid_t racer;

	sh->ready = 0;
	racer = fork();
	if (racer == 0)
		_exit(written_during_call(NULL));
	while (!sh->ready)
		sleep_ms(10);
	r = run_child(same_content, NULL);
	sh->ready = 2;
	waitpid(racer, &status, 0);
	return r == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void)
{
	struct ksm_stats base;
	long base_rmap;
	int r;

	upm_test_start(15);
	sh = shared_alloc(sizeof(*sh));
	if (!sh || ksm_settings_save(&saved))
		ksft_exit_fail_msg("set-up failed\n");
	write_str(KSM_SYSFS "run", "0");
	ksm_stats_read(&base);
	base_rmap = ksm_rmap_items();
	/* the forks of the first case are reparented to this process */
	prctl(PR_SET_CHILD_SUBREAPER, 1);

	ksft_test_result(fork_outlives(1),
			 "a fork's merged pages still migrate after its parent exited\n");
	ksft_test_result(fork_outlives(2),
			 "a grandchild's merged pages still migrate after parent and child exited\n");
	ksft_test_result(siblings_outlive(),
			 "a fork's merged pages still migrate after its parent exited and a sibling advised\n");
	ksft_test_result(exit_is_exact(&base, base_rmap),
			 "the index and KSM's counters are back as soon as waitpid() returns\n");
	ksft_test_result(exit_during_unmerge(),
			 "an exit does not wait while KSM unmerges everything (run=2)\n");
	r = exit_spans_passes();
	if (r < 0)
		ksft_test_result_skip("an exit that spans several ksmd passes: ksmd did not put the pages in the unstable tree within 60 s\n");
	else
		ksft_test_result(r,
				 "an exit that spans several ksmd passes frees the unstable tree's items cleanly\n");
	ksft_test_result(run_child(remap_many, NULL) == 0,
			 "advising and unmapping 40 ranges keeps the rmap items bounded\n");
	ksft_test_result(run_child(discard_readvise, NULL) == 0,
			 "advising a MADV_DONTNEED'd range again frees its rmap items\n");
	ksft_test_result(full_page_returns(),
			 "a full KSM page that lost a sharer takes sharers again\n");
	ksft_test_result(run_child(run2_refused, NULL) == 0,
			 "with KSM's run=2, MADV_UPM fails with EBUSY and changes nothing\n");
	ksft_test_result(run_child(disabled_refused, NULL) == 0,
			 "with upm/enabled=0, MADV_UPM fails with EPERM and changes nothing; 1 restores it\n");
	ksft_test_result(run_child(uffd_wp_case, NULL) == 0,
			 "a write to a merged uffd-wp protected page reaches the handler\n");
	ksft_test_result(run_child(uffd_wp_case, "KSM twin") == 0,
			 "the same when the page merged into a KSM page that existed\n");
	ksft_test_result(charged(),
			 "rmap items and stable nodes are charged to the caller's memory cgroup\n");
	ksft_test_result(written_while_merged(),
			 "pages written while being merged do not keep their content from merging\n");

	ksm_settings_restore(&saved);
	if (!ksm_clean_after_exit(&base, base_rmap, 10000))
		ksft_print_msg("KSM's counters did not come back\n");
	ksft_finished();
}
