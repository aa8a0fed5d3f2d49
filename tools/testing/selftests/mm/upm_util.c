// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers shared by the UPM guest tests (see upm_util.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "upm_util.h"

void upm_msg(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	printf("# ");
	va_start(ap, fmt);
	errno = saved;
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* ---- files ---- */

int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

int read_ulong(const char *path, unsigned long *val)
{
	char buf[64], *end;

	if (read_str(path, buf, sizeof(buf)))
		return -1;
	errno = 0;
	*val = strtoul(buf, &end, 10);
	if (errno || end == buf)
		return -1;
	return 0;
}

int write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

long file_field(const char *path, const char *key)
{
	char line[512];
	size_t klen = strlen(key);
	FILE *f = fopen(path, "r");
	long val = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + klen;

		if (strncmp(line, key, klen))
			continue;
		if (*p == ':')
			p++;
		if (*p != ' ' && *p != '\t')
			continue;
		val = strtol(p, NULL, 10);
		break;
	}
	fclose(f);
	return val;
}

/* ---- counters ---- */

long ksm_cow_count(void)
{
	long v = file_field("/proc/vmstat", "cow_ksm");

	if (v < 0)
		upm_msg("/proc/vmstat has no cow_ksm (CONFIG_VM_EVENT_COUNTERS): KSM page copies not counted\n");
	return v;
}

static const char *const upm_names[] = {
	"calls", "pages_scanned", "pages_merged", "pages_new_ksm",
	"pages_already_merged", "pages_skipped", "pages_zero", "time_ns",
	"index_entries", "pages_candidate", "candidates",
};

static unsigned long *upm_field(struct upm_stats *s, int i)
{
	unsigned long *f[] = {
		&s->calls, &s->pages_scanned, &s->pages_merged,
		&s->pages_new_ksm, &s->pages_already_merged, &s->pages_skipped,
		&s->pages_zero, &s->time_ns, &s->index_entries,
		&s->pages_candidate, &s->candidates,
	};
	return f[i];
}

#define N_UPM_FIELDS ((int)ARRAY_SIZE(upm_names))

int upm_stats_read(struct upm_stats *s)
{
	char path[128];
	int i, ret = 0;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < N_UPM_FIELDS; i++) {
		snprintf(path, sizeof(path), UPM_SYSFS "%s", upm_names[i]);
		if (read_ulong(path, upm_field(s, i)))
			ret = -1;
	}
	return ret;
}

bool upm_present(void)
{
	return access(UPM_SYSFS "pages_scanned", R_OK) == 0;
}

void upm_require(const char *needs)
{
	if (geteuid())
		ksft_exit_skip("needs root (%s)\n", needs);
	if (!upm_present())
		ksft_exit_skip("%s is missing: kernel without CONFIG_UPM\n",
			       UPM_SYSFS);
}

void upm_stats_delta(const struct upm_stats *a, const struct upm_stats *b,
		     struct upm_stats *d)
{
	int i;

	for (i = 0; i < N_UPM_FIELDS; i++)
		*upm_field(d, i) = *upm_field((struct upm_stats *)b, i) -
				   *upm_field((struct upm_stats *)a, i);
}

void upm_stats_print(const char *label, const struct upm_stats *d)
{
	upm_msg("%s: calls %ld scanned %ld merged %ld candidate %ld new_ksm %ld already %ld skipped %ld zero %ld time_ns %ld index_entries %ld candidates %ld\n",
		label, (long)d->calls, (long)d->pages_scanned,
		(long)d->pages_merged, (long)d->pages_candidate,
		(long)d->pages_new_ksm, (long)d->pages_already_merged,
		(long)d->pages_skipped, (long)d->pages_zero, (long)d->time_ns,
		(long)d->index_entries, (long)d->candidates);
}

bool upm_stats_balanced(const struct upm_stats *d, const char *label)
{
	unsigned long sum = d->pages_merged + d->pages_candidate +
			    d->pages_already_merged + d->pages_skipped;

	if (sum == d->pages_scanned && d->pages_new_ksm <= d->pages_merged)
		return true;
	upm_msg("%s: counters do not add up: scanned %ld != merged+candidate+already+skipped = %ld, or new_ksm > merged\n",
		label, (long)d->pages_scanned, (long)sum);
	return false;
}

