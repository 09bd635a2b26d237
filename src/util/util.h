/*
 * util.h - the small things every diskvault module uses: errors, growable
 * buffers, hex, logging, atomic file writes, an ordered work queue, time.
 *
 * Error convention (see docs/errors.md): a function that can fail returns
 * an int, 0 on success or the negated value of an enum dv_code on failure,
 * and writes one human-readable line into a caller-provided struct dv_err.
 * The line names the object that is wrong ("pack 3fa1…: truncated"); the CLI
 * maps the code to an exit status (docs/exit-codes.md). Library code never
 * prints.
 */
#ifndef DV_UTIL_H
#define DV_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DV_WUR __attribute__((warn_unused_result))
#define DV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DV_ARRAY_SIZE(x) (sizeof(x) / sizeof((x)[0]))
#define DV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DV_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Programmer errors: never reached on any input. */
#define DV_BUG(...) dv_bug(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void dv_bug(const char *file, int line, const char *fmt, ...) DV_PRINTF(3, 4);

/* ---- errors ---------------------------------------------------------- */

enum dv_code {
	DV_OK = 0,
	DV_E_FAIL,        /* generic failure that fits no other class */
	DV_E_USAGE,       /* bad arguments */
	DV_E_NOMEM,
	DV_E_IO,          /* a system call failed (detail carries strerror) */
	DV_E_NOSPACE,     /* ENOSPC/EDQUOT while writing */
	DV_E_NOT_FOUND,   /* a named object or snapshot does not exist */
	DV_E_EXISTS,      /* refusing to overwrite */
	DV_E_NOT_REPO,    /* path is not a diskvault repository */
	DV_E_VERSION,     /* repository/object of an unsupported format version */
	DV_E_CORRUPT,     /* stored data fails its checks */
	DV_E_LOCKED,      /* a conflicting lock is held */
	DV_E_TOO_SMALL,   /* restore target smaller than the disk */
	DV_E_BUSY,        /* target in use (mounted) or carries data */
	DV_E_SOURCE,      /* a source disk could not be read */
	DV_E_REMOTE,      /* network or remote service failure */
	DV_E_INTERRUPTED, /* SIGINT/SIGTERM */
	DV_E_AUTH,        /* wrong passphrase / no key opens the repository */
	DV_E_CLOSED,      /* the reader of a stream (restore -) closed it early */
	DV_E_CODE_MAX
};

struct dv_err {
	enum dv_code code;
	char msg[1024];
};

/* Clears *err. */
void dv_err_clear(struct dv_err *err);
/* Records code and message in err (may be NULL); returns -code. */
int dv_error(struct dv_err *err, enum dv_code code, const char *fmt, ...) DV_PRINTF(3, 4);
/* Like dv_error() for a failed system call: appends ": strerror(errnum)" and
 * classifies ENOSPC/EDQUOT as DV_E_NOSPACE, ENOMEM as DV_E_NOMEM. */
int dv_error_errno(struct dv_err *err, int errnum, const char *fmt, ...) DV_PRINTF(3, 4);
/* Prefixes the existing message with more context ("backup: " + msg). */
int dv_error_prefix(struct dv_err *err, const char *fmt, ...) DV_PRINTF(2, 3);
/* Short name of a code ("corrupt", "not-found", ...). */
const char *dv_code_name(enum dv_code code);

/* ---- memory ---------------------------------------------------------- */

/* Abort-on-OOM allocators: diskvault's working sets are bounded, so running
 * out of memory is not a condition worth unwinding for. */
void *dv_malloc(size_t n);
void *dv_calloc(size_t n, size_t size);
void *dv_realloc(void *p, size_t n);
char *dv_strdup(const char *s);
char *dv_asprintf(const char *fmt, ...) DV_PRINTF(1, 2);

/* ---- growable buffer ------------------------------------------------- */

/* Invariant: data[len] == 0 always (so text can be used as a C string),
 * cap >= len + 1 once anything was added; data == NULL when cap == 0. */
struct dv_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
#define DV_BUF_INIT {NULL, 0, 0}

