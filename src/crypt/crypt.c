#include "crypt.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <string.h>

void dv_crypt_seal(const uint8_t key[DV_CRYPT_KEY_LEN], const void *aad, size_t aad_len, const void *in, size_t n,
		   struct dv_buf *out)
{
	if (n > INT32_MAX || aad_len > INT32_MAX)
		DV_BUG("seal: %zu bytes is too large", n);
	dv_buf_reset(out);
	dv_buf_reserve(out, n + DV_CRYPT_OVERHEAD);
	uint8_t *nonce = out->data, *ct = out->data + DV_CRYPT_NONCE_LEN;
	dv_random_bytes(nonce, DV_CRYPT_NONCE_LEN);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0, fin = 0;
	if (!c || !EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) ||
	    (aad_len && !EVP_EncryptUpdate(c, NULL, &len, aad, (int)aad_len)) ||
	    !EVP_EncryptUpdate(c, ct, &len, in, (int)n) || !EVP_EncryptFinal_ex(c, ct + len, &fin) ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, DV_CRYPT_TAG_LEN, ct + len + fin))
		DV_BUG("AES-256-GCM encryption failed");
	EVP_CIPHER_CTX_free(c);
	out->len = DV_CRYPT_NONCE_LEN + (size_t)len + (size_t)fin + DV_CRYPT_TAG_LEN;
	out->data[out->len] = 0;
}

int dv_crypt_open(const uint8_t key[DV_CRYPT_KEY_LEN], const void *aad, size_t aad_len, const void *blob, size_t n,
		  struct dv_buf *out, const char *what, struct dv_err *err)
{
	if (n < DV_CRYPT_OVERHEAD || n > INT32_MAX)
		return dv_error(err, DV_E_CORRUPT, "%s: too short to be a sealed object", what);
	const uint8_t *b = blob;
	size_t ct_len = n - DV_CRYPT_OVERHEAD;
	dv_buf_reset(out);
	dv_buf_reserve(out, ct_len);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0, fin = 0, ok = 0;
	uint8_t tag[DV_CRYPT_TAG_LEN];
	memcpy(tag, b + n - DV_CRYPT_TAG_LEN, sizeof tag);
	if (c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, b) &&
	    (!aad_len || EVP_DecryptUpdate(c, NULL, &len, aad, (int)aad_len)) &&
	    EVP_DecryptUpdate(c, out->data, &len, b + DV_CRYPT_NONCE_LEN, (int)ct_len) &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, DV_CRYPT_TAG_LEN, tag))
		ok = EVP_DecryptFinal_ex(c, out->data + len, &fin);
	EVP_CIPHER_CTX_free(c);
	if (ok != 1) {
		dv_crypt_wipe(out->data, ct_len);
		out->len = 0;
		return dv_error(err, DV_E_CORRUPT, "%s: authentication failed (tampered, truncated or moved)", what);
	}
	out->len = (size_t)len + (size_t)fin;
	out->data[out->len] = 0;
	return 0;
}

/* scrypt through OpenSSL's EVP_KDF, any salt length. */
static int scrypt_raw(const char *pass, size_t pass_len, const uint8_t *salt, size_t salt_len, uint64_t n,
		      uint32_t r, uint32_t p, uint8_t out[DV_CRYPT_KEY_LEN], struct dv_err *err)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	EVP_KDF_CTX *k = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	/* scrypt needs 128 * N * r bytes; allow that plus slack. */
	uint64_t maxmem = 128 * n * r + (16u << 20);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pass, pass_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
		OSSL_PARAM_construct_end(),
	};
	int ok = k && EVP_KDF_derive(k, out, DV_CRYPT_KEY_LEN, params) == 1;
	EVP_KDF_CTX_free(k);
	EVP_KDF_free(kdf);
	if (!ok)
		return dv_error(err, DV_E_FAIL, "scrypt key derivation failed (N=%llu, r=%u, p=%u)", (unsigned long long)n,
				r, p);
	return 0;
}

int dv_crypt_scrypt(const char *pass, size_t pass_len, const uint8_t salt[DV_CRYPT_SALT_LEN],
		    const struct dv_scrypt_params *sp, uint8_t out[DV_CRYPT_KEY_LEN], struct dv_err *err)
{
	return scrypt_raw(pass, pass_len, salt, DV_CRYPT_SALT_LEN, sp->n, sp->r, sp->p, out, err);
}

/* ---- scrypt-parallel: p one-lane scryptions on several threads -------- */

struct lane_work {
	const char *pass;
	size_t pass_len;
	const uint8_t *salt;
	const struct dv_scrypt_params *sp;
	uint8_t *lanes;        /* p * DV_CRYPT_KEY_LEN bytes */
	uint32_t first, step;  /* this worker derives lanes first, first + step, ... */
	int rc;
	struct dv_err err;
};