int ksm_stats_read(struct ksm_stats *k)
{
	unsigned long v[6];
	static const char *const names[] = {
		"pages_shared", "pages_sharing", "pages_unshared",
		"pages_volatile", "ksm_zero_pages", "full_scans",
	};
	char path[128];
	int i, ret = 0;

	for (i = 0; i < 6; i++) {
		snprintf(path, sizeof(path), KSM_SYSFS "%s", names[i]);
		v[i] = 0;
		if (read_ulong(path, &v[i]))
			ret = -1;
	}
	k->pages_shared = v[0];
	k->pages_sharing = v[1];
	k->pages_unshared = v[2];
	k->pages_volatile = v[3];
	k->ksm_zero_pages = v[4];
	k->full_scans = v[5];
	return ret;
}

bool ksm_wait_back(const struct ksm_stats *base, int timeout_ms,
		   struct ksm_stats *seen)
{
	double end = now_sec() + timeout_ms / 1000.0;
	struct ksm_stats k;

	for (;;) {
		ksm_stats_read(&k);
		if (seen)
			*seen = k;
		if (k.pages_shared == base->pages_shared &&
		    k.pages_sharing == base->pages_sharing &&
		    k.ksm_zero_pages == base->ksm_zero_pages)
			return true;
		if (now_sec() > end)
			return false;
		sleep_ms(20);
	}
}

bool ksm_back_after_exit(const struct ksm_stats *base, struct ksm_stats *seen)
{
	struct ksm_stats k;

	if (!seen)
		seen = &k;
	if (ksm_wait_back(base, 10000, seen))
		return true;
	upm_msg("after exit: pages_shared %ld (was %ld) pages_sharing %ld (was %ld) ksm_zero_pages %ld (was %ld)\n",
		seen->pages_shared, base->pages_shared,
		seen->pages_sharing, base->pages_sharing,
		seen->ksm_zero_pages, base->ksm_zero_pages);
	return false;
}

bool workers_stop_back(struct worker *w, int n, const struct ksm_stats *base)
{
	int i;

	for (i = 0; i < n; i++)
		worker_stop(&w[i]);
	return ksm_back_after_exit(base, NULL);
}

static const char *const ksm_setting_names[] = {
	"run", "pages_to_scan", "sleep_millisecs", "use_zero_pages",
	"merge_across_nodes", "max_page_sharing",
};

static char *ksm_setting(struct ksm_settings *s, int i)
{
	char *const f[] = {
		s->run, s->pages_to_scan, s->sleep_millisecs,
		s->use_zero_pages, s->merge_across_nodes, s->max_page_sharing,
	};
	return f[i];
}

int ksm_settings_save(struct ksm_settings *s)
{
	char path[128];
	int i, ret = 0;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < 6; i++) {
		snprintf(path, sizeof(path), KSM_SYSFS "%s",
			 ksm_setting_names[i]);
		if (read_str(path, ksm_setting(s, i), 32))
			ret = -1;
	}
	s->saved = ret == 0;
	return ret;
}

int ksm_settings_restore(const struct ksm_settings *s)
{
	char path[128], cur[32];
	int i, ret = 0;

	if (!s->saved)
		return -1;
	/* stop ksmd first, then put back the knobs, then run */
	if (write_str(KSM_SYSFS "run", "0"))
		ret = -1;
	for (i = 1; i < 6; i++) {
		const char *want = ksm_setting((struct ksm_settings *)s, i);

		snprintf(path, sizeof(path), KSM_SYSFS "%s",
			 ksm_setting_names[i]);
		if (read_str(path, cur, sizeof(cur)) == 0 && !strcmp(cur, want))
			continue;
		if (write_str(path, want)) {
			upm_msg("could not restore %s to %s\n", path, want);
			ret = -1;
		}
	}
	if (strcmp(s->run, "0") && write_str(KSM_SYSFS "run", s->run))
		ret = -1;
	return ret;
}

