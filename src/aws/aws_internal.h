/*
 * aws_internal.h - pieces of the aws module that are not part of its API
 * but are shared with the tests (unit tests, tests/fuzz). Not for other
 * modules.
 */
#ifndef DV_AWS_INTERNAL_H
#define DV_AWS_INTERNAL_H

#include "aws.h"

/*
 * Parses the credentials document of the instance metadata service
 * (latest/meta-data/iam/security-credentials/ROLE: JSON with AccessKeyId,
 * SecretAccessKey, Token, Expiration). On success out is filled (source
 * "imds"; caller releases with dv_aws_creds_release()); a document that is
 * not JSON or lacks the key id or secret is DV_E_REMOTE and out is left
 * untouched. An unparseable Expiration is ignored (0: never expires).
 */
int dv_aws_parse_imds_creds(const char *json, size_t len, struct dv_aws_creds *out, struct dv_err *err) DV_WUR;

#endif
