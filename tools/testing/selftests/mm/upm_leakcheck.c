// SPDX-License-Identifier: GPL-2.0
/*
 * Leak checks around the guest suite.
 *
 *   upm_leakcheck --record   at the start: saves a baseline to BASEFILE
 *   upm_leakcheck            at the very end: compares with it
 *
 * At the end, with every test process gone: no process holds KSM rmap
 * items, pages_shared, pages_sharing, ksm_zero_pages and the rmap items
 * (derived from general_profit) are back at the baseline, UPM's content
 * index is empty, MemAvailable is back within a tolerance, and a kmemleak
 * scan (debug kernels) reports nothing. Without a baseline file the KSM
 * counters are compared with 0 and MemAvailable is not compared.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define BASEFILE "/tmp/upm_leakcheck.base"
#define MEMFILE "/tmp/upm_leakcheck.meminfo"
#define KMEMLEAK "/sys/kernel/debug/kmemleak"
/* MemAvailable may drop by this much over the suite (slab, page tables) */
#define TOLERANCE_KB (16 * 1024L)
#define TOLERANCE_PCT 1

struct base {
	long mem_available_kb, pages_shared, pages_sharing, ksm_zero_pages,
	     rmap_items, index_entries;
};

/*
 * Free pages held in the per-cpu lists (/proc/zoneinfo "count:"), in kB.
 * MemFree leaves them out, and they grow after large frees (the lists'
 * high marks adapt), which would look like a leak of tens of MiB.
 */
static long pcp_free_kb(void)
{
	char line[256];
	FILE *f = fopen("/proc/zoneinfo", "r");
	long pages = 0, n;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " count: %ld", &n) == 1)
			pages += n;
	fclose(f);
	return pages * (PG / 1024);
}

/*
 * MemAvailable, plus the free pages in per-cpu lists, once the kernel has
 * given back what it can.
 */
static long settled_mem_available(void)
{
	long avail;

	sync();
	write_str("/proc/sys/vm/drop_caches", "3");
	write_str("/proc/sys/vm/compact_memory", "1");
	sleep_ms(500);
	avail = file_field("/proc/meminfo", "MemAvailable");
	return avail < 0 ? avail : avail + pcp_free_kb();
}

/*
 * KASAN keeps freed slab objects in a quarantine of up to 1/32 of memory,
 * which fills over the suite and is not given back on demand.
 */
static bool kasan_kernel(void)
{
	char line[1024];
	struct utsname u;
	bool found = false;
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	ssize_t n;

	if (fd >= 0) {
		while ((n = read(fd, line, sizeof(line) - 1)) > 0 ||
		       (n < 0 && errno == EPIPE)) {
			if (n <= 0)
				continue;	/* overwritten records */
			line[n] = 0;
			if (strstr(line, "KernelAddressSanitizer initialized")) {
				found = true;
				break;
			}
		}
		close(fd);
	}
	if (!found && uname(&u) == 0 && strstr(u.release, "debug"))
		found = true;
	return found;
}

static void read_base(struct base *b)
{
	struct ksm_stats k;
	unsigned long idx = 0;

	ksm_stats_read(&k);
	read_ulong(UPM_SYSFS "index_entries", &idx);
	b->pages_shared = k.pages_shared;
	b->pages_sharing = k.pages_sharing;
	b->ksm_zero_pages = k.ksm_zero_pages;
	b->rmap_items = ksm_rmap_items();
	b->index_entries = idx;
	b->mem_available_kb = settled_mem_available();
}

static void copy_file(const char *from, const char *to)
{
	char buf[8192];
	FILE *in = fopen(from, "r"), *out = fopen(to, "w");
	size_t n;

	while (in && out && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	if (in)
		fclose(in);
	if (out)
		fclose(out);
}

/* Prints the /proc/meminfo lines that moved by more than 1 MiB. */
static void meminfo_diff(void)
{
	char line[256], key[64];
	FILE *f = fopen(MEMFILE, "r");
	long then, now;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63[^:]: %ld", key, &then) != 2)
			continue;
		now = file_field("/proc/meminfo", key);
		if (now >= 0 && labs(now - then) >= 1024)
			ksft_print_msg("  %-16s %9ld kB -> %9ld kB (%+ld)\n", key,
				       then, now, now - then);
	}
	fclose(f);
}

static int record(void)
{
	struct base b;
	FILE *f;

	ksft_print_header();
	upm_require("KSM and UPM counters");
	ksft_set_plan(1);
	read_base(&b);
	/* reports from before the suite (boot) are not the suite's */
	if (access(KMEMLEAK, W_OK) == 0) {
		write_str(KMEMLEAK, "scan");
		write_str(KMEMLEAK, "clear");
		ksft_print_msg("kmemleak: scanned and cleared what boot left\n");
	}
	copy_file("/proc/meminfo", MEMFILE);
	f = fopen(BASEFILE, "w");
	if (!f)
		ksft_exit_fail_msg("%s: %s\n", BASEFILE, strerror(errno));
	fprintf(f, "MemAvailable %ld\npages_shared %ld\npages_sharing %ld\nksm_zero_pages %ld\nrmap_items %ld\nindex_entries %ld\n",
		b.mem_available_kb, b.pages_shared, b.pages_sharing,
		b.ksm_zero_pages, b.rmap_items, b.index_entries);
	fclose(f);
	ksft_print_msg("MemAvailable (with per-cpu free lists) %ld kB, pages_shared %ld, pages_sharing %ld, ksm_zero_pages %ld, rmap items %ld, index_entries %ld\n",
		       b.mem_available_kb, b.pages_shared, b.pages_sharing,
		       b.ksm_zero_pages, b.rmap_items, b.index_entries);
	ksft_test_result_pass("baseline recorded in %s\n", BASEFILE);
	ksft_finished();
}

