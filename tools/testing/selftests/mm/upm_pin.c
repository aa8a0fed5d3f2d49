// SPDX-License-Identifier: GPL-2.0
/*
 * Pinned pages are never merged: a page registered as an io_uring fixed
 * buffer, and a page spliced into a pipe by vmsplice() and not yet read,
 * stay where they are (pages_skipped counts them) while the rest of the
 * range merges; data written through the pin shows in the process's own
 * mapping. Both when the twins are another process's candidates (pair
 * merges) and when they are KSM pages already (a page table's twins are
 * replaced at once, with one TLB flush, and the pin checked after it).
 * A candidate pinned by its own process is not merged either. In every
 * case no KSM page is copied during the call (/proc/vmstat cow_ksm): a page
 * whose twin is pinned is not made a KSM page and unmerged again, a copy,
 * maybe on another NUMA node. Nor is a caller's page that a fork maps
 * too, whose pinned twin would leave it a KSM page in no tree in the fork,
 * which migration cannot move.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define NPAGES 8
#define PINNED 3		/* the page io_uring or the pipe holds */
#define SKIP_RC 4242
#define DATA_FILE "/tmp/upm_pin_data"

enum { CMD_SETUP = 1, CMD_PIN_URING, CMD_PIN_SPLICE, CMD_ADVISE,
	CMD_MEASURE, CMD_URING_READ, CMD_SPLICE_CHECK, CMD_PFNS_BEFORE,
	CMD_FORK, CMD_END_FORK };

#define MPOL_MF_MOVE_ALL_ (1 << 2)

#define MAXW 3			/* the pinning process and up to two others */

struct shared {
	uint64_t seed;
	uint64_t pfn[MAXW][NPAGES], pfn_before[MAXW][NPAGES];
	long bad[MAXW];
	char *addr;		/* the region, in a helper and its fork */
	pid_t child;		/* helper 0's fork */
};

static struct shared *sh;
static char *buf;

/* ---- a minimal io_uring ---- */
struct ring {
	int fd;
	unsigned int *sq_tail, *sq_mask, *sq_array;
	unsigned int *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static struct ring ring = { .fd = -1 };

static int ring_setup(struct ring *r)
{
	struct io_uring_params p;
	size_t sqsz, cqsz;
	char *sq, *cq;

	memset(&p, 0, sizeof(p));
	r->fd = syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0)
		return -errno;
	sqsz = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	cqsz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP && cqsz > sqsz)
		sqsz = cqsz;
	sq = mmap(NULL, sqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		  r->fd, IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		return -errno;
	cq = sq;
	if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
		cq = mmap(NULL, cqsz, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
		if (cq == MAP_FAILED)
			return -errno;
	}
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       r->fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED)
		return -errno;
	r->sq_tail = (unsigned int *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned int *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned int *)(sq + p.sq_off.array);
	r->cq_head = (unsigned int *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned int *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned int *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

/* One READ_FIXED of len bytes at file offset 0 into addr; returns res. */
static int ring_read_fixed(struct ring *r, int fd, void *addr, unsigned int len)
{
	unsigned int tail = *r->sq_tail, idx = tail & *r->sq_mask, head;
	struct io_uring_sqe *sqe = &r->sqes[idx];
	int res;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_READ_FIXED;
	sqe->fd = fd;
	sqe->off = 0;
	sqe->addr = (uintptr_t)addr;
	sqe->len = len;
	sqe->buf_index = 0;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS,
		    NULL, 0) < 0)
		return -errno;
	head = *r->cq_head;
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		return -EAGAIN;
	res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

static int pipefd[2] = { -1, -1 };

