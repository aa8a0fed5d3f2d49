// SPDX-License-Identifier: GPL-2.0
/*
 * Writers racing MADV_UPM: threads keep storing into a region (each to its
 * own word of a page, most of the time putting the page back to its
 * original, duplicated contents so that it merges again) while another
 * thread advises the whole region over and over. No store may be lost:
 * every writer re-reads what it stored, and at the end memory must equal
 * what each writer last wrote.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define NPAGES 1024		/* 4 MiB, 2 MiB aligned: starts as THPs */
#define GROUPS 16		/* page j starts as pattern j % GROUPS */
#define WRITERS 3
#define SLOT(t) (64 * (t) + 5)	/* the word of a page writer t owns */
#define SECONDS 3.0

static char *region;
static atomic_int stop;
static uint64_t pattern[GROUPS][PG / 8];

struct writer {
	pthread_t th;
	int id;
	uint64_t last[NPAGES];	/* what this writer last stored per page */
	long stores, lost;
};

struct merger {
	pthread_t th;
	long calls, errors;
	int first_error;
};

static inline uint64_t *slot(size_t j, int t)
{
	return (uint64_t *)(region + j * PG) + SLOT(t);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t rnd = 0x9e3779b97f4a7c15ULL * (w->id + 1), x;
	volatile uint64_t *s;
	size_t j;
	int spin;

	for (j = 0; j < NPAGES; j++)
		w->last[j] = pattern[j % GROUPS][SLOT(w->id)];
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		j = rnd % NPAGES;
		s = slot(j, w->id);
		if (*s != w->last[j])
			w->lost++;
		x = ((uint64_t)(w->id + 1) << 56) | (uint64_t)w->stores;
		*s = x;
		w->last[j] = x;
		w->stores++;
		for (spin = 0; spin < 200; spin++)
			__asm__ volatile("" ::: "memory");
		if (*s != x)
			w->lost++;
		/* usually restore the page, so it is a duplicate again */
		if ((rnd >> 40) % 4) {
			*s = pattern[j % GROUPS][SLOT(w->id)];
			w->last[j] = *s;
			w->stores++;
		}
	}
	return NULL;
}

static void *merger_main(void *arg)
{
	struct merger *m = arg;
	int r;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		r = upm_call(region, NPAGES * PG);
		m->calls++;
		if (r) {
			if (!m->errors)
				m->first_error = r;
			m->errors++;
		}
	}
	return NULL;
}

static int race(void *arg)
{
	static struct writer w[WRITERS];
	struct merger m = { 0 };
	struct upm_stats a, b, d;
	long lost = 0, stores = 0, wrong = 0;
	size_t j, k;
	int t, fail = 0;
	double t0;
	(void)arg;

	region = map_anon(NPAGES * PG, 1);
	if (!region)
		return 1;
	for (k = 0; k < GROUPS; k++)
		fill_page(pattern[k], 0x6600, k);
	for (j = 0; j < NPAGES; j++)
		memcpy(region + j * PG, pattern[j % GROUPS], PG);

	upm_stats_read(&a);
	atomic_store(&stop, 0);
	for (t = 0; t < WRITERS; t++) {
		w[t].id = t;
		pthread_create(&w[t].th, NULL, writer_main, &w[t]);
	}
	pthread_create(&m.th, NULL, merger_main, &m);
	t0 = now_sec();
	while (now_sec() - t0 < SECONDS)
		sleep_ms(50);
	atomic_store(&stop, 1);
	pthread_join(m.th, NULL);
	for (t = 0; t < WRITERS; t++) {
		pthread_join(w[t].th, NULL);
		lost += w[t].lost;
		stores += w[t].stores;
	}
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, &d);
	upm_stats_print("race", &d);

	for (j = 0; j < NPAGES; j++) {
		uint64_t *p = (uint64_t *)(region + j * PG);
		bool bad = false;

		for (k = 0; k < PG / 8; k++) {
			uint64_t want = pattern[j % GROUPS][k];

			for (t = 0; t < WRITERS; t++)
				if (k == (size_t)SLOT(t))
					want = w[t].last[j];
			if (p[k] != want)
				bad = true;
		}
		if (bad && wrong++ < 3)
			ksft_print_msg("page %zu differs from what was written last\n",
				       j);
	}
	ksft_print_msg("%ld stores by %d writers, %ld MADV_UPM calls in %.1f s\n",
		       stores, WRITERS, m.calls, SECONDS);
	if (m.errors) {
		ksft_print_msg("%ld MADV_UPM calls failed, first with %s\n",
			       m.errors, strerror(m.first_error));
		fail = 1;
	}
	if (lost) {
		ksft_print_msg("%ld stores were not there when re-read\n",
			       lost);
		fail = 1;
	}
	if (wrong) {
		ksft_print_msg("%ld pages differ from the writers' records\n",
			       wrong);
		fail = 1;
	}
	if (!upm_stats_balanced(&d, "race"))
		fail = 1;
	if (d.pages_merged == 0) {
		ksft_print_msg("no page was merged while the writers ran: nothing tested\n");
		fail = 1;
	}
	munmap(region, NPAGES * PG);
	return fail;
}

int main(void)
{
	struct ksm_stats base;
	bool ok;

	ksft_print_header();
	upm_require("KSM sysfs");
	ksft_set_plan(2);
	ksm_stats_read(&base);
	ksft_test_result(run_child(race, NULL) == 0,
			 "%d writer threads racing repeated MADV_UPM: no store lost\n",
			 WRITERS);
	ok = ksm_back_after_exit(&base, NULL);
	ksft_test_result(ok, "race: KSM counters back after exit\n");
	ksft_finished();
}
