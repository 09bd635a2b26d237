/*
 * Region, endpoint and credentials, resolved the way the AWS CLI resolves
 * them, so a user's existing setup works unchanged. Secrets are only ever
 * copied into struct dv_aws_creds, never into messages.
 */
#include "aws.h"
#include "aws_internal.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define AWS_FILE_CAP (1u << 20)

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static bool env_true(const char *name)
{
	const char *v = env(name);
	return v && !strcasecmp(v, "true");
}

static char *home_path(const char *rel)
{
	const char *home = env("HOME");
	return dv_asprintf("%s/%s", home ? home : "", rel);
}

/* Missing file = NULL ini and success; unreadable or malformed = error. */
static int load_ini(const char *path, struct dv_aws_ini **ini, struct dv_err *err)
{
	struct dv_buf b = DV_BUF_INIT;
	*ini = NULL;
	struct dv_err e2;
	int r = dv_read_file(path, AWS_FILE_CAP, &b, &e2);
	if (r < 0) {
		dv_buf_release(&b);
		if (r == -DV_E_NOT_FOUND || strstr(e2.msg, "No such file"))
			return 0;
		return dv_error(err, DV_E_USAGE, "%s: %s", path, e2.msg);
	}
	r = dv_aws_ini_parse(b.data ? (char *)b.data : "", b.len, ini, &e2);
	if (b.data)
		explicit_bzero(b.data, b.len);
	dv_buf_release(&b);
	if (r < 0)
		return dv_error(err, DV_E_USAGE, "%s: %s", path, e2.msg);
	return 0;
}

static char *config_section(const char *profile)
{
	return strcmp(profile, "default") ? dv_asprintf("profile %s", profile) : dv_strdup("default");
}

/*
 * The endpoint of one service, by the AWS SDKs' precedence: the explicit
 * URL, then (unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true)
 * AWS_ENDPOINT_URL_<ID>, AWS_ENDPOINT_URL, the profile's "services"
 * section ("<id> =" / "endpoint_url ="), the profile's nested
 * "<id>.endpoint_url", the profile's endpoint_url; else the AWS default.
 * ini may be NULL (no config file). See dv_aws_endpoint_resolve().
 */
static int resolve_endpoint(const struct dv_aws_ini *ini, const char *sec, const char *region, const char *service,
			    const char *explicit_url, char **url, bool *custom, struct dv_err *err)
{
	*url = NULL;
	*custom = false;
	char id[64]; /* "ID" of AWS_ENDPOINT_URL_ID and of messages */
	size_t n = 0;
	for (; service[n] && n < sizeof id - 1; n++)
		id[n] = service[n] == ' ' ? '_' : (char)toupper((unsigned char)service[n]);
	id[n] = '\0';
	const char *ep = explicit_url;
	if (!ep && !env_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
		char *name = dv_asprintf("AWS_ENDPOINT_URL_%s", id);
		ep = env(name);
		free(name);
		if (!ep)
			ep = env("AWS_ENDPOINT_URL");
		char *key = dv_asprintf("%s.endpoint_url", service);
		const char *services = ep ? NULL : dv_aws_ini_get(ini, sec, "services");
		if (services) {
			char *ss = dv_asprintf("services %s", services);
			ep = dv_aws_ini_get(ini, ss, key);
			free(ss);
		}
		if (!ep)
			ep = dv_aws_ini_get(ini, sec, key);
		if (!ep)
			ep = dv_aws_ini_get(ini, sec, "endpoint_url");
		free(key);
	}
	if (!ep || !*ep) {
		*url = dv_asprintf("https://%s.%s.amazonaws.com%s", service, region,
				   strncmp(region, "cn-", 3) ? "" : ".cn");
		return 0;
	}
	size_t len = strlen(ep);
	while (len > 0 && ep[len - 1] == '/')
		len--;
	if (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))
		return dv_error(err, DV_E_USAGE, "%s endpoint '%.*s' must start with http:// or https://", id, (int)len,
				ep);
	*url = dv_asprintf("%.*s", (int)len, ep);
	*custom = true;
	return 0;
}