int ksm_run_fastest(void)
{
	if (write_str(KSM_SYSFS "pages_to_scan", "100000") ||
	    write_str(KSM_SYSFS "sleep_millisecs", "0") ||
	    write_str(KSM_SYSFS "run", "1"))
		return -1;
	return 0;
}

/* ---- pages ---- */

int upm_call(void *addr, size_t len)
{
	int err;

	if (madvise(addr, len, MADV_UPM) == 0)
		return 0;
	err = errno;
	if (err == EINVAL && !upm_present())
		upm_msg("madvise(MADV_UPM) = EINVAL and no %s: this kernel has no UPM\n",
			UPM_SYSFS);
	return err;
}

int pfns_of(const void *addr, size_t npages, uint64_t *out)
{
	return pfns_of_pid(0, addr, npages, out);
}

int pfns_of_pid(pid_t pid, const void *addr, size_t npages, uint64_t *out)
{
	char path[64];
	size_t done = 0;
	int fd;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	while (done < npages) {
		size_t chunk = npages - done;
		off_t off = ((uintptr_t)addr / PG + done) * sizeof(uint64_t);
		ssize_t n;
		size_t i;

		if (chunk > 4096)
			chunk = 4096;
		n = pread(fd, out + done, chunk * sizeof(uint64_t), off);
		if (n <= 0) {
			close(fd);
			return -1;
		}
		chunk = n / sizeof(uint64_t);
		for (i = done; i < done + chunk; i++)
			out[i] = (out[i] & (1ULL << 63)) ?
				 out[i] & ((1ULL << 55) - 1) : 0;
		done += chunk;
	}
	close(fd);
	return 0;
}

uint64_t pfn_of(const void *addr)
{
	uint64_t pfn = 0;

	if (pfns_of(addr, 1, &pfn))
		return 0;
	return pfn;
}

uint64_t pfn_flags(uint64_t pfn)
{
	static int fd = -1;
	uint64_t flags = 0;

	if (fd < 0)
		fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (pread(fd, &flags, sizeof(flags), pfn * sizeof(flags)) !=
	    sizeof(flags))
		flags = 0;
	return flags;
}

/*
 * Some 6.12 kernels report KPF_KSM for every anonymous page (the flag is
 * tested with "mapping & PAGE_MAPPING_KSM"); then the flag tells nothing.
 */
bool kpf_ksm_reliable(void)
{
	static int state = -1;

	if (state < 0) {
		volatile char *p = map_anon(PG, -1);

		state = 0;
		if (p) {
			p[0] = 1;
			state = !(pfn_flags(pfn_of((const void *)p)) &
				  (1ULL << 21));
			unmap_anon((void *)p, PG);
		}
		if (!state)
			upm_msg("/proc/kpageflags marks plain anonymous pages KSM: not checking KPF_KSM\n");
	}
	return state;
}

bool pfn_is_ksm(uint64_t pfn)
{
	if (!pfn)
		return false;
	if (!kpf_ksm_reliable())
		return true;
	return pfn_flags(pfn) & (1ULL << 21);
}

long pfn_mapcount(uint64_t pfn)
{
	static int fd = -1;
	uint64_t cnt = 0;

	if (fd < 0)
		fd = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (pread(fd, &cnt, sizeof(cnt), pfn * sizeof(cnt)) != sizeof(cnt))
		return -1;
	return (long)cnt;
}

uint64_t zero_page_pfn(void)
{
	volatile char *p = map_anon(PG, -1);
	uint64_t pfn;

	if (!p)
		return 0;
	(void)p[0];
	pfn = pfn_of((const void *)p);
	unmap_anon((void *)p, PG);
	return pfn;
}

void *map_anon(size_t len, int thp)
{
	size_t extra = thp > 0 ? 2 * MIB : 0;
	char *p = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = p;
	if (extra) {
		a = (char *)(((uintptr_t)p + 2 * MIB - 1) & ~(2 * MIB - 1));
		if (a > p)
			munmap(p, a - p);
		if (a + len < p + len + extra)
			munmap(a + len, p + len + extra - (a + len));
	}
	if (thp > 0)
		madvise(a, len, MADV_HUGEPAGE);
	else if (thp < 0)
		madvise(a, len, MADV_NOHUGEPAGE);
	return a;
}

