/* repo.c - repository config, content-addressed objects, snapshots. */
#include <stdio.h>
#include "repo_internal.h"

#include "crypt/crypt.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile int no_interrupt;
volatile int *dv_interrupt_flag = &no_interrupt;

bool dv_repo_interrupted(void) { return *dv_interrupt_flag != 0; }

void dv_repo_init_opts_default(struct dv_repo_init_opts *o)
{
	memset(o, 0, sizeof *o);
	dv_chunker_params_default(&o->chunker);
	o->zstd_level = 3;
	o->pack_size = 32u << 20;
}

/* ---- encryption: key slots ------------------------------------------------
 * The master key (96 random bytes: AES key, HMAC key, chunker seed) is
 * sealed once per passphrase ("key slot") under a key derived with scrypt;
 * the associated data binds the slot to the repository id. */

#define MASTER_LEN 96

static dv_passphrase_fn pass_source;

static const char *str_or(const json_t *o, const char *key, const char *def)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : def;
}

void dv_repo_set_passphrase_source(dv_passphrase_fn fn) { pass_source = fn; }
bool dv_repo_encrypted(const struct dv_repo *r) { return r->encrypted; }

unsigned dv_repo_reader_threads(const struct dv_repo *r, unsigned asked)
{
	unsigned n = asked ? asked : dv_cpu_count();
	if (!dv_store_is_local(r->store) && n > 2) {
		dv_debug("reading from %s with 2 threads instead of %u (remote read-ahead)", dv_store_location(r->store), n);
		n = 2;
	}
	return n;
}

static int get_passphrase(const char *location, bool new_key, char *buf, size_t cap, struct dv_err *err)
{
	if (!pass_source)
		return dv_error(err, DV_E_AUTH, "%s: repository is encrypted and no passphrase source is set", location);
	return pass_source(location, new_key, buf, cap, err);
}

/* The KDF names of config.encryption.kdf: every slot of a repository uses
 * the same one. "scrypt" is plain scrypt(N, r, p), computed lane after lane
 * (the first encrypted repositories, up to commit 4825d7b, have it; opened and given
 * new slots); "scrypt-parallel" costs an attacker the same per guess and
 * opens in 1/threads of the time. */
#define KDF_SCRYPT "scrypt"
#define KDF_SCRYPT_PARALLEL "scrypt-parallel"
#define KDF_MAX_THREADS 4 /* 32 MiB per lane at the tuned N */

static int derive_kek(bool parallel, const char *pass, const uint8_t salt[DV_CRYPT_SALT_LEN],
		      const struct dv_scrypt_params *sp, uint8_t kek[DV_CRYPT_KEY_LEN], struct dv_err *err)
{
	if (!parallel)
		return dv_crypt_scrypt(pass, strlen(pass), salt, sp, kek, err);
	unsigned threads = dv_cpu_count();
	if (threads > KDF_MAX_THREADS)
		threads = KDF_MAX_THREADS;
	return dv_crypt_scrypt_parallel(pass, strlen(pass), salt, sp, threads, kek, err);
}

static json_t *make_slot(bool parallel, const char *pass, const char *repo_id, const uint8_t master[MASTER_LEN],
			 const struct dv_scrypt_params *sp, struct dv_err *err)
{
	uint8_t salt[DV_CRYPT_SALT_LEN], kek[DV_CRYPT_KEY_LEN];
	dv_random_bytes(salt, sizeof salt);
	if (derive_kek(parallel, pass, salt, sp, kek, err) < 0)
		return NULL;
	char aad[64], saltx[2 * DV_CRYPT_SALT_LEN + 1], idx[17], created[32], host[256];
	snprintf(aad, sizeof aad, "diskvault key %s", repo_id);
	struct dv_buf sealed = DV_BUF_INIT;
	dv_crypt_seal(kek, aad, strlen(aad), master, MASTER_LEN, &sealed);
	dv_crypt_wipe(kek, sizeof kek);
	char *wrapped = dv_malloc(2 * sealed.len + 1);
	dv_hex(wrapped, sealed.data, sealed.len);
	dv_hex(saltx, salt, sizeof salt);
	dv_random_hex(idx, 8);
	dv_format_time(created, sizeof created, dv_unix_now());
	if (gethostname(host, sizeof host) < 0)
		snprintf(host, sizeof host, "unknown");
	host[sizeof host - 1] = 0;
	json_t *slot = json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:s, s:s}", "id", idx, "created", created, "host", host,
				 "n", (json_int_t)sp->n, "r", (int)sp->r, "p", (int)sp->p, "salt", saltx, "wrapped", wrapped);
	free(wrapped);
	dv_buf_release(&sealed);
	return slot;
}

