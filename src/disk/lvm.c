/*
 * lvm.c - LVM2 PV labels, metadata areas and metadata text (lvm.h).
 *
 * On-disk layout (all little-endian; LVM2's format_text):
 *   label (one of sectors 0-3, 512 bytes):
 *     0  id "LABELONE"   8  sector number of this label (u64)
 *     16 crc (u32) of bytes 20..511      20 offset of the PV header (u32)
 *     24 type "LVM2 001"
 *   PV header (at label + offset): uuid[32], device size (u64), then
 *     {offset, size} u64 pairs: data areas up to a zero pair, then
 *     metadata areas up to a zero pair.
 *   metadata area header (512 bytes at the area's offset):
 *     0 crc (u32) of bytes 4..511   4 magic[16]   20 version (u32, 1)
 *     24 start (u64, the area's offset on the PV)  32 size (u64)
 *     40 raw locations {offset (from the area start), size, crc (u32),
 *        flags (u32)} up to a zero one; the first is the committed text.
 *   The text may wrap: what does not fit before the end of the area
 *   continues just after the header.
 */
#include "disk/lvm.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SECTOR 512u
#define LABEL_SCAN 4u
#define MDA_HEADER 512u
#define MDA_MAGIC "\x20\x4c\x56\x4d\x32\x20\x78\x5b\x35\x41\x25\x72\x30\x4e\x2a\x3e"
#define CRC_INIT 0xf597a6cfu
#define MDAS_MAX 8u
#define STR_MAX 4096u

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* zlib's crc32 inverts before and after; LVM's does neither. */
static uint32_t crc_update(uint32_t crc, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;
	while (n) {
		uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
		c = (uint32_t)crc32(c, p, k);
		p += k;
		n -= k;
	}
	return ~c;
}

uint32_t dv_lvm_crc(const void *buf, size_t n)
{
	return crc_update(CRC_INIT, buf, n);
}

#define fmt dv_asprintf

void dv_lvm_uuid_plain(const char *uuid, char out[33])
{
	size_t k = 0;
	for (const char *p = uuid; *p && k < 32; p++)
		if (*p != '-')
			out[k++] = *p;
	out[k] = 0;
}

void dv_lvm_pv_label_release(struct dv_lvm_pv_label *l)
{
	free(l->text);
	l->text = NULL;
}

/* The seqno of metadata text, or 0 when it has none a quick parse finds. */
static uint64_t text_seqno(const char *t, size_t n, char **why)
{
	struct dv_lvm_vg *vg = dv_lvm_parse(t, n, why);
	if (!vg)
		return 0;
	uint64_t s = vg->seqno;
	dv_lvm_vg_free(vg);
	return s;
}

/* Reads the committed text of the metadata area at [off, off+size) of pv.
 * Returns 0 with *text (caller frees) or -1 with *why. */