void unmap_anon(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

void *shared_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, len);
	return p;
}

static inline uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void fill_page(void *page, uint64_t seed, uint64_t idx)
{
	uint64_t *w = page, x = mix64(seed * 0x100000001b3ULL ^ mix64(idx));
	size_t i;

	for (i = 0; i < PG / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
}

bool page_matches(const void *page, uint64_t seed, uint64_t idx)
{
	uint64_t want[PG / 8];

	fill_page(want, seed, idx);
	return memcmp(page, want, PG) == 0;
}

void fill_pages(void *p, size_t npages, uint64_t seed)
{
	size_t i;

	for (i = 0; i < npages; i++)
		fill_page((char *)p + i * PG, seed, i);
}

size_t count_bad_pages(const void *p, size_t npages, uint64_t seed)
{
	size_t i, bad = 0;

	for (i = 0; i < npages; i++)
		if (!page_matches((const char *)p + i * PG, seed, i))
			bad++;
	return bad;
}

uint64_t checksum(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < len / 8; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL + (h >> 29);
	return h;
}

bool page_is_zero(const void *p)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < PG / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* ---- smaps ---- */

int vma_info(const void *addr, struct vma_info *vi)
{
	char line[512];
	FILE *f = fopen("/proc/self/smaps", "r");
	bool in = false, found = false;
	unsigned long a = (uintptr_t)addr;

	memset(vi, 0, sizeof(*vi));
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char c = line[0];

		if (((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) &&
		    sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			if (in)
				break;
			in = s <= a && a < e;
			if (in) {
				vi->start = s;
				vi->end = e;
				found = true;
			}
			continue;
		}
		if (!in)
			continue;
		if (!strncmp(line, "Rss:", 4)) {
			vi->rss_kb = strtol(line + 4, NULL, 10);
		} else if (!strncmp(line, "Pss:", 4)) {
			vi->pss_kb = strtol(line + 4, NULL, 10);
		} else if (!strncmp(line, "AnonHugePages:", 14)) {
			vi->anon_huge_kb = strtol(line + 14, NULL, 10);
		} else if (!strncmp(line, "VmFlags:", 8)) {
			size_t n = strcspn(line + 8, "\n");

			if (n >= sizeof(vi->flags))
				n = sizeof(vi->flags) - 1;
			memcpy(vi->flags, line + 8, n);
			vi->flags[n] = 0;
		}
	}
	fclose(f);
	return found ? 0 : -1;
}

bool vma_mergeable(const void *addr)
{
	struct vma_info vi;

	if (vma_info(addr, &vi))
		return false;
	return strstr(vi.flags, " mg");
}

long pss_kb(void)
{
	return file_field("/proc/self/smaps_rollup", "Pss");
}

/* ---- helper processes ---- */

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

int worker_start(struct worker *w, int idx, worker_fn fn, void *arg)
{
	int cmd[2], res[2];
	pid_t parent = getpid();

	if (pipe(cmd))
		return -1;
	if (pipe(res)) {
		close(cmd[0]);
		close(cmd[1]);
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	w->idx = idx;
	w->pid = fork();
	if (w->pid < 0)
		return -1;
	if (w->pid == 0) {
		int c;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		close(cmd[1]);
		close(res[0]);
		while (read_full(cmd[0], &c, sizeof(c)) == 0 && c != 0) {
			long r = fn(idx, c, arg);

			fflush(stdout);
			if (write_full(res[1], &r, sizeof(r)))
				break;
		}
		fflush(stdout);
		_exit(0);
	}
	close(cmd[0]);
	close(res[1]);
	w->cmd_fd = cmd[1];
	w->res_fd = res[0];
	return 0;
}

int worker_send(struct worker *w, int cmd)
{
	return write_full(w->cmd_fd, &cmd, sizeof(cmd));
}

long worker_result(struct worker *w)
{
	long r;

	if (read_full(w->res_fd, &r, sizeof(r))) {
		upm_msg("helper %d (pid %d) died\n", w->idx, (int)w->pid);
		return WORKER_DEAD;
	}
	return r;
}

long worker_call(struct worker *w, int cmd)
{
	if (worker_send(w, cmd)) {
		upm_msg("helper %d (pid %d) is gone\n", w->idx, (int)w->pid);
		return WORKER_DEAD;
	}
	return worker_result(w);
}

long worker_call_counted(struct worker *w, int cmd, const char *label,
			 struct upm_stats *d)
{
	struct upm_stats a, b;
	long r;

	upm_stats_read(&a);
	r = worker_call(w, cmd);
	upm_stats_read(&b);
	upm_stats_delta(&a, &b, d);
	upm_stats_print(label, d);
	return r;
}

int worker_stop(struct worker *w)
{
	int status = 0;

	if (w->pid <= 0)
		return 0;
	worker_send(w, 0);
	close(w->cmd_fd);
	close(w->res_fd);
	if (waitpid(w->pid, &status, 0) < 0)
		status = -1;
	w->pid = 0;
	return status;
}

int run_child(int (*fn)(void *), void *arg)
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int r;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		r = fn(arg);
		fflush(stdout);
		_exit(r & 0xff);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status))
		upm_msg("child killed by signal %d\n", WTERMSIG(status));
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- KSM bookkeeping ---- */

