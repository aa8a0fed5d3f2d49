// SPDX-License-Identifier: GPL-2.0
/*
 * Randomized stress of MADV_UPM: several processes, each with a few
 * threads, do at random MADV_UPM, writes, fork, exit, munmap, mremap,
 * mprotect, MADV_DONTNEED, MADV_UNMERGEABLE and MADV_PAGEOUT over memory
 * filled from a handful of patterns shared by all processes, so that pages
 * merge across processes all the time. Every process keeps a shadow of its
 * memory: for each page, what it must hold (a pattern, a variant of one,
 * zeroes, or a seeded pseudo-random page), from which the expected bytes
 * are made afresh, so no bug can corrupt memory and shadow alike. After
 * every step a thread checks the region it changed and another of its
 * regions against the shadow, and a process checks all of its memory when
 * it forks and when it exits. A mismatch or an unexpected return value
 * stops the run and fails it with the seed, which replays the same
 * sequences of operations in every process (the interleaving of processes
 * and threads differs from run to run).
 *
 *   upm_stress [-d SECONDS] [-s SEED] [-p PROCS] [-t THREADS] [-r REGIONS]
 *              [-S] [-k]
 *
 * -d: duration (60 s); -s: seed (default: from the time, always printed);
 * -p: processes kept running (4), besides their short-lived forked
 * children; -t: threads per process (2); -r: 2 MiB regions per process
 * (6); -S: no zram swap (by default a 128 MiB zram swap is set up when the
 * guest has no swap, so that MADV_PAGEOUT really swaps); -k: let ksmd run
 * too, switched on and off at random.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdarg.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define REGION_PAGES 512		/* 2 MiB */
#define REGION_SIZE (REGION_PAGES * PG)
#define RESERVE_SIZE (8 * MIB)		/* region, guard, scratch */
#define SCRATCH_OFF (4 * MIB)
#define NPAT 24				/* shared patterns */
#define NRAND 2048			/* ids of "random" pages */
#define MAX_REGIONS 32
#define MAX_THREADS 8
#define MAX_LIVE_CHILDREN 2		/* per process */
#define MAX_DEPTH 2			/* fork generations below a slot */
#define LOG_LEN 8			/* ops remembered per thread */
#define MAX_PIDS 16384

enum page_kind { P_UNMAPPED, P_ZERO, P_PAT, P_RAND };

/* What a page must hold. */
struct pdesc {
	uint8_t kind;
	uint8_t ro;		/* PROT_READ only */
	uint16_t pat;		/* P_PAT: the pattern */
	uint32_t val;		/* P_PAT: 0, or a changed word; P_RAND: id */
};

struct region {
	char *base;		/* 2 MiB aligned */
	char *scratch;		/* mremap target, PROT_NONE reserved */
	struct pdesc d[REGION_PAGES];
	int thp;		/* -1 nohuge, 0 default, 1 huge */
	bool retired;		/* its address range was lost: unused */
};

enum op {
	OP_UPM, OP_UPM_ALL, OP_WRITE, OP_DONTNEED, OP_UNMERGEABLE,
	OP_PAGEOUT, OP_MPROTECT, OP_MUNMAP, OP_MREMAP_MOVE, OP_MREMAP_RESIZE,
	OP_FORK, OP_EXIT, OP_SLEEP, NOPS
};

static const char *const op_names[NOPS] = {
	"upm", "upm-all", "write", "dontneed", "unmergeable", "pageout",
	"mprotect", "munmap", "mremap-move", "mremap-resize", "fork", "exit",
	"sleep",
};

/* Relative odds of each op for a thread (fork and exit: thread 0 only). */
static const int op_weight[NOPS] = {
	[OP_UPM] = 18, [OP_UPM_ALL] = 8, [OP_WRITE] = 26, [OP_DONTNEED] = 5,
	[OP_UNMERGEABLE] = 4, [OP_PAGEOUT] = 6, [OP_MPROTECT] = 7,
	[OP_MUNMAP] = 4, [OP_MREMAP_MOVE] = 4, [OP_MREMAP_RESIZE] = 3,
	[OP_FORK] = 3, [OP_EXIT] = 1, [OP_SLEEP] = 2,
};

/* Shared by all processes of the run (MAP_SHARED). */
struct shared {
	atomic_int stop;
	atomic_int failed;
	atomic_long ops[NOPS];
	atomic_long steps, mismatches, bad_errno, verified_pages;
	atomic_long procs, live;
	char msg[4096];
	atomic_long npids;		/* every process started, for a hang */
	pid_t pids[MAX_PIDS];
};

