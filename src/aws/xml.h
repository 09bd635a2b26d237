/*
 * xml.h - the one expat walker of the aws module (S3 and EC2 responses):
 * fn(ctx, path, text) is called for every closed element, with path like
 * "ListBucketResult/Contents/Key". Hostile input is bounded: no DOCTYPE or
 * entity declarations, nesting depth and text length caps; callers cap
 * the body size first. Errors are DV_E_REMOTE "what: malformed response".
 */
#ifndef DV_AWS_XML_H
#define DV_AWS_XML_H

#include "util/util.h"

typedef void (*dv_xml_end_fn)(void *ctx, const char *path, const char *text);
int dv_xml_walk(const char *xml, size_t len, const char *what, dv_xml_end_fn fn, void *ctx, struct dv_err *err) DV_WUR;

#endif
