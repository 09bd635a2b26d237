/* Sealing and key derivation: published scrypt vector, and every kind of
 * tampering refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "crypt/crypt.h"

static void test_scrypt_vector(void **state)
{
	(void)state;
	/* The parameters of RFC 7914's second vector (N=1024, r=8, p=16) with a
	 * 16-byte salt, as diskvault always uses; the expected value is
	 * Python's hashlib.scrypt(b"password", salt=b"NaCl-diskvault!!",
	 * n=1024, r=8, p=16, dklen=32), which also reproduces the RFC's own
	 * vector for the salt "NaCl". */
	struct dv_scrypt_params sp = {1024, 8, 16};
	uint8_t salt[DV_CRYPT_SALT_LEN], out[32];
	char hex[65];
	struct dv_err err;
	memcpy(salt, "NaCl-diskvault!!", 16);
	assert_int_equal(dv_crypt_scrypt("password", 8, salt, &sp, out, &err), 0);
	dv_hex(hex, out, 32);
	assert_string_equal(hex, "e85be8de678d993671793332cb211209dfa3c34ae77b2627b2e1dc9a33f9062d");
	/* Another passphrase, another key. */
	uint8_t out2[32];
	assert_int_equal(dv_crypt_scrypt("passwore", 8, salt, &sp, out2, &err), 0);
	assert_memory_not_equal(out, out2, 32);
}

static void test_scrypt_parallel_vector(void **state)
{
	(void)state;
	/* scrypt-parallel (formats/encryption.md) computed independently with
	 * Python: lanes = b"".join(hashlib.scrypt(b"password",
	 * salt=salt + struct.pack("<I", i), n=1024, r=8, p=1, dklen=32) for i
	 * in range(p)); key = HKDF-SHA256 (RFC 5869, written out with hmac)
	 * of lanes with salt and info b"diskvault scrypt-parallel". The result
	 * must not depend on how many threads derive the lanes. */
	static const struct {
		uint32_t p;
		const char *hex;
	} want[] = {
		{1, "ae0a3752fbc664a02e4352c1322e66cde5920a463b4238a9d1684f0029dfe663"},
		{3, "f8b1bdf58275180cf1b5ab01fbe4523ea3941442ed95ae1224a1fe34266d4acc"},
		{5, "a6aa059209e3974802586bcac86d5d3301ae4a8ed61b9a35f278f43c2dbeb70f"},
	};
	uint8_t salt[DV_CRYPT_SALT_LEN], out[32];
	char hex[65];
	struct dv_err err;
	memcpy(salt, "NaCl-diskvault!!", 16);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		for (unsigned threads = 0; threads <= 6; threads += 2) {
			struct dv_scrypt_params sp = {1024, 8, want[i].p};
			assert_int_equal(dv_crypt_scrypt_parallel("password", 8, salt, &sp, threads, out, &err), 0);
			dv_hex(hex, out, 32);
			assert_string_equal(hex, want[i].hex);
		}
	/* Not plain scrypt, and the passphrase matters. */
	struct dv_scrypt_params sp = {1024, 8, 3};
	uint8_t plain[32];
	assert_int_equal(dv_crypt_scrypt("password", 8, salt, &sp, plain, &err), 0);
	dv_hex(hex, plain, 32);
	assert_string_not_equal(hex, want[1].hex);
	assert_int_equal(dv_crypt_scrypt_parallel("passwore", 8, salt, &sp, 2, out, &err), 0);
	dv_hex(hex, out, 32);
	assert_string_not_equal(hex, want[1].hex);
	/* p outside the range configs allow is refused, not derived. */
	sp.p = DV_SCRYPT_MAX_P + 1;
	assert_int_equal(dv_crypt_scrypt_parallel("password", 8, salt, &sp, 2, out, &err), -DV_E_FAIL);
}

static void test_seal_open(void **state)
{
	(void)state;
	uint8_t key[32], other[32];
	dv_random_bytes(key, sizeof key);
	dv_random_bytes(other, sizeof other);
	const char msg[] = "the disk of an old server";
	struct dv_buf sealed = DV_BUF_INIT, out = DV_BUF_INIT, again = DV_BUF_INIT;
	struct dv_err err;
	dv_crypt_seal(key, "aad-1", 5, msg, sizeof msg, &sealed);
	assert_int_equal(sealed.len, sizeof msg + DV_CRYPT_OVERHEAD);
	assert_int_equal(dv_crypt_open(key, "aad-1", 5, sealed.data, sealed.len, &out, "obj", &err), 0);
	assert_memory_equal(out.data, msg, sizeof msg);
	/* A fresh nonce every time: the same plaintext seals differently. */
	dv_crypt_seal(key, "aad-1", 5, msg, sizeof msg, &again);
	assert_memory_not_equal(again.data, sealed.data, sealed.len);
	/* Every single-bit change anywhere is refused. */
	for (size_t i = 0; i < sealed.len; i++) {
		sealed.data[i] ^= 0x20;
		assert_int_equal(dv_crypt_open(key, "aad-1", 5, sealed.data, sealed.len, &out, "obj", &err), -DV_E_CORRUPT);
		sealed.data[i] ^= 0x20;
	}
	assert_non_null(strstr(err.msg, "obj: authentication failed"));
	/* Another role or name (swapped object), another key, truncation. */
	assert_int_equal(dv_crypt_open(key, "aad-2", 5, sealed.data, sealed.len, &out, "obj", &err), -DV_E_CORRUPT);
	assert_int_equal(dv_crypt_open(other, "aad-1", 5, sealed.data, sealed.len, &out, "obj", &err), -DV_E_CORRUPT);
	for (size_t n = 0; n < sealed.len; n++)
		assert_int_equal(dv_crypt_open(key, "aad-1", 5, sealed.data, n, &out, "obj", &err), -DV_E_CORRUPT);
	dv_buf_release(&sealed);
	dv_buf_release(&out);
	dv_buf_release(&again);
}

static void test_equal_wipe(void **state)
{
	(void)state;
	uint8_t a[16] = {1, 2, 3}, b[16] = {1, 2, 3};
	assert_true(dv_crypt_equal(a, b, 16));
	b[15] = 1;
	assert_false(dv_crypt_equal(a, b, 16));
	dv_crypt_wipe(a, sizeof a);
	for (size_t i = 0; i < sizeof a; i++)
		assert_int_equal(a[i], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scrypt_vector),
		cmocka_unit_test(test_scrypt_parallel_vector),
		cmocka_unit_test(test_seal_open),
		cmocka_unit_test(test_equal_wipe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