static struct shared *sh;
static uint64_t run_seed;
static int nthreads = 2, nregions = 6;
static alignas(4096) char pattern[NPAT][PG];

/* Per process */
static struct region *reg;
static int slot, depth;
static uint64_t proc_seed;
static long proc_steps_max;	/* forked children live this many steps */
static atomic_long proc_steps;
static atomic_int pause_req, parked, proc_stop;
static int live_children;

struct thread {
	pthread_t th;
	int id;
	uint64_t rng;
	int log[LOG_LEN];
	char logtxt[LOG_LEN][64];
	unsigned int nlog;
};

static struct thread thr[MAX_THREADS];

static inline uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline uint64_t rnd(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ULL;
	return mix64(*s);
}

static inline unsigned int rnd_below(uint64_t *s, unsigned int n)
{
	return n ? rnd(s) % n : 0;
}

static void note_op(struct thread *t, int op, const char *fmt, ...)
	__printf(3, 4);

static void note_op(struct thread *t, int op, const char *fmt, ...)
{
	unsigned int i = t->nlog++ % LOG_LEN;
	va_list ap;

	t->log[i] = op;
	va_start(ap, fmt);
	vsnprintf(t->logtxt[i], sizeof(t->logtxt[i]), fmt, ap);
	va_end(ap);
	atomic_fetch_add(&sh->ops[op], 1);
}

static const char *who(void)
{
	static __thread char buf[96];

	snprintf(buf, sizeof(buf), "pid %d (slot %d depth %d seed %#llx)",
		 (int)getpid(), slot, depth, (unsigned long long)proc_seed);
	return buf;
}

/* Records a failure; the first one is kept for the summary. */
static void fail(struct thread *t, const char *fmt, ...)
	__printf(2, 3);

static void fail(struct thread *t, const char *fmt, ...)
{
	char msg[1024];
	int len, expect = 0;
	unsigned int i;
	va_list ap;

	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len > (int)sizeof(msg) - 1)
		len = sizeof(msg) - 1;
	upm_msg("FAIL %s thread %d: %s", who(), t ? t->id : -1, msg);
	if (t) {
		for (i = t->nlog > LOG_LEN ? t->nlog - LOG_LEN : 0;
		     i < t->nlog; i++)
			upm_msg("    op %u: %s %s\n", i,
				op_names[t->log[i % LOG_LEN]],
				t->logtxt[i % LOG_LEN]);
	}
	if (atomic_compare_exchange_strong(&sh->failed, &expect, 1))
		snprintf(sh->msg, sizeof(sh->msg), "%s thread %d: %s", who(),
			 t ? t->id : -1, msg);
	atomic_store(&sh->stop, 1);
}

/* ---- page contents ---- */

static void page_expect(const struct pdesc *d, uint64_t *out)
{
	if (d->kind == P_ZERO) {
		memset(out, 0, PG);
	} else if (d->kind == P_PAT) {
		memcpy(out, pattern[d->pat], PG);
		if (d->val)
			out[d->val % (PG / 8)] = mix64(d->val);
	} else {
		fill_page(out, run_seed ^ 0x5a5a5a5aULL, d->val);
	}
}

static void page_write(char *p, const struct pdesc *d)
{
	if (d->kind == P_ZERO) {
		memset(p, 0, PG);
	} else if (d->kind == P_PAT) {
		memcpy(p, pattern[d->pat], PG);
		if (d->val)
			((uint64_t *)p)[d->val % (PG / 8)] = mix64(d->val);
	} else {
		fill_page(p, run_seed ^ 0x5a5a5a5aULL, d->val);
	}
}

static void random_desc(uint64_t *s, struct pdesc *d)
{
	unsigned int r = rnd_below(s, 100);

	d->val = 0;
	if (r < 62) {
		d->kind = P_PAT;
		d->pat = rnd_below(s, NPAT);
	} else if (r < 74) {
		d->kind = P_PAT;
		d->pat = rnd_below(s, NPAT);
		d->val = 1 + rnd_below(s, 64);	/* few variants: they merge */
	} else if (r < 84) {
		d->kind = P_ZERO;
	} else {
		d->kind = P_RAND;
		d->val = rnd_below(s, NRAND);
	}
}

static const char *desc_str(const struct pdesc *d, char *buf, size_t len)
{
	static const char *const kinds[] = { "unmapped", "zero", "pattern",
					     "random" };

	snprintf(buf, len, "%s %u/%u%s", kinds[d->kind], d->pat, d->val,
		 d->ro ? " ro" : "");
	return buf;
}

