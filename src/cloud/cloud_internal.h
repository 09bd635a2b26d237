/* cloud_internal.h - helpers the files of src/cloud share (not for other
 * modules). */
#ifndef DV_CLOUD_INTERNAL_H
#define DV_CLOUD_INTERNAL_H

#include "cloud.h"

/* What a planned form names until RegisterImage has answered. */
#define DV_CLOUD_NEW_AMI "(the new AMI)"

/* Whether the caller asks to stop (cb->interrupted). */
bool dv_cloud_interrupted(const struct dv_cloud_cb *cb);
/* Seconds between EC2 polls (DISKVAULT_EC2_POLL_SECONDS, default 5). */
double dv_cloud_poll_interval(void);
/* Longest wait for instances to run or go (DISKVAULT_EC2_WAIT_SECONDS,
 * default 900). */
double dv_cloud_wait_limit(void);
void dv_cloud_pause(double seconds);

#endif