static long helper(int idx, int cmd, void *arg)
{
	struct iovec iov = { 0 };
	char data[PG], got[PG];
	pid_t child;
	size_t j;
	int fd, r;
	(void)arg;

	switch (cmd) {
	case CMD_SETUP:
		buf = map_anon(NPAGES * PG, -1);
		if (!buf)
			return -ENOMEM;
		fill_pages(buf, NPAGES, sh->seed);
		return 0;
	case CMD_PIN_URING:
		r = ring_setup(&ring);
		if (r) {
			ksft_print_msg("io_uring_setup: %s\n", strerror(-r));
			return SKIP_RC;
		}
		iov.iov_base = buf + PINNED * PG;
		iov.iov_len = PG;
		if (syscall(__NR_io_uring_register, ring.fd,
			    IORING_REGISTER_BUFFERS, &iov, 1) < 0) {
			ksft_print_msg("IORING_REGISTER_BUFFERS: %s\n",
				       strerror(errno));
			return SKIP_RC;
		}
		pfns_of(buf, NPAGES, sh->pfn_before[idx]);
		return 0;
	case CMD_PIN_SPLICE:
		if (pipe(pipefd))
			return -errno;
		iov.iov_base = buf + PINNED * PG;
		iov.iov_len = PG;
		if (vmsplice(pipefd[1], &iov, 1, 0) != (ssize_t)PG) {
			ksft_print_msg("vmsplice: %s\n", strerror(errno));
			return SKIP_RC;
		}
		pfns_of(buf, NPAGES, sh->pfn_before[idx]);
		return 0;
	case CMD_PFNS_BEFORE:
		pfns_of(buf, NPAGES, sh->pfn_before[idx]);
		return 0;
	case CMD_ADVISE:
		return upm_call(buf, NPAGES * PG);
	case CMD_FORK:
		sh->addr = buf;
		child = fork();
		if (child < 0)
			return -errno;
		if (!child) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1)
				_exit(0);
			for (;;)
				pause();
		}
		sh->child = child;
		return 0;
	case CMD_END_FORK:
		child = sh->child;
		sh->child = 0;
		if (child <= 0)
			return 0;
		kill(child, SIGKILL);
		return waitpid(child, NULL, 0) < 0 ? -errno : 0;
	case CMD_MEASURE:
		pfns_of(buf, NPAGES, sh->pfn[idx]);
		sh->bad[idx] = count_bad_pages(buf, NPAGES, sh->seed);
		return 0;
	case CMD_URING_READ:
		/* data lands in the fixed buffer through the pin */
		fill_page(data, 0x7700, 0);
		fd = open(DATA_FILE, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, data, PG) != (ssize_t)PG)
			return -EIO;
		r = ring_read_fixed(&ring, fd, buf + PINNED * PG, PG);
		close(fd);
		unlink(DATA_FILE);
		if (r != (int)PG) {
			ksft_print_msg("READ_FIXED returned %d\n", r);
			return 1;
		}
		if (memcmp(buf + PINNED * PG, data, PG)) {
			ksft_print_msg("data read through the fixed buffer is not in the page\n");
			return 2;
		}
		for (j = 0; j < NPAGES; j++)
			if (j != PINNED && !page_matches(buf + j * PG, sh->seed,
							 j))
				return 3;
		return 0;
	case CMD_SPLICE_CHECK:
		/* the pipe still holds this very page: it sees the write */
		buf[PINNED * PG + 100] ^= 0x5a;
		memcpy(data, buf + PINNED * PG, PG);
		if (read(pipefd[0], got, PG) != (ssize_t)PG)
			return -EIO;
		if (memcmp(got, data, PG)) {
			ksft_print_msg("the pipe holds another page than the mapping\n");
			return 1;
		}
		return 0;
	}
	return -EINVAL;
}

/* Stop the helpers; true when KSM's counters are back at @base. */
/*
 * Helper 1 advises first (its pages become candidates); with ksm_twins,
 * helper 2 then advises too, which makes every page a KSM page; helper 0
 * holds a pin and advises last. With pin_candidate, helper 1 holds the pin
 * instead, on its candidate.
 */