int dv_aws_endpoint_resolve(const struct dv_aws_config *cfg, const char *service, const char *explicit_url,
			    char **url, bool *custom, struct dv_err *err)
{
	struct dv_aws_ini *ini = NULL;
	int r = cfg->config_path ? load_ini(cfg->config_path, &ini, err) : 0;
	if (r < 0) {
		*url = NULL;
		return r;
	}
	char *sec = config_section(cfg->profile ? cfg->profile : "default");
	bool c;
	r = resolve_endpoint(ini, sec, cfg->region ? cfg->region : "us-east-1", service, explicit_url, url, &c, err);
	if (custom)
		*custom = c;
	free(sec);
	dv_aws_ini_free(ini);
	return r;
}

void dv_aws_config_release(struct dv_aws_config *cfg)
{
	free(cfg->profile);
	free(cfg->region);
	free(cfg->endpoint);
	free(cfg->config_path);
	free(cfg->credentials_path);
	memset(cfg, 0, sizeof *cfg);
}

int dv_aws_config_load(const struct dv_aws_options *opt, struct dv_aws_config *cfg, struct dv_err *err)
{
	memset(cfg, 0, sizeof *cfg);
	const char *profile = opt && opt->profile ? opt->profile : env("AWS_PROFILE");
	if (!profile)
		profile = env("AWS_DEFAULT_PROFILE");
	cfg->profile = dv_strdup(profile ? profile : "default");
	cfg->config_path = env("AWS_CONFIG_FILE") ? dv_strdup(env("AWS_CONFIG_FILE")) : home_path(".aws/config");
	cfg->credentials_path = env("AWS_SHARED_CREDENTIALS_FILE") ? dv_strdup(env("AWS_SHARED_CREDENTIALS_FILE"))
								   : home_path(".aws/credentials");
	struct dv_aws_ini *ini = NULL;
	int r = load_ini(cfg->config_path, &ini, err);
	if (r < 0) {
		dv_aws_config_release(cfg);
		return r;
	}
	char *sec = config_section(cfg->profile);
	if (profile && strcmp(profile, "default") && !dv_aws_ini_has_section(ini, sec)) {
		/* a named profile may live only in the credentials file */
		struct dv_aws_ini *cini = NULL;
		r = load_ini(cfg->credentials_path, &cini, err);
		bool found = r == 0 && dv_aws_ini_has_section(cini, cfg->profile);
		dv_aws_ini_free(cini);
		if (!found) {
			if (r == 0)
				r = dv_error(err, DV_E_USAGE, "AWS profile '%s' not found in %s or %s", cfg->profile,
					     cfg->config_path, cfg->credentials_path);
			free(sec);
			dv_aws_ini_free(ini);
			dv_aws_config_release(cfg);
			return r;
		}
	}

	const char *region = opt && opt->region ? opt->region : env("AWS_REGION");
	if (!region)
		region = env("AWS_DEFAULT_REGION");
	if (!region)
		region = dv_aws_ini_get(ini, sec, "region");
	cfg->region = dv_strdup(region && *region ? region : "us-east-1");

	char *ep = NULL;
	bool custom = false;
	r = resolve_endpoint(ini, sec, cfg->region, "s3", opt ? opt->endpoint : NULL, &ep, &custom, err);
	if (r < 0) {
		free(sec);
		dv_aws_ini_free(ini);
		dv_aws_config_release(cfg);
		return r;
	}
	/* NULL = AWS itself: dv_s3_new builds the bucket's virtual host */
	if (custom)
		cfg->endpoint = ep;
	else
		free(ep);
	cfg->path_style = cfg->endpoint != NULL;
	const char *style = env("DISKVAULT_S3_ADDRESSING");
	if (!style)
		style = dv_aws_ini_get(ini, sec, "s3.addressing_style");
	if (style && !strcmp(style, "path"))
		cfg->path_style = true;
	else if (style && !strcmp(style, "virtual"))
		cfg->path_style = false;
	free(sec);
	dv_aws_ini_free(ini);
	return 0;
}

