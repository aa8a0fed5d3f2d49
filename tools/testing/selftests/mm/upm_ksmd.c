// SPDX-License-Identifier: GPL-2.0
/*
 * MADV_UPM while ksmd scans at full speed: two processes merge their
 * buffers with MADV_UPM while ksmd works on the same (now mergeable) memory
 * and on a third process's MADV_MERGEABLE copy. Pages end up shared,
 * contents intact, counters sane; ksmd is stopped and KSM's settings
 * restored afterwards. Then: candidates whose twins ksmd merged are merged
 * with them, by ksmd, or by a MADV_UPM call over the merged pages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define NPAGES (32 * MIB / PG)
#define SEED 0x9100

enum { CMD_SETUP = 1, CMD_SETUP_KSM, CMD_ADVISE, CMD_MEASURE };

struct shared {
	uint64_t pfn[3][NPAGES];
	long bad[3];
};

static struct shared *sh;
static struct ksm_settings saved;
static char *buf;

static long helper(int idx, int cmd, void *arg)
{
	(void)arg;

	switch (cmd) {
	case CMD_SETUP:
	case CMD_SETUP_KSM:
		buf = map_anon(NPAGES * PG, 0);
		if (!buf)
			return -ENOMEM;
		fill_pages(buf, NPAGES, SEED);
		if (cmd == CMD_SETUP_KSM &&
		    madvise(buf, NPAGES * PG, MADV_MERGEABLE))
			return -errno;
		return 0;
	case CMD_ADVISE:
		return upm_call(buf, NPAGES * PG);
	case CMD_MEASURE:
		pfns_of(buf, NPAGES, sh->pfn[idx]);
		sh->bad[idx] = count_bad_pages(buf, NPAGES, SEED);
		return 0;
	}
	return -EINVAL;
}

static bool sane(const char *label, const struct ksm_stats *k, long maxpages)
{
	const long v[] = { k->pages_shared, k->pages_sharing,
			   k->pages_unshared, k->pages_volatile,
			   k->ksm_zero_pages };
	static const char *const n[] = { "pages_shared", "pages_sharing",
					 "pages_unshared", "pages_volatile",
					 "ksm_zero_pages" };
	bool ok = true;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(v); i++)
		if (v[i] < 0 || v[i] > maxpages) {
			ksft_print_msg("%s: %s = %ld is absurd (RAM is %ld pages)\n",
				       label, n[i], v[i], maxpages);
			ok = false;
		}
	return ok;
}

static bool delta_sane(const char *label, const struct upm_stats *d)
{
	const unsigned long lim = 1UL << 40;

	if (d->calls < lim && d->pages_scanned < lim && d->pages_merged < lim &&
	    d->pages_new_ksm < lim && d->pages_already_merged < lim &&
	    d->pages_skipped < lim && d->pages_zero < lim)
		return true;
	ksft_print_msg("%s: a UPM counter went backwards\n", label);
	return false;
}

static void restore(void)
{
	ksm_settings_restore(&saved);
}

static long pages_differ(int a, int b)
{
	long n = 0;
	size_t j;

	for (j = 0; j < NPAGES; j++)
		n += !sh->pfn[a][j] || sh->pfn[a][j] != sh->pfn[b][j];
	return n;
}

/*
 * Let ksmd run until helpers a and b share every page, or 180 s: a cap, not
 * a claim of speed (the debug kernel on a busy host needed more than 60).
 */
static long ksmd_until_shared(struct worker *w, int a, int b, double *secs)
{
	long n = NPAGES;
	double t0 = now_sec();

	if (write_str(KSM_SYSFS "run", "1"))
		return -1;
	while (now_sec() - t0 < 180) {
		worker_call(&w[a], CMD_MEASURE);
		worker_call(&w[b], CMD_MEASURE);
		n = pages_differ(a, b);
		if (!n)
			break;
		sleep_ms(200);
	}
	write_str(KSM_SYSFS "run", "0");
	*secs = now_sec() - t0;
	return n;
}

/*
 * A MADV_UPM candidate whose twins B and C leave to ksmd (MADV_MERGEABLE).
 * by_call false: A advises first, ksmd at full speed makes KSM pages of B's
 * and C's pages, and must then merge A's candidates with them as any page
 * with a KSM twin. by_call true: A advises after B and C registered, and
 * ksmd scans 2 x NPAGES pages a batch, 10 s apart (a batch also ends with
 * a full scan): B and C, A; B and C, which makes the KSM pages; then it is
 * stopped, before the batch that would take A's candidates. B advises its
 * merged pages, and the call must merge A's candidates into them.
 */
