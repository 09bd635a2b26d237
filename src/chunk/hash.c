#include <stdio.h>
#include "chunk.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

void dv_id_hex(char out[DV_ID_HEX_LEN + 1], const struct dv_id *id) { dv_hex(out, id->b, DV_ID_LEN); }

int dv_id_parse(struct dv_id *id, const char *hex)
{
	if (strlen(hex) != DV_ID_HEX_LEN)
		return -1;
	return dv_unhex(id->b, hex, DV_ID_LEN);
}

void dv_sha256(const void *p, size_t n, struct dv_id *out)
{
	unsigned int len = 0;
	if (!EVP_Digest(p, n, out->b, &len, EVP_sha256(), NULL) || len != DV_ID_LEN)
		DV_BUG("EVP_Digest(SHA-256) failed");
}

struct dv_sha256_ctx {
	EVP_MD_CTX *md;
};

struct dv_sha256_ctx *dv_sha256_new(void)
{
	struct dv_sha256_ctx *c = dv_malloc(sizeof *c);
	c->md = EVP_MD_CTX_new();
	if (!c->md || !EVP_DigestInit_ex(c->md, EVP_sha256(), NULL))
		DV_BUG("EVP_DigestInit_ex(SHA-256) failed");
	return c;
}

void dv_sha256_update(struct dv_sha256_ctx *c, const void *p, size_t n)
{
	if (!EVP_DigestUpdate(c->md, p, n))
		DV_BUG("EVP_DigestUpdate failed");
}

void dv_sha256_final(struct dv_sha256_ctx *c, struct dv_id *out)
{
	unsigned int len = 0;
	if (!EVP_DigestFinal_ex(c->md, out->b, &len) || len != DV_ID_LEN)
		DV_BUG("EVP_DigestFinal_ex failed");
	EVP_MD_CTX_free(c->md);
	free(c);
}

void dv_chunk_id(const uint8_t *key, const void *p, size_t n, struct dv_id *out)
{
	if (!key) {
		dv_sha256(p, n, out);
		return;
	}
	unsigned int len = 0;
	if (!HMAC(EVP_sha256(), key, 32, p, n, out->b, &len) || len != DV_ID_LEN)
		DV_BUG("HMAC-SHA256 failed");
}