static int read_mda(const struct dv_vol *pv, uint64_t off, uint64_t size, char **text, size_t *len, char **why)
{
	uint8_t h[MDA_HEADER];
	struct dv_err e;
	if (size < MDA_HEADER || off > pv->size || size > pv->size - off) {
		*why = fmt("its metadata area (bytes %llu+%llu) lies outside the PV", (unsigned long long)off,
			   (unsigned long long)size);
		return -1;
	}
	if (dv_vol_read(pv, off, h, sizeof h, &e) < 0) {
		*why = fmt("its metadata area header cannot be read (%s)", e.msg);
		return -1;
	}
	if (memcmp(h + 4, MDA_MAGIC, 16)) {
		*why = fmt("its metadata area at byte %llu has no LVM2 magic", (unsigned long long)off);
		return -1;
	}
	if (dv_lvm_crc(h + 4, MDA_HEADER - 4) != le32(h)) {
		*why = fmt("its metadata area header at byte %llu fails its checksum", (unsigned long long)off);
		return -1;
	}
	if (le32(h + 20) != 1 || le64(h + 24) != off || le64(h + 32) != size) {
		*why = fmt("its metadata area header at byte %llu has an unknown version or disagrees with the PV "
			   "header about where it is",
			   (unsigned long long)off);
		return -1;
	}
	const uint8_t *rl = h + 40;
	uint64_t roff = le64(rl), rsize = le64(rl + 8);
	uint32_t rcrc = le32(rl + 16), rflags = le32(rl + 20);
	if (!roff && !rsize) {
		*why = fmt("its metadata area at byte %llu holds no metadata", (unsigned long long)off);
		return -1;
	}
	if (rflags & 1) {
		*why = fmt("its metadata area at byte %llu is marked ignored", (unsigned long long)off);
		return -1;
	}
	if (rsize == 0 || rsize > DV_LVM_TEXT_MAX || rsize > size - MDA_HEADER || roff < MDA_HEADER || roff >= size) {
		*why = fmt("its metadata text (%llu bytes at %llu of the area) does not fit its area of %llu bytes",
			   (unsigned long long)rsize, (unsigned long long)roff, (unsigned long long)size);
		return -1;
	}
	char *t = dv_malloc(rsize + 1);
	uint64_t first = DV_MIN(rsize, size - roff);
	int r = dv_vol_read(pv, off + roff, t, first, &e);
	if (r == 0 && first < rsize)
		r = dv_vol_read(pv, off + MDA_HEADER, t + first, rsize - first, &e);
	if (r < 0) {
		free(t);
		*why = fmt("its metadata text cannot be read (%s)", e.msg);
		return -1;
	}
	if (dv_lvm_crc(t, rsize) != rcrc) {
		free(t);
		*why = fmt("its metadata text at byte %llu fails its checksum", (unsigned long long)(off + roff));
		return -1;
	}
	t[rsize] = 0;
	*text = t;
	*len = strnlen(t, rsize);
	return 0;
}

int dv_lvm_pv_read(const struct dv_vol *pv, struct dv_lvm_pv_label *out, char **why, char **note)
{
	memset(out, 0, sizeof *out);
	*why = NULL;
	uint8_t s[SECTOR];
	struct dv_err e;
	unsigned at = LABEL_SCAN;
	for (unsigned i = 0; i < LABEL_SCAN && (uint64_t)(i + 1) * SECTOR <= pv->size; i++) {
		if (dv_vol_read(pv, (uint64_t)i * SECTOR, s, SECTOR, &e) < 0) {
			*why = fmt("its label cannot be read (%s)", e.msg);
			return -1;
		}
		if (!memcmp(s, "LABELONE", 8)) {
			at = i;
			break;
		}
	}
	if (at == LABEL_SCAN) {
		*why = fmt("no LVM2 label in its first %u sectors", LABEL_SCAN);
		return -1;
	}
	if (le64(s + 8) != at || dv_lvm_crc(s + 20, SECTOR - 20) != le32(s + 16)) {
		*why = fmt("its LVM2 label (sector %u) fails its checksum", at);
		return -1;
	}
	if (memcmp(s + 24, "LVM2 001", 8)) {
		*why = fmt("its label is of an unknown type (%.8s)", (const char *)(s + 24));
		return -1;
	}
	uint32_t ho = le32(s + 20);
	if (ho < 32 || ho > SECTOR - 32 - 8) {
		*why = fmt("its PV header offset (%u) is out of its sector", ho);
		return -1;
	}
	const uint8_t *p = s + ho, *end = s + SECTOR;
	for (unsigned k = 0; k < 32; k++) {
		if (!isalnum(p[k]) && p[k] != '!' && p[k] != '#') {
			*why = dv_strdup("its PV header carries a malformed UUID");
			return -1;
		}
		out->uuid[k] = (char)p[k];
	}
	out->uuid[32] = 0;
	out->dev_size = le64(p + 32);
	p += 40;
	/* data areas, then metadata areas, each list ending with a zero pair */
	uint64_t mda_off[MDAS_MAX], mda_size[MDAS_MAX];
	unsigned ndata = 0;
	for (int list = 0; list < 2; list++) {
		for (;;) {
			if (p + 16 > end) {
				*why = dv_strdup("its PV header's area lists run past its sector");
				return -1;
			}
			uint64_t o = le64(p), z = le64(p + 8);
			p += 16;
			if (!o && !z)
				break;
			if (list == 0) {
				if (!ndata++)
					out->data_off = o;
			} else {
				if (out->nmda == MDAS_MAX) {
					*why = dv_strdup("its PV header lists too many metadata areas");
					return -1;
				}
				mda_off[out->nmda] = o;
				mda_size[out->nmda] = z;
				out->nmda++;
			}
		}
	}
	if (ndata != 1) {
		*why = fmt("its PV header lists %u data areas (1 expected)", ndata);
		return -1;
	}
	char *notes = NULL;
	for (unsigned m = 0; m < out->nmda; m++) {
		char *t = NULL, *w = NULL;
		size_t n = 0;
		if (read_mda(pv, mda_off[m], mda_size[m], &t, &n, &w) == 0) {
			uint64_t sq = text_seqno(t, n, &w);
			if (!sq && w) {
				free(t);
				t = NULL;
			} else {
				out->mda_ok++;
				if (!out->text || sq > out->seqno) {
					free(out->text);
					out->text = t;
					out->text_len = n;
					out->seqno = sq;
					t = NULL;
				}
				free(t);
				continue;
			}
		}
		char *nn = fmt("%s%smetadata area %u: %s", notes ? notes : "", notes ? "; " : "", m + 1, w);
		free(notes);
		notes = nn;
		free(w);
	}
	if (out->nmda && !out->mda_ok) {
		*why = fmt("none of its metadata areas can be used (%s)", notes);
		free(notes);
		return -1;
	}
	*note = notes;
	return 0;
}