long ksm_rmap_items(void)
{
	char buf[64];
	unsigned long sharing, zero;
	long profit;

	if (read_ulong(KSM_SYSFS "pages_sharing", &sharing) ||
	    read_ulong(KSM_SYSFS "ksm_zero_pages", &zero) ||
	    read_str(KSM_SYSFS "general_profit", buf, sizeof(buf)))
		return -1;
	profit = strtol(buf, NULL, 10);
	return ((long)(sharing + zero) * (long)PG - profit) /
	       KSM_RMAP_ITEM_SIZE;
}

long proc_ksm_stat(pid_t pid, const char *key)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", (int)pid);
	return file_field(path, key);
}

bool ksm_wait_clean(const struct ksm_stats *base, long base_rmap,
		    int timeout_ms, struct ksm_stats *seen, long *rmap_seen)
{
	double end = now_sec() + timeout_ms / 1000.0;
	struct ksm_stats k;
	long r;

	for (;;) {
		ksm_stats_read(&k);
		r = ksm_rmap_items();
		if (seen)
			*seen = k;
		if (rmap_seen)
			*rmap_seen = r;
		if (k.pages_shared == base->pages_shared &&
		    k.pages_sharing == base->pages_sharing &&
		    k.ksm_zero_pages == base->ksm_zero_pages &&
		    (base_rmap < 0 || r == base_rmap))
			return true;
		if (now_sec() > end)
			return false;
		sleep_ms(20);
	}
}

bool ksm_clean_after_exit(const struct ksm_stats *base, long base_rmap,
			  int timeout_ms)
{
	struct ksm_stats seen;
	long rmap_seen;

	if (ksm_wait_clean(base, base_rmap, timeout_ms, &seen, &rmap_seen))
		return true;
	upm_msg("after exit: pages_shared %ld (was %ld) pages_sharing %ld (was %ld) rmap items %ld (was %ld)\n",
		seen.pages_shared, base->pages_shared,
		seen.pages_sharing, base->pages_sharing, rmap_seen, base_rmap);
	return false;
}

