/* SPDX-License-Identifier: GPL-2.0 */
/*
 * upm.h - User-guided Page Merging for C runtimes.
 *
 * madvise(addr, len, MADV_UPM) merges, before it returns, every present
 * private anonymous page in the range with an identical page that a
 * process of its merge domain advised before (copy-on-write), or makes it
 * a page that later callers merge with.
 */
#ifndef UPM_H
#define UPM_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MADV_UPM
#define MADV_UPM 26
#endif
#ifndef PR_SET_UPM_DOMAIN
#define PR_SET_UPM_DOMAIN 0x55504d01
#define PR_GET_UPM_DOMAIN 0x55504d02
#endif

/*
 * upm_advise - advise the whole pages of a buffer for merging.
 * The buffer need not be page aligned: the pages that lie wholly inside it
 * are advised (a partial page at either end may hold other data). Returns 0,
 * or -1 with errno set as madvise() sets it.
 */
static inline int upm_advise(const void *buf, size_t len)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = ((uintptr_t)buf + page - 1) & ~(page - 1);
	uintptr_t end = ((uintptr_t)buf + len) & ~(page - 1);

	if ((uintptr_t)buf + len < (uintptr_t)buf) {
		errno = EINVAL;
		return -1;
	}
	if (end <= start)
		return 0;
	return madvise((void *)start, end - start, MADV_UPM);
}

/*
 * upm_set_domain - put the calling process in merge domain id (1..INT_MAX).
 * Its pages merge only with pages of processes in the same domain, by
 * MADV_UPM and by ksmd; children and exec keep it. Needs CAP_SYS_ADMIN.
 * Returns 0, or -1 with errno EINVAL, EPERM or EBUSY (pages were merged in
 * another domain already).
 */
static inline int upm_set_domain(int id)
{
	return prctl(PR_SET_UPM_DOMAIN, (unsigned long)id, 0UL, 0UL, 0UL);
}

/* upm_get_domain - the calling process's domain; 0 when none was assigned. */
static inline int upm_get_domain(void)
{
	return prctl(PR_GET_UPM_DOMAIN, 0UL, 0UL, 0UL, 0UL);
}

/*
 * upm_advise_process - advise ranges of another process for merging, with
 * process_madvise(2): pidfd from pidfd_open(2), iov[] page-aligned ranges
 * of that process. Its pages merge in its own merge domain, as if it had
 * advised them itself. Needs ptrace read access to it and CAP_SYS_NICE.
 * Returns the bytes advised (fewer than asked when a range failed after
 * others were done), or -1 with errno: EACCES (no ptrace access), EPERM
 * (no CAP_SYS_NICE), ESRCH (it exited), EINVAL (a kernel without UPM, or a
 * bad range), or as madvise() sets it.
 */
static inline ssize_t upm_advise_process(int pidfd, const struct iovec *iov,
					 size_t n)
{
	return syscall(SYS_process_madvise, pidfd, iov, n, MADV_UPM, 0U);
}

#endif /* UPM_H */