/* 0 when pass opens slot (master filled), -DV_E_AUTH when it does not. */
static int open_slot(bool parallel, const char *pass, const char *repo_id, const json_t *slot,
		     uint8_t master[MASTER_LEN], struct dv_err *err)
{
	const char *saltx = json_string_value(json_object_get(slot, "salt"));
	const char *wrapped = json_string_value(json_object_get(slot, "wrapped"));
	json_int_t n = json_integer_value(json_object_get(slot, "n"));
	json_int_t r = json_integer_value(json_object_get(slot, "r")), p = json_integer_value(json_object_get(slot, "p"));
	uint8_t salt[DV_CRYPT_SALT_LEN];
	size_t wl = wrapped ? strlen(wrapped) : 0;
	if (!saltx || strlen(saltx) != 2 * DV_CRYPT_SALT_LEN || dv_unhex(salt, saltx, DV_CRYPT_SALT_LEN) < 0 || !wl ||
	    wl % 2 || wl / 2 != MASTER_LEN + DV_CRYPT_OVERHEAD || n < 1024 || n > (1 << 24) || (n & (n - 1)) ||
	    r < 1 || r > 32 || p < 1 || p > DV_SCRYPT_MAX_P)
		return dv_error(err, DV_E_CORRUPT, "config: malformed key slot");
	uint8_t blob[MASTER_LEN + DV_CRYPT_OVERHEAD], kek[DV_CRYPT_KEY_LEN];
	if (dv_unhex(blob, wrapped, sizeof blob) < 0)
		return dv_error(err, DV_E_CORRUPT, "config: malformed key slot");
	struct dv_scrypt_params sp = {(uint64_t)n, (uint32_t)r, (uint32_t)p};
	int rc = derive_kek(parallel, pass, salt, &sp, kek, err);
	if (rc < 0)
		return rc;
	char aad[64];
	snprintf(aad, sizeof aad, "diskvault key %s", repo_id);
	struct dv_buf out = DV_BUF_INIT;
	struct dv_err ignore;
	rc = dv_crypt_open(kek, aad, strlen(aad), blob, sizeof blob, &out, "key", &ignore);
	dv_crypt_wipe(kek, sizeof kek);
	if (rc == 0 && out.len == MASTER_LEN)
		memcpy(master, out.data, MASTER_LEN);
	else
		rc = -DV_E_AUTH;
	if (out.data)
		dv_crypt_wipe(out.data, out.len);
	dv_buf_release(&out);
	return rc;
}

static void use_master(struct dv_repo *r, const uint8_t master[MASTER_LEN])
{
	memcpy(r->enc_key, master, 32);
	memcpy(r->mac_key, master + 32, 32);
	memcpy(r->chunker.seed, master + 64, 32);
	r->encrypted = true;
}

static int unlock_keys(struct dv_repo *r, const json_t *enc, const char *loc, struct dv_err *err)
{
	const char *alg = json_string_value(json_object_get(enc, "algorithm"));
	const char *kdf = json_string_value(json_object_get(enc, "kdf"));
	const char *cid = json_string_value(json_object_get(enc, "chunk_id"));
	json_t *slots = json_object_get(enc, "keys");
	if (!alg || strcmp(alg, "aes-256-gcm") || !kdf || (strcmp(kdf, KDF_SCRYPT) && strcmp(kdf, KDF_SCRYPT_PARALLEL)) ||
	    !cid || strcmp(cid, "hmac-sha256"))
		return dv_error(err, DV_E_VERSION, "%s: unsupported encryption scheme", loc);
	r->kdf_parallel = strcmp(kdf, KDF_SCRYPT_PARALLEL) == 0;
	if (!json_is_array(slots) || json_array_size(slots) == 0 || json_array_size(slots) > 64)
		return dv_error(err, DV_E_CORRUPT, "%s/config: no key slots", loc);
	char pass[1024];
	int rc = get_passphrase(loc, false, pass, sizeof pass, err);
	if (rc < 0)
		return rc;
	uint8_t master[MASTER_LEN];
	rc = -DV_E_AUTH;
	for (size_t i = 0; i < json_array_size(slots) && rc == -DV_E_AUTH; i++) {
		rc = open_slot(r->kdf_parallel, pass, r->id, json_array_get(slots, i), master, err);
		if (rc == 0)
			r->key_slot = (int)i;
	}
	dv_crypt_wipe(pass, sizeof pass);
	if (rc == -DV_E_AUTH)
		return dv_error(err, DV_E_AUTH, "%s: wrong passphrase (no key of this repository opens with it)", loc);
	if (rc < 0)
		return dv_error_prefix(err, "%s/", loc);
	use_master(r, master);
	dv_crypt_wipe(master, sizeof master);
	return 0;
}

static int write_config(struct dv_store *s, const json_t *cfg, struct dv_err *err)
{
	char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
	int rc = dv_store_put(s, "config", text, strlen(text), err);
	free(text);
	return rc;
}