/* ---- the text format ------------------------------------------------------ */

enum node_kind { N_SEC, N_STR, N_INT, N_LIST };

struct node {
	enum node_kind kind;
	char *key;           /* NULL for list items */
	char *s;             /* N_STR */
	int64_t i;           /* N_INT */
	struct node *child;  /* N_SEC members, N_LIST items */
	struct node *next;
};

struct parser {
	const char *p, *end;
	size_t nodes;
	unsigned line;
	char *why;
};

static void node_free(struct node *n)
{
	while (n) {
		struct node *nx = n->next;
		node_free(n->child);
		free(n->key);
		free(n->s);
		free(n);
		n = nx;
	}
}

static int perr(struct parser *ps, const char *what)
{
	if (!ps->why)
		ps->why = fmt("its metadata text cannot be parsed (line %u: %s)", ps->line, what);
	return -1;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end) {
		char c = *ps->p;
		if (c == '\n') {
			ps->line++;
			ps->p++;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			ps->p++;
		} else if (c == '#') {
			while (ps->p < ps->end && *ps->p != '\n')
				ps->p++;
		} else {
			break;
		}
	}
}

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-' || c == '+' || c == '/' || c == '@';
}

static struct node *new_node(struct parser *ps, enum node_kind k)
{
	if (++ps->nodes > DV_LVM_NODES_MAX) {
		perr(ps, "too many values");
		return NULL;
	}
	struct node *n = dv_calloc(1, sizeof *n);
	n->kind = k;
	return n;
}

static char *dup_n(const char *b, size_t n)
{
	char *s = dv_malloc(n + 1);
	memcpy(s, b, n);
	s[n] = 0;
	return s;
}

static char *parse_ident(struct parser *ps)
{
	const char *b = ps->p;
	while (ps->p < ps->end && ident_char(*ps->p) && (size_t)(ps->p - b) < STR_MAX)
		ps->p++;
	if (ps->p == b || (ps->p < ps->end && ident_char(*ps->p)))
		return NULL;
	return dup_n(b, (size_t)(ps->p - b));
}