/* Checks pages [a, b) of region r, at addr (the region or its scratch). */
static bool verify_at(struct thread *t, int r, const char *addr, int a, int b,
		      const char *when)
{
	uint64_t want[PG / 8];
	int i, bad = 0;
	char dbuf[64];

	for (i = a; i < b; i++) {
		const struct pdesc *d = &reg[r].d[i];
		const uint64_t *got = (const uint64_t *)(addr + (size_t)i * PG);
		size_t w;

		if (d->kind == P_UNMAPPED)
			continue;
		page_expect(d, want);
		if (!memcmp(got, want, PG))
			continue;
		bad++;
		if (bad > 3)
			continue;
		for (w = 0; w < PG / 8 && got[w] == want[w]; w++)
			;
		fail(t, "MISMATCH after %s: region %d page %d (%p, pfn %#llx) should be %s; word %zu is %#llx, not %#llx\n",
		     when, r, i, (void *)got,
		     (unsigned long long)pfn_of(got),
		     desc_str(d, dbuf, sizeof(dbuf)), w,
		     (unsigned long long)got[w], (unsigned long long)want[w]);
	}
	atomic_fetch_add(&sh->verified_pages, b - a);
	if (bad)
		atomic_fetch_add(&sh->mismatches, bad);
	return bad == 0;
}

static bool verify(struct thread *t, int r, const char *when)
{
	if (reg[r].retired)
		return true;
	return verify_at(t, r, reg[r].base, 0, REGION_PAGES, when);
}

static void check_ret(struct thread *t, const char *what, int r, int a, int b,
		      int ret, int want)
{
	if (ret == want)
		return;
	atomic_fetch_add(&sh->bad_errno, 1);
	fail(t, "%s on region %d pages [%d, %d): %s, expected %s\n", what, r,
	     a, b, ret ? strerror(ret) : "success",
	     want ? strerror(want) : "success");
}

/* ---- regions ---- */