int dv_repo_keys(struct dv_repo *r, struct dv_key_info **out, size_t *n, struct dv_err *err)
{
	(void)err;
	json_t *slots = json_object_get(json_object_get(r->config, "encryption"), "keys");
	*n = json_array_size(slots);
	*out = dv_calloc(*n ? *n : 1, sizeof **out);
	for (size_t i = 0; i < *n; i++) {
		json_t *s = json_array_get(slots, i);
		struct dv_key_info *k = &(*out)[i];
		snprintf(k->id, sizeof k->id, "%s", str_or(s, "id", "?"));
		snprintf(k->created, sizeof k->created, "%s", str_or(s, "created", "?"));
		snprintf(k->host, sizeof k->host, "%s", str_or(s, "host", "?"));
		k->current = (int)i == r->key_slot;
	}
	return 0;
}

int dv_repo_key_add(struct dv_repo *r, char id_out[17], struct dv_err *err)
{
	if (!r->encrypted)
		return dv_error(err, DV_E_USAGE, "%s: repository is not encrypted", dv_store_location(r->store));
	char pass[1024];
	int rc = get_passphrase(dv_store_location(r->store), true, pass, sizeof pass, err);
	if (rc < 0)
		return rc;
	uint8_t master[MASTER_LEN];
	memcpy(master, r->enc_key, 32);
	memcpy(master + 32, r->mac_key, 32);
	memcpy(master + 64, r->chunker.seed, 32);
	json_t *enc = json_object_get(r->config, "encryption");
	json_t *first = json_array_get(json_object_get(enc, "keys"), 0);
	struct dv_scrypt_params sp = {(uint64_t)json_integer_value(json_object_get(first, "n")),
				      (uint32_t)json_integer_value(json_object_get(first, "r")),
				      (uint32_t)json_integer_value(json_object_get(first, "p"))};
	json_t *slot = make_slot(r->kdf_parallel, pass, r->id, master, &sp, err);
	dv_crypt_wipe(pass, sizeof pass);
	dv_crypt_wipe(master, sizeof master);
	if (!slot)
		return -(int)err->code;
	snprintf(id_out, 17, "%s", json_string_value(json_object_get(slot, "id")));
	json_array_append_new(json_object_get(enc, "keys"), slot);
	return write_config(r->store, r->config, err);
}

int dv_repo_key_remove(struct dv_repo *r, const char *id, struct dv_err *err)
{
	json_t *slots = json_object_get(json_object_get(r->config, "encryption"), "keys");
	for (size_t i = 0; i < json_array_size(slots); i++) {
		if (strcmp(json_string_value(json_object_get(json_array_get(slots, i), "id")) ?: "", id))
			continue;
		if (json_array_size(slots) == 1)
			return dv_error(err, DV_E_USAGE, "key %s is the last key; removing it would lose the repository", id);
		if ((int)i == r->key_slot)
			return dv_error(err, DV_E_USAGE, "key %s is the one in use; open the repository with another key "
					"to remove it", id);
		json_array_remove(slots, i);
		if (r->key_slot > (int)i)
			r->key_slot--;
		return write_config(r->store, r->config, err);
	}
	return dv_error(err, DV_E_NOT_FOUND, "no key %s in %s", id, dv_store_location(r->store));
}

int dv_repo_key_remove_current(struct dv_repo *r, struct dv_err *err)
{
	json_t *slots = json_object_get(json_object_get(r->config, "encryption"), "keys");
	size_t n = json_array_size(slots);
	if (r->key_slot < 0 || n < 2 || (size_t)r->key_slot == n - 1)
		return dv_error(err, DV_E_USAGE, "no other key to switch to");
	json_array_remove(slots, (size_t)r->key_slot);
	r->key_slot = (int)n - 2; /* the newest slot, now one place lower */
	return write_config(r->store, r->config, err);
}

/* ---- sealing hooks ---------------------------------------------------------- */

void dv_repo_chunk_id(const struct dv_repo *r, const void *p, size_t n, struct dv_id *out)
{
	dv_chunk_id(r->encrypted ? r->mac_key : NULL, p, n, out);
}

const uint8_t *dv_repo_seal(const struct dv_repo *r, const void *aad, size_t aad_len, const void *in, size_t n,
			    struct dv_buf *scratch, size_t *out_len)
{
	if (!r->encrypted) {
		*out_len = n;
		return in;
	}
	dv_crypt_seal(r->enc_key, aad, aad_len, in, n, scratch);
	*out_len = scratch->len;
	return scratch->data;
}

int dv_repo_unseal(const struct dv_repo *r, const void *aad, size_t aad_len, const void *in, size_t n,
		   struct dv_buf *scratch, const uint8_t **out, size_t *out_len, const char *what, struct dv_err *err)
{
	if (!r->encrypted) {
		*out = in;
		*out_len = n;
		return 0;
	}
	int rc = dv_crypt_open(r->enc_key, aad, aad_len, in, n, scratch, what, err);
	*out = scratch->data;
	*out_len = scratch->len;
	return rc;
}