/* ---- credentials ----------------------------------------------------- */

static void set_creds(struct dv_aws_creds *c, const char *id, const char *secret, const char *token, const char *src)
{
	c->access_key_id = dv_strdup(id);
	c->secret_access_key = dv_strdup(secret);
	c->session_token = token && *token ? dv_strdup(token) : NULL;
	snprintf(c->source, sizeof c->source, "%s", src);
}

static int from_file(const char *path, const char *section, struct dv_aws_creds *out, const char *src, bool *found,
		     struct dv_err *err)
{
	struct dv_aws_ini *ini = NULL;
	int r = load_ini(path, &ini, err);
	if (r < 0)
		return r;
	const char *id = dv_aws_ini_get(ini, section, "aws_access_key_id");
	const char *secret = dv_aws_ini_get(ini, section, "aws_secret_access_key");
	if (id && secret && *id && *secret) {
		set_creds(out, id, secret, dv_aws_ini_get(ini, section, "aws_session_token"), src);
		*found = true;
	}
	dv_aws_ini_free(ini);
	return 0;
}

int dv_aws_parse_imds_creds(const char *json, size_t len, struct dv_aws_creds *out, struct dv_err *err)
{
	json_t *j = json_loadb(json, len, 0, NULL);
	const char *id = json_string_value(json_object_get(j, "AccessKeyId"));
	const char *secret = json_string_value(json_object_get(j, "SecretAccessKey"));
	const char *token = json_string_value(json_object_get(j, "Token"));
	const char *exp = json_string_value(json_object_get(j, "Expiration"));
	int r = 0;
	if (!id || !secret || !*id || !*secret) {
		r = dv_error(err, DV_E_REMOTE, "instance metadata: malformed credentials document");
	} else {
		set_creds(out, id, secret, token, "imds");
		int64_t t;
		if (exp && dv_parse_time(exp, &t) == 0)
			out->expiration = t;
	}
	json_decref(j);
	return r;
}

int dv_aws_imds_check_token(const char *token, size_t len, struct dv_err *err)
{
	bool ok = len >= 1 && len <= DV_IMDS_TOKEN_MAX;
	for (size_t i = 0; ok && i < len; i++)
		ok = token[i] > 0x20 && token[i] < 0x7f;
	if (!ok)
		return dv_error(err, DV_E_REMOTE,
				"instance metadata (IMDS): the session token is not 1 to %d printable characters "
				"(control characters or line breaks?)",
				DV_IMDS_TOKEN_MAX);
	return 0;
}

int dv_aws_imds_role(const char *listing, size_t len, char **role, struct dv_err *err)
{
	*role = NULL;
	size_t n = 0;
	while (n < len && listing[n] != '\r' && listing[n] != '\n')
		n++;
	bool ok = n >= 1 && n <= 64 && !(n == 1 && listing[0] == '.') && !(n == 2 && !memcmp(listing, "..", 2));
	for (size_t i = 0; ok && i < n; i++) {
		char ch = listing[i];
		ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		     (ch && strchr("+=,.@_-", ch));
	}
	if (!ok)
		return dv_error(err, DV_E_REMOTE,
				"instance metadata (IMDS): the role name under iam/security-credentials/ is not a "
				"valid IAM role name (1 to 64 of A-Z a-z 0-9 + = , . @ _ -)");
	*role = dv_asprintf("%.*s", (int)n, listing);
	return 0;
}

struct membuf {
	struct dv_buf b;
	size_t cap;
};