static bool region_create(uint64_t *s, struct region *g)
{
	char *res = mmap(NULL, RESERVE_SIZE + 2 * MIB, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *base;
	int i;

	if (res == MAP_FAILED)
		return false;
	/* 2 MiB aligned, with at least a guard page of PROT_NONE before */
	base = (char *)(((uintptr_t)res + PG + 2 * MIB - 1) & ~(2 * MIB - 1));
	if (mmap(base, REGION_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		return false;
	g->base = base;
	g->scratch = base + SCRATCH_OFF;
	g->retired = false;
	g->thp = (int)rnd_below(s, 3) - 1;
	if (g->thp > 0)
		madvise(base, REGION_SIZE, MADV_HUGEPAGE);
	else if (g->thp < 0)
		madvise(base, REGION_SIZE, MADV_NOHUGEPAGE);
	for (i = 0; i < REGION_PAGES; i++) {
		struct pdesc *d = &g->d[i];

		d->ro = 0;
		d->pat = 0;
		d->val = 0;
		d->kind = P_ZERO;
		if (rnd_below(s, 10) == 0)
			continue;	/* never touched */
		random_desc(s, d);
		page_write(base + (size_t)i * PG, d);
	}
	return true;
}

static bool has_hole(int r, int a, int b)
{
	int i;

	for (i = a; i < b; i++)
		if (reg[r].d[i].kind == P_UNMAPPED)
			return true;
	return false;
}

/* A random range of pages [*a, *b) of a region. */
static void pick_range(uint64_t *s, int *a, int *b)
{
	unsigned int mode = rnd_below(s, 10), len;

	if (mode < 2) {
		*a = 0;
		*b = REGION_PAGES;
		return;
	}
	if (mode < 4)
		len = 1;
	else if (mode < 8)
		len = 1 + rnd_below(s, 64);
	else
		len = 1 + rnd_below(s, REGION_PAGES);
	*a = rnd_below(s, REGION_PAGES - len + 1);
	*b = *a + len;
}

/* Maps the holes in [a, b) again; false when the region was lost. */
static bool fill_holes(struct thread *t, int r, int a, int b)
{
	int i = a, j;

	while (i < b) {
		char *p;

		if (reg[r].d[i].kind != P_UNMAPPED) {
			i++;
			continue;
		}
		for (j = i; j < b && reg[r].d[j].kind == P_UNMAPPED; j++)
			;
		p = mmap(reg[r].base + (size_t)i * PG, (size_t)(j - i) * PG,
			 PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			 -1, 0);
		if (p == MAP_FAILED) {
			/* something else took the address range */
			upm_msg("%s: region %d lost its pages [%d, %d) (%s): retired\n",
				who(), r, i, j, strerror(errno));
			reg[r].retired = true;
			return false;
		}
		if (p != reg[r].base + (size_t)i * PG) {
			munmap(p, (size_t)(j - i) * PG);
			reg[r].retired = true;
			return false;
		}
		if (reg[r].thp < 0)
			madvise(p, (size_t)(j - i) * PG, MADV_NOHUGEPAGE);
		for (; i < j; i++) {
			reg[r].d[i].kind = P_ZERO;
			reg[r].d[i].ro = 0;
			reg[r].d[i].val = 0;
		}
	}
	(void)t;
	return true;
}

/* The VMA around page i of region r (from /proc/self/maps), clipped to
 * the region.
 */
static bool vma_around(int r, int i, int *a, int *b)
{
	uintptr_t base = (uintptr_t)reg[r].base;
	uintptr_t addr = base + (uintptr_t)i * PG;
	unsigned long s, e;
	char line[256];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s <= addr &&
		    addr < e) {
			found = true;
			break;
		}
	fclose(f);
	if (!found)
		return false;
	*a = s <= base ? 0 : (s - base) / PG;
	*b = e >= base + REGION_SIZE ? REGION_PAGES : (e - base) / PG;
	return *a <= i && i < *b;
}

static int madv(void *p, size_t len, int advice)
{
	return madvise(p, len, advice) ? errno : 0;
}

/* ---- operations ---- */

static void do_op(struct thread *t, int op, int r)
{
	struct region *g = &reg[r];
	uint64_t *s = &t->rng;
	int a, b, i, ret, want;
	char *p;
	size_t len;

	pick_range(s, &a, &b);
	p = g->base + (size_t)a * PG;
	len = (size_t)(b - a) * PG;
	if (op == OP_UPM_ALL) {
		a = 0;
		b = REGION_PAGES;
		p = g->base;
		len = REGION_SIZE;
	}
	want = has_hole(r, a, b) ? ENOMEM : 0;

	switch (op) {
	case OP_UPM_ALL:
	case OP_UPM:
		note_op(t, op, "region %d [%d, %d)", r, a, b);
		ret = upm_call(p, len);
		check_ret(t, "MADV_UPM", r, a, b, ret, want);
		break;
	case OP_WRITE:
		note_op(t, op, "region %d [%d, %d)", r, a, b);
		if (!fill_holes(t, r, a, b))
			return;
		for (i = a; i < b; i++) {
			struct pdesc *d = &g->d[i];

			if (d->ro || (b - a > 8 && rnd_below(s, 4) == 0))
				continue;
			random_desc(s, d);
			page_write(g->base + (size_t)i * PG, d);
		}
		break;
	case OP_DONTNEED:
		note_op(t, op, "region %d [%d, %d)", r, a, b);
		ret = madv(p, len, MADV_DONTNEED);
		check_ret(t, "MADV_DONTNEED", r, a, b, ret, want);
		for (i = a; i < b; i++)
			if (g->d[i].kind != P_UNMAPPED) {
				g->d[i].kind = P_ZERO;
				g->d[i].val = 0;
			}
		break;
	case OP_UNMERGEABLE:
		note_op(t, op, "region %d [%d, %d)", r, a, b);
		ret = madv(p, len, MADV_UNMERGEABLE);
		check_ret(t, "MADV_UNMERGEABLE", r, a, b, ret, want);
		break;
	case OP_PAGEOUT:
		note_op(t, op, "region %d [%d, %d)", r, a, b);
		ret = madv(p, len, MADV_PAGEOUT);
		check_ret(t, "MADV_PAGEOUT", r, a, b, ret, want);
		break;
	case OP_MPROTECT: {
		bool ro = rnd_below(s, 2);

		/* only where nothing is unmapped: mprotect stops at a hole */
		if (want)
			return;
		note_op(t, op, "region %d [%d, %d) %s", r, a, b,
			ro ? "ro" : "rw");
		ret = mprotect(p, len, ro ? PROT_READ :
			       PROT_READ | PROT_WRITE) ? errno : 0;
		check_ret(t, "mprotect", r, a, b, ret, 0);
		if (!ret)
			for (i = a; i < b; i++)
				g->d[i].ro = ro;
		break;
	}
	case OP_MUNMAP:
		if (b - a == REGION_PAGES)
			b = a + 1 + rnd_below(s, 64);
		len = (size_t)(b - a) * PG;
		note_op(t, op, "region %d [%d, %d)", r, a, b);
		ret = munmap(p, len) ? errno : 0;
		check_ret(t, "munmap", r, a, b, ret, 0);
		for (i = a; i < b; i++)
			g->d[i].kind = P_UNMAPPED;
		break;
	case OP_MREMAP_MOVE: {
		int va, vb;
		char *q;

		i = rnd_below(s, REGION_PAGES);
		if (g->d[i].kind == P_UNMAPPED || !vma_around(r, i, &va, &vb))
			return;
		a = va + rnd_below(s, i - va + 1);
		b = i + 1 + rnd_below(s, vb - i);
		p = g->base + (size_t)a * PG;
		len = (size_t)(b - a) * PG;
		q = g->scratch + (size_t)a * PG;
		note_op(t, op, "region %d [%d, %d)", r, a, b);
		if (mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, q) !=
		    q) {
			check_ret(t, "mremap away", r, a, b, errno, 0);
			return;
		}
		if (!verify_at(t, r, g->scratch, a, b, "mremap away"))
			return;
		if (mremap(q, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, p) !=
		    p) {
			check_ret(t, "mremap back", r, a, b, errno, 0);
			g->retired = true;
			return;
		}
		/* keep the scratch range reserved */
		mmap(q, len, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
		     MAP_FIXED_NOREPLACE, -1, 0);
		break;
	}
	case OP_MREMAP_RESIZE: {
		int va, vb, keep;

		i = rnd_below(s, REGION_PAGES);
		if (g->d[i].kind == P_UNMAPPED || !vma_around(r, i, &va, &vb) ||
		    vb - va < 2)
			return;
		keep = 1 + rnd_below(s, vb - va - 1);
		p = g->base + (size_t)va * PG;
		note_op(t, op, "region %d [%d, %d) to %d pages", r, va, vb,
			keep);
		if (mremap(p, (size_t)(vb - va) * PG, (size_t)keep * PG, 0) !=
		    p) {
			check_ret(t, "mremap shrink", r, va, vb, errno, 0);
			return;
		}
		for (i = va + keep; i < vb; i++)
			g->d[i].kind = P_UNMAPPED;
		if (rnd_below(s, 3) == 0)
			break;
		/* grow in place again: the new pages read as zeroes */
		if (mremap(p, (size_t)keep * PG, (size_t)(vb - va) * PG, 0) !=
		    p) {
			check_ret(t, "mremap grow", r, va, vb, errno, 0);
			return;
		}
		for (i = va + keep; i < vb; i++) {
			g->d[i].kind = P_ZERO;
			g->d[i].val = 0;
			g->d[i].ro = g->d[va].ro;
		}
		break;
	}
	case OP_SLEEP:
		note_op(t, op, "-");
		sleep_ms(1 + rnd_below(s, 5));
		break;
	}
}

/* ---- processes and threads ---- */

static void *thread_main(void *arg);

static int pick_op(struct thread *t)
{
	int total = 0, op, x;

	for (op = 0; op < NOPS; op++)
		if (t->id == 0 || (op != OP_FORK && op != OP_EXIT))
			total += op_weight[op];
	x = rnd_below(&t->rng, total);
	for (op = 0; op < NOPS; op++) {
		if (t->id != 0 && (op == OP_FORK || op == OP_EXIT))
			continue;
		if (x < op_weight[op])
			return op;
		x -= op_weight[op];
	}
	return OP_SLEEP;
}

static bool stopping(void)
{
	return atomic_load(&sh->stop) || atomic_load(&proc_stop);
}

/* Regions owned by a thread: r % nthreads == id. */
static int pick_region(struct thread *t)
{
	int n = (nregions - t->id + nthreads - 1) / nthreads, tries;

	for (tries = 0; tries < 8; tries++) {
		int r = t->id + nthreads * (int)rnd_below(&t->rng, n);

		if (!reg[r].retired)
			return r;
	}
	return -1;
}

static void start_threads(void)
{
	int i;

	for (i = 1; i < nthreads; i++) {
		thr[i].id = i;
		thr[i].rng = mix64(proc_seed ^ (0x1000ULL * i));
		thr[i].nlog = 0;
		if (pthread_create(&thr[i].th, NULL, thread_main, &thr[i])) {
			fail(NULL, "pthread_create: %s\n", strerror(errno));
			_exit(1);
		}
	}
}

static void reap_children(bool block)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, block ? 0 : WNOHANG)) > 0) {
		live_children--;
		if (WIFSIGNALED(status) ||
		    (WIFEXITED(status) && WEXITSTATUS(status) > 1))
			fail(NULL, "child %d ended with status %#x\n", (int)pid,
			     status);
	}
}

