#include <stdio.h>
#include "chunk.h"

#include <string.h>

static const uint8_t zeros[DV_ZERO_BLOCK];

const uint8_t *dv_zero_block(void) { return zeros; }

bool dv_is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	/* Word-wise OR over 64-byte blocks; compilers vectorise this loop. */
	while (n >= 64) {
		uint64_t w[8], acc = 0;
		memcpy(w, b, 64);
		for (int i = 0; i < 8; i++)
			acc |= w[i];
		if (acc)
			return false;
		b += 64;
		n -= 64;
	}
	while (n--)
		if (*b++)
			return false;
	return true;
}