static void *lane_worker(void *arg)
{
	struct lane_work *w = arg;
	uint8_t salt[DV_CRYPT_SALT_LEN + 4];
	memcpy(salt, w->salt, DV_CRYPT_SALT_LEN);
	for (uint32_t i = w->first; i < w->sp->p && w->rc == 0; i += w->step) {
		for (int b = 0; b < 4; b++) /* lane number, little-endian */
			salt[DV_CRYPT_SALT_LEN + b] = (uint8_t)(i >> (8 * b));
		w->rc = scrypt_raw(w->pass, w->pass_len, salt, sizeof salt, w->sp->n, w->sp->r, 1,
				   w->lanes + (size_t)i * DV_CRYPT_KEY_LEN, &w->err);
	}
	return NULL;
}

static int hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len, const char *info,
		       uint8_t out[DV_CRYPT_KEY_LEN], struct dv_err *err)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *k = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
		OSSL_PARAM_construct_end(),
	};
	int ok = k && EVP_KDF_derive(k, out, DV_CRYPT_KEY_LEN, params) == 1;
	EVP_KDF_CTX_free(k);
	EVP_KDF_free(kdf);
	return ok ? 0 : dv_error(err, DV_E_FAIL, "HKDF-SHA256 failed");
}

int dv_crypt_scrypt_parallel(const char *pass, size_t pass_len, const uint8_t salt[DV_CRYPT_SALT_LEN],
			     const struct dv_scrypt_params *sp, unsigned max_threads, uint8_t out[DV_CRYPT_KEY_LEN],
			     struct dv_err *err)
{
	if (sp->p < 1 || sp->p > DV_SCRYPT_MAX_P)
		return dv_error(err, DV_E_FAIL, "scrypt-parallel: p=%u is outside 1..%d", sp->p, DV_SCRYPT_MAX_P);
	unsigned nt = max_threads ? max_threads : 1;
	if (nt > sp->p)
		nt = sp->p; /* so nt <= DV_SCRYPT_MAX_P */
	uint8_t lanes[DV_SCRYPT_MAX_P * DV_CRYPT_KEY_LEN];
	struct lane_work w[DV_SCRYPT_MAX_P];
	pthread_t tid[DV_SCRYPT_MAX_P];
	bool started[DV_SCRYPT_MAX_P] = {false};
	for (unsigned t = 0; t < nt; t++)
		w[t] = (struct lane_work){pass, pass_len, salt, sp, lanes, t, nt, 0, {0}};
	/* Workers 1.. on their own threads, worker 0 on this one; a worker
	 * whose thread cannot start runs here afterwards. */
	for (unsigned t = 1; t < nt; t++)
		started[t] = pthread_create(&tid[t], NULL, lane_worker, &w[t]) == 0;
	lane_worker(&w[0]);
	int rc = 0;
	for (unsigned t = 0; t < nt; t++) {
		if (started[t])
			pthread_join(tid[t], NULL);
		else if (t > 0)
			lane_worker(&w[t]);
		if (w[t].rc < 0 && rc == 0) {
			rc = w[t].rc;
			if (err)
				*err = w[t].err;
		}
	}
	if (rc == 0)
		rc = hkdf_sha256(lanes, (size_t)sp->p * DV_CRYPT_KEY_LEN, salt, DV_CRYPT_SALT_LEN,
				 "diskvault scrypt-parallel", out, err);
	dv_crypt_wipe(lanes, sizeof lanes);
	return rc;
}

/* Seconds one scrypt lane (N = n, r = 8, p = 1) takes here; -1 on failure. */
static double lane_seconds(uint64_t n)
{
	uint8_t salt[DV_CRYPT_SALT_LEN] = {0}, key[DV_CRYPT_KEY_LEN];
	struct dv_scrypt_params t = {n, 8, 1};
	double t0 = dv_now();
	int rc = dv_crypt_scrypt("tune", 4, salt, &t, key, NULL);
	dv_crypt_wipe(key, sizeof key);
	return rc < 0 ? -1 : dv_now() - t0;
}

void dv_crypt_scrypt_tune(double target_seconds, struct dv_scrypt_params *sp)
{
	/* Memory is 128 * N * r bytes and time N * r * p: N stops at 2^15
	 * (32 MiB with r = 8), so an encrypted command stays within the
	 * memory bound of a plain one, and p buys the rest of the time. */
	sp->r = 8;
	sp->p = 1;
	uint64_t n = 1u << 12;
	double dt = 0;
	for (;;) {
		double t = lane_seconds(n);
		if (t < 0)
			break;
		dt = t;
		/* Doubling N doubles the time: stop at the last N under target. */
		if (dt * 2 > target_seconds || n >= DV_SCRYPT_MAX_TUNED_N)
			break;
		n *= 2;
	}
	sp->n = n;
	/* p comes from one lane's time: take the fastest of three, so that
	 * other load at init time does not lower the cost for good. */
	for (int i = 0; i < 2 && dt > 0; i++) {
		double t = lane_seconds(n);
		if (t < 0)
			break;
		dt = DV_MIN(dt, t);
	}
	if (dt > 0 && dt < target_seconds) {
		double p = target_seconds / dt;
		sp->p = p > DV_SCRYPT_MAX_P ? DV_SCRYPT_MAX_P : (uint32_t)(p + 0.5);
	}
	if (sp->p < 1)
		sp->p = 1;
}

bool dv_crypt_equal(const void *a, const void *b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

void dv_crypt_wipe(void *p, size_t n) { OPENSSL_cleanse(p, n); }