static void proc_exit(struct thread *t)
{
	int i, bad = 0;

	atomic_store(&proc_stop, 1);
	atomic_store(&pause_req, 0);
	for (i = 1; i < nthreads; i++)
		pthread_join(thr[i].th, NULL);
	for (i = 0; i < nregions; i++)
		if (!verify(t, i, "the last step"))
			bad = 1;
	reap_children(true);
	atomic_fetch_sub(&sh->live, 1);
	fflush(stdout);
	_exit(bad || atomic_load(&sh->failed) ? 1 : 0);
}

/* Thread 0 forks with the other threads parked between steps. */
static void do_fork(struct thread *t)
{
	uint64_t child_seed = rnd(&t->rng);
	pid_t pid;
	int i;

	if (depth >= MAX_DEPTH || live_children >= MAX_LIVE_CHILDREN)
		return;
	note_op(t, OP_FORK, "seed %#llx", (unsigned long long)child_seed);
	atomic_store(&pause_req, 1);
	while (atomic_load(&parked) < nthreads - 1 && !stopping())
		sched_yield();
	if (stopping()) {
		atomic_store(&pause_req, 0);
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		atomic_store(&pause_req, 0);
		check_ret(t, "fork", -1, 0, 0, errno, 0);
		return;
	}
	if (pid == 0) {
		depth++;
		live_children = 0;
		proc_seed = child_seed;
		proc_steps_max = 20 + rnd_below(&child_seed, 200);
		atomic_store(&proc_steps, 0);
		atomic_store(&pause_req, 0);
		atomic_store(&parked, 0);
		atomic_fetch_add(&sh->procs, 1);
		atomic_fetch_add(&sh->live, 1);
		t->rng = mix64(proc_seed);
		t->nlog = 0;
		/* the child checks what it inherited first */
		for (i = 0; i < nregions; i++)
			verify(t, i, "fork (in the child)");
		start_threads();
		return;
	}
	live_children++;
	sh->pids[atomic_fetch_add(&sh->npids, 1) % MAX_PIDS] = pid;
	atomic_store(&pause_req, 0);
	for (i = 0; i < nregions; i++)
		if (i % nthreads == 0)
			verify(t, i, "fork (in the parent)");
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;

	while (!stopping()) {
		int op, r;

		if (atomic_load(&pause_req)) {
			if (t->id == 0)
				continue;
			atomic_fetch_add(&parked, 1);
			while (atomic_load(&pause_req) && !stopping())
				sleep_ms(1);
			atomic_fetch_sub(&parked, 1);
			continue;
		}
		if (t->id == 0) {
			reap_children(false);
			if (proc_steps_max &&
			    atomic_load(&proc_steps) >= proc_steps_max)
				proc_exit(t);
		}
		op = pick_op(t);
		if (op == OP_FORK) {
			do_fork(t);
			continue;
		}
		if (op == OP_EXIT) {
			note_op(t, op, "-");
			proc_exit(t);
		}
		r = pick_region(t);
		if (r < 0) {
			sleep_ms(5);
			continue;
		}
		do_op(t, op, r);
		verify(t, r, op_names[op]);
		/* and another region of this thread's, unchanged by the step */
		r = pick_region(t);
		if (r >= 0)
			verify(t, r, op_names[op]);
		atomic_fetch_add(&proc_steps, 1);
		atomic_fetch_add(&sh->steps, 1);
	}
	if (t->id == 0)
		proc_exit(t);
	return NULL;
}

