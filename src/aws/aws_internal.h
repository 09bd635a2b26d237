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

/*
 * Checks the IMDSv2 session token (the body of PUT /latest/api/token)
 * before it goes into a header: 1 to DV_IMDS_TOKEN_MAX bytes, each a
 * printable ASCII character other than space (no CR, LF or other control
 * character could split the header). Otherwise DV_E_REMOTE, one line
 * naming IMDS (the token itself is never in the message).
 */
#define DV_IMDS_TOKEN_MAX 1024
int dv_aws_imds_check_token(const char *token, size_t len, struct dv_err *err) DV_WUR;

/*
 * Takes the role name from the listing of
 * latest/meta-data/iam/security-credentials/ (its first line) for the next
 * URL path: 1 to 64 characters from IAM's set for role names (letters,
 * digits and + = , . @ _ -), and neither "." nor "..", so it is one path
 * segment that needs no encoding. *role is malloc'ed. Otherwise
 * DV_E_REMOTE, one line naming IMDS, and *role is NULL.
 */
int dv_aws_imds_role(const char *listing, size_t len, char **role, struct dv_err *err) DV_WUR;

#endif
