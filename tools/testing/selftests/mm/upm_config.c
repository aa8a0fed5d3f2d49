// SPDX-License-Identifier: GPL-2.0
/*
 * MADV_UPM's interfaces exist exactly when the kernel is built with
 * CONFIG_UPM. With no argument (the suite, a CONFIG_UPM kernel): madvise,
 * process_madvise and the prctls take MADV_UPM and its domain calls, and
 * /sys/kernel/mm/upm/ exists. With "absent" (scripts/series-check boots
 * kernels built with CONFIG_UPM=n and with CONFIG_KSM=n): each of them
 * fails with EINVAL, as for an unknown advice, there is no
 * /sys/kernel/mm/upm/, and the advised memory is left as it was.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../kselftest.h"
#include "upm_util.h"

#define NPAGES 16

/* 0 or the errno of a failed call */
static int err_of(long r)
{
	return r < 0 ? errno : 0;
}

static void expect(bool absent, int err, const char *what)
{
	if (absent)
		ksft_test_result(err == EINVAL, "%s: %s, expected EINVAL\n",
				 what, err ? strerror(err) : "success");
	else
		ksft_test_result(err == 0, "%s: %s, expected success\n",
				 what, err ? strerror(err) : "success");
}

int main(int argc, char **argv)
{
	bool absent = argc > 1 && !strcmp(argv[1], "absent");
	struct stat st;
	struct iovec iov;
	char *p;
	int pidfd, err;

	ksft_print_header();
	ksft_set_plan(5);
	ksft_print_msg("expecting a kernel %s CONFIG_UPM\n",
		       absent ? "without" : "with");

	p = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	fill_pages(p, NPAGES, 7);

	expect(absent, err_of(madvise(p, NPAGES * PG, MADV_UPM)),
	       "madvise(MADV_UPM)");

	pidfd = syscall(SYS_pidfd_open, getpid(), 0);
	if (pidfd < 0)
		ksft_exit_fail_msg("pidfd_open: %s\n", strerror(errno));
	iov.iov_base = p;
	iov.iov_len = NPAGES * PG;
	err = err_of(syscall(SYS_process_madvise, pidfd, &iov, 1, MADV_UPM,
			     0));
	/* Without CAP_SYS_NICE a present MADV_UPM gives EPERM, not EINVAL. */
	expect(absent, err == EPERM && !absent ? 0 : err,
	       "process_madvise(MADV_UPM)");
	close(pidfd);

	expect(absent, err_of(prctl(PR_GET_UPM_DOMAIN, 0, 0, 0, 0)),
	       "prctl(PR_GET_UPM_DOMAIN)");

	ksft_test_result((stat(UPM_SYSFS, &st) == 0) == !absent,
			 "%s %s\n", UPM_SYSFS,
			 absent ? "absent" : "present");

	ksft_test_result(count_bad_pages(p, NPAGES, 7) == 0 &&
			 !vma_mergeable(p) == absent,
			 "the advised pages kept their content, the vma %s\n",
			 absent ? "not made mergeable" : "made mergeable");
	munmap(p, NPAGES * PG);
	ksft_finished();
}