int dv_repo_blob_to_chunk(const struct dv_repo *r, const struct dv_id *id, const void *blob, size_t n, size_t raw_len,
			  struct dv_buf *scratch, struct dv_buf *out, const char *what, struct dv_err *err)
{
	const uint8_t *z;
	size_t zl;
	int rc = dv_repo_unseal(r, id->b, DV_ID_LEN, blob, n, scratch, &z, &zl, what, err);
	if (rc == 0)
		rc = dv_decompress(z, zl, raw_len, out, what, err);
	if (rc < 0)
		return rc;
	struct dv_id got;
	dv_repo_chunk_id(r, out->data, out->len, &got);
	if (!dv_id_eq(&got, id))
		return dv_error(err, DV_E_CORRUPT, "%s: content does not match its id", what);
	return 0;
}

static const char *const repo_dirs[] = {"snapshots", "index", "diskindex", "packs", "locks", "tmp"};

static json_t *config_new(const struct dv_repo_init_opts *o, const char *id)
{
	char seed[65], created[32];
	dv_hex(seed, o->chunker.seed, sizeof o->chunker.seed);
	dv_format_time(created, sizeof created, dv_unix_now());
	return json_pack("{s:s, s:i, s:s, s:s, s:{s:s, s:i, s:i, s:i, s:s}, s:s, s:{s:s, s:i}, s:i, s:n}",
			 "format", "diskvault-repository", "version", DV_REPO_VERSION, "id", id, "created", created,
			 "chunker", "algorithm", "fastcdc-gear64", "min", (json_int_t)o->chunker.min, "avg",
			 (json_int_t)o->chunker.avg, "max", (json_int_t)o->chunker.max, "seed", seed, "hash", "sha256",
			 "compression", "algorithm", "zstd", "level", o->zstd_level, "pack_size",
			 (json_int_t)o->pack_size, "encryption");
}

static int is_empty_dir_cb(const char *name, uint64_t size, void *ctx)
{
	(void)name;
	(void)size;
	*(bool *)ctx = false;
	return 1;
}

int dv_repo_init(const char *location, const struct dv_repo_init_opts *o, char id_out[33], struct dv_err *err)
{
	int r = dv_chunker_params_check(&o->chunker, err);
	if (r < 0)
		return r;
	if (o->zstd_level < 1 || o->zstd_level > 19)
		return dv_error(err, DV_E_USAGE, "compression level %d is outside 1..19", o->zstd_level);
	if (o->pack_size < (1u << 20) || o->pack_size > (1u << 30))
		return dv_error(err, DV_E_USAGE, "pack size %u is outside 1 MiB..1 GiB", o->pack_size);
	struct dv_store *s = NULL;
	r = dv_store_open(location, true, &s, err);
	if (r < 0)
		return r;
	uint64_t size;
	struct dv_err tmp;
	if (dv_store_stat(s, "config", &size, &tmp) == 0) {
		r = dv_error(err, DV_E_EXISTS, "%s: a repository already exists here", location);
		goto out;
	}
	/* Refuse a directory that holds anything: a repository must not mix
	 * with other files (and prune must never meet foreign ones). */
	bool empty = true;
	if (dv_store_is_local(s)) {
		DIR *d = opendir(location);
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				empty = false;
		if (d)
			closedir(d);
	} else {
		for (size_t i = 0; i < DV_ARRAY_SIZE(repo_dirs) && empty; i++) {
			char *prefix = dv_asprintf("%s/", repo_dirs[i]);
			r = dv_store_list(s, prefix, is_empty_dir_cb, &empty, err);
			free(prefix);
			if (r < 0)
				goto out;
		}
		r = 0;
	}
	if (!empty) {
		r = dv_error(err, DV_E_EXISTS, "%s: directory is not empty", location);
		goto out;
	}
	/* Everything that can fail for want of a passphrase comes before the
	 * first directory is made: a refused init leaves the directory as it
	 * found it, and the next init can run. */
	char id[33];
	dv_random_hex(id, 16);
	json_t *cfg = config_new(o, id);
	if (o->encrypt) {
		char pass[1024];
		r = get_passphrase(location, true, pass, sizeof pass, err);
		if (r < 0) {
			json_decref(cfg);
			goto out;
		}
		struct dv_scrypt_params sp = {o->scrypt_n, 8, 1};
		if (!sp.n)
			dv_crypt_scrypt_tune(0.5, &sp);
		if (o->scrypt_p)
			sp.p = o->scrypt_p;
		uint8_t master[MASTER_LEN];
		dv_random_bytes(master, sizeof master);
		json_t *slot = make_slot(true, pass, id, master, &sp, err);
		dv_crypt_wipe(pass, sizeof pass);
		dv_crypt_wipe(master, sizeof master);
		if (!slot) {
			json_decref(cfg);
			r = -(int)err->code;
			goto out;
		}
		json_object_set_new(cfg, "encryption",
				    json_pack("{s:s, s:s, s:s, s:[o]}", "algorithm", "aes-256-gcm", "chunk_id", "hmac-sha256",
					      "kdf", KDF_SCRYPT_PARALLEL, "keys", slot));
	}
	size_t made = 0;
	if (dv_store_is_local(s)) {
		for (; made < DV_ARRAY_SIZE(repo_dirs); made++) {
			char *dir = dv_asprintf("%s/%s", location, repo_dirs[made]);
			r = dv_mkdir_p(dir, 0700, err);
			free(dir);
			if (r < 0)
				break;
		}
	}
	if (r == 0)
		r = write_config(s, cfg, err);
	json_decref(cfg);
	if (r == 0 && id_out)
		memcpy(id_out, id, 33);
	/* a failed init (no space for the config) takes back the empty
	 * directories it made, so that a later init finds the place empty */
	while (r < 0 && made > 0) {
		char *dir = dv_asprintf("%s/%s", location, repo_dirs[--made]);
		(void)rmdir(dir);
		free(dir);
	}
out:
	dv_store_free(s);
	return r;
}