/* A fresh process of slot s, generation gen. */
static void worker(int s, int gen)
{
	uint64_t rs;
	int i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	slot = s;
	depth = 0;
	proc_seed = mix64(run_seed ^ ((uint64_t)s << 40) ^ ((uint64_t)gen << 20));
	proc_steps_max = 0;
	rs = proc_seed;
	reg = mmap(NULL, sizeof(*reg) * nregions, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (reg == MAP_FAILED) {
		fail(NULL, "mmap: %s\n", strerror(errno));
		_exit(1);
	}
	for (i = 0; i < nregions; i++)
		if (!region_create(&rs, &reg[i])) {
			fail(NULL, "cannot map region %d: %s\n", i,
			     strerror(errno));
			_exit(1);
		}
	thr[0].id = 0;
	thr[0].rng = mix64(proc_seed);
	start_threads();
	thread_main(&thr[0]);
	_exit(0);
}

static pid_t spawn(int s, int gen)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		worker(s, gen);
	if (pid > 0) {
		sh->pids[atomic_fetch_add(&sh->npids, 1) % MAX_PIDS] = pid;
		atomic_fetch_add(&sh->procs, 1);
		atomic_fetch_add(&sh->live, 1);
	}
	return pid;
}

/* SIGKILL to every process of this run still there. */
static int kill_all(void)
{
	long i, n = atomic_load(&sh->npids);
	char path[64], comm[32];
	int left = 0;

	for (i = n > MAX_PIDS ? n - MAX_PIDS : 0; i < n; i++) {
		pid_t pid = sh->pids[i % MAX_PIDS];

		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		if (read_str(path, comm, sizeof(comm)) ||
		    strcmp(comm, "upm_stress"))
			continue;
		kill(pid, SIGKILL);
		left++;
	}
	return left;
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"Usage: %s [-d SECONDS] [-s SEED] [-p PROCS] [-t THREADS] [-r REGIONS] [-S] [-k]\n",
		prog);
	exit(2);
}

