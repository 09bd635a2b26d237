/*
 * crypt.h - the primitives of client-side encryption (formats/encryption.md):
 * scrypt key derivation and AES-256-GCM sealing, both through OpenSSL EVP.
 * Nothing here is hand-rolled: this module only fixes parameters and the
 * byte layout of a sealed blob.
 *
 * Sealed blob: Nonce (12 random bytes) | Ciphertext | Tag (16 bytes).
 * The associated data binds a blob to its role and name (a chunk's id,
 * "snapshots", ...), so a blob moved to another place fails to open.
 * Thread safe.
 */
#ifndef DV_CRYPT_H
#define DV_CRYPT_H

#include "util/util.h"

#define DV_CRYPT_KEY_LEN 32
#define DV_CRYPT_NONCE_LEN 12
#define DV_CRYPT_TAG_LEN 16
#define DV_CRYPT_OVERHEAD (DV_CRYPT_NONCE_LEN + DV_CRYPT_TAG_LEN)
#define DV_CRYPT_SALT_LEN 16

/* Seals in[0..n) under key with aad into out (replacing its content). */
void dv_crypt_seal(const uint8_t key[DV_CRYPT_KEY_LEN], const void *aad, size_t aad_len, const void *in, size_t n,
		   struct dv_buf *out);
/* Opens a sealed blob; any change to blob, key or aad is DV_E_CORRUPT
 * ("what: authentication failed"). */
int dv_crypt_open(const uint8_t key[DV_CRYPT_KEY_LEN], const void *aad, size_t aad_len, const void *blob, size_t n,
		  struct dv_buf *out, const char *what, struct dv_err *err) DV_WUR;

struct dv_scrypt_params {
	uint64_t n;   /* CPU/memory cost, a power of two */
	uint32_t r, p;
};
/* Derives a 32-byte key from a passphrase with scrypt. */
int dv_crypt_scrypt(const char *pass, size_t pass_len, const uint8_t salt[DV_CRYPT_SALT_LEN],
		    const struct dv_scrypt_params *sp, uint8_t out[DV_CRYPT_KEY_LEN], struct dv_err *err) DV_WUR;
/* scrypt-parallel (formats/encryption.md): p lanes, lane i =
 * scrypt(pass, salt || le32(i), N, r, 1), derived on up to max_threads
 * threads, combined by HKDF-SHA256(lanes, salt, "diskvault scrypt-parallel").
 * An attacker pays the work of scrypt(N, r, p) per guess (p times one
 * lane's time and memory); here the lanes run side by side. Memory:
 * 128 * N * r bytes per running thread. */
#define DV_SCRYPT_MAX_P 16
int dv_crypt_scrypt_parallel(const char *pass, size_t pass_len, const uint8_t salt[DV_CRYPT_SALT_LEN],
			     const struct dv_scrypt_params *sp, unsigned max_threads, uint8_t out[DV_CRYPT_KEY_LEN],
			     struct dv_err *err) DV_WUR;
/* Picks scrypt parameters that take about target_seconds here: r = 8, N
 * up to DV_SCRYPT_MAX_TUNED_N (32 MiB of memory), then p. */
#define DV_SCRYPT_MAX_TUNED_N (1u << 15)
void dv_crypt_scrypt_tune(double target_seconds, struct dv_scrypt_params *sp);
/* Compares n bytes in constant time. */
bool dv_crypt_equal(const void *a, const void *b, size_t n);
/* Overwrites n bytes with zeros in a way the compiler keeps. */
void dv_crypt_wipe(void *p, size_t n);

#endif
