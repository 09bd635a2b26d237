/*
 * password.c - where passphrases come from, in this order: a file
 * (--password-file or DISKVAULT_PASSWORD_FILE), a command
 * (DISKVAULT_PASSWORD_COMMAND, its first output line), or a prompt on the
 * terminal without echo. Never from the command line itself. A new key's
 * passphrase (key add, key passwd) comes from --new-password-file /
 * DISKVAULT_NEW_PASSWORD_FILE or a prompt asked twice. Files holding a
 * passphrase must not be readable by group or others.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "crypt/crypt.h"

/* Keeps the first line of text (without its end of line) in buf. */
static int first_line(char *buf, size_t cap, const char *text, size_t n, const char *what, struct dv_err *err)
{
	size_t len = 0;
	while (len < n && text[len] != '\n' && text[len] != '\r' && text[len])
		len++;
	if (len == 0)
		return dv_error(err, DV_E_AUTH, "%s: empty passphrase", what);
	if (len >= cap)
		return dv_error(err, DV_E_AUTH, "%s: passphrase longer than %zu bytes", what, cap - 1);
	memcpy(buf, text, len);
	buf[len] = 0;
	return 0;
}

static int from_file(const char *path, char *buf, size_t cap, struct dv_err *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return dv_error_errno(err, errno, "password file %s", path);
	if (st.st_mode & 077)
		return dv_error(err, DV_E_USAGE, "password file %s is readable by others (mode %03o): chmod 600 it", path,
				(unsigned)(st.st_mode & 0777));
	struct dv_buf b = DV_BUF_INIT;
	int rc = dv_read_file(path, 64 * 1024, &b, err);
	if (rc == 0)
		rc = first_line(buf, cap, (const char *)b.data, b.len, path, err);
	if (b.data)
		dv_crypt_wipe(b.data, b.len);
	dv_buf_release(&b);
	return rc;
}

static int from_command(const char *cmd, char *buf, size_t cap, struct dv_err *err)
{
	FILE *f = popen(cmd, "r");
	if (!f)
		return dv_error_errno(err, errno, "DISKVAULT_PASSWORD_COMMAND");
	char line[4096];
	size_t n = fread(line, 1, sizeof line, f);
	int status = pclose(f);
	int rc = 0;
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		rc = dv_error(err, DV_E_AUTH, "DISKVAULT_PASSWORD_COMMAND failed (status %d)", status);
	else
		rc = first_line(buf, cap, line, n, "DISKVAULT_PASSWORD_COMMAND", err);
	dv_crypt_wipe(line, sizeof line);
	return rc;
}

static int prompt(const char *question, char *buf, size_t cap, struct dv_err *err)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return dv_error(err, DV_E_AUTH, "repository is encrypted: no terminal to ask for the passphrase; give "
				"--password-file, DISKVAULT_PASSWORD_FILE or DISKVAULT_PASSWORD_COMMAND");
	struct termios old, quiet;
	bool restore = tcgetattr(fd, &old) == 0;
	if (restore) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	int rc = dv_write_all(fd, question, strlen(question), err, "/dev/tty");
	char line[1024];
	size_t n = 0;
	while (rc == 0 && n < sizeof line) {
		ssize_t r = read(fd, line + n, 1);
		if (r <= 0 || line[n] == '\n')
			break;
		n++;
	}
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	if (rc == 0)
		rc = dv_write_all(fd, "\n", 1, err, "/dev/tty");
	close(fd);
	if (rc == 0)
		rc = first_line(buf, cap, line, n, "passphrase", err);
	dv_crypt_wipe(line, sizeof line);
	return rc;
}

int dv_cli_passphrase(const char *location, bool new_key, char *buf, size_t cap, struct dv_err *err)
{
	/* Adding a key needs a second, new passphrase; init's first one may
	 * come from the ordinary sources. */
	if (new_key && dv_cli.adding_key) {
		const char *f = dv_cli.new_password_file ? dv_cli.new_password_file : getenv("DISKVAULT_NEW_PASSWORD_FILE");
		if (f && *f)
			return from_file(f, buf, cap, err);
	} else {
		const char *f = dv_cli.password_file ? dv_cli.password_file : getenv("DISKVAULT_PASSWORD_FILE");
		if (f && *f)
			return from_file(f, buf, cap, err);
		const char *cmd = getenv("DISKVAULT_PASSWORD_COMMAND");
		if (cmd && *cmd)
			return from_command(cmd, buf, cap, err);
	}
	char q[512];
	snprintf(q, sizeof q, "%s passphrase for %s: ", new_key ? "New" : "Enter", location);
	int rc = prompt(q, buf, cap, err);
	if (rc < 0 || !new_key)
		return rc;
	char again[1024];
	rc = prompt("Repeat it: ", again, sizeof again, err);
	if (rc == 0 && strcmp(buf, again))
		rc = dv_error(err, DV_E_USAGE, "the passphrases differ");
	dv_crypt_wipe(again, sizeof again);
	return rc;
}
