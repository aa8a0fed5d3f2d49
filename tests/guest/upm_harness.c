// SPDX-License-Identifier: GPL-2.0
/*
 * The guest itself: the right kernel, with UPM (the UPM selftests skip
 * without it), the file systems that the tests read, KSM's interface,
 * page-frame numbers in pagemap and two NUMA nodes.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "kselftest.h"

static int mounted(const char *type, const char *dir)
{
	char line[512], want[256];
	FILE *f = fopen("/proc/self/mounts", "r");
	int found = 0;

	if (!f)
		return 0;
	snprintf(want, sizeof(want), " %s %s ", dir, type);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, want))
			found = 1;
	fclose(f);
	return found;
}

static uint64_t pfn_of(void *addr)
{
	uint64_t entry = 0;
	long page = sysconf(_SC_PAGESIZE);
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &entry, sizeof(entry),
		  (uintptr_t)addr / page * sizeof(entry)) != sizeof(entry))
		entry = 0;
	close(fd);
	return (entry & (1ULL << 63)) ? entry & ((1ULL << 55) - 1) : 0;
}

int main(void)
{
	struct utsname u;
	char *p;

	ksft_print_header();
	ksft_set_plan(6);

	uname(&u);
	ksft_test_result(strstr(u.release, "-upm") != NULL,
			 "kernel is the patched one (%s)\n", u.release);
	ksft_test_result(mounted("proc", "/proc") && mounted("sysfs", "/sys") &&
			 mounted("debugfs", "/sys/kernel/debug") &&
			 mounted("tmpfs", "/tmp") && mounted("devtmpfs", "/dev"),
			 "proc, sysfs, debugfs, devtmpfs and tmpfs are mounted\n");
	ksft_test_result(access("/sys/kernel/mm/ksm/run", W_OK) == 0 &&
			 access("/sys/kernel/mm/ksm/pages_sharing", R_OK) == 0,
			 "KSM's sysfs interface is there\n");
	/* The UPM selftests skip on a kernel without it: not here. */
	ksft_test_result(access("/sys/kernel/mm/upm/enabled", W_OK) == 0,
			 "the kernel has UPM (/sys/kernel/mm/upm)\n");

	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		ksft_exit_fail_msg("mmap failed\n");
	p[0] = 1;
	ksft_test_result(pfn_of(p) != 0, "pagemap shows page frame numbers\n");
	ksft_test_result(access("/sys/devices/system/node/node1", F_OK) == 0,
			 "the guest has two NUMA nodes\n");
	ksft_finished();
}
