// SPDX-License-Identifier: GPL-2.0
/*
 * hash_bench - which page key should MADV_UPM use: xxh64 (what it and KSM's
 * calc_checksum() use) or crc32c, which x86 computes in hardware (SSE4.2's
 * crc32 instruction, which the kernel's crc32c() uses)?
 *
 * Runs on the host (natively: an emulated guest would time QEMU, not the
 * instruction). Per 4 KiB page, over a working set that stays in the L2
 * cache (pages just written by the caller) and over one far larger than the
 * last-level cache (pages read from DRAM), in GB/s of pages hashed:
 *   xxh64            the algorithm of include/linux/xxhash.h
 *   crc32c, 1 stream one crc32q after another, as a plain loop does
 *   crc32c, 3 streams three interleaved streams over thirds of the page, as
 *                    the kernel's crc32c-pcl does (the partial CRCs are XORed
 *                    here; combining them properly costs a few more
 *                    instructions, so this is an upper bound)
 *   memcmp           a byte-exact comparison of two identical pages, which a
 *                    merge needs anyway (GB/s of one page compared)
 *
 *   cc -O2 -msse4.2 -o hash_bench tests/bench/hash_bench.c && ./hash_bench
 */
#include <nmmintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PG 4096

static const uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL,
		      P3 = 0x165667B19E3779F9ULL, P4 = 0x85EBCA77C2B2AE63ULL;

static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static inline uint64_t round64(uint64_t acc, uint64_t in)
{
	return rotl(acc + in * P2, 31) * P1;
}

static inline uint64_t merge64(uint64_t acc, uint64_t v)
{
	return (acc ^ round64(0, v)) * P1 + P4;
}

/* xxh64 of a whole number of 32-byte stripes (a page is 128 of them). */
static uint64_t xxh64_page(const uint8_t *p, uint64_t seed)
{
	uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
	const uint8_t *end = p + PG;
	uint64_t h;

	for (; p < end; p += 32) {
		v1 = round64(v1, load64(p));
		v2 = round64(v2, load64(p + 8));
		v3 = round64(v3, load64(p + 16));
		v4 = round64(v4, load64(p + 24));
	}
	h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
	h = merge64(merge64(merge64(merge64(h, v1), v2), v3), v4) + PG;
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	return h ^ (h >> 32);
}

static uint32_t crc32c_1(const uint8_t *p, uint32_t crc)
{
	uint64_t c = crc;
	int i;

	for (i = 0; i < PG; i += 8)
		c = _mm_crc32_u64(c, load64(p + i));
	return c;
}

static uint32_t crc32c_3(const uint8_t *p, uint32_t crc)
{
	const int third = PG / 24 * 8;	/* 1360 bytes; 16 bytes are left */
	uint64_t a = crc, b = 0, c = 0;
	int i;

	for (i = 0; i < third; i += 8) {
		a = _mm_crc32_u64(a, load64(p + i));
		b = _mm_crc32_u64(b, load64(p + third + i));
		c = _mm_crc32_u64(c, load64(p + 2 * third + i));
	}
	for (i = 3 * third; i < PG; i += 8)
		a = _mm_crc32_u64(a, load64(p + i));
	return a ^ b ^ c;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile uint64_t sink;

/* GB/s of pages over @n pages of @buf, @passes times, best of 5 runs. */
static double rate(int what, const uint8_t *buf, const uint8_t *twin,
		   size_t n, int passes)
{
	double best = 0;
	int run, pass;
	size_t i;

	for (run = 0; run < 5; run++) {
		double t0 = now(), gbs;
		uint64_t s = 0;

		for (pass = 0; pass < passes; pass++)
			for (i = 0; i < n; i++) {
				const uint8_t *p = buf + i * PG;

				switch (what) {
				case 0:
					s += xxh64_page(p, 0x5eed);
					break;
				case 1:
					s += crc32c_1(p, ~0u);
					break;
				case 2:
					s += crc32c_3(p, ~0u);
					break;
				default:
					s += memcmp(p, twin + i * PG, PG);
				}
			}
		sink += s;
		gbs = (double)n * PG * passes / (now() - t0) / 1e9;
		if (gbs > best)
			best = gbs;
	}
	return best;
}

int main(void)
{
	static const char *const names[] = {
		"xxh64", "crc32c, 1 stream", "crc32c, 3 streams", "memcmp",
	};
	/* 64 pages (256 KiB) stay in L2; 65536 (256 MiB) come from DRAM. */
	static const struct { const char *name; size_t pages; int passes; } sets[] = {
		{ "L2-resident (256 KiB)", 64, 4096 },
		{ "DRAM (256 MiB)", 65536, 4 },
	};
	size_t max = 65536, i;
	uint8_t *buf = malloc(max * PG), *twin = malloc(max * PG);
	int s, w;

	if (!buf || !twin) {
		perror("malloc");
		return 1;
	}
	for (i = 0; i < max * PG; i++)
		buf[i] = (uint8_t)(i * 131 + (i >> 12));
	memcpy(twin, buf, max * PG);
	printf("| working set | %s | %s | %s | %s |\n|---|--:|--:|--:|--:|\n",
	       names[0], names[1], names[2], names[3]);
	for (s = 0; s < 2; s++) {
		printf("| %s |", sets[s].name);
		for (w = 0; w < 4; w++)
			printf(" %.1f GB/s |", rate(w, buf, twin, sets[s].pages,
						    sets[s].passes));
		printf("\n");
	}
	return 0;
}
