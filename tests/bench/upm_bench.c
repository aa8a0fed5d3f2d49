// SPDX-License-Identifier: GPL-2.0
/*
 * upm_bench - how long MADV_UPM takes to merge memory, against the floor set
 * by reading the memory (memcmp, a 64-bit hash, memcpy) and against KSM's
 * ksmd on the same content. Runs in the guest as root; scripts/bench builds
 * it, runs it through scripts/vm and turns its output into tables and plots.
 *
 *   upm_bench [--sizes MIB,MIB,...] [--reps N] [--ksm-reps N]
 *             [--ksm-cap SECONDS] [--ksm-fast-pages N] [--nohuge]
 *             [--no-ksm]
 *
 * Every size is measured in repetitions with fresh processes:
 *   A fills a buffer and advises it (first call: no page has a twin yet, so
 *     every page stays private, recorded as a candidate),
 *   B fills an identical buffer on its own, measures the floor on it (memcmp
 *     against a second identical buffer, a 64-bit hash, memcpy, a compare
 *     loop over 8-byte words), then advises
 *     it while A is alive (merging call: every page merges with A's
 *     candidate into a new KSM page),
 *   G fills the same content and advises it (third call: every page's twin
 *     is a KSM page now, the case of every copy after the second), then
 *     exits; H does the same while a thread of its own keeps running on
 *     the other CPU, as a multi-threaded runtime's would (each TLB flush of
 *     its mm then interrupts that CPU),
 *   C fills a buffer of which every other page equals A's and advises it
 *     (half-duplicate mix),
 *   B writes one byte per page of its merged buffer (copy-on-write), then
 *     once more (the pages are private now),
 *   D fills a buffer of its own content, advises it (unique call), and
 *     writes one byte per page of it, then once more: advised unique
 *     memory against private memory,
 *   E advises 1 MiB of its own content again and again, alone for a
 *     second, then while F advises a copy of A's buffer (every page merges
 *     into a KSM page that A maps): how long a call waits while another
 *     holds ksm_thread_mutex, and how many of its calls fit within the
 *     other's.
 * Then all exit, and KSM's pages_shared and pages_sharing must come back to
 * where they were. KSM repetitions do the same with MADV_MERGEABLE and let
 * ksmd run (at its defaults, then at its fastest) until pages_sharing grows
 * by as much as UPM's merging call made it grow, or the cap is reached.
 *
 * Output on stdout, one record a line:
 *   info,KEY,VALUE
 *   row,TEST,SIZE_MIB,REP,SECONDS,PAGES,MERGED,NEW_KSM,SKIPPED,SHARING_DELTA,CAPPED,KSMD_CPU_S,FULL_SCANS
 * and progress lines "progress: ..." on stderr. Exit status 0, or 1 when a
 * step failed (a "error,..." line says which).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "upm.h"

#define PG 4096UL
#define MIB (1024UL * 1024UL)
#define UPM_DIR "/sys/kernel/mm/upm/"
#define KSM_DIR "/sys/kernel/mm/ksm/"

#define MAX_SIZES 16

/* ---- options ---- */
static long sizes[MAX_SIZES] = { 16, 64, 256, 1024 };
static int nsizes = 4;
static int reps = 5;
static int ksm_reps = 1;
static double ksm_cap = 120.0;
static long ksm_fast_pages = 100000;
static int nohuge;
static int no_ksm;

static int failed;

/* The probe's pages: E advises them until main sets stop. */
#define PROBE_PAGES 256

/*
 * Shared with the workers (mapped before the first fork): the probe's stop
 * flag, and when F's call began and ended (CLOCK_MONOTONIC, 0 until then).
 */
struct shared {
	volatile int stop;
	volatile double f_start, f_end;
};

static struct shared *shared;

static void error(const char *fmt, ...)
{
	va_list ap;

	printf("error,");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	failed = 1;
}

