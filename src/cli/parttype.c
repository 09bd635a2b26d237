/* parttype.c - see parttype.h. */
#include "cli/parttype.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#ifdef DV_HAVE_LIBFDISK
#include <libfdisk.h>

/* One context for the process: its labels hold the type tables, and the
 * names returned point into them. */
static struct fdisk_context *cxt;

const char *dv_cli_parttype_name(const char *table, const char *type)
{
	if (!type || !table)
		return type;
	if (!cxt && !(cxt = fdisk_new_context()))
		return type;
	bool gpt = !strcmp(table, "gpt");
	struct fdisk_label *lb = fdisk_get_label(cxt, gpt ? "gpt" : !strcmp(table, "dos") ? "dos" : NULL);
	if (!lb || (!gpt && strcmp(table, "dos")))
		return type;
	struct fdisk_parttype *t = NULL;
	if (gpt) {
		t = fdisk_label_get_parttype_from_string(lb, type);
	} else {
		char *end;
		unsigned long code = strtoul(type, &end, 16);
		if (*type && !*end && code <= 0xff)
			t = fdisk_label_get_parttype_from_code(lb, (unsigned)code);
	}
	const char *name = t ? fdisk_parttype_get_name(t) : NULL;
	return name && *name ? name : type;
}
#else
const char *dv_cli_parttype_name(const char *table, const char *type)
{
	(void)table;
	return type;
}
#endif