static bool test_ksmd_made(bool by_call)
{
	struct ksm_stats base, seen;
	struct worker w[3];
	struct upm_stats d;
	long r, left;
	bool ok = true;
	double secs;
	char scan[32];
	int i;

	ksm_stats_read(&base);
	snprintf(scan, sizeof(scan), "%lu", 2 * NPAGES);
	if (write_str(KSM_SYSFS "run", "0") ||
	    write_str(KSM_SYSFS "pages_to_scan", by_call ? scan : "100000") ||
	    write_str(KSM_SYSFS "sleep_millisecs", by_call ? "10000" : "0"))
		ksft_exit_fail_msg("cannot set ksmd up: %s\n", strerror(errno));
	for (i = 0; i < 3; i++)
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	/* the order in which the mms join ksmd's list */
	for (i = by_call ? 1 : 0; i < (by_call ? 4 : 3); i++)
		if (worker_call(&w[i % 3], i % 3 ? CMD_SETUP_KSM : CMD_SETUP)) {
			ksft_print_msg("helper %d: setup failed\n", i % 3);
			ok = false;
		} else if (i % 3 == 0) {
			r = worker_call_counted(&w[0], CMD_ADVISE,
						"ksmd-made, A", &d);
			if (r || d.pages_candidate != NPAGES) {
				ksft_print_msg("A: madvise %s, %ld candidates (expected %lu)\n",
					       strerror(r),
					       (long)d.pages_candidate, NPAGES);
				ok = false;
			}
		}

	left = ksmd_until_shared(w, 1, 2, &secs);
	worker_call(&w[0], CMD_MEASURE);
	ksft_print_msg("ksmd merged B and C in %.1f s (%ld pages not); A's pages not B's: %ld of %lu\n",
		       secs, left, pages_differ(0, 1), NPAGES);
	ok = ok && left == 0;
	if (!by_call) {
		left = ksmd_until_shared(w, 0, 1, &secs);
		ksft_print_msg("ksmd: %ld of A's pages not merged after %.1f s more\n",
			       left, secs);
		ok = ok && left == 0;
	} else if (ok && pages_differ(0, 1) != NPAGES) {
		ksft_print_msg("set-up: ksmd went on to A's pages\n");
		ok = false;
	} else if (ok) {
		r = worker_call_counted(&w[1], CMD_ADVISE, "ksmd-made, B", &d);
		if (r || d.pages_already_merged != NPAGES) {
			ksft_print_msg("B: madvise %s, %ld already merged (expected %lu)\n",
				       strerror(r),
				       (long)d.pages_already_merged, NPAGES);
			ok = false;
		}
	}
	for (i = 0; i < 3; i++)
		worker_call(&w[i], CMD_MEASURE);
	if (pages_differ(0, 1) || pages_differ(1, 2) || sh->bad[0] ||
	    sh->bad[1] || sh->bad[2]) {
		ksft_print_msg("at the end: %ld of A's pages not B's, %ld of C's; %ld %ld %ld pages changed\n",
			       pages_differ(0, 1), pages_differ(1, 2),
			       sh->bad[0], sh->bad[1], sh->bad[2]);
		ok = false;
	}
	for (i = 0; i < 3; i++)
		worker_stop(&w[i]);
	if (!ksm_back_after_exit(&base, &seen))
		ok = false;
	return ok;
}