static void progress(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "progress: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void nap(double secs)
{
	struct timespec ts = { (time_t)secs,
			       (long)((secs - (time_t)secs) * 1e9) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- sysfs ---- */
static long read_long(const char *path)
{
	char buf[64] = "";
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fgets(buf, sizeof(buf), f))
			v = strtol(buf, NULL, 10);
		fclose(f);
	}
	return v;
}

static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -1;
	ok = fprintf(f, "%ld", v) > 0;
	ok = (fclose(f) == 0) && ok;
	return ok ? 0 : -1;
}

struct counters {
	long merged, new_ksm, already, skipped, scanned;
	long shared, sharing, full_scans;
};

static void snap(struct counters *c)
{
	c->merged = read_long(UPM_DIR "pages_merged");
	c->new_ksm = read_long(UPM_DIR "pages_new_ksm");
	c->already = read_long(UPM_DIR "pages_already_merged");
	c->skipped = read_long(UPM_DIR "pages_skipped");
	c->scanned = read_long(UPM_DIR "pages_scanned");
	c->shared = read_long(KSM_DIR "pages_shared");
	c->sharing = read_long(KSM_DIR "pages_sharing");
	c->full_scans = read_long(KSM_DIR "full_scans");
}

/* KSM's settings as found, restored on the way out (run=0: never unmerge). */
static long saved_pages_to_scan = -1, saved_sleep = -1;

static void ksm_restore(void)
{
	write_long(KSM_DIR "run", 0);
	if (saved_pages_to_scan > 0)
		write_long(KSM_DIR "pages_to_scan", saved_pages_to_scan);
	if (saved_sleep >= 0)
		write_long(KSM_DIR "sleep_millisecs", saved_sleep);
}

static void on_signal(int sig)
{
	if (shared)
		shared->stop = 1;	/* a probe must not spin on */
	ksm_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ksmd's CPU time (utime + stime) in seconds, -1 if not found. */
static pid_t ksmd_pid;

static pid_t find_ksmd(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t pid = 0;

	if (!d)
		return 0;
	while (!pid && (e = readdir(d))) {
		char path[300], comm[64] = "";
		FILE *f;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, "ksmd\n"))
			pid = atoi(e->d_name);
		fclose(f);
	}
	closedir(d);
	return pid;
}