/* Processes other than this one that still hold KSM rmap items. */
static int ksm_users(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], comm[64] = "?";
		pid_t pid;
		long items;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pid = atoi(e->d_name);
		if (pid == getpid())
			continue;
		items = proc_ksm_stat(pid, "ksm_rmap_items");
		if (items <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		read_str(path, comm, sizeof(comm));
		ksft_print_msg("process %d (%s) still has %ld rmap items\n",
			       (int)pid, comm, items);
		n++;
	}
	closedir(d);
	return n;
}

static void print_kmemleak(const char *report)
{
	const char *p = report;
	int lines = 0;

	while (*p && lines < 60) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		ksft_print_msg("kmemleak: %.*s\n", len, p);
		lines++;
		p += len + (nl ? 1 : 0);
	}
}

static void check_kmemleak(void)
{
	static char report[65536];
	FILE *f;
	size_t n;

	if (access(KMEMLEAK, R_OK)) {
		ksft_test_result_skip("kmemleak scan: no %s (kernel without CONFIG_DEBUG_KMEMLEAK)\n",
				      KMEMLEAK);
		return;
	}
	/* objects are reported once unreferenced for two scans */
	if (write_str(KMEMLEAK, "scan")) {
		ksft_test_result_skip("kmemleak scan: cannot start a scan: %s (disabled?)\n",
				      strerror(errno));
		return;
	}
	sleep(6);
	write_str(KMEMLEAK, "scan");
	f = fopen(KMEMLEAK, "r");
	if (!f) {
		ksft_test_result_fail("kmemleak scan: %s: %s\n", KMEMLEAK,
				      strerror(errno));
		return;
	}
	n = fread(report, 1, sizeof(report) - 1, f);
	report[n] = 0;
	fclose(f);
	if (n)
		print_kmemleak(report);
	ksft_test_result(n == 0, "kmemleak scan reports nothing\n");
}

int main(int argc, char **argv)
{
	struct base b = { -1, 0, 0, 0, 0, 0 };
	struct ksm_stats base, seen;
	long rmap_seen = 0, avail, total, tol;
	unsigned long idx = 0;
	bool have_base = false, ok;
	FILE *f;
	int n;

	if (argc > 1 && !strcmp(argv[1], "--record"))
		return record();
	if (argc > 1) {
		fprintf(stderr, "usage: %s [--record]\n", argv[0]);
		return 2;
	}

	ksft_print_header();
	upm_require("KSM and UPM counters");
	ksft_set_plan(6);
	f = fopen(BASEFILE, "r");
	if (f) {
		have_base = fscanf(f, "MemAvailable %ld\npages_shared %ld\npages_sharing %ld\nksm_zero_pages %ld\nrmap_items %ld\nindex_entries %ld\n",
				   &b.mem_available_kb, &b.pages_shared,
				   &b.pages_sharing, &b.ksm_zero_pages,
				   &b.rmap_items, &b.index_entries) == 6;
		fclose(f);
	}
	if (!have_base) {
		ksft_print_msg("no baseline in %s (run 'upm_leakcheck --record' first): comparing KSM's counters with 0\n",
			       BASEFILE);
		memset(&b, 0, sizeof(b));
		b.mem_available_kb = -1;
	}

	n = ksm_users();
	ksft_test_result(n == 0, "no process is left holding KSM rmap items\n");

	base.pages_shared = b.pages_shared;
	base.pages_sharing = b.pages_sharing;
	base.ksm_zero_pages = b.ksm_zero_pages;
	ok = ksm_wait_clean(&base, -1, 10000, &seen, NULL);
	ksft_print_msg("pages_shared %ld (start %ld), pages_sharing %ld (start %ld), ksm_zero_pages %ld (start %ld)\n",
		       seen.pages_shared, b.pages_shared, seen.pages_sharing,
		       b.pages_sharing, seen.ksm_zero_pages, b.ksm_zero_pages);
	ksft_test_result(ok, "pages_shared, pages_sharing and ksm_zero_pages back to the start\n");

	ok = ksm_wait_clean(&base, b.rmap_items, 5000, NULL, &rmap_seen);
	ksft_print_msg("rmap items %ld (start %ld)\n", rmap_seen, b.rmap_items);
	ksft_test_result(ok, "KSM rmap items back to the start\n");

	/* stale entries of exited processes are pruned in the background */
	ok = upm_wait_index(0, 10000, &idx);
	ksft_print_msg("index_entries %lu (start %ld)\n", idx, b.index_entries);
	ksft_test_result(ok, "UPM's content index is empty\n");

	avail = settled_mem_available();
	total = file_field("/proc/meminfo", "MemTotal");
	tol = total * TOLERANCE_PCT / 100;
	if (tol < TOLERANCE_KB)
		tol = TOLERANCE_KB;
	if (kasan_kernel()) {
		ksft_print_msg("KASAN: %ld kB more tolerance for its quarantine\n",
			       total / 32);
		tol += total / 32;
	}
	if (b.mem_available_kb < 0) {
		ksft_test_result_skip("MemAvailable: no baseline (now %ld kB)\n",
				      avail);
	} else {
		ksft_print_msg("MemAvailable (with %ld kB in per-cpu lists) %ld kB, %ld kB at the start (%+ld kB; tolerance %ld kB)\n",
			       pcp_free_kb(),
			       avail, b.mem_available_kb,
			       avail - b.mem_available_kb, tol);
		meminfo_diff();
		ksft_test_result(avail >= b.mem_available_kb - tol,
				 "MemAvailable back within %ld kB of the start\n",
				 tol);
	}

	check_kmemleak();
	ksft_finished();
}