static void test_pin(const char *name, int pin_cmd, int check_cmd,
		     uint64_t seed, bool ksm_twins, bool pin_candidate)
{
	int nw = ksm_twins ? 3 : 2, pinner = pin_candidate ? 1 : 0;
	struct worker w[MAXW];
	struct upm_stats d;
	struct ksm_stats base;
	bool ok = true, skip = false;
	long cow0, cow_ksm;
	size_t j;
	long r;
	int i;

	ksm_stats_read(&base);
	sh->seed = seed;
	for (i = 0; i < nw; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		if (worker_call(&w[i], CMD_SETUP))
			ok = false;
	}
	/* helper 1 records candidates, helper 0 holds a pin and advises */
	r = worker_call_counted(&w[1], CMD_ADVISE, "first caller (no pin)", &d);
	if (d.pages_candidate != NPAGES) {
		ksft_print_msg("%s: first caller: expected pages_candidate +%d, saw %+ld\n",
			       name, NPAGES, (long)d.pages_candidate);
		ok = false;
	}
	if (r) {
		ksft_print_msg("%s: first caller: madvise(MADV_UPM) failed: %s\n",
			       name, strerror(r));
		ok = false;
	}
	if (ksm_twins) {
		r = worker_call_counted(&w[2], CMD_ADVISE, "second caller", &d);
		if (r || d.pages_new_ksm != NPAGES) {
			ksft_print_msg("%s: second caller: expected pages_new_ksm +%d, saw %+ld (%s)\n",
				       name, NPAGES, (long)d.pages_new_ksm,
				       strerror(r));
			ok = false;
		}
	}
	r = worker_call(&w[pinner], pin_cmd);
	if (!r && pinner)
		r = worker_call(&w[0], CMD_PFNS_BEFORE);
	if (r == SKIP_RC) {
		skip = true;
		goto out;
	}
	if (r)
		ok = false;
	cow0 = ksm_cow_count();
	r = worker_call_counted(&w[0], CMD_ADVISE, name, &d);
	cow_ksm = ksm_cow_count() - cow0;
	if (cow0 < 0 || cow_ksm) {
		ksft_print_msg("%s: %ld KSM pages copied during the call (cow_ksm)\n",
			       name, cow_ksm);
		ok = false;
	}
	if (r) {
		ksft_print_msg("%s: madvise(MADV_UPM) failed: %s\n", name,
			       strerror(r));
		ok = false;
	}
	if (d.pages_skipped != 1 || d.pages_merged != NPAGES - 1) {
		ksft_print_msg("%s: expected pages_skipped +1 and pages_merged +%d, saw %+ld %+ld\n",
			       name, NPAGES - 1, (long)d.pages_skipped,
			       (long)d.pages_merged);
		ok = false;
	}
	ok &= upm_stats_balanced(&d, name);
	worker_call(&w[0], CMD_MEASURE);
	worker_call(&w[1], CMD_MEASURE);
	for (j = 0; j < NPAGES; j++) {
		bool good = j == PINNED ?
			sh->pfn[0][j] == sh->pfn_before[0][j] &&
			(!pinner || sh->pfn[1][j] == sh->pfn_before[1][j]) &&
			sh->pfn[0][j] != sh->pfn[1][j] :
			sh->pfn[0][j] == sh->pfn[1][j];

		if (!good) {
			ksft_print_msg("%s: page %zu%s: pfn %#lx (before %#lx), other process %#lx (before %#lx)\n",
				       name, j, j == PINNED ? " (pinned)" : "",
				       (long)sh->pfn[0][j],
				       (long)sh->pfn_before[0][j],
				       (long)sh->pfn[1][j],
				       (long)sh->pfn_before[1][j]);
			ok = false;
		}
	}
	if (sh->bad[0] || sh->bad[1]) {
		ksft_print_msg("%s: contents changed (%ld, %ld pages)\n", name,
			       sh->bad[0], sh->bad[1]);
		ok = false;
	}
	r = worker_call(&w[pinner], check_cmd);
	if (r) {
		ksft_print_msg("%s: I/O through the pin check failed (%ld)\n",
			       name, r);
		ok = false;
	}
	/* The pinner's own page was written through the pin just now. */
	for (i = 1; i < nw; i++) {
		if (i == pinner)
			continue;
		worker_call(&w[i], CMD_MEASURE);
		if (sh->bad[i]) {
			ksft_print_msg("%s: the other processes' pages changed\n",
				       name);
			ok = false;
		}
		if (i == 2 && memcmp(sh->pfn[1], sh->pfn[2], sizeof(sh->pfn[1]))) {
			ksft_print_msg("%s: the two others do not share every page\n",
				       name);
			ok = false;
		}
	}
out:
	if (!workers_stop_back(w, nw, &base))
		ok = false;
	if (skip)
		ksft_test_result_skip("%s: not available\n", name);
	else
		ksft_test_result(ok, "%s: pinned page not merged (skipped, same frame, no copy), the rest merged, data through the pin intact\n",
				 name);
}