int main(int argc, char **argv)
{
	int duration = 60, nprocs = 4, opt, i;
	bool want_swap = true, ksmd = false, seeded = false;
	struct ksm_settings saved;
	struct ksm_stats base, seen;
	struct upm_stats ua, ub, ud;
	long base_rmap, rmap_seen = 0, ops_total = 0;
	unsigned long idx_seen = 0;
	pid_t slots[64];
	int gens[64];
	char swapdev[64] = "";
	uint64_t ctl_rng;
	double t0, next_knob, deadline;
	int status;
	pid_t pid;
	bool ok, killed = false;

	while ((opt = getopt(argc, argv, "d:s:p:t:r:Skh")) != -1) {
		switch (opt) {
		case 'd':
			duration = atoi(optarg);
			break;
		case 's':
			run_seed = strtoull(optarg, NULL, 0);
			seeded = true;
			break;
		case 'p':
			nprocs = atoi(optarg);
			break;
		case 't':
			nthreads = atoi(optarg);
			break;
		case 'r':
			nregions = atoi(optarg);
			break;
		case 'S':
			want_swap = false;
			break;
		case 'k':
			ksmd = true;
			break;
		default:
			usage(argv[0]);
		}
	}
	if (duration < 1 || nprocs < 1 || nprocs > 64 || nthreads < 1 ||
	    nthreads > MAX_THREADS || nregions < nthreads ||
	    nregions > MAX_REGIONS)
		usage(argv[0]);
	if (!seeded)
		run_seed = mix64((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));

	ksft_print_header();
	ksft_print_msg("seed %#llx, %d s, %d processes x %d threads x %d MiB, %s, ksmd %s\n",
		       (unsigned long long)run_seed, duration, nprocs, nthreads,
		       nregions * 2, want_swap ? "zram swap" : "no swap set up",
		       ksmd ? "on and off" : "left as it is");
	ksft_print_msg("replay: ./upm_stress -s %#llx -d %d -p %d -t %d -r %d%s%s\n",
		       (unsigned long long)run_seed, duration, nprocs,
		       nthreads, nregions, want_swap ? "" : " -S",
		       ksmd ? " -k" : "");
	upm_require("KSM sysfs");
	ksft_set_plan(6);

	sh = shared_alloc(sizeof(*sh));
	if (!sh)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	for (i = 0; i < NPAT; i++)
		fill_page(pattern[i], run_seed, 1000 + i);

	ksm_settings_save(&saved);
	ctl_rng = mix64(run_seed ^ 0xc0ffee);
	/* with no KSM page around, max_page_sharing may change: chains */
	if (rnd_below(&ctl_rng, 2) &&
	    write_str(KSM_SYSFS "max_page_sharing", "8") == 0)
		ksft_print_msg("max_page_sharing 8: stable node chains\n");
	if (want_swap && swap_areas() == 0 &&
	    zram_swap_on(128, swapdev, sizeof(swapdev)))
		swapdev[0] = 0;
	if (want_swap && !swapdev[0])
		ksft_print_msg("swap: %d area(s) already, none set up\n",
			       swap_areas());
	/* stale entries of earlier tests' pages leave in the background */
	upm_wait_index(0, 10000, NULL);
	ksm_stats_read(&base);
	base_rmap = ksm_rmap_items();
	upm_stats_read(&ua);

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	t0 = now_sec();
	deadline = t0 + duration;
	next_knob = t0 + 1 + rnd_below(&ctl_rng, 4);
	for (i = 0; i < nprocs; i++) {
		gens[i] = 0;
		slots[i] = spawn(i, 0);
		if (slots[i] < 0)
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	}
	while (!atomic_load(&sh->stop)) {
		double now = now_sec();

		if (now >= deadline)
			break;
		if (now >= next_knob) {
			/* KSM's knobs that may change at any time */
			write_str(KSM_SYSFS "use_zero_pages",
				  rnd_below(&ctl_rng, 2) ? "1" : "0");
			if (ksmd)
				write_str(KSM_SYSFS "run",
					  rnd_below(&ctl_rng, 2) ? "1" : "0");
			next_knob = now + 1 + rnd_below(&ctl_rng, 4);
		}
		pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0) {
			sleep_ms(20);
			continue;
		}
		if (WIFSIGNALED(status) ||
		    (WIFEXITED(status) && WEXITSTATUS(status) > 1))
			fail(NULL, "process %d ended with status %#x\n",
			     (int)pid, status);
		for (i = 0; i < nprocs; i++)
			if (slots[i] == pid)
				slots[i] = spawn(i, ++gens[i]);
	}
	atomic_store(&sh->stop, 1);
	/* everything left, orphans included, is ours to reap (subreaper) */
	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid < 0)
			break;
		if (pid == 0) {
			double late = now_sec() - deadline;

			if (late > 120 && !killed) {
				fail(NULL, "processes did not stop within 120 s after the end: killing %d\n",
				     kill_all());
				killed = true;
			}
			if (late > 180) {
				fail(NULL, "processes do not die (stuck in the kernel? see the console): giving up\n");
				break;
			}
			sleep_ms(20);
			continue;
		}
		if (WIFSIGNALED(status) ||
		    (WIFEXITED(status) && WEXITSTATUS(status) > 1))
			fail(NULL, "process %d ended with status %#x\n",
			     (int)pid, status);
	}
	upm_stats_read(&ub);
	upm_stats_delta(&ua, &ub, &ud);
	for (i = 0; i < NOPS; i++)
		ops_total += atomic_load(&sh->ops[i]);
	ksft_print_msg("%.1f s: %ld processes, %ld steps (%ld ops), %ld pages verified\n",
		       now_sec() - t0, atomic_load(&sh->procs),
		       atomic_load(&sh->steps), ops_total,
		       atomic_load(&sh->verified_pages));
	for (i = 0; i < NOPS; i++)
		ksft_print_msg("  %-14s %ld\n", op_names[i],
			       atomic_load(&sh->ops[i]));
	upm_stats_print("stress", &ud);

	if (atomic_load(&sh->failed))
		ksft_print_msg("first failure: %s", sh->msg);
	ksft_test_result(atomic_load(&sh->mismatches) == 0,
			 "no page differed from its shadow (%ld mismatches)\n",
			 atomic_load(&sh->mismatches));
	ksft_test_result(atomic_load(&sh->bad_errno) == 0,
			 "no unexpected return value (%ld)\n",
			 atomic_load(&sh->bad_errno));
	ksft_test_result(!atomic_load(&sh->failed),
			 "every process ended normally, nothing else failed\n");
	ok = upm_stats_balanced(&ud, "stress") && ud.pages_merged > 0 &&
	     ud.pages_new_ksm > 0;
	ksft_test_result(ok, "UPM counters add up, pages were merged (%ld merged, %ld new)\n",
			 (long)ud.pages_merged, (long)ud.pages_new_ksm);

	/* ksmd, when it ran, frees what exited processes left behind */
	if (ksmd)
		write_str(KSM_SYSFS "run", "1");
	ok = ksm_wait_clean(&base, base_rmap, 15000, &seen, &rmap_seen);
	if (!ok)
		ksft_print_msg("after exit: pages_shared %ld (was %ld) pages_sharing %ld (was %ld) ksm_zero_pages %ld (was %ld) rmap items %ld (was %ld)\n",
			       seen.pages_shared, base.pages_shared,
			       seen.pages_sharing, base.pages_sharing,
			       seen.ksm_zero_pages, base.ksm_zero_pages,
			       rmap_seen, base_rmap);
	ksft_test_result(ok, "KSM counters and rmap items back after all exited\n");
	if (ksmd)
		write_str(KSM_SYSFS "run", "0");
	ok = upm_wait_index(ua.index_entries, 10000, &idx_seen);
	if (!ok)
		ksft_print_msg("index_entries %lu, was %lu before\n", idx_seen,
			       (unsigned long)ua.index_entries);
	ksft_test_result(ok, "UPM index back after all exited\n");

	if (swapdev[0] && zram_swap_off(swapdev))
		ksft_print_msg("could not take %s down\n", swapdev);
	ksm_settings_restore(&saved);
	if (ksft_get_fail_cnt())
		ksft_print_msg("FAILED with seed %#llx; replay: ./upm_stress -s %#llx -d %d -p %d -t %d -r %d%s%s\n",
			       (unsigned long long)run_seed,
			       (unsigned long long)run_seed, duration, nprocs,
			       nthreads, nregions, want_swap ? "" : " -S",
			       ksmd ? " -k" : "");
	ksft_finished();
}
