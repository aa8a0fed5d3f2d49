// SPDX-License-Identifier: GPL-2.0
/*
 * upmctl - merge other processes' memory with UPM, from the platform's
 * side, and show what UPM and KSM save. See upmctl.8.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "upm.h"

#define UPM_SYSFS "/sys/kernel/mm/upm/"
#define KSM_SYSFS "/sys/kernel/mm/ksm/"
#define MAX_COUNTERS 64
#define MAX_RANGES 256
#define IOV_BATCH 1024		/* UIO_MAXIOV */

/* Exit codes, documented in upmctl.8 and --help. */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,	/* a merge failed otherwise (out of memory, ...) */
	EXIT_USAGE = 2,
	EXIT_NO_UPM = 3,	/* the kernel has no UPM, or it is switched off */
	EXIT_NO_PROCESS = 4,
	EXIT_DENIED = 5,
};

static const char usage_text[] =
"usage: upmctl [--json] merge PID... [--range START-END]...\n"
"       upmctl [--json] stat [PID]...\n"
"       upmctl [--json] watch [--interval SECONDS] [--count N]\n"
"       upmctl --help\n"
"\n"
"merge   merge the memory of each PID now, with process_madvise(MADV_UPM):\n"
"        every private anonymous region of /proc/PID/maps, or only the\n"
"        given ranges (hexadecimal addresses, page aligned)\n"
"stat    UPM's and KSM's counters; each PID's merged pages, PSS and the\n"
"        bytes KSM saves it (without PIDs: every process with merged pages)\n"
"watch   stat, refreshed every SECONDS (default 2), N times (default: until\n"
"        interrupted)\n"
"--json  one JSON object per report, keys named as in /sys/kernel/mm/upm/,\n"
"        /sys/kernel/mm/ksm/ and /proc/PID/ksm_stat\n"
"\n"
"exit status: 0 done, 1 a merge failed, 2 bad usage, 3 no UPM in this\n"
"kernel (or switched off), 4 no such process, 5 permission denied\n";

static bool json;

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "upmctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'upmctl --help'.\n");
	return EXIT_USAGE;
}

/* ---- counters ---- */

struct counters {
	int n;
	char name[MAX_COUNTERS][48];
	long long val[MAX_COUNTERS];
};

static bool read_ll(const char *path, long long *val)
{
	char buf[64], *end;
	FILE *f = fopen(path, "r");
	bool ok;

	if (!f)
		return false;
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!ok)
		return false;
	*val = strtoll(buf, &end, 10);
	return end != buf && (*end == '\n' || *end == 0);
}

static void counter_add(struct counters *c, const char *name, long long val)
{
	if (c->n == MAX_COUNTERS)
		return;
	snprintf(c->name[c->n], sizeof(c->name[0]), "%s", name);
	c->val[c->n++] = val;
}

static long long counter(const struct counters *c, const char *name)
{
	int i;

	for (i = 0; i < c->n; i++)
		if (!strcmp(c->name[i], name))
			return c->val[i];
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every file of dir that holds one integer, in name order. */
static bool read_dir(const char *dir, struct counters *c)
{
	char *names[MAX_COUNTERS], path[PATH_MAX];
	struct dirent *d;
	long long val;
	int n = 0, i;
	DIR *dp = opendir(dir);

	c->n = 0;
	if (!dp)
		return false;
	while ((d = readdir(dp)) && n < MAX_COUNTERS)
		if (d->d_name[0] != '.' && (names[n] = strdup(d->d_name)))
			n++;
	closedir(dp);
	qsort(names, n, sizeof(names[0]), name_cmp);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s%s", dir, names[i]);
		if (read_ll(path, &val))
			counter_add(c, names[i], val);
		free(names[i]);
	}
	return true;
}