bool ksm_counters_match(const pid_t *pids, int n, const struct ksm_stats *base,
			long base_rmap, const char *label)
{
	long merging = 0, items = 0, rmap, v;
	struct ksm_stats k;
	bool ok = true;
	int i;

	for (i = 0; i < n; i++) {
		v = proc_ksm_stat(pids[i], "ksm_merging_pages");
		if (v > 0)
			merging += v;
		v = proc_ksm_stat(pids[i], "ksm_rmap_items");
		if (v > 0)
			items += v;
	}
	ksm_stats_read(&k);
	rmap = ksm_rmap_items();
	if (k.pages_shared + k.pages_sharing -
	    base->pages_shared - base->pages_sharing != merging) {
		upm_msg("%s: pages_shared %ld + pages_sharing %ld (base %ld + %ld) but the processes' ksm_merging_pages add up to %ld\n",
			label, k.pages_shared, k.pages_sharing,
			base->pages_shared, base->pages_sharing, merging);
		ok = false;
	}
	if (base_rmap >= 0 && rmap - base_rmap != items) {
		upm_msg("%s: %ld rmap items (base %ld) but the processes' ksm_rmap_items add up to %ld\n",
			label, rmap, base_rmap, items);
		ok = false;
	}
	return ok;
}

bool upm_wait_index(unsigned long want, int timeout_ms, unsigned long *seen)
{
	double end = now_sec() + timeout_ms / 1000.0;
	unsigned long v = 0;

	for (;;) {
		if (read_ulong(UPM_SYSFS "index_entries", &v) == 0 &&
		    v <= want)
			break;
		if (now_sec() > end) {
			if (seen)
				*seen = v;
			return false;
		}
		sleep_ms(50);
	}
	if (seen)
		*seen = v;
	return true;
}

/* ---- swap on zram ---- */

int swap_areas(void)
{
	char line[512];
	FILE *f = fopen("/proc/swaps", "r");
	int n = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

/* The swap header mkswap(8) writes: version 1, no bad pages. */
static int write_swap_header(const char *dev, unsigned long bytes)
{
	static char page[PG];
	uint32_t *w = (uint32_t *)(page + 1024);
	int fd = open(dev, O_WRONLY);
	int ret = 0;

	if (fd < 0)
		return -1;
	memset(page, 0, sizeof(page));
	w[0] = 1;			/* version */
	w[1] = bytes / PG - 1;		/* last_page */
	w[2] = 0;			/* nr_badpages */
	memcpy(page + PG - 10, "SWAPSPACE2", 10);
	if (pwrite(fd, page, PG, 0) != (ssize_t)PG || fsync(fd))
		ret = -1;
	close(fd);
	return ret;
}

int zram_swap_on(unsigned long size_mb, char *dev, size_t len)
{
	char sys[128], val[64];
	unsigned long disksize = 1;
	int id = 0, maj, min;
	struct stat st;

	/* zram0 when it is free, else a hot-added device */
	if (read_ulong("/sys/block/zram0/disksize", &disksize) || disksize) {
		if (read_str("/sys/class/zram-control/hot_add", val,
			     sizeof(val))) {
			upm_msg("no free zram device and no zram-control/hot_add: %s\n",
				strerror(errno));
			return -1;
		}
		id = atoi(val);
	}
	snprintf(sys, sizeof(sys), "/sys/block/zram%d/disksize", id);
	snprintf(val, sizeof(val), "%luM", size_mb);
	if (write_str(sys, val)) {
		upm_msg("cannot write %s to %s: %s\n", val, sys,
			strerror(errno));
		goto remove;
	}
	snprintf(dev, len, "/dev/zram%d", id);
	if (stat(dev, &st)) {
		snprintf(sys, sizeof(sys), "/sys/block/zram%d/dev", id);
		if (read_str(sys, val, sizeof(val)) ||
		    sscanf(val, "%d:%d", &maj, &min) != 2 ||
		    mknod(dev, S_IFBLK | 0600, makedev(maj, min))) {
			upm_msg("no %s and cannot make it: %s\n", dev,
				strerror(errno));
			goto reset;
		}
	}
	if (write_swap_header(dev, size_mb * MIB)) {
		upm_msg("cannot write a swap header to %s: %s\n", dev,
			strerror(errno));
		goto reset;
	}
	if (swapon(dev, 0)) {
		upm_msg("swapon %s: %s\n", dev, strerror(errno));
		goto reset;
	}
	return 0;
reset:
	snprintf(sys, sizeof(sys), "/sys/block/zram%d/reset", id);
	write_str(sys, "1");
remove:
	if (id) {
		snprintf(val, sizeof(val), "%d", id);
		write_str("/sys/class/zram-control/hot_remove", val);
	}
	return -1;
}

int zram_swap_off(const char *dev)
{
	char sys[128], val[16];
	int id, ret = 0;

	if (sscanf(dev, "/dev/zram%d", &id) != 1)
		return -1;
	if (swapoff(dev)) {
		upm_msg("swapoff %s: %s\n", dev, strerror(errno));
		ret = -1;
	}
	snprintf(sys, sizeof(sys), "/sys/block/zram%d/reset", id);
	if (write_str(sys, "1")) {
		upm_msg("cannot reset zram%d: %s\n", id, strerror(errno));
		ret = -1;
	}
	if (id) {
		snprintf(val, sizeof(val), "%d", id);
		if (write_str("/sys/class/zram-control/hot_remove", val))
			ret = -1;
	}
	return ret;
}

/* ---- memory cgroups (v2) ---- */

static bool cg2_mounted(void)
{
	char line[512];
	FILE *f = fopen("/proc/self/mounts", "r");
	bool found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, " " CG_ROOT " cgroup2 "))
			found = true;
	fclose(f);
	return found;
}