static char *parse_string(struct parser *ps)
{
	ps->p++; /* the opening quote */
	char *out = dv_malloc(STR_MAX + 1);
	size_t k = 0;
	while (ps->p < ps->end && *ps->p != '"') {
		char c = *ps->p++;
		if (c == '\\') {
			if (ps->p >= ps->end)
				break;
			c = *ps->p++;
		}
		if (c == '\n')
			ps->line++;
		if (k == STR_MAX) {
			free(out);
			perr(ps, "a string is too long");
			return NULL;
		}
		out[k++] = c;
	}
	if (ps->p >= ps->end) {
		free(out);
		perr(ps, "a string is not closed");
		return NULL;
	}
	ps->p++;
	out[k] = 0;
	return out;
}

/* A scalar value (string or integer) as a new node. */
static struct node *parse_scalar(struct parser *ps)
{
	if (ps->p >= ps->end) {
		perr(ps, "a value is missing");
		return NULL;
	}
	if (*ps->p == '"') {
		char *s = parse_string(ps);
		if (!s)
			return NULL;
		struct node *n = new_node(ps, N_STR);
		if (!n) {
			free(s);
			return NULL;
		}
		n->s = s;
		return n;
	}
	const char *b = ps->p;
	if (ps->p < ps->end && *ps->p == '-')
		ps->p++;
	const char *d = ps->p;
	while (ps->p < ps->end && isdigit((unsigned char)*ps->p) && ps->p - d < 20)
		ps->p++;
	if (ps->p == d || (ps->p < ps->end && (ident_char(*ps->p) || *ps->p == '"'))) {
		perr(ps, "a value is neither a string nor an integer");
		return NULL;
	}
	char buf[24];
	memcpy(buf, b, (size_t)(ps->p - b));
	buf[ps->p - b] = 0;
	errno = 0;
	long long v = strtoll(buf, NULL, 10);
	if (errno) {
		perr(ps, "an integer is out of range");
		return NULL;
	}
	struct node *n = new_node(ps, N_INT);
	if (n)
		n->i = v;
	return n;
}

/* Members up to '}' (depth > 0) or the end of the text (depth 0). */
static int parse_members(struct parser *ps, struct node **out, unsigned depth)
{
	struct node **tail = out;
	for (;;) {
		skip_ws(ps);
		if (ps->p >= ps->end)
			return depth ? perr(ps, "a section is not closed") : 0;
		if (*ps->p == '}') {
			if (!depth)
				return perr(ps, "a '}' closes nothing");
			ps->p++;
			return 0;
		}
		if (*ps->p == 0) { /* the text ends at its NUL */
			if (depth)
				return perr(ps, "a section is not closed");
			ps->end = ps->p;
			return 0;
		}
		char *key = parse_ident(ps);
		if (!key)
			return perr(ps, "a name is expected");
		skip_ws(ps);
		struct node *n = NULL;
		if (ps->p < ps->end && *ps->p == '{') {
			ps->p++;
			if (depth + 1 > DV_LVM_DEPTH_MAX) {
				free(key);
				return perr(ps, "sections are nested too deep");
			}
			n = new_node(ps, N_SEC);
			if (!n) {
				free(key);
				return -1;
			}
			n->key = key;
			*tail = n;
			tail = &n->next;
			if (parse_members(ps, &n->child, depth + 1) < 0)
				return -1;
			continue;
		}
		if (ps->p >= ps->end || *ps->p != '=') {
			free(key);
			return perr(ps, "'=' or '{' is expected after a name");
		}
		ps->p++;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == '[') {
			ps->p++;
			n = new_node(ps, N_LIST);
			if (!n) {
				free(key);
				return -1;
			}
			n->key = key;
			*tail = n;
			tail = &n->next;
			struct node **it = &n->child;
			for (;;) {
				skip_ws(ps);
				if (ps->p < ps->end && *ps->p == ']') {
					ps->p++;
					break;
				}
				if (it != &n->child) {
					if (ps->p >= ps->end || *ps->p != ',')
						return perr(ps, "',' or ']' is expected in a list");
					ps->p++;
					skip_ws(ps);
				}
				struct node *v = parse_scalar(ps);
				if (!v)
					return -1;
				*it = v;
				it = &v->next;
			}
			continue;
		}
		n = parse_scalar(ps);
		if (!n) {
			free(key);
			return -1;
		}
		n->key = key;
		*tail = n;
		tail = &n->next;
	}
}

