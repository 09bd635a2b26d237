/*
 * crc32c.c - CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), the
 * checksum of XFS v5 and btrfs metadata. Table-driven: Debian's only C
 * library that exports crc32c (ISA-L) ships no static archive for the
 * release binary, and zlib's crc32 is a different polynomial.
 */
#include <pthread.h>

#include "util/util.h"

static uint32_t table[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? c >> 1 ^ 0x82f63b78u : c >> 1;
		table[i] = c;
	}
}

uint32_t dv_crc32c_update(uint32_t state, const void *s, size_t n)
{
	pthread_once(&once, build);
	const uint8_t *p = s;
	while (n--)
		state = table[(state ^ *p++) & 0xff] ^ state >> 8;
	return state;
}

uint32_t dv_crc32c(const void *s, size_t n)
{
	return ~dv_crc32c_update(0xffffffffu, s, n);
}
