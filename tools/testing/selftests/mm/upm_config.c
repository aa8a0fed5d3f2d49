// SPDX-License-Identifier: GPL-2.0
/*
 * MADV_UPM's interfaces exist exactly when the kernel is built with
 * CONFIG_UPM. With CONFIG_UPM, madvise, process_madvise and the prctls take
 * MADV_UPM and its domain calls, and /sys/kernel/mm/upm/ exists; without it
 * (or without KSM) each of them fails with EINVAL, as for an unknown advice
 * or option, there is no /sys/kernel/mm/upm/, and the advised memory is
 * left as it was. "upm_config present" and "upm_config absent" say which
 * the kernel must be (the UPM harness boots both kinds); with no argument
 * it checks the kernel is consistently one or the other, as /sys/kernel/mm/
 * upm/ says.
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
	bool absent = !upm_present();
	struct stat st;
	struct iovec iov;
	char *p;
	int pidfd, err;
	long r;

	ksft_print_header();
	if (argc > 1 && !strcmp(argv[1], "absent"))
		absent = true;
	else if (argc > 1 && !strcmp(argv[1], "present"))
		absent = false;
	else if (argc > 1)
		ksft_exit_fail_msg("usage: %s [present|absent]\n", argv[0]);
	ksft_print_msg("expecting a kernel %s CONFIG_UPM\n",
		       absent ? "without" : "with");
	if (geteuid())
		ksft_exit_skip("needs root (PR_SET_UPM_DOMAIN)\n");
	ksft_set_plan(6);

	/* Before anything merges: a domain cannot change after. */
	expect(absent, err_of(prctl(PR_SET_UPM_DOMAIN, 7, 0, 0, 0)),
	       "prctl(PR_SET_UPM_DOMAIN, 7)");

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

	r = prctl(PR_GET_UPM_DOMAIN, 0, 0, 0, 0);
	if (absent)
		expect(absent, err_of(r), "prctl(PR_GET_UPM_DOMAIN)");
	else
		ksft_test_result(r == 7, "prctl(PR_GET_UPM_DOMAIN): %ld, expected 7\n",
				 r);

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