void dv_buf_release(struct dv_buf *b);
void dv_buf_reset(struct dv_buf *b);               /* len = 0, keeps memory */
void dv_buf_reserve(struct dv_buf *b, size_t extra); /* room for extra bytes */
void dv_buf_add(struct dv_buf *b, const void *p, size_t n);
void dv_buf_addf(struct dv_buf *b, const char *fmt, ...) DV_PRINTF(2, 3);
void dv_buf_add_le16(struct dv_buf *b, uint16_t v);
void dv_buf_add_le32(struct dv_buf *b, uint32_t v);
void dv_buf_add_le64(struct dv_buf *b, uint64_t v);

static inline uint32_t dv_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t dv_le64(const uint8_t *p)
{
	return (uint64_t)dv_le32(p) | (uint64_t)dv_le32(p + 4) << 32;
}
static inline uint16_t dv_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* ---- string lists ---------------------------------------------------- */

struct dv_strlist {
	char **v; /* owned strings */
	size_t n, cap;
};
void dv_strlist_add(struct dv_strlist *l, const char *s);   /* copies s */
void dv_strlist_clear(struct dv_strlist *l);                /* n = 0, keeps the array */
void dv_strlist_release(struct dv_strlist *l);
void dv_strlist_sort(struct dv_strlist *l);

/* ---- hex ------------------------------------------------------------- */

/* Writes 2n lowercase hex digits and a NUL into out (size >= 2n+1). */
void dv_hex(char *out, const uint8_t *in, size_t n);
/* Parses exactly 2n lowercase hex digits; returns 0 or -1. */
int dv_unhex(uint8_t *out, const char *in, size_t n);

/* ---- sizes ----------------------------------------------------------- */

/* A size: a decimal number, then optionally K, M, G or T (powers of 1024,
 * either case; a fraction is allowed with one) and "iB" or "B", e.g. 200M,
 * 1.5GiB, 4096. False when malformed or at least 2^63 bytes. */
bool dv_parse_size(const char *s, uint64_t *out);
/* The size in the environment variable name, or def when it is unset,
 * empty or not a size (the CLI refuses a bad one before any command runs,
 * in main.c). */
uint64_t dv_env_size(const char *name, uint64_t def);

/* ---- durations ------------------------------------------------------- */

/*
 * A duration as a list of whole calendar units, one grammar for every
 * place the CLI and the config file take one (docs/configuration.md):
 * one or more "<digits><unit>" terms, each unit at most once and larger
 * units first, e.g. 1y6m2d, 36h, 90s.
 *   DV_DUR_RETENTION (forget --keep-within, retention.keep_within): restic's
 *     units y, m (months), w, d, h; applied to calendar dates in UTC by
 *     dv_duration_before.
 *   DV_DUR_WAIT (--lock-wait, repository.lock_wait): d, h, m (minutes), s,
 *     as Go's and restic's --retry-lock read them; a bare number is seconds.
 * No fractions, exponents, signs, inf or nan. False when malformed or a
 * term exceeds 100000.
 */
enum dv_duration_kind { DV_DUR_RETENTION, DV_DUR_WAIT };
struct dv_duration {
	int years, months, days, hours, minutes, seconds; /* weeks are 7 days */
};
bool dv_parse_duration(const char *s, enum dv_duration_kind kind, struct dv_duration *out) DV_WUR;
bool dv_duration_is_zero(const struct dv_duration *d);
/* t (Unix seconds) minus d: years, months and days on the UTC calendar
 * (2024-03-31 minus 1m is 2024-03-02, the day after "Feb 31" normalised,
 * as restic and Go's AddDate do), then hours, minutes and seconds. */
int64_t dv_duration_before(int64_t t, const struct dv_duration *d);
/* The seconds of a DV_DUR_WAIT duration (d, h, m and s only). */
double dv_duration_seconds(const struct dv_duration *d);

/* ---- logging (CLI sets the level; library code uses only dv_debug) ---- */

enum dv_log_level { DV_LOG_QUIET = 0, DV_LOG_NORMAL = 1, DV_LOG_VERBOSE = 2, DV_LOG_DEBUG = 3 };
void dv_log_set_level(enum dv_log_level l);
enum dv_log_level dv_log_level(void);
void dv_debug(const char *fmt, ...) DV_PRINTF(1, 2);