static double ksmd_cpu(void)
{
	char path[64], buf[1024];
	unsigned long ut, st;
	FILE *f;
	char *p;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", ksmd_pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	/* Fields after "(comm)": state is field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	p += 2;
	for (i = 3; i < 14; i++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	if (sscanf(p, "%lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

/* ---- page contents ---- */

/* A page of pseudo-random words, determined by (seed, page index). */
static void fill_page(uint64_t *w, uint64_t seed, uint64_t idx)
{
	uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ULL ^ (idx + 1) * 0xc2b2ae3d27d4eb4fULL;
	size_t j;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 29;
	for (j = 0; j < PG / 8; j++) {
		x = x * 0x5851f42d4c957f2dULL + 0x14057b7ef767814fULL;
		w[j] = x ^ (x >> 33);
	}
}

enum { FILL_SAME, FILL_HALF };

/* FILL_SAME: every page from seed. FILL_HALF: even pages from seed, odd
 * pages from seed2 (content nobody else has). */
static void fill(char *buf, size_t npages, int kind, uint64_t seed,
		 uint64_t seed2)
{
	size_t i;

	for (i = 0; i < npages; i++)
		fill_page((uint64_t *)(buf + i * PG),
			  (kind == FILL_HALF && (i & 1)) ? seed2 : seed, i);
}

/*
 * A 64-bit hash of one page, four independent multiply-rotate lanes over
 * 8-byte words and a final avalanche; roughly the work of the kernel's
 * xxh64 per page, written for this benchmark.
 */
static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t hash_page(const uint64_t *w)
{
	const uint64_t m1 = 0x87c37b91114253d5ULL, m2 = 0x4cf5ad432745937fULL;
	uint64_t a = 0x243f6a8885a308d3ULL, b = 0x13198a2e03707344ULL;
	uint64_t c = 0xa4093822299f31d0ULL, d = 0x082efa98ec4e6c89ULL, h;
	size_t j;

	for (j = 0; j < PG / 8; j += 4) {
		a = rotl(a + w[j] * m1, 29) * m2;
		b = rotl(b + w[j + 1] * m1, 29) * m2;
		c = rotl(c + w[j + 2] * m1, 29) * m2;
		d = rotl(d + w[j + 3] * m1, 29) * m2;
	}
	h = rotl(a, 3) + rotl(b, 11) + rotl(c, 19) + rotl(d, 37) + PG;
	h ^= h >> 32;
	h *= m1;
	h ^= h >> 29;
	h *= m2;
	h ^= h >> 32;
	return h;
}

/*
 * Compare 8-byte words one by one, as the kernel's generic memcmp does;
 * glibc's memcmp uses vector instructions, which an emulated CPU (QEMU TCG)
 * runs far more slowly than plain loads.
 */
static __attribute__((noinline)) int cmp_words(const uint64_t *a,
					       const uint64_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			return 1;
	return 0;
}

/* ---- worker processes, driven over pipes ---- */
enum { OP_FILL, OP_FLOOR, OP_UPM, OP_MERGEABLE, OP_COW, OP_PROBE, OP_EXIT };
/* OP_UPM's kind: a plain call, F's call beside the probe, a threaded call */
enum { UPM_PLAIN, UPM_BESIDE_PROBE, UPM_THREADED };

static atomic_int spinning;

/* A thread of the advising process that keeps its CPU busy in userspace. */
static void *spin(void *arg)
{
	while (atomic_load_explicit(&spinning, memory_order_relaxed))
		;
	return arg;
}

struct cmd {
	int op, kind;
	size_t npages;
	uint64_t seed, seed2;
};

struct reply {
	int err;
	double t[4];
	uint64_t check;
	int differ;
};

struct worker {
	pid_t pid;
	int to, from;
};

static int xread(int fd, void *p, size_t n)
{
	char *c = p;

	while (n) {
		ssize_t r = read(fd, c, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= r;
	}
	return 0;
}

static int xwrite(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t r = write(fd, c, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= r;
	}
	return 0;
}

static char *map(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (nohuge)
		madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

static void worker_loop(int in, int out)
{
	char *buf = NULL, *buf2;
	size_t len = 0, i;
	struct cmd c;

	while (!xread(in, &c, sizeof(c))) {
		struct reply r = { 0 };
		double t0;

		switch (c.op) {
		case OP_FILL:
			len = c.npages * PG;
			buf = map(len);
			if (!buf) {
				r.err = ENOMEM;
				break;
			}
			fill(buf, c.npages, c.kind, c.seed, c.seed2);
			break;
		case OP_FLOOR:
			/* A second buffer with the same content, written on
			 * its own, as the other process's pages would be. */
			buf2 = map(len);
			if (!buf2) {
				r.err = ENOMEM;
				break;
			}
			fill(buf2, c.npages, FILL_SAME, c.seed, 0);
			t0 = now();
			r.differ = memcmp(buf, buf2, len) != 0;
			r.t[0] = now() - t0;
			t0 = now();
			r.differ |= cmp_words((uint64_t *)buf, (uint64_t *)buf2,
					      len / 8);
			r.t[3] = now() - t0;
			t0 = now();
			for (i = 0; i < c.npages; i++)
				r.check ^= hash_page((uint64_t *)(buf + i * PG));
			r.t[1] = now() - t0;
			t0 = now();
			memcpy(buf2, buf, len);
			r.t[2] = now() - t0;
			r.check += (unsigned char)buf2[len - 1];
			munmap(buf2, len);
			break;
		case OP_UPM: {
			pthread_t th;

			if (c.kind == UPM_THREADED) {
				atomic_store(&spinning, 1);
				if (pthread_create(&th, NULL, spin, NULL)) {
					r.err = EAGAIN;
					break;
				}
				nap(0.05);	/* running before the call */
			}
			t0 = now();
			if (c.kind == UPM_BESIDE_PROBE)
				shared->f_start = t0;
			if (madvise(buf, len, MADV_UPM))
				r.err = errno;
			r.t[0] = now() - t0;
			if (c.kind == UPM_BESIDE_PROBE)
				shared->f_end = t0 + r.t[0];
			if (c.kind == UPM_THREADED) {
				atomic_store(&spinning, 0);
				pthread_join(th, NULL);
			}
			break;
		}
		case OP_MERGEABLE:
			t0 = now();
			if (madvise(buf, len, MADV_MERGEABLE))
				r.err = errno;
			r.t[0] = now() - t0;
			break;
		case OP_PROBE: {
			/*
			 * Calls until told to stop. t[0]: the longest, t[1]: their
			 * sum, t[2]: the calls made wholly within F's; check: calls.
			 */
			double t1, fs, fe;

			while (!shared->stop) {
				fs = shared->f_start;
				t0 = now();
				if (madvise(buf, len, MADV_UPM)) {
					r.err = errno;
					break;
				}
				t1 = now();
				fe = shared->f_end;
				if (fs > 0 && (fe == 0 || t1 <= fe))
					r.t[2]++;
				t1 -= t0;
				if (t1 > r.t[0])
					r.t[0] = t1;
				r.t[1] += t1;
				r.check++;
			}
			break;
		}
		case OP_COW: {
			volatile char *v = buf;

			for (int pass = 0; pass < 2; pass++) {
				t0 = now();
				for (i = 0; i < len; i += PG)
					v[i] = (char)(pass + 1);
				r.t[pass] = now() - t0;
			}
			break;
		}
		case OP_EXIT:
			_exit(0);
		}
		if (xwrite(out, &r, sizeof(r)))
			_exit(1);
	}
	_exit(0);
}

static int spawn(struct worker *w)
{
	int down[2], up[2];

	if (pipe(down) || pipe(up))
		return -1;
	fflush(stdout);
	w->pid = fork();
	if (w->pid < 0)
		return -1;
	if (!w->pid) {
		close(down[1]);
		close(up[0]);
		worker_loop(down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	w->to = down[1];
	w->from = up[0];
	return 0;
}

/* Send a command; rpc_reply() takes its answer. */
static int rpc_send(struct worker *w, int op, int kind, size_t npages,
		    uint64_t seed, uint64_t seed2)
{
	struct cmd c = { op, kind, npages, seed, seed2 };

	return xwrite(w->to, &c, sizeof(c));
}

static int rpc_reply(struct worker *w, struct reply *r)
{
	memset(r, 0, sizeof(*r));
	if (xread(w->from, r, sizeof(*r))) {
		r->err = EPIPE;
		return -1;
	}
	return r->err ? -1 : 0;
}

static int rpc(struct worker *w, int op, int kind, size_t npages,
	       uint64_t seed, uint64_t seed2, struct reply *r)
{
	if (rpc_send(w, op, kind, npages, seed, seed2)) {
		memset(r, 0, sizeof(*r));
		r->err = EPIPE;
		return -1;
	}
	return rpc_reply(w, r);
}

/* E's probe calls for @secs alone, or while F advises its buffer (@f). */
static int probe(struct worker *e, struct worker *f, double secs,
		 struct reply *pr, struct reply *fr)
{
	shared->stop = 0;
	shared->f_start = shared->f_end = 0;
	if (rpc_send(e, OP_PROBE, 0, PROBE_PAGES, 0, 0)) {
		pr->err = EPIPE;
		return -1;
	}
	if (f)
		rpc(f, OP_UPM, UPM_BESIDE_PROBE, 0, 0, 0, fr);
	else
		nap(secs);
	shared->stop = 1;
	return rpc_reply(e, pr) || (f && fr->err) ? -1 : 0;
}

static void finish(struct worker *w, int n)
{
	struct cmd c = { .op = OP_EXIT };
	int i;

	for (i = 0; i < n; i++) {
		if (w[i].pid <= 0)
			continue;
		xwrite(w[i].to, &c, sizeof(c));
		close(w[i].to);
		close(w[i].from);
	}
	for (i = 0; i < n; i++)
		if (w[i].pid > 0) {
			waitpid(w[i].pid, NULL, 0);
			w[i].pid = 0;
		}
}

/* ---- output ---- */
static void row(const char *test, long size, int rep, double secs, long pages,
		const struct counters *a, const struct counters *b,
		int capped, double cpu, long scans)
{
	long merged = 0, new_ksm = 0, skipped = 0, sharing = 0;

	if (a && b) {
		merged = b->merged - a->merged;
		new_ksm = b->new_ksm - a->new_ksm;
		skipped = b->skipped - a->skipped;
		sharing = b->sharing - a->sharing;
	}
	printf("row,%s,%ld,%d,%.9f,%ld,%ld,%ld,%ld,%ld,%d,%.2f,%ld\n", test,
	       size, rep, secs, pages, merged, new_ksm, skipped, sharing,
	       capped, cpu, scans);
	fflush(stdout);
}

/* After all workers of a repetition exited: wait until KSM holds no more
 * pages than before it. Emits a "restored" row (MERGED 1 when it did). */
static void check_restored(long size, int rep, const struct counters *base)
{
	double t0 = now();
	struct counters c;
	int ok;

	for (;;) {
		snap(&c);
		ok = c.shared == base->shared && c.sharing == base->sharing;
		if (ok || now() - t0 > 30)
			break;
		nap(0.02);
	}
	printf("row,restored,%ld,%d,%.9f,0,%d,0,0,%ld,0,0,0\n", size, rep,
	       now() - t0, ok, c.sharing - base->sharing);
	if (!ok)
		error("KSM state not back after size %ld rep %d: pages_shared %ld (was %ld), pages_sharing %ld (was %ld)",
		      size, rep, c.shared, base->shared, c.sharing,
		      base->sharing);
	fflush(stdout);
}

static uint64_t seed_of(long size, int rep, int which)
{
	return ((uint64_t)size << 24) ^ ((uint64_t)rep << 8) ^ which;
}

static long expected_sharing = -1;	/* what UPM's merging call reached */

/*
 * A new process fills content whose every page has a KSM twin and advises
 * it (OP_UPM of the given kind), then exits; its row is named test.
 * Returns non-zero, with *r saying why, when a step failed.
 */
static int third_call(struct worker *w, const char *test, int kind,
		      long size, int rep, uint64_t seed, struct reply *r)
{
	size_t n = size * MIB / PG;
	struct counters c0, c1;

	if (spawn(w) || rpc(w, OP_FILL, FILL_SAME, n, seed, 0, r))
		return 1;
	snap(&c0);
	if (rpc(w, OP_UPM, kind, n, 0, 0, r))
		return 1;
	snap(&c1);
	row(test, size, rep, r->t[0], n, &c0, &c1, 0, 0, 0);
	if (c1.merged - c0.merged != (long)n)
		error("%s merged %ld of %zu pages (size %ld rep %d)", test,
		      c1.merged - c0.merged, n, size, rep);
	finish(w, 1);
	return 0;
}

static void upm_rep(long size, int rep)
{
	size_t n = size * MIB / PG;
	uint64_t p = seed_of(size, rep, 1), q = seed_of(size, rep, 2);
	struct worker w[8] = { 0 };
	struct counters base, c0, c1;
	struct reply r, pr;
	const char *step;

	snap(&base);
#define STEP(s) do { step = (s); progress("UPM %ld MiB rep %d/%d: %s", size, rep, reps, step); } while (0)
	STEP("A fills");
	if (spawn(&w[0]) || rpc(&w[0], OP_FILL, FILL_SAME, n, p, 0, &r))
		goto fail;
	STEP("B fills");
	if (spawn(&w[1]) || rpc(&w[1], OP_FILL, FILL_SAME, n, p, 0, &r))
		goto fail;
	STEP("floor (memcmp, hash, memcpy)");
	if (rpc(&w[1], OP_FLOOR, 0, n, p, 0, &r))
		goto fail;
	if (r.differ)
		error("memcmp found the buffers different (size %ld)", size);
	row("memcmp", size, rep, r.t[0], n, NULL, NULL, 0, 0, 0);
	row("hash64", size, rep, r.t[1], n, NULL, NULL, 0, 0, 0);
	row("memcpy", size, rep, r.t[2], n, NULL, NULL, 0, 0, 0);
	row("cmp_words", size, rep, r.t[3], n, NULL, NULL, 0, 0, 0);

	STEP("first call (A)");
	snap(&c0);
	if (rpc(&w[0], OP_UPM, 0, n, 0, 0, &r))
		goto fail;
	snap(&c1);
	row("first_call", size, rep, r.t[0], n, &c0, &c1, 0, 0, 0);

	STEP("merging call (B)");
	snap(&c0);
	if (rpc(&w[1], OP_UPM, 0, n, 0, 0, &r))
		goto fail;
	snap(&c1);
	row("merging_call", size, rep, r.t[0], n, &c0, &c1, 0, 0, 0);
	if (expected_sharing < 0)
		expected_sharing = c1.sharing - c0.sharing;
	if (c1.merged - c0.merged != (long)n)
		error("merging call merged %ld of %zu pages (size %ld rep %d)",
		      c1.merged - c0.merged, n, size, rep);

	STEP("third call (G)");
	if (third_call(&w[6], "third_call", UPM_PLAIN, size, rep, p, &r))
		goto fail;
	STEP("third call, a thread running (H)");
	if (third_call(&w[7], "third_call_threaded", UPM_THREADED, size, rep, p,
		       &r))
		goto fail;

	STEP("half-duplicate call (C)");
	if (spawn(&w[2]) || rpc(&w[2], OP_FILL, FILL_HALF, n, p, q, &r))
		goto fail;
	snap(&c0);
	if (rpc(&w[2], OP_UPM, 0, n, 0, 0, &r))
		goto fail;
	snap(&c1);
	row("half_call", size, rep, r.t[0], n, &c0, &c1, 0, 0, 0);

	STEP("copy-on-write (B)");
	snap(&c0);
	if (rpc(&w[1], OP_COW, 0, n, 0, 0, &r))
		goto fail;
	snap(&c1);
	row("cow_merged", size, rep, r.t[0], n, &c0, &c1, 0, 0, 0);
	row("cow_private", size, rep, r.t[1], n, NULL, NULL, 0, 0, 0);

	STEP("unique call and writes (D)");
	if (spawn(&w[3]) ||
	    rpc(&w[3], OP_FILL, FILL_SAME, n, seed_of(size, rep, 4), 0, &r))
		goto fail;
	snap(&c0);
	if (rpc(&w[3], OP_UPM, 0, n, 0, 0, &r))
		goto fail;
	snap(&c1);
	row("unique_call", size, rep, r.t[0], n, &c0, &c1, 0, 0, 0);
	if (c1.merged != c0.merged || c1.new_ksm != c0.new_ksm)
		error("unique call merged %ld pages, made %ld KSM pages (size %ld rep %d)",
		      c1.merged - c0.merged, c1.new_ksm - c0.new_ksm, size,
		      rep);
	if (rpc(&w[3], OP_COW, 0, n, 0, 0, &r))
		goto fail;
	row("write_unique", size, rep, r.t[0], n, NULL, NULL, 0, 0, 0);
	row("write_private", size, rep, r.t[1], n, NULL, NULL, 0, 0, 0);

	/*
	 * The probe's longest call while F merges bounds how long F held
	 * ksm_thread_mutex at a time, plus the probe's own call (alone).
	 * SECONDS: the longest call; PAGES: the calls made; MERGED: their
	 * mean, in microseconds; NEW_KSM: the calls made within F's call.
	 * Only A stays: F's pages merge into the KSM pages it maps.
	 */
	finish(&w[1], 3);
	STEP("probe alone (E)");
	if (spawn(&w[4]) ||
	    rpc(&w[4], OP_FILL, FILL_SAME, PROBE_PAGES, seed_of(size, rep, 5), 0,
		&r) || spawn(&w[5]) ||
	    rpc(&w[5], OP_FILL, FILL_SAME, n, p, 0, &r))
		goto fail;
	if (probe(&w[4], NULL, 1.0, &pr, NULL)) {
		r = pr;
		goto fail;
	}
	printf("row,probe_alone,%ld,%d,%.9f,%lu,%.0f,0,0,0,0,0,0\n", size, rep,
	       pr.t[0], (unsigned long)pr.check,
	       pr.check ? 1e6 * pr.t[1] / pr.check : 0);
	STEP("call beside the probe (F, E)");
	snap(&c0);
	if (probe(&w[4], &w[5], 0, &pr, &r)) {
		if (!r.err)
			r = pr;
		goto fail;
	}
	snap(&c1);
	row("beside_probe", size, rep, r.t[0], n, &c0, &c1, 0, 0, 0);
	printf("row,probe_beside,%ld,%d,%.9f,%lu,%.0f,%.0f,0,0,0,0,0\n", size,
	       rep, pr.t[0], (unsigned long)pr.check,
	       pr.check ? 1e6 * pr.t[1] / pr.check : 0, pr.t[2]);

	STEP("exit");
	finish(w, 8);
	check_restored(size, rep, &base);
	return;
fail:
	error("UPM step '%s' failed for size %ld rep %d: %s", step, size, rep,
	      strerror(r.err));
	finish(w, 8);
#undef STEP
}

static void ksm_rep(long size, int rep, int fast, long target)
{
	const char *name = fast ? "ksm_fastest" : "ksm_default";
	size_t n = size * MIB / PG;
	uint64_t p = seed_of(size, rep, 3);
	struct worker w[2] = { 0 };
	struct counters base, c0, c1;
	double t0, t1, cpu0, cpu1, last = 0;
	int capped = 0, nr = fast ? reps : ksm_reps;
	struct reply r;

	snap(&base);
	progress("%s %ld MiB rep %d/%d: fill", name, size, rep, nr);
	if (spawn(&w[0]) || rpc(&w[0], OP_FILL, FILL_SAME, n, p, 0, &r) ||
	    spawn(&w[1]) || rpc(&w[1], OP_FILL, FILL_SAME, n, p, 0, &r) ||
	    rpc(&w[0], OP_MERGEABLE, 0, n, 0, 0, &r) ||
	    rpc(&w[1], OP_MERGEABLE, 0, n, 0, 0, &r)) {
		error("%s setup failed for size %ld rep %d: %s", name, size,
		      rep, strerror(r.err));
		finish(w, 2);
		return;
	}
	write_long(KSM_DIR "pages_to_scan", fast ? ksm_fast_pages : 100);
	write_long(KSM_DIR "sleep_millisecs", fast ? 0 : 20);
	snap(&c0);
	cpu0 = ksmd_cpu();
	t0 = now();
	write_long(KSM_DIR "run", 1);
	for (;;) {
		nap(0.01);
		t1 = now();
		snap(&c1);
		if (c1.sharing - c0.sharing >= target)
			break;
		if (t1 - t0 >= ksm_cap) {
			capped = 1;
			break;
		}
		if (t1 - last >= 1) {
			progress("%s %ld MiB rep %d/%d: %.0f s, %ld of %ld pages merged",
				 name, size, rep, nr, t1 - t0,
				 c1.sharing - c0.sharing, target);
			last = t1;
		}
	}
	write_long(KSM_DIR "run", 0);
	cpu1 = ksmd_cpu();
	row(name, size, rep, t1 - t0, n, &c0, &c1, capped, cpu1 - cpu0,
	    c1.full_scans - c0.full_scans);
	ksm_restore();
	finish(w, 2);
	check_restored(size, rep, &base);
}

static void usage(void)
{
	fprintf(stderr, "usage: upm_bench [--sizes MIB,...] [--reps N] [--ksm-reps N] [--ksm-cap S] [--ksm-fast-pages N] [--nohuge] [--no-ksm]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct utsname u;
	int i, rep;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--nohuge")) {
			nohuge = 1;
			continue;
		}
		if (!strcmp(a, "--no-ksm")) {
			no_ksm = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--sizes")) {
			char *s = strdup(v), *tok, *save;

			nsizes = 0;
			for (tok = strtok_r(s, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				if (nsizes == MAX_SIZES || atol(tok) <= 0)
					usage();
				sizes[nsizes++] = atol(tok);
			}
			if (!nsizes)
				usage();
		} else if (!strcmp(a, "--reps")) {
			reps = atoi(v);
		} else if (!strcmp(a, "--ksm-reps")) {
			ksm_reps = atoi(v);
		} else if (!strcmp(a, "--ksm-cap")) {
			ksm_cap = atof(v);
		} else if (!strcmp(a, "--ksm-fast-pages")) {
			ksm_fast_pages = atol(v);
		} else {
			usage();
		}
	}
	if (reps < 1 || ksm_reps < 0 || ksm_cap <= 0 || ksm_fast_pages < 1)
		usage();

	setvbuf(stdout, NULL, _IOLBF, 0);
	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED) {
		error("mmap of the shared page: %s", strerror(errno));
		return 1;
	}
	if (access(UPM_DIR "calls", R_OK)) {
		error("no %s: kernel without CONFIG_UPM", UPM_DIR);
		return 1;
	}
	saved_pages_to_scan = read_long(KSM_DIR "pages_to_scan");
	saved_sleep = read_long(KSM_DIR "sleep_millisecs");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	/* ksmd must not run while UPM is measured. */
	write_long(KSM_DIR "run", 0);
	ksmd_pid = find_ksmd();

	uname(&u);
	printf("info,kernel,%s %s\n", u.release, u.machine);
	printf("info,cpus,%ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	{
		char thp[128] = "?";
		FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

		if (f) {
			if (fgets(thp, sizeof(thp), f))
				thp[strcspn(thp, "\n")] = 0;
			fclose(f);
		}
		printf("info,thp,%s%s\n", thp,
		       nohuge ? " (buffers MADV_NOHUGEPAGE)" : "");
	}
	printf("info,ksm_defaults,pages_to_scan=%ld sleep_millisecs=%ld\n",
	       saved_pages_to_scan, saved_sleep);
	printf("info,ksmd_pid,%d\n", ksmd_pid);
	printf("info,max_page_sharing,%ld\n", read_long(KSM_DIR "max_page_sharing"));
	printf("info,use_zero_pages,%ld\n", read_long(KSM_DIR "use_zero_pages"));
	printf("info,reps,%d\ninfo,ksm_reps,%d\ninfo,ksm_cap_s,%g\ninfo,ksm_fast_pages,%ld\n",
	       reps, ksm_reps, ksm_cap, ksm_fast_pages);

	for (i = 0; i < nsizes; i++) {
		long size = sizes[i], target;

		expected_sharing = -1;
		for (rep = 1; rep <= reps; rep++)
			upm_rep(size, rep);
		if (no_ksm)
			continue;
		/* KSM must reach what UPM reached on the same content. */
		target = expected_sharing > 0 ? expected_sharing :
						(long)(size * MIB / PG);
		for (rep = 1; rep <= reps; rep++)
			ksm_rep(size, rep, 1, target);
		for (rep = 1; rep <= ksm_reps; rep++)
			ksm_rep(size, rep, 0, target);
	}
	ksm_restore();
	printf("info,ksm_restored,run=%ld pages_to_scan=%ld sleep_millisecs=%ld\n",
	       read_long(KSM_DIR "run"), read_long(KSM_DIR "pages_to_scan"),
	       read_long(KSM_DIR "sleep_millisecs"));
	printf("done,%d\n", failed);
	return failed;
}