static int get_uint(const json_t *obj, const char *key, uint64_t lo, uint64_t hi, uint64_t *out, const char *what,
		    struct dv_err *err)
{
	json_t *v = json_object_get(obj, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < lo ||
	    (uint64_t)json_integer_value(v) > hi)
		return dv_error(err, DV_E_CORRUPT, "%s: field '%s' missing or out of range", what, key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int parse_config(struct dv_repo *r, const struct dv_buf *b, struct dv_err *err);

int dv_repo_parse_config(struct dv_repo *r, const uint8_t *p, size_t n, struct dv_err *err)
{
	struct dv_buf b = {(uint8_t *)p, n, n + 1};
	return parse_config(r, &b, err);
}

static int parse_config(struct dv_repo *r, const struct dv_buf *b, struct dv_err *err)
{
	const char *loc = dv_store_location(r->store);
	json_error_t je;
	json_t *cfg = json_loadb((const char *)b->data, b->len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(cfg)) {
		json_decref(cfg);
		return dv_error(err, DV_E_NOT_REPO, "%s: not a diskvault repository (config is not JSON: %s)", loc,
				je.text);
	}
	r->config = cfg;
	const char *fmt = json_string_value(json_object_get(cfg, "format"));
	if (!fmt || strcmp(fmt, "diskvault-repository"))
		return dv_error(err, DV_E_NOT_REPO, "%s: not a diskvault repository (config format is not "
				"diskvault-repository)", loc);
	json_t *ver = json_object_get(cfg, "version");
	if (!json_is_integer(ver))
		return dv_error(err, DV_E_CORRUPT, "%s/config: version missing", loc);
	if (json_integer_value(ver) != DV_REPO_VERSION)
		return dv_error(err, DV_E_VERSION,
				"%s: repository format version %lld is not supported by this diskvault (supports %d)",
				loc, (long long)json_integer_value(ver), DV_REPO_VERSION);
	const char *id = json_string_value(json_object_get(cfg, "id"));
	if (!id || strlen(id) != 32)
		return dv_error(err, DV_E_CORRUPT, "%s/config: repository id missing", loc);
	memcpy(r->id, id, 33);
	json_t *ch = json_object_get(cfg, "chunker");
	const char *alg = json_string_value(json_object_get(ch, "algorithm"));
	const char *seed = json_string_value(json_object_get(ch, "seed"));
	if (!alg || strcmp(alg, "fastcdc-gear64") || !seed || strlen(seed) != 64 ||
	    dv_unhex(r->chunker.seed, seed, 32) < 0)
		return dv_error(err, DV_E_CORRUPT, "%s/config: unknown or malformed chunker", loc);
	uint64_t v;
	int rc;
	if ((rc = get_uint(ch, "min", 64, UINT32_MAX, &v, "config chunker", err)) < 0)
		return rc;
	r->chunker.min = (uint32_t)v;
	if ((rc = get_uint(ch, "avg", 1024, UINT32_MAX, &v, "config chunker", err)) < 0)
		return rc;
	r->chunker.avg = (uint32_t)v;
	if ((rc = get_uint(ch, "max", 1024, UINT32_MAX, &v, "config chunker", err)) < 0)
		return rc;
	r->chunker.max = (uint32_t)v;
	if ((rc = dv_chunker_params_check(&r->chunker, err)) < 0)
		return dv_error_prefix(err, "%s/config: ", loc);
	json_t *comp = json_object_get(cfg, "compression");
	const char *calg = json_string_value(json_object_get(comp, "algorithm"));
	if (!calg || strcmp(calg, "zstd"))
		return dv_error(err, DV_E_CORRUPT, "%s/config: unknown compression", loc);
	if ((rc = get_uint(comp, "level", 1, 19, &v, "config compression", err)) < 0)
		return rc;
	r->zstd_level = (int)v;
	if ((rc = get_uint(cfg, "pack_size", 1u << 20, 1u << 30, &v, "config", err)) < 0)
		return rc;
	r->pack_size = (uint32_t)v;
	const char *hash = json_string_value(json_object_get(cfg, "hash"));
	if (!hash || strcmp(hash, "sha256"))
		return dv_error(err, DV_E_CORRUPT, "%s/config: unknown hash", loc);
	json_t *enc = json_object_get(cfg, "encryption");
	if (!enc)
		return dv_error(err, DV_E_CORRUPT, "%s/config: field 'encryption' missing", loc);
	r->key_slot = -1;
	if (!json_is_null(enc))
		return unlock_keys(r, enc, loc, err);
	return 0;
}

int dv_repo_open(const char *location, struct dv_repo **out, struct dv_err *err)
{
	struct dv_repo *r = dv_calloc(1, sizeof *r);
	int rc = dv_store_open(location, false, &r->store, err);
	if (rc < 0) {
		free(r);
		return rc;
	}
	struct dv_buf b = DV_BUF_INIT;
	rc = dv_store_get(r->store, "config", DV_MAX_CONFIG, &b, err);
	if (rc == -DV_E_NOT_FOUND)
		rc = dv_error(err, DV_E_NOT_REPO, "%s: not a diskvault repository (no config)", location);
	if (rc == 0)
		rc = parse_config(r, &b, err);
	dv_buf_release(&b);
	if (rc == 0)
		rc = dv_forgotten_load(r, err);
	if (rc == 0 && dv_store_is_local(r->store)) {
		/* Writers need the spool directory (it may have been removed). */
		rc = dv_mkdir_p(dv_store_spool_dir(r->store), 0700, err);
	}
	if (rc < 0) {
		dv_repo_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void dv_repo_free(struct dv_repo *r)
{
	if (!r)
		return;
	dv_crypt_wipe(r->enc_key, sizeof r->enc_key);
	dv_crypt_wipe(r->mac_key, sizeof r->mac_key);
	json_decref(r->config);
	dv_store_free(r->store);
	dv_strlist_release(&r->forgotten);
	free(r->ledger_path);
	free(r);
}

const char *dv_repo_id(const struct dv_repo *r) { return r->id; }
const char *dv_repo_location(const struct dv_repo *r) { return dv_store_location(r->store); }
const json_t *dv_repo_config(const struct dv_repo *r) { return r->config; }

/* ---- content-addressed objects ---------------------------------------- */

/* Binary metadata (index segments, disk indexes) is stored as one zstd
 * frame: their lengths, offsets and types compress to a fraction, which
 * matters for the disk index each snapshot writes. Manifests stay plain
 * JSON. Readers tell the two apart by the zstd magic number. */
static bool compressed_dir(const char *dir) { return !strcmp(dir, "index") || !strcmp(dir, "diskindex"); }

int dv_repo_put_content(struct dv_repo *r, const char *dir, const void *data, size_t len,
			char id_hex[DV_ID_HEX_LEN + 1], struct dv_err *err)
{
	struct dv_buf sealed = DV_BUF_INIT, packed = DV_BUF_INIT;
	if (compressed_dir(dir)) {
		dv_compress(data, len, r->zstd_level, &packed);
		data = packed.data;
		len = packed.len;
	}
	size_t n;
	const uint8_t *p = dv_repo_seal(r, dir, strlen(dir), data, len, &sealed, &n);
	struct dv_id id;
	dv_sha256(p, n, &id);
	dv_id_hex(id_hex, &id);
	char name[256];
	snprintf(name, sizeof name, "%s/%s", dir, id_hex);
	int rc = dv_store_put(r->store, name, p, n, err);
	dv_buf_release(&sealed);
	dv_buf_release(&packed);
	return rc;
}

/* Replaces a zstd frame in out by its content (at most cap bytes). */
static int unpack(struct dv_buf *out, size_t cap, const char *name, struct dv_err *err)
{
	if (!dv_is_zstd_frame(out->data, out->len))
		return 0;
	struct dv_buf plain = DV_BUF_INIT;
	int rc = dv_decompress_frame(out->data, out->len, cap, &plain, name, err);
	dv_buf_release(out);
	*out = plain;
	return rc;
}

int dv_repo_get_content(struct dv_repo *r, const char *dir, const char *id_hex, size_t cap, struct dv_buf *out,
			struct dv_err *err)
{
	struct dv_id want, got;
	if (dv_id_parse(&want, id_hex) < 0)
		return dv_error(err, DV_E_CORRUPT, "%s/%s: malformed object id", dir, id_hex);
	char name[256];
	snprintf(name, sizeof name, "%s/%s", dir, id_hex);
	int rc = dv_store_get(r->store, name, cap, out, err);
	if (rc == -DV_E_NOT_FOUND)
		return dv_error(err, DV_E_CORRUPT, "%s: object is missing", name);
	if (rc < 0)
		return rc;
	dv_sha256(out->data, out->len, &got);
	if (!dv_id_eq(&want, &got))
		return dv_error(err, DV_E_CORRUPT, "%s: content does not match its name (corrupt or truncated)", name);
	if (!r->encrypted)
		return unpack(out, cap, name, err);
	/* The name proves the stored bytes; the seal proves who wrote them and
	 * that they belong in dir. */
	struct dv_buf plain = DV_BUF_INIT;
	const uint8_t *p;
	size_t n;
	rc = dv_repo_unseal(r, dir, strlen(dir), out->data, out->len, &plain, &p, &n, name, err);
	if (rc == 0) {
		dv_buf_release(out);
		*out = plain;
		rc = unpack(out, cap, name, err);
	} else {
		dv_buf_release(&plain);
	}
	return rc;
}

/* ---- snapshots ---------------------------------------------------------- */

static int validate_manifest(const json_t *m, const char *what, struct dv_err *err)
{
	const char *fmt = json_string_value(json_object_get(m, "format"));
	if (!fmt || strcmp(fmt, "diskvault-snapshot"))
		return dv_error(err, DV_E_CORRUPT, "%s: not a snapshot manifest", what);
	json_t *ver = json_object_get(m, "version");
	if (!json_is_integer(ver))
		return dv_error(err, DV_E_CORRUPT, "%s: version missing", what);
	if (json_integer_value(ver) != DV_SNAPSHOT_VERSION)
		return dv_error(err, DV_E_VERSION, "%s: snapshot format version %lld is not supported (supports %d)",
				what, (long long)json_integer_value(ver), DV_SNAPSHOT_VERSION);
	int64_t t;
	const char *ts = json_string_value(json_object_get(m, "time"));
	if (!ts || dv_parse_time(ts, &t) < 0)
		return dv_error(err, DV_E_CORRUPT, "%s: time missing or malformed", what);
	static const char *const strings[] = {"host", "mode", "repository"};
	for (size_t k = 0; k < DV_ARRAY_SIZE(strings); k++)
		if (!json_is_string(json_object_get(m, strings[k])))
			return dv_error(err, DV_E_CORRUPT, "%s: field '%s' missing or not a string", what, strings[k]);
	json_t *disks = json_object_get(m, "disks");
	if (!json_is_array(disks) || json_array_size(disks) == 0)
		return dv_error(err, DV_E_CORRUPT, "%s: no disks", what);
	size_t i;
	json_t *d;
	json_array_foreach(disks, i, d) {
		struct dv_id x;
		const char *ix = json_string_value(json_object_get(d, "index"));
		const char *dg = json_string_value(json_object_get(d, "digest"));
		json_t *size = json_object_get(d, "size");
		if (!json_is_string(json_object_get(d, "source")) || !ix || dv_id_parse(&x, ix) < 0 || !dg || dv_id_parse(&x, dg) < 0 || !json_is_integer(size) ||
		    json_integer_value(size) < 0)
			return dv_error(err, DV_E_CORRUPT, "%s: disk %zu: index, digest or size missing or malformed",
					what, i);
	}
	return 0;
}

int dv_manifest_parse(const uint8_t *p, size_t n, json_t **out, const char *what, struct dv_err *err)
{
	json_error_t je;
	json_t *m = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(m)) {
		json_decref(m);
		return dv_error(err, DV_E_CORRUPT, "%s: manifest is not valid JSON: %s", what, je.text);
	}
	int rc = validate_manifest(m, what, err);
	if (rc < 0) {
		json_decref(m);
		return rc;
	}
	*out = m;
	return 0;
}

int dv_snapshot_load(struct dv_repo *r, const char *id, json_t **out, struct dv_err *err)
{
	struct dv_buf b = DV_BUF_INIT;
	char what[128];
	snprintf(what, sizeof what, "snapshot %.16s", id);
	const char *when = dv_forgotten_when(r, id);
	if (when)
		return dv_error(err, DV_E_CORRUPT,
				"%s: forgotten on %s, yet back in the repository (a replayed object); forget or prune "
				"removes it again",
				what, when);
	int rc = dv_repo_get_content(r, "snapshots", id, DV_MAX_MANIFEST, &b, err);
	if (rc == 0)
		rc = dv_manifest_parse(b.data, b.len, out, what, err);
	dv_buf_release(&b);
	return rc;
}

int dv_repo_list_ids(struct dv_repo *r, const char *dir, struct dv_strlist *out, struct dv_err *err)
{
	struct dv_strlist all = {0};
	char *prefix = dv_asprintf("%s/", dir);
	int rc = dv_store_list_names(r->store, prefix, &all, err);
	free(prefix);
	dv_strlist_clear(out);
	for (size_t i = 0; rc == 0 && i < all.n; i++) {
		const char *base = strrchr(all.v[i], '/');
		base = base ? base + 1 : all.v[i];
		struct dv_id x;
		if (dv_id_parse(&x, base) == 0) /* else not ours: check reports it */
			dv_strlist_add(out, base);
	}
	dv_strlist_release(&all);
	dv_strlist_sort(out);
	return rc;
}

static int cmp_snap(const void *a, const void *b)
{
	const struct dv_snapshot_ref *x = a, *y = b;
	if (x->time_us != y->time_us)
		return x->time_us < y->time_us ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int list_load(struct dv_repo *r, struct dv_snapshot_list *out, bool skip_damaged, struct dv_err *err)
{
	struct dv_strlist names = {0};
	memset(out, 0, sizeof *out);
	int rc = dv_repo_list_ids(r, "snapshots", &names, err);
	if (rc < 0)
		goto out;
	out->v = dv_calloc(names.n, sizeof *out->v);
	for (size_t i = 0; i < names.n; i++) {
		json_t *m;
		rc = dv_snapshot_load(r, names.v[i], &m, err);
		if (rc < 0 && skip_damaged && err->code == DV_E_CORRUPT) {
			dv_strlist_add(&out->unreadable, names.v[i]);
			dv_strlist_add(&out->unreadable_msg, err->msg);
			rc = 0;
			continue;
		}
		if (rc < 0) {
			dv_snapshot_list_release(out);
			goto out;
		}
		struct dv_snapshot_ref *s = &out->v[out->n++];
		memcpy(s->id, names.v[i], sizeof s->id);
		s->manifest = m;
		if (dv_parse_time(json_string_value(json_object_get(m, "time")), &s->time) < 0)
			s->time = 0;
		json_t *us = json_object_get(m, "time_unix_us");
		s->time_us = json_is_integer(us) ? (int64_t)json_integer_value(us) : s->time * 1000000;
	}
	qsort(out->v, out->n, sizeof *out->v, cmp_snap);
out:
	dv_strlist_release(&names);
	return rc;
}

int dv_snapshot_list_load(struct dv_repo *r, struct dv_snapshot_list *out, struct dv_err *err)
{
	return list_load(r, out, false, err);
}

int dv_snapshot_list_load_readable(struct dv_repo *r, struct dv_snapshot_list *out, struct dv_err *err)
{
	return list_load(r, out, true, err);
}

void dv_snapshot_list_release(struct dv_snapshot_list *l)
{
	dv_strlist_release(&l->unreadable);
	dv_strlist_release(&l->unreadable_msg);
	for (size_t i = 0; i < l->n; i++)
		json_decref(l->v[i].manifest);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int dv_snapshot_resolve(struct dv_repo *r, const char *spec, char id[DV_ID_HEX_LEN + 1], struct dv_err *err)
{
	struct dv_strlist names = {0};
	int rc = dv_repo_list_ids(r, "snapshots", &names, err);
	if (rc < 0)
		goto out;
	if (!strcmp(spec, "latest")) {
		struct dv_snapshot_list l;
		rc = dv_snapshot_list_load(r, &l, err);
		if (rc < 0)
			goto out;
		if (l.n == 0)
			rc = dv_error(err, DV_E_NOT_FOUND, "repository %s has no snapshots", dv_store_location(r->store));
		else
			memcpy(id, l.v[l.n - 1].id, DV_ID_HEX_LEN + 1);
		dv_snapshot_list_release(&l);
		goto out;
	}
	size_t len = strlen(spec), found = 0;
	if (len < 4 || len > DV_ID_HEX_LEN) {
		rc = dv_error(err, DV_E_USAGE, "snapshot '%s': give 'latest' or at least 4 hex digits of an id", spec);
		goto out;
	}
	for (size_t i = 0; i < names.n; i++)
		if (!strncmp(names.v[i], spec, len)) {
			if (found++)
				break;
			memcpy(id, names.v[i], DV_ID_HEX_LEN + 1);
		}
	if (found == 0)
		rc = dv_error(err, DV_E_NOT_FOUND, "snapshot %s not found", spec);
	else if (found > 1)
		rc = dv_error(err, DV_E_USAGE, "snapshot prefix %s is ambiguous", spec);
out:
	dv_strlist_release(&names);
	return rc;
}