static const struct node *get(const struct node *sec, const char *key)
{
	for (const struct node *n = sec ? sec->child : NULL; n; n = n->next)
		if (n->key && !strcmp(n->key, key))
			return n;
	return NULL;
}

static bool get_u64(const struct node *sec, const char *key, uint64_t *v)
{
	const struct node *n = get(sec, key);
	if (!n || n->kind != N_INT || n->i < 0)
		return false;
	*v = (uint64_t)n->i;
	return true;
}

static const char *get_str(const struct node *sec, const char *key)
{
	const struct node *n = get(sec, key);
	return n && n->kind == N_STR ? n->s : NULL;
}

static bool list_has(const struct node *sec, const char *key, const char *word)
{
	const struct node *n = get(sec, key);
	if (!n || n->kind != N_LIST)
		return false;
	for (const struct node *i = n->child; i; i = i->next)
		if (i->kind == N_STR && !strcmp(i->s, word))
			return true;
	return false;
}

static void copy(char *dst, size_t n, const char *s)
{
	snprintf(dst, n, "%s", s ? s : "");
}

void dv_lvm_vg_free(struct dv_lvm_vg *vg)
{
	if (!vg)
		return;
	for (size_t i = 0; i < vg->nlvs; i++) {
		for (size_t j = 0; j < vg->lvs[i].nsegs; j++)
			free(vg->lvs[i].segs[j].stripes);
		free(vg->lvs[i].segs);
		free(vg->lvs[i].whole_why);
	}
	free(vg->lvs);
	free(vg->pvs);
	free(vg);
}

static int seg_cmp(const void *a, const void *b)
{
	const struct dv_lvm_seg *x = a, *y = b;
	return x->start_extent < y->start_extent ? -1 : x->start_extent > y->start_extent;
}

static int find_pv(const struct dv_lvm_vg *vg, const char *name)
{
	for (size_t i = 0; i < vg->npvs; i++)
		if (!strcmp(vg->pvs[i].name, name))
			return (int)i;
	return -1;
}

/* Parses one LV section into lv; returns -1 with *why on a VG-level
 * inconsistency (which makes the whole VG untrusted). */
