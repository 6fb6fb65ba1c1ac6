/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The audit trail: every grant of a device or an iommufd, every refusal of one by a policy
 * decision and every policy reload, logged once with structured fields (to the journal
 * with sd_journal_send() when iommud logs to it, else as one line with the same fields)
 * and told to org.iommud.Manager Monitor() subscribers.  iommud(8) documents the message
 * IDs and fields.
 */

#include "manager.h"
#include "session.h"

/* sd-id128 message IDs, as journalctl MESSAGE_ID= takes them. */
#define IOMMUD_MESSAGE_ACCESS_REFUSED "2f0d5b06abc04de29df7a90a32905e3f"
#define IOMMUD_MESSAGE_DEVICE_GRANTED "e80aec0d94404f16a65a6503e99fde53"
#define IOMMUD_MESSAGE_IOMMUFD_GRANTED "b5e56183633e4be081ab03ac1f595969"
#define IOMMUD_MESSAGE_POLICY_RELOADED "14302554c83d43f9ae51196bc4a8c22d"

/* The host's SessionAuditFn; userdata is the Manager. */
void manager_audit_session(Session *s, const SessionAudit *a, void *userdata);
/* A policy reload that took effect. */
void manager_audit_policy_reloaded(Manager *m, uint64_t generation);