int main(void)
{
	long maxpages = sysconf(_SC_PHYS_PAGES);
	struct worker w[3];
	struct ksm_stats base, k, seen;
	struct upm_stats d;
	bool ok_merge = true, ok_sane = true, ok_ksmd = false, ok_back;
	char label[32];
	size_t j, differ = 0, c_differ = NPAGES;
	double t0;
	long r;
	int i;

	upm_test_start(6);
	if (ksm_settings_save(&saved))
		ksft_exit_fail_msg("cannot read KSM settings\n");
	atexit(restore);
	sh = shared_alloc(sizeof(*sh));
	if (!sh)
		ksft_exit_fail_msg("no memory for results\n");
	ksm_stats_read(&base);

	if (ksm_run_fastest())
		ksft_exit_fail_msg("cannot start ksmd: %s\n", strerror(errno));

	/* 0 and 1 use MADV_UPM, 2 leaves its copy to ksmd */
	for (i = 0; i < 3; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		if (worker_call(&w[i], i == 2 ? CMD_SETUP_KSM : CMD_SETUP)) {
			ksft_print_msg("helper %d: setup failed\n", i);
			ok_merge = false;
		}
	}
	for (i = 0; i < 2; i++) {
		snprintf(label, sizeof(label), "caller %d", i);
		r = worker_call_counted(&w[i], CMD_ADVISE, label, &d);
		if (r) {
			ksft_print_msg("%s: madvise(MADV_UPM) failed: %s\n",
				       label, strerror(r));
			ok_merge = false;
		}
		if (d.pages_scanned != NPAGES) {
			ksft_print_msg("%s: expected pages_scanned +%lu, saw %+ld\n",
				       label, NPAGES, (long)d.pages_scanned);
			ok_merge = false;
		}
		ok_sane &= upm_stats_balanced(&d, label);
		ok_sane &= delta_sane(label, &d);
		ksm_stats_read(&k);
		ok_sane &= sane(label, &k, maxpages);
	}
	worker_call(&w[0], CMD_MEASURE);
	worker_call(&w[1], CMD_MEASURE);
	for (j = 0; j < NPAGES; j++)
		if (!sh->pfn[0][j] || sh->pfn[0][j] != sh->pfn[1][j])
			if (differ++ < 3)
				ksft_print_msg("page %zu: pfn %#lx vs %#lx\n", j,
					       (long)sh->pfn[0][j],
					       (long)sh->pfn[1][j]);
	if (differ) {
		ksft_print_msg("%zu of %lu pages not shared by the two MADV_UPM callers\n",
			       differ, NPAGES);
		ok_merge = false;
	}
	if (sh->bad[0] || sh->bad[1]) {
		ksft_print_msg("contents changed: %ld %ld pages\n", sh->bad[0],
			       sh->bad[1]);
		ok_merge = false;
	}

	/* ksmd merges the third copy with the pages MADV_UPM made */
	t0 = now_sec();
	while (now_sec() - t0 < 20) {
		worker_call(&w[2], CMD_MEASURE);
		c_differ = 0;
		for (j = 0; j < NPAGES; j++)
			c_differ += sh->pfn[2][j] != sh->pfn[0][j];
		ksm_stats_read(&k);
		ok_sane &= sane("while ksmd runs", &k, maxpages);
		if (!c_differ)
			break;
		sleep_ms(200);
	}
	ksft_print_msg("ksmd: %zu pages of the MADV_MERGEABLE copy unmerged after %.1f s; full_scans %+ld\n",
		       c_differ, now_sec() - t0, k.full_scans - base.full_scans);
	ok_ksmd = c_differ == 0 && sh->bad[2] == 0;
	worker_call(&w[0], CMD_MEASURE);
	if (sh->bad[0] || sh->bad[2]) {
		ksft_print_msg("contents changed while ksmd ran: %ld %ld pages\n",
			       sh->bad[0], sh->bad[2]);
		ok_merge = false;
	}

	if (ksm_settings_restore(&saved))
		ksft_print_msg("could not restore KSM settings\n");
	for (i = 0; i < 3; i++)
		worker_stop(&w[i]);
	ok_back = ksm_back_after_exit(&base, &seen);
	ok_sane &= sane("after exit", &seen, maxpages);

	ksft_test_result(ok_merge, "with ksmd scanning at full speed, two MADV_UPM callers share every page, contents intact\n");
	ksft_test_result(ok_sane, "with ksmd running, counters balanced and sane\n");
	ksft_test_result(ok_ksmd, "ksmd merges a MADV_MERGEABLE copy with the pages MADV_UPM made\n");
	ksft_test_result(ok_back, "ksmd stopped, settings restored, counters back after exit\n");

	ksft_test_result(test_ksmd_made(false), "ksmd merges a MADV_UPM candidate with the KSM page it made of its twins\n");
	ksft_test_result(test_ksmd_made(true), "MADV_UPM over pages ksmd merged merges the candidates of their content into them\n");
	if (ksm_settings_restore(&saved))
		ksft_print_msg("could not restore KSM settings\n");
	ksft_finished();
}