static size_t mem_write(char *p, size_t sz, size_t n, void *ud)
{
	struct membuf *m = ud;
	if (m->b.len + sz * n > m->cap)
		return 0;
	dv_buf_add(&m->b, p, sz * n);
	return sz * n;
}

/* One IMDS call; returns HTTP status or -1. */
static long imds_call(CURL *c, const char *url, const char *method, struct curl_slist *hdrs, struct membuf *m)
{
	dv_buf_reset(&m->b);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, m);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (curl_easy_perform(c) != CURLE_OK)
		return -1;
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

/* IMDSv2: PUT a session token, then read the role's credentials. */
static int from_imds(struct dv_aws_creds *out, bool *found, struct dv_err *err)
{
	if (env_true("AWS_EC2_METADATA_DISABLED"))
		return 0;
	const char *base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	if (!base)
		base = "http://169.254.169.254";
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	CURL *c = curl_easy_init();
	if (!c)
		return dv_error(err, DV_E_NOMEM, "curl_easy_init failed");
	struct membuf m = {DV_BUF_INIT, 64 * 1024};
	int r = 0;
	struct curl_slist *h = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
	char *url = dv_asprintf("%.*s/latest/api/token", (int)bl, base);
	long code = imds_call(c, url, "PUT", h, &m);
	free(url);
	curl_slist_free_all(h);
	h = NULL;
	if (code != 200 || !m.b.len)
		goto out; /* not on EC2 (or IMDS off): no credentials from here */
	r = dv_aws_imds_check_token((char *)m.b.data, m.b.len, err);
	if (r < 0)
		goto out;
	char *th = dv_asprintf("X-aws-ec2-metadata-token: %s", (char *)m.b.data);
	h = curl_slist_append(NULL, th);
	explicit_bzero(th, strlen(th));
	free(th);
	url = dv_asprintf("%.*s/latest/meta-data/iam/security-credentials/", (int)bl, base);
	code = imds_call(c, url, "GET", h, &m);
	free(url);
	if (code != 200 || !m.b.len)
		goto out;
	char *role;
	r = dv_aws_imds_role((char *)m.b.data, m.b.len, &role, err);
	if (r < 0)
		goto out;
	url = dv_asprintf("%.*s/latest/meta-data/iam/security-credentials/%s", (int)bl, base, role);
	free(role);
	code = imds_call(c, url, "GET", h, &m);
	free(url);
	if (code != 200) {
		r = dv_error(err, DV_E_REMOTE, "instance metadata: credentials request answered HTTP %ld", code);
		goto out;
	}
	r = dv_aws_parse_imds_creds((char *)m.b.data, m.b.len, out, err);
	if (r == 0)
		*found = true;
	explicit_bzero(m.b.data, m.b.len);
out:
	curl_slist_free_all(h);
	dv_buf_release(&m.b);
	curl_easy_cleanup(c);
	return r;
}

int dv_aws_creds_load(const struct dv_aws_options *opt, const struct dv_aws_config *cfg, struct dv_aws_creds *out,
		      struct dv_err *err)
{
	memset(out, 0, sizeof *out);
	bool found = false;
	/* An explicit --profile outranks the environment (AWS CLI rule). */
	if (!(opt && opt->profile)) {
		const char *id = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
		if (id && secret) {
			set_creds(out, id, secret, env("AWS_SESSION_TOKEN"), "env");
			return 0;
		}
	}
	int r = from_file(cfg->credentials_path, cfg->profile, out, "shared-credentials-file", &found, err);
	if (r < 0 || found)
		return r;
	char *sec = config_section(cfg->profile);
	r = from_file(cfg->config_path, sec, out, "config-file", &found, err);
	free(sec);
	if (r < 0 || found)
		return r;
	r = from_imds(out, &found, err);
	if (r < 0 || found)
		return r;
	return dv_error(err, DV_E_USAGE,
			"no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or profile '%s' in %s",
			cfg->profile, cfg->credentials_path);
}