/* The "key value" lines of /proc/PID/ksm_stat. */
static int read_ksm_stat(pid_t pid, struct counters *c)
{
	char path[64], line[256], key[48];
	long long val;
	FILE *f;

	c->n = 0;
	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid);
	f = fopen(path, "r");
	if (!f)
		return errno == ENOENT || errno == ESRCH ? EXIT_NO_PROCESS :
		       EXIT_DENIED;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%47s %lld", key, &val) == 2)
			counter_add(c, key, val);
	fclose(f);
	return EXIT_OK;
}

/* ksm_stat, Pss of smaps_rollup (a walk of the address space) and comm. */
static int read_process(pid_t pid, struct counters *c, char *comm, size_t len)
{
	char path[64], line[256];
	long long val;
	FILE *f;
	int r = read_ksm_stat(pid, c);

	if (r != EXIT_OK)
		return r;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	f = fopen(path, "r");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Pss: %lld kB", &val) == 1)
				counter_add(c, "pss_kb", val);
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "r");
	comm[0] = 0;
	if (f) {
		if (fgets(comm, (int)len, f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
	}
	return EXIT_OK;
}

/* A JSON string; bytes outside ASCII (comm is any bytes) as \u00XX. */
static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* A process's comm for a table: what a terminal would act on becomes '?'. */
static const char *printable(char *s)
{
	char *p;

	for (p = s; *p; p++)
		if (!isprint((unsigned char)*p) || *p == ' ')
			*p = '?';
	return s;
}

static void json_counters(const char *name, const struct counters *c)
{
	int i;

	printf("\"%s\": {", name);
	for (i = 0; i < c->n; i++)
		printf("%s\"%s\": %lld", i ? ", " : "", c->name[i], c->val[i]);
	printf("}");
}

static bool upm_present(void)
{
	return access(UPM_SYSFS "enabled", R_OK) == 0;
}

static int no_upm(void)
{
	fprintf(stderr, "upmctl: this kernel has no UPM (%s is missing)\n",
		UPM_SYSFS);
	return EXIT_NO_UPM;
}

/* ---- stat and watch ---- */

static const char *const ksm_names[] = {
	"run", "pages_shared", "pages_sharing", "pages_unshared",
	"pages_volatile", "ksm_zero_pages", "general_profit", "full_scans",
};

static void read_ksm(struct counters *c)
{
	char path[PATH_MAX];
	long long val;
	size_t i;

	c->n = 0;
	for (i = 0; i < sizeof(ksm_names) / sizeof(ksm_names[0]); i++) {
		snprintf(path, sizeof(path), KSM_SYSFS "%s", ksm_names[i]);
		if (read_ll(path, &val))
			counter_add(c, ksm_names[i], val);
	}
}

/* What an exit code says about one process, for messages and JSON. */
static const char *process_error(int r)
{
	return r == EXIT_NO_PROCESS ? "no such process" :
	       r == EXIT_DENIED ? "permission denied" : "out of memory";
}

/*
 * Every process with merged pages, for stat without PIDs (only ksm_stat
 * is read: smaps_rollup walks a whole address space). Returns how many,
 * in a malloc()ed *pids.
 */
static int merged_processes(pid_t **pids)
{
	struct counters c;
	struct dirent *d;
	int n = 0, cap = 0;
	DIR *dp = opendir("/proc");

	*pids = NULL;
	if (!dp)
		return 0;
	while ((d = readdir(dp))) {
		pid_t pid = (pid_t)atoi(d->d_name);

		if (pid <= 0 || read_ksm_stat(pid, &c) != EXIT_OK ||
		    counter(&c, "ksm_merging_pages") <= 0)
			continue;
		if (n == cap) {
			pid_t *more = realloc(*pids, (cap = cap ? 2 * cap : 64) *
					      sizeof(**pids));

			if (!more)
				break;
			*pids = more;
		}
		(*pids)[n++] = pid;
	}
	closedir(dp);
	return n;
}

static int stat_report(const pid_t *given, int ngiven)
{
	struct counters upm, ksm, proc;
	const pid_t *pids = given;
	pid_t *all = NULL;
	int n = ngiven, i, ret = EXIT_OK, shown = 0;
	char comm[32];

	if (!read_dir(UPM_SYSFS, &upm))
		return no_upm();
	read_ksm(&ksm);
	if (!ngiven) {
		n = merged_processes(&all);
		pids = all;
	}
	if (json) {
		printf("{");
		json_counters("upm", &upm);
		printf(", ");
		json_counters("ksm", &ksm);
		printf(", \"processes\": [");
	} else {
		printf("UPM   ");
		for (i = 0; i < upm.n; i++)
			printf(" %s=%lld", upm.name[i], upm.val[i]);
		printf("\nKSM   ");
		for (i = 0; i < ksm.n; i++)
			printf(" %s=%lld", ksm.name[i], ksm.val[i]);
		printf("\nsaved  %.1f MiB (KSM's general_profit)\n",
		       counter(&ksm, "general_profit") / 1048576.0);
		printf("%8s %-16s %6s %14s %10s %12s %12s\n", "PID", "COMMAND",
		       "DOMAIN", "MERGED_PAGES", "RMAP_ITEMS", "PSS_KIB",
		       "SAVED_KIB");
	}
	for (i = 0; i < n; i++) {
		int r = read_process(pids[i], &proc, comm, sizeof(comm));

		if (r != EXIT_OK) {
			fprintf(stderr, "upmctl: %s: %d\n", process_error(r),
				pids[i]);
			ret = ret ? ret : r;
			if (json)
				printf("%s{\"pid\": %d, \"error\": \"%s\", \"exit_code\": %d}",
				       shown++ ? ", " : "", pids[i],
				       process_error(r), r);
			continue;
		}
		if (json) {
			int k;

			printf("%s{\"pid\": %d, \"comm\": ", shown ? ", " : "",
			       pids[i]);
			json_string(comm);
			for (k = 0; k < proc.n; k++)
				printf(", \"%s\": %lld", proc.name[k],
				       proc.val[k]);
			printf("}");
		} else {
			printf("%8d %-16s %6lld %14lld %10lld %12lld %12lld\n",
			       pids[i], printable(comm),
			       counter(&proc, "upm_domain"),
			       counter(&proc, "ksm_merging_pages"),
			       counter(&proc, "ksm_rmap_items"),
			       counter(&proc, "pss_kb"),
			       counter(&proc, "ksm_process_profit") / 1024);
		}
		shown++;
	}
	if (json)
		printf("]}\n");
	fflush(stdout);
	free(all);
	return ret;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int watch(double interval, long count)
{
	struct timespec ts = {
		.tv_sec = (time_t)interval,
		.tv_nsec = (long)((interval - (time_t)interval) * 1e9),
	};
	bool tty = isatty(STDOUT_FILENO);
	long i;
	int r;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	for (i = 0; !stop && (count <= 0 || i < count); i++) {
		if (i)
			nanosleep(&ts, NULL);
		if (stop)
			break;
		if (tty && !json)
			printf("\033[H\033[2J");
		else if (i && !json)
			printf("\n");
		r = stat_report(NULL, 0);
		if (r == EXIT_NO_UPM)
			return r;
	}
	return EXIT_OK;
}

/* ---- merge ---- */

struct range {
	unsigned long start, end;
};

static unsigned long page_size(void)
{
	return (unsigned long)sysconf(_SC_PAGESIZE);
}

static bool parse_hex(const char *s, char **end, unsigned long *val)
{
	if (!isxdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	*val = strtoul(s, end, 16);
	return !errno && *end != s;
}

static bool parse_range(const char *s, struct range *r)
{
	char *end;

	if (!parse_hex(s, &end, &r->start) || *end != '-' ||
	    !parse_hex(end + 1, &end, &r->end) || *end)
		return false;
	return r->start < r->end;
}

/* Appends [start, end) to *iov; false when out of memory. */
static bool iov_add(struct iovec **iov, size_t *n, size_t *cap,
		    unsigned long start, unsigned long end)
{
	if (*n == *cap) {
		size_t more = *cap ? 2 * *cap : 64;
		struct iovec *p = realloc(*iov, more * sizeof(**iov));

		if (!p)
			return false;
		*iov = p;
		*cap = more;
	}
	(*iov)[*n].iov_base = (void *)start;
	(*iov)[(*n)++].iov_len = end - start;
	return true;
}

/*
 * The private anonymous regions of /proc/PID/maps that can hold pages
 * (anonymous mappings, heap, stack; not PROT_NONE reservations).
 */
static int anon_regions(pid_t pid, struct iovec **iov, size_t *n)
{
	char path[64], perms[8], *line = NULL, *name;
	unsigned long start, end, inode;
	size_t cap = 0, len = 0;
	int r = EXIT_OK, at;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f)
		return errno == ENOENT || errno == ESRCH ? EXIT_NO_PROCESS :
		       EXIT_DENIED;
	*n = 0;
	while (getline(&line, &len, f) > 0) {
		if (sscanf(line, "%lx-%lx %7s %*s %*s %lu %n", &start, &end,
			   perms, &inode, &at) < 4)
			continue;
		name = line + at;
		name[strcspn(name, "\n")] = 0;
		if (perms[3] != 'p' || inode ||
		    (perms[0] != 'r' && perms[1] != 'w') ||
		    (name[0] && strcmp(name, "[heap]") &&
		     strcmp(name, "[stack]") && strncmp(name, "[anon:", 6)))
			continue;
		if (!iov_add(iov, n, &cap, start, end)) {
			r = EXIT_FAILED;
			break;
		}
	}
	free(line);
	fclose(f);
	return r;
}

/* Whether [start, end) of pid is mapped whole, by adjacent mappings. */
static bool still_mapped(pid_t pid, unsigned long start, unsigned long end)
{
	char path[64], *line = NULL;
	unsigned long s, e, at = start;
	size_t len = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (at < end && getline(&line, &len, f) > 0)
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s <= at && at < e)
			at = e;
	free(line);
	fclose(f);
	return at >= end;
}

static int errno_exit(int err)
{
	long long enabled = 1;

	switch (err) {
	case ESRCH:
		return EXIT_NO_PROCESS;
	case EPERM:
		/* MADV_UPM's EPERM when the administrator switched it off */
		read_ll(UPM_SYSFS "enabled", &enabled);
		return enabled ? EXIT_DENIED : EXIT_NO_UPM;
	case EACCES:
		return EXIT_DENIED;
	case EINVAL:
		return upm_present() ? EXIT_FAILED : EXIT_NO_UPM;
	case EBUSY:
		return EXIT_NO_UPM;
	}
	return EXIT_FAILED;
}

/*
 * Advise iov[0..n) of pidfd's process, IOV_BATCH ranges at a time. A call
 * may stop short (the kernel takes at most MAX_RW_COUNT bytes, about 2 GiB,
 * per call): it goes on where the last one stopped. A range unmapped
 * meanwhile (ENOMEM: its mapped parts were merged) is passed over; an
 * ENOMEM on a range still mapped, and any other error, end the merge.
 * Returns 0 or an errno.
 */
static int advise_all(pid_t pid, int pidfd, struct iovec *iov, size_t n,
		      unsigned long *bytes, unsigned long *gone)
{
	size_t i = 0;

	while (i < n) {
		size_t batch = n - i < IOV_BATCH ? n - i : IOV_BATCH;
		ssize_t r = upm_advise_process(pidfd, iov + i, batch);

		if (r < 0) {
			unsigned long start = (unsigned long)iov[i].iov_base;

			if (errno != ENOMEM ||
			    still_mapped(pid, start, start + iov[i].iov_len))
				return errno;
			(*gone)++;
			i++;
			continue;
		}
		if (r == 0)
			return EIO;	/* no progress, no error */
		*bytes += (unsigned long)r;
		for (; i < n && (size_t)r >= iov[i].iov_len; i++)
			r -= (ssize_t)iov[i].iov_len;
		if (r) {		/* stopped inside iov[i] */
			iov[i].iov_base = (char *)iov[i].iov_base + r;
			iov[i].iov_len -= (size_t)r;
		}
	}
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A process that could not be merged at all, in the report. */
static void merge_failed(pid_t pid, int r, const char *why, int *shown)
{
	fprintf(stderr, "upmctl: %s: %d\n", why, pid);
	if (json) {
		printf("%s{\"pid\": %d, \"error\": ", (*shown)++ ? ", " : "",
		       pid);
		json_string(why);
		printf(", \"exit_code\": %d}", r);
	}
}

static int merge_one(pid_t pid, const struct range *ranges, int nranges,
		     int *shown)
{
	struct counters u0, u1, k0, k1, p0, p1;
	unsigned long bytes = 0, gone = 0;
	long long saved;
	struct iovec *iov = NULL;
	size_t n = 0, cap = 0, i;
	char comm[32];
	double t0, t;
	int pidfd, r = EXIT_OK, err;

	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		/* EINVAL: pid is a thread's, not a process's */
		r = errno == ESRCH || errno == EINVAL ? EXIT_NO_PROCESS :
		    EXIT_FAILED;
		merge_failed(pid, r, r == EXIT_NO_PROCESS ? "no such process" :
			     strerror(errno), shown);
		return r;
	}
	for (i = 0; i < (size_t)nranges && r == EXIT_OK; i++)
		if (!iov_add(&iov, &n, &cap, ranges[i].start, ranges[i].end))
			r = EXIT_FAILED;
	if (r == EXIT_OK && !nranges)
		r = anon_regions(pid, &iov, &n);
	if (r == EXIT_OK)
		r = read_process(pid, &p0, comm, sizeof(comm));
	if (r != EXIT_OK) {
		merge_failed(pid, r, process_error(r), shown);
		goto out;
	}
	read_dir(UPM_SYSFS, &u0);
	read_ksm(&k0);
	t0 = now();
	err = advise_all(pid, pidfd, iov, n, &bytes, &gone);
	t = now() - t0;
	read_dir(UPM_SYSFS, &u1);
	read_ksm(&k1);
	if (read_process(pid, &p1, comm, sizeof(comm)) != EXIT_OK)
		p1 = p0;
	if (err) {
		r = errno_exit(err);
		fprintf(stderr, "upmctl: merging %d failed: %s%s\n", pid,
			strerror(err), r == EXIT_NO_UPM ?
			" (UPM is switched off, or KSM unmerges everything)" :
			r == EXIT_DENIED ?
			" (needs ptrace access to it and CAP_SYS_NICE)" :
			r == EXIT_NO_PROCESS ? " (it exited)" : "");
	}
#define DELTA(c0, c1, name) (counter(&c1, name) - counter(&c0, name))
	saved = (DELTA(k0, k1, "pages_sharing") +
		 DELTA(k0, k1, "ksm_zero_pages")) * (long long)page_size();
	if (json) {
		printf("%s{\"pid\": %d, \"comm\": ", (*shown)++ ? ", " : "", pid);
		json_string(comm);
		printf(", \"ranges\": %zu, \"ranges_gone\": %lu, \"bytes_advised\": %lu, \"error\": ",
		       n, gone, bytes);
		if (err)
			json_string(strerror(err));
		else
			printf("null");
		printf(", \"exit_code\": %d, \"pages_scanned\": %lld, \"pages_merged\": %lld, \"pages_new_ksm\": %lld, \"pages_already_merged\": %lld, \"pages_skipped\": %lld, \"pages_zero\": %lld, \"ksm_merging_pages\": %lld, \"bytes_saved\": %lld, \"seconds\": %.3f}",
		       r, DELTA(u0, u1, "pages_scanned"),
		       DELTA(u0, u1, "pages_merged"),
		       DELTA(u0, u1, "pages_new_ksm"),
		       DELTA(u0, u1, "pages_already_merged"),
		       DELTA(u0, u1, "pages_skipped"),
		       DELTA(u0, u1, "pages_zero"),
		       counter(&p1, "ksm_merging_pages"), saved, t);
	} else {
		if (!(*shown)++)
			printf("%8s %-16s %7s %10s %9s %9s %9s %9s %10s %8s\n",
			       "PID", "COMMAND", "RANGES", "ADVISED_MB",
			       "SCANNED", "MERGED", "NEW_KSM", "SKIPPED",
			       "SAVED_MB", "SECONDS");
		printf("%8d %-16s %7zu %10.1f %9lld %9lld %9lld %9lld %10.1f %8.3f\n",
		       pid, printable(comm), n, bytes / 1048576.0,
		       DELTA(u0, u1, "pages_scanned"),
		       DELTA(u0, u1, "pages_merged"),
		       DELTA(u0, u1, "pages_new_ksm"),
		       DELTA(u0, u1, "pages_skipped"), saved / 1048576.0, t);
	}
#undef DELTA
out:
	free(iov);
	close(pidfd);
	return r;
}

static int merge(const pid_t *pids, int npids, const struct range *ranges,
		 int nranges)
{
	int i, r, ret = EXIT_OK, shown = 0;

	if (!upm_present())
		return no_upm();
	if (json)
		printf("{\"merged\": [");
	for (i = 0; i < npids; i++) {
		r = merge_one(pids[i], ranges, nranges, &shown);
		ret = ret ? ret : r;
	}
	if (json)
		printf("]}\n");
	return ret;
}

/* ---- arguments ---- */

static bool parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > INT_MAX)
		return false;
	*pid = (pid_t)v;
	return true;
}