/*
 * Helper 1 advises first and pins one of its candidates (vmsplice); helper
 * 0, whose pages a fork of it maps too, advises: the page whose twin is
 * pinned is skipped as it is. Made a KSM page and unmerged again in helper
 * 0 alone, it would stay a KSM page in no tree in the fork, which rmap
 * cannot find: migration could not move it to the other node.
 */
static void test_pin_fork(void)
{
	const char *name = "vmsplice on the candidate of a page a fork shares";
	int node = -1, status = -1;
	struct worker w[2];
	struct ksm_stats base;
	struct upm_stats d;
	long r, cow0, cow_ksm = 0;
	bool ok = true, skip = false;
	void *addr;
	int i;

	if (access("/sys/devices/system/node/node1", F_OK)) {
		ksft_test_result_skip("%s: needs two NUMA nodes\n", name);
		return;
	}
	ksm_stats_read(&base);
	sh->seed = 0x7600;
	sh->child = 0;
	for (i = 0; i < 2; i++) {
		if (worker_start(&w[i], i, helper, NULL))
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		if (worker_call(&w[i], CMD_SETUP))
			ok = false;
	}
	r = worker_call_counted(&w[1], CMD_ADVISE, "first caller (no pin)", &d);
	r = r ?: worker_call(&w[1], CMD_PIN_SPLICE);
	skip = r == SKIP_RC;
	r = r ?: worker_call(&w[0], CMD_FORK);
	if (r || !ok) {
		if (!skip)
			ksft_print_msg("%s: setup failed (%ld)\n", name, r);
		ok = false;
		goto out;
	}
	cow0 = ksm_cow_count();
	r = worker_call_counted(&w[0], CMD_ADVISE, name, &d);
	cow_ksm = ksm_cow_count() - cow0;
	if (r || d.pages_skipped != 1 || d.pages_merged != NPAGES - 1) {
		ksft_print_msg("%s: expected pages_skipped +1 and pages_merged +%d, saw %+ld %+ld (%s)\n",
			       name, NPAGES - 1, (long)d.pages_skipped,
			       (long)d.pages_merged, strerror(r));
		ok = false;
	}
	/* The fork's page to the node it is not on. */
	addr = sh->addr + PINNED * PG;
	if (syscall(__NR_move_pages, sh->child, 1, &addr, NULL, &status, 0) ||
	    status < 0) {
		ksft_print_msg("%s: the fork's page: %s, status %d\n", name,
			       strerror(errno), status);
		ok = false;
		goto out;
	}
	node = !status;
	r = syscall(__NR_move_pages, sh->child, 1, &addr, &node, &status,
		    MPOL_MF_MOVE_ALL_);
	ksft_print_msg("%s: KSM pages copied during the call: %ld; move_pages of the fork's page to node %d: %ld, status %d\n",
		       name, cow_ksm, node, r, status);
	if (cow0 < 0 || cow_ksm || r || status != node)
		ok = false;
out:
	if (worker_call(&w[0], CMD_END_FORK))
		ok = false;
	if (!workers_stop_back(w, 2, &base))
		ok = false;
	if (skip)
		ksft_test_result_skip("%s: vmsplice not available\n", name);
	else
		ksft_test_result(ok, "%s: skipped, no copy, the fork's page still migrates\n",
				 name);
}

int main(void)
{
	upm_test_start(7);
	sh = shared_alloc(sizeof(*sh));
	if (!sh)
		ksft_exit_fail_msg("no memory for results\n");
	test_pin("io_uring fixed buffer", CMD_PIN_URING, CMD_URING_READ,
		 0x7000, false, false);
	test_pin("vmsplice", CMD_PIN_SPLICE, CMD_SPLICE_CHECK, 0x7100, false,
		 false);
	test_pin("io_uring fixed buffer, twins are KSM pages", CMD_PIN_URING,
		 CMD_URING_READ, 0x7200, true, false);
	test_pin("vmsplice, twins are KSM pages", CMD_PIN_SPLICE,
		 CMD_SPLICE_CHECK, 0x7300, true, false);
	test_pin("io_uring fixed buffer on the candidate", CMD_PIN_URING,
		 CMD_URING_READ, 0x7400, false, true);
	test_pin("vmsplice on the candidate", CMD_PIN_SPLICE,
		 CMD_SPLICE_CHECK, 0x7500, false, true);
	test_pin_fork();
	ksft_finished();
}