int cg_init(void)
{
	char ctl[256];

	if (!cg2_mounted()) {
		mkdir(CG_ROOT, 0755);
		if (mount("cgroup2", CG_ROOT, "cgroup2", 0, NULL)) {
			upm_msg("mount cgroup2 on %s: %s\n", CG_ROOT,
				strerror(errno));
			return -1;
		}
	}
	if (read_str(CG_ROOT "/cgroup.subtree_control", ctl, sizeof(ctl)))
		return -1;
	if (!strstr(ctl, "memory") &&
	    write_str(CG_ROOT "/cgroup.subtree_control", "+memory")) {
		upm_msg("cannot enable the memory controller: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

static void cg_path(char *buf, size_t len, const char *name, const char *file)
{
	snprintf(buf, len, CG_ROOT "/%s%s%s", name, file ? "/" : "",
		 file ? file : "");
}

int cg_create(const char *name)
{
	char path[256];

	cg_path(path, sizeof(path), name, NULL);
	if (mkdir(path, 0755) && errno != EEXIST) {
		upm_msg("mkdir %s: %s\n", path, strerror(errno));
		return -1;
	}
	cg_write(name, "memory.max", "max");
	return 0;
}

int cg_write(const char *name, const char *file, const char *val)
{
	char path[256];

	cg_path(path, sizeof(path), name, file);
	return write_str(path, val);
}

long cg_read(const char *name, const char *file, const char *key)
{
	char path[256], buf[64];

	cg_path(path, sizeof(path), name, file);
	if (key)
		return file_field(path, key);
	if (read_str(path, buf, sizeof(buf)))
		return -1;
	return strtol(buf, NULL, 10);
}

long cg_wait_slab(const char *name, long want, double *waited)
{
	double t0 = now_sec();
	long val;
	int t;

	for (t = 0;; t++) {
		val = cg_read(name, "memory.stat", "slab_unreclaimable");
		if (val >= want || t == 100)
			break;
		sleep_ms(100);
	}
	if (waited)
		*waited = now_sec() - t0;
	return val;
}

int cg_enter(const char *name, pid_t pid)
{
	char val[32];

	snprintf(val, sizeof(val), "%d", (int)(pid ? pid : getpid()));
	return cg_write(name, "cgroup.procs", val);
}

int cg_destroy(const char *name)
{
	char path[256];
	int tries;

	cg_path(path, sizeof(path), name, NULL);
	if (access(path, F_OK))
		return 0;
	for (tries = 0; tries < 100; tries++) {
		if (rmdir(path) == 0)
			return 0;
		if (errno != EBUSY)
			break;
		/* something is still in there: kill it */
		cg_write(name, "cgroup.kill", "1");
		sleep_ms(50);
	}
	upm_msg("rmdir %s: %s\n", path, strerror(errno));
	return -1;
}