int main(int argc, char **argv)
{
	static pid_t pids[4096];
	static struct range ranges[MAX_RANGES];
	int npids = 0, nranges = 0, i;
	const char *cmd = NULL, *watch_option = NULL;
	double interval = 2;
	long count = 0;
	char *end;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage_text, stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--range") || !strcmp(a, "--interval") ||
			   !strcmp(a, "--count")) {
			if (i + 1 == argc)
				return usage_error("%s needs a value", a);
			a = argv[++i];
			if (strcmp(argv[i - 1], "--range"))
				watch_option = argv[i - 1];
			if (!strcmp(argv[i - 1], "--range")) {
				if (nranges == MAX_RANGES)
					return usage_error("too many ranges, at %s", a);
				if (!parse_range(a, &ranges[nranges]))
					return usage_error("not a range START-END (hexadecimal, START < END): '%s'", a);
				if ((ranges[nranges].start |
				     ranges[nranges].end) % page_size())
					return usage_error("range not page aligned: '%s'", a);
				nranges++;
			} else if (!strcmp(argv[i - 1], "--interval")) {
				interval = strtod(a, &end);
				if (end == a || *end || !(interval > 0) ||
				    interval > 86400)
					return usage_error("not an interval in seconds: '%s'", a);
			} else {
				count = strtol(a, &end, 10);
				if (end == a || *end || count <= 0)
					return usage_error("not a count: '%s'", a);
			}
		} else if (a[0] == '-') {
			return usage_error("unknown option '%s'", a);
		} else if (!cmd) {
			cmd = a;
		} else {
			if (npids == 4096)
				return usage_error("too many processes, at %s", a);
			if (!parse_pid(a, &pids[npids++]))
				return usage_error("not a process id: '%s'", a);
		}
	}
	if (!cmd)
		return usage_error("%s", "no command given");
	if (!strcmp(cmd, "merge")) {
		if (watch_option)
			return usage_error("%s is for watch", watch_option);
		if (!npids)
			return usage_error("%s", "merge needs at least one PID");
		return merge(pids, npids, ranges, nranges);
	}
	if (nranges)
		return usage_error("--range is for merge, not %s", cmd);
	if (watch_option && strcmp(cmd, "watch"))
		return usage_error("%s is for watch", watch_option);
	if (!strcmp(cmd, "stat"))
		return stat_report(pids, npids);
	if (!strcmp(cmd, "watch")) {
		if (npids)
			return usage_error("%s", "watch takes no PID");
		return watch(interval, count);
	}
	return usage_error("unknown command '%s'", cmd);
}