static int parse_lv(const struct dv_lvm_vg *vg, const struct node *s, struct dv_lvm_lv *lv, char **why)
{
	copy(lv->name, sizeof lv->name, s->key);
	copy(lv->uuid, sizeof lv->uuid, get_str(s, "id"));
	lv->visible = list_has(s, "status", "VISIBLE");
	uint64_t nseg = 0;
	if (!get_u64(s, "segment_count", &nseg) || nseg == 0 || nseg > DV_LVM_SEGS_MAX) {
		*why = fmt("LV %s has no usable segment_count", lv->name);
		return -1;
	}
	lv->segs = dv_calloc(nseg, sizeof *lv->segs);
	for (const struct node *c = s->child; c; c = c->next) {
		if (c->kind != N_SEC || strncmp(c->key, "segment", 7))
			continue;
		if (lv->nsegs == nseg) {
			*why = fmt("LV %s has more segment sections than its segment_count", lv->name);
			return -1;
		}
		struct dv_lvm_seg *g = &lv->segs[lv->nsegs++];
		const char *type = get_str(c, "type");
		if (!get_u64(c, "start_extent", &g->start_extent) || !get_u64(c, "extent_count", &g->extent_count) ||
		    !type || !g->extent_count) {
			*why = fmt("LV %s %s lacks start_extent, extent_count or type", lv->name, c->key);
			return -1;
		}
		copy(g->type, sizeof g->type, type);
		if (g->extent_count > (1ull << 51) / vg->extent_size) {
			*why = fmt("LV %s %s is too large", lv->name, c->key);
			return -1;
		}
		if (strcmp(type, "striped")) {
			/* Extents such a segment takes straight from a PV (a
			 * pvmove's mirror) would look unallocated: refuse. */
			for (const struct node *m = c->child; m; m = m->next)
				for (const struct node *it = m->kind == N_LIST ? m->child : NULL; it; it = it->next)
					if (it->kind == N_STR && find_pv(vg, it->s) >= 0) {
						*why = fmt("LV %s %s (type %s) names PV %s directly (a pvmove in "
							   "progress?)",
							   lv->name, c->key, g->type, it->s);
						return -1;
					}
			if (!strcmp(type, "snapshot"))
				copy(g->origin, sizeof g->origin, get_str(c, "origin"));
			if (!lv->whole_why)
				lv->whole_why = fmt("its segment type %s is not mapped (only linear and striped are)",
						    g->type);
			continue;
		}
		uint64_t sc = 0;
		if (!get_u64(c, "stripe_count", &sc) || sc == 0 || sc > DV_LVM_STRIPES_MAX ||
		    g->extent_count % sc) {
			*why = fmt("LV %s %s has a bad stripe_count", lv->name, c->key);
			return -1;
		}
		g->stripe_count = (uint32_t)sc;
		if (sc > 1 && (!get_u64(c, "stripe_size", &g->stripe_size) || g->stripe_size == 0 ||
			       (g->stripe_size & (g->stripe_size - 1)))) {
			*why = fmt("LV %s %s has a bad stripe_size", lv->name, c->key);
			return -1;
		}
		const struct node *l = get(c, "stripes");
		if (!l || l->kind != N_LIST) {
			*why = fmt("LV %s %s has no stripes list", lv->name, c->key);
			return -1;
		}
		g->stripes = dv_calloc(sc, sizeof *g->stripes);
		const struct node *it = l->child;
		uint64_t per = g->extent_count / sc;
		for (uint64_t k = 0; k < sc; k++) {
			if (!it || it->kind != N_STR || !it->next || it->next->kind != N_INT || it->next->i < 0) {
				*why = fmt("LV %s %s: its stripes list is not [pv, extent] pairs", lv->name, c->key);
				return -1;
			}
			int pv = find_pv(vg, it->s);
			if (pv < 0) {
				*why = fmt("LV %s %s names an unknown PV %s", lv->name, c->key, it->s);
				return -1;
			}
			uint64_t ext = (uint64_t)it->next->i;
			if (ext > vg->pvs[pv].pe_count || per > vg->pvs[pv].pe_count - ext) {
				*why = fmt("LV %s %s runs past the end of PV %s", lv->name, c->key, it->s);
				return -1;
			}
			g->stripes[k] = (struct dv_lvm_stripe){(uint32_t)pv, ext};
			it = it->next->next;
		}
		if (it) {
			*why = fmt("LV %s %s lists more stripes than its stripe_count", lv->name, c->key);
			return -1;
		}
	}
	if (lv->nsegs != nseg) {
		*why = fmt("LV %s has fewer segment sections than its segment_count", lv->name);
		return -1;
	}
	qsort(lv->segs, lv->nsegs, sizeof *lv->segs, seg_cmp);
	uint64_t next = 0;
	for (size_t j = 0; j < lv->nsegs; j++) {
		if (lv->segs[j].start_extent != next) {
			*why = fmt("LV %s: its segments leave a gap or overlap at extent %llu", lv->name,
				   (unsigned long long)next);
			return -1;
		}
		next += lv->segs[j].extent_count;
		if (next < lv->segs[j].extent_count) {
			*why = fmt("LV %s is too large", lv->name);
			return -1;
		}
	}
	lv->extents = next;
	if (!lv->visible && !lv->whole_why)
		lv->whole_why = dv_strdup("it is a hidden LV (part of a thin pool, cache, raid, mirror or snapshot)");
	return 0;
}