/* ---- files ----------------------------------------------------------- */

/* write(2)/pwrite(2) the whole range, retrying short writes and EINTR. */
int dv_write_all(int fd, const void *p, size_t n, struct dv_err *err, const char *what) DV_WUR;
int dv_pwrite_all(int fd, const void *p, size_t n, off_t off, struct dv_err *err, const char *what) DV_WUR;
/* pread(2) exactly n bytes; a short file is DV_E_CORRUPT ("truncated"). */
int dv_pread_all(int fd, void *p, size_t n, off_t off, struct dv_err *err, const char *what) DV_WUR;
/* Reads a whole file of at most cap bytes into out. */
int dv_read_file(const char *path, size_t cap, struct dv_buf *out, struct dv_err *err) DV_WUR;
/* fsync(2) of the directory that holds path (or of dir itself). */
int dv_fsync_dir(const char *dir, struct dv_err *err) DV_WUR;
/* Replaces path with data atomically: path.tmp (created with mode), fsync,
 * rename, fsync of the directory. One writer per path at a time (callers
 * serialize or lock). */
int dv_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, struct dv_err *err) DV_WUR;
/* mkdir -p; mode for created directories. */
int dv_mkdir_p(const char *path, mode_t mode, struct dv_err *err) DV_WUR;
/* diskvault's local state directory (resume files, the forgotten-snapshot
 * ledger): DISKVAULT_STATE_DIR, else $XDG_STATE_HOME/diskvault, else
 * ~/.local/state/diskvault. Not created here. Caller frees. */
char *dv_state_dir(void);
/* A fresh random lowercase-hex name of 2n characters (n random bytes). */
void dv_random_hex(char *out, size_t n);
/* Fills p with n cryptographically random bytes (getrandom). */
void dv_random_bytes(void *p, size_t n);

/* ---- time ------------------------------------------------------------ */

double dv_now(void);              /* monotonic seconds */
int64_t dv_unix_now(void);        /* wall-clock seconds */
int64_t dv_unix_now_us(void);     /* wall-clock microseconds */
/* RFC 3339 UTC "2026-11-25T16:04:51Z" into out (>= 21 bytes). */
void dv_format_time(char *out, size_t n, int64_t t);
/* Parses the format written by dv_format_time; returns 0 or -1. */
int dv_parse_time(const char *s, int64_t *t);
/* "1.5 GiB"-style human size into out. */
void dv_format_size(char *out, size_t n, uint64_t bytes);

/* ---- ordered work queue ---------------------------------------------- */

/*
 * A fixed pool of threads that runs fn(job, ctx) on submitted jobs and hands
 * them back in submission order. dv_workq_submit() blocks while `depth`
 * jobs are outstanding, so memory stays bounded. Single producer/consumer:
 * only one thread may submit and collect.
 */
struct dv_workq;
typedef void (*dv_work_fn)(void *job, void *ctx);
struct dv_workq *dv_workq_new(unsigned threads, unsigned depth, dv_work_fn fn, void *ctx);
/* Queues job. If the queue is full, first waits for the oldest job to finish
 * and returns it through *done (else *done = NULL): the caller must handle
 * it before submitting again. */
void dv_workq_submit(struct dv_workq *q, void *job, void **done);
/* Oldest outstanding job after waiting for it, or NULL when none is queued. */
void *dv_workq_collect(struct dv_workq *q);
unsigned dv_workq_outstanding(const struct dv_workq *q);
void dv_workq_free(struct dv_workq *q); /* all jobs must have been collected */
unsigned dv_cpu_count(void);


/* ---- checksums (crc32c.c) --------------------------------------------- */

/* CRC-32C (Castagnoli) of s[0..n): dv_crc32c("123456789", 9) == 0xe3069283.
 * dv_crc32c_update runs the raw register: start from 0xffffffff, finish
 * with ~, to checksum a buffer in pieces. Thread safe. */
uint32_t dv_crc32c(const void *s, size_t n);
uint32_t dv_crc32c_update(uint32_t state, const void *s, size_t n);

#endif