static int use_cmp(const void *a, const void *b)
{
	const struct dv_lvm_use *x = a, *y = b;
	if (x->pv != y->pv)
		return x->pv < y->pv ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

size_t dv_lvm_uses(const struct dv_lvm_vg *vg, struct dv_lvm_use **out)
{
	size_t n = 0;
	for (size_t i = 0; i < vg->nlvs; i++)
		for (size_t j = 0; j < vg->lvs[i].nsegs; j++)
			n += vg->lvs[i].segs[j].stripe_count;
	struct dv_lvm_use *u = dv_calloc(n ? n : 1, sizeof *u);
	size_t k = 0;
	for (size_t i = 0; i < vg->nlvs; i++)
		for (size_t j = 0; j < vg->lvs[i].nsegs; j++) {
			const struct dv_lvm_seg *g = &vg->lvs[i].segs[j];
			for (uint32_t s = 0; s < g->stripe_count; s++)
				u[k++] = (struct dv_lvm_use){g->stripes[s].pv, g->stripes[s].extent,
							     g->extent_count / g->stripe_count, i};
		}
	qsort(u, n, sizeof *u, use_cmp);
	*out = u;
	return n;
}

/* Checks that no PV extent is used twice. */
static int check_overlaps(const struct dv_lvm_vg *vg, char **why)
{
	struct dv_lvm_use *u;
	size_t n = dv_lvm_uses(vg, &u);
	for (size_t i = 1; i < n; i++)
		if (u[i].pv == u[i - 1].pv && u[i].start < u[i - 1].start + u[i - 1].len) {
			*why = fmt("extent %llu of PV %s is used twice (LVs %s and %s)", (unsigned long long)u[i].start,
				   vg->pvs[u[i].pv].name, vg->lvs[u[i - 1].lv].name, vg->lvs[u[i].lv].name);
			free(u);
			return -1;
		}
	free(u);
	return 0;
}

struct dv_lvm_vg *dv_lvm_parse(const char *text, size_t n, char **why)
{
	*why = NULL;
	if (n > DV_LVM_TEXT_MAX) {
		*why = dv_strdup("its metadata text is too large");
		return NULL;
	}
	struct parser ps = {text, text + n, 0, 1, NULL};
	struct node root = {N_SEC, NULL, NULL, 0, NULL, NULL};
	struct dv_lvm_vg *vg = NULL;
	if (parse_members(&ps, &root.child, 0) < 0) {
		*why = ps.why;
		goto out;
	}
	const struct node *vs = NULL;
	for (const struct node *c = root.child; c; c = c->next) {
		if (c->kind != N_SEC)
			continue;
		if (vs) {
			*why = dv_strdup("its metadata text holds more than one volume group");
			goto out;
		}
		vs = c;
	}
	const char *contents = get_str(&root, "contents");
	uint64_t version = 0;
	if (!vs || (contents && strcmp(contents, "Text Format Volume Group")) ||
	    (get(&root, "version") && (!get_u64(&root, "version", &version) || version != 1))) {
		*why = dv_strdup("its metadata text is not an LVM2 volume group (version 1)");
		goto out;
	}
	vg = dv_calloc(1, sizeof *vg);
	copy(vg->name, sizeof vg->name, vs->key);
	copy(vg->uuid, sizeof vg->uuid, get_str(vs, "id"));
	const char *format = get_str(vs, "format");
	if (!get_u64(vs, "seqno", &vg->seqno) || !get_u64(vs, "extent_size", &vg->extent_size) ||
	    !vg->extent_size || vg->extent_size > (1ull << 32) || (format && strcmp(format, "lvm2"))) {
		*why = fmt("VG %s lacks seqno or extent_size, or is not of format lvm2", vg->name);
		goto fail;
	}
	const struct node *pvs = get(vs, "physical_volumes");
	const struct node *lvs = get(vs, "logical_volumes");
	if (!pvs || pvs->kind != N_SEC) {
		*why = fmt("VG %s has no physical_volumes", vg->name);
		goto fail;
	}
	for (const struct node *c = pvs->child; c; c = c->next)
		if (c->kind == N_SEC)
			vg->npvs++;
	if (!vg->npvs || vg->npvs > DV_LVM_PVS_MAX) {
		*why = fmt("VG %s lists %zu PVs", vg->name, vg->npvs);
		goto fail;
	}
	vg->pvs = dv_calloc(vg->npvs, sizeof *vg->pvs);
	size_t k = 0;
	for (const struct node *c = pvs->child; c; c = c->next) {
		if (c->kind != N_SEC)
			continue;
		struct dv_lvm_pv *p = &vg->pvs[k++];
		copy(p->name, sizeof p->name, c->key);
		copy(p->uuid, sizeof p->uuid, get_str(c, "id"));
		get_u64(c, "dev_size", &p->dev_size);
		if (!get_str(c, "id") || !get_u64(c, "pe_start", &p->pe_start) || !get_u64(c, "pe_count", &p->pe_count) ||
		    p->pe_count > (1ull << 51) / vg->extent_size || p->pe_start > (1ull << 51)) {
			*why = fmt("VG %s: PV %s lacks id, pe_start or pe_count", vg->name, p->name);
			goto fail;
		}
		if (find_pv(vg, p->name) != (int)(k - 1)) {
			*why = fmt("VG %s lists PV %s twice", vg->name, p->name);
			goto fail;
		}
	}
	if (lvs && lvs->kind == N_SEC) {
		for (const struct node *c = lvs->child; c; c = c->next)
			if (c->kind == N_SEC)
				vg->nlvs++;
		if (vg->nlvs > DV_LVM_LVS_MAX) {
			*why = fmt("VG %s lists too many LVs", vg->name);
			goto fail;
		}
		vg->lvs = dv_calloc(vg->nlvs ? vg->nlvs : 1, sizeof *vg->lvs);
		k = 0;
		for (const struct node *c = lvs->child; c; c = c->next) {
			if (c->kind != N_SEC)
				continue;
			if (parse_lv(vg, c, &vg->lvs[k++], why) < 0) {
				char *w = fmt("VG %s: %s", vg->name, *why);
				free(*why);
				*why = w;
				goto fail;
			}
		}
	}
	/* An old-style snapshot shares its origin's blocks: the origin's free
	 * blocks may be the snapshot's data, so the origin is read whole. */
	for (size_t i = 0; i < vg->nlvs; i++)
		for (size_t j = 0; j < vg->lvs[i].nsegs; j++) {
			const char *o = vg->lvs[i].segs[j].origin;
			for (size_t l = 0; *o && l < vg->nlvs; l++)
				if (!strcmp(vg->lvs[l].name, o) && !vg->lvs[l].whole_why)
					vg->lvs[l].whole_why = fmt("it is the origin of a snapshot (%s), which shares its "
								   "blocks",
								   vg->lvs[i].name);
		}
	if (check_overlaps(vg, why) < 0) {
		char *w = fmt("VG %s: %s", vg->name, *why);
		free(*why);
		*why = w;
		goto fail;
	}
	goto out;
fail:
	dv_lvm_vg_free(vg);
	vg = NULL;
out:
	node_free(root.child);
	if (!vg && !*why)
		*why = dv_strdup("its metadata text cannot be parsed");
	return vg;
}
