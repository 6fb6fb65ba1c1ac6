/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <systemd/sd-journal.h>

#include "json-util.h"
#include "log.h"
#include "manager-audit.h"
#include "manager-internal.h"

#define AUDIT_FIELDS_MAX 12

/* One record: its sentence and its fields, for the journal, the log line and Monitor(). */
typedef struct AuditRecord {
        int priority;
        const char *message_id;
        const char *type;        /* the Monitor() event type */
        char message[ERROR_MESSAGE_MAX + 256];   /* the log's sentence */
        char event[ERROR_MESSAGE_MAX + 256];     /* Monitor()'s, worded like its other events */
        struct {
                const char *key; /* journal field name: IOMMUD_UID */
                const char *json;/* Monitor() member name: uid */
                char value[ERROR_MESSAGE_MAX];
                bool number;
        } fields[AUDIT_FIELDS_MAX];
        size_t n_fields;
} AuditRecord;

_printf_(4, 5) static void field(AuditRecord *rec, const char *key, const char *json,
                                 const char *fmt, ...) {
        va_list ap;

        if (rec->n_fields >= AUDIT_FIELDS_MAX)
                return;
        rec->fields[rec->n_fields].key = key;
        rec->fields[rec->n_fields].json = json;
        rec->fields[rec->n_fields].number = streq(fmt, "%" PRIu64);
        va_start(ap, fmt);
        vsnprintf(rec->fields[rec->n_fields].value, sizeof(rec->fields[0].value), fmt, ap);
        va_end(ap);
        rec->n_fields++;
}

/* To the journal, with every field; false when there is no journal to send to. */
static bool audit_journal(const AuditRecord *rec) {
        char msg[sizeof(rec->message) + 8], prio[16], id[64];
        char fields[AUDIT_FIELDS_MAX][sizeof(rec->fields[0].value) + 32];
        struct iovec iov[AUDIT_FIELDS_MAX + 3];
        size_t n = 0;

        if (log_get_target() != LOG_TARGET_JOURNAL)
                return false;
        snprintf(msg, sizeof(msg), "MESSAGE=%s", rec->message);
        snprintf(prio, sizeof(prio), "PRIORITY=%d", rec->priority);
        snprintf(id, sizeof(id), "MESSAGE_ID=%s", rec->message_id);
        iov[n++] = (struct iovec){ msg, strlen(msg) };
        iov[n++] = (struct iovec){ prio, strlen(prio) };
        iov[n++] = (struct iovec){ id, strlen(id) };
        for (size_t i = 0; i < rec->n_fields; i++) {
                snprintf(fields[i], sizeof(fields[i]), "%s=%s", rec->fields[i].key,
                         rec->fields[i].value);
                iov[n++] = (struct iovec){ fields[i], strlen(fields[i]) };
        }
        return sd_journal_sendv(iov, (int)n) >= 0;
}

/* Without a journal: one log line, the sentence then the fields, values with spaces quoted. */
static void audit_log_line(const AuditRecord *rec) {
        char line[sizeof(rec->message) + AUDIT_FIELDS_MAX * 96];
        size_t n;

        n = (size_t)snprintf(line, sizeof(line), "%s [MESSAGE_ID=%s", rec->message,
                             rec->message_id);
        for (size_t i = 0; i < rec->n_fields && n < sizeof(line); i++) {
                const char *v = rec->fields[i].value;

                /* The reason is the sentence's end already. */
                if (streq(rec->fields[i].key, "IOMMUD_REASON"))
                        continue;
                n += (size_t)snprintf(line + n, sizeof(line) - n,
                                      strpbrk(v, " \"") ? " %s=\"%s\"" : " %s=%s",
                                      rec->fields[i].key, v);
        }
        if (n < sizeof(line))
                snprintf(line + n, sizeof(line) - n, "]");
        log_full(rec->priority, "%s", line);
}

static void audit_emit(Manager *m, const AuditRecord *rec) {
        json_object *payload;

        if (!audit_journal(rec))
                audit_log_line(rec);
        if (manager_varlink_n_subscribers(m->admin) == 0)
                return;
        payload = json_object_new_object();
        for (size_t i = 0; payload && i < rec->n_fields; i++) {
                const char *v = rec->fields[i].value;

                (void)json_util_add(payload, rec->fields[i].json,
                                    rec->fields[i].number ?
                                            json_object_new_int64((int64_t)strtoull(v, NULL, 10)) :
                                            json_object_new_string(v));
        }
        manager_emit_event(m, rec->type, rec->event, payload);
}

/* Who asked: the fields every record about a session carries. */
static void principal_fields(Manager *m, Session *s, AuditRecord *rec) {
        const PeerCreds *c = session_creds(s);

        field(rec, "IOMMUD_SESSION", "session", "%" PRIu64,
              manager_varlink_session_id(m->admin, s));
        field(rec, "IOMMUD_UID", "uid", "%" PRIu64, (uint64_t)c->uid);
        field(rec, "IOMMUD_GID", "gid", "%" PRIu64, (uint64_t)c->gid);
        field(rec, "IOMMUD_PID", "pid", "%" PRIu64, (uint64_t)c->pid);
        if (c->unit)
                field(rec, "IOMMUD_UNIT", "unit", "%s", c->unit);
}

void manager_audit_session(Session *s, const SessionAudit *a, void *userdata) {
        Manager *m = userdata;
        AuditRecord rec = {};
        static const char *const nouns[_SESSION_AUDIT_ACTION_MAX] = {
                [SESSION_AUDIT_ATTACH] = "a device",
                [SESSION_AUDIT_DELEGATE] = "an iommufd",
                [SESSION_AUDIT_MAP] = "a mapping",
                [SESSION_AUDIT_BIND_PASID] = "a PASID",
        };
        uint64_t id = manager_varlink_session_id(m->admin, s);
        char what[256];

        /* The device itself when it is what was asked for; else what, and of which device. */
        if (a->device && a->action == SESSION_AUDIT_ATTACH)
                snprintf(what, sizeof(what), "%s", a->device);
        else if (a->device)
                snprintf(what, sizeof(what), "%s of %s", nouns[a->action], a->device);
        else
                snprintf(what, sizeof(what), "%s", nouns[a->action]);

        if (!a->granted) {
                rec.priority = LOG_NOTICE;
                rec.message_id = IOMMUD_MESSAGE_ACCESS_REFUSED;
                rec.type = "access-refused";
                snprintf(rec.message, sizeof(rec.message),
                         "Refused %s to session %" PRIu64 " of %s at step %s: %s", what, id,
                         session_describe(s), a->step, a->reason);
                snprintf(rec.event, sizeof(rec.event),
                         "session %" PRIu64 " of %s was refused %s at step %s: %s", id,
                         session_describe(s), what, a->step, a->reason);
        } else {
                rec.priority = LOG_INFO;
                rec.message_id = a->action == SESSION_AUDIT_ATTACH ? IOMMUD_MESSAGE_DEVICE_GRANTED :
                                                                     IOMMUD_MESSAGE_IOMMUFD_GRANTED;
                rec.type = a->action == SESSION_AUDIT_ATTACH ? "device-granted" : "iommufd-granted";
                snprintf(rec.message, sizeof(rec.message),
                         "Granted %s to session %" PRIu64 " of %s.", what, id,
                         session_describe(s));
                snprintf(rec.event, sizeof(rec.event), "session %" PRIu64 " of %s was given %s",
                         id, session_describe(s), what);
        }
        principal_fields(m, s, &rec);
        field(&rec, "IOMMUD_ACTION", "action", "%s", session_audit_action_to_string(a->action));
        if (a->device)
                field(&rec, "IOMMUD_DEVICE", "device", "%s", a->device);
        if (!a->granted) {
                field(&rec, "IOMMUD_STEP", "step", "%s", a->step);
                field(&rec, "IOMMUD_REASON", "reason", "%s", a->reason);
        }
        audit_emit(m, &rec);
}

void manager_audit_policy_reloaded(Manager *m, uint64_t generation) {
        AuditRecord rec = {
                .priority = LOG_INFO,
                .message_id = IOMMUD_MESSAGE_POLICY_RELOADED,
                .type = "policy-reloaded",
        };

        snprintf(rec.message, sizeof(rec.message), "Policy reloaded (generation %" PRIu64 ").",
                 generation);
        snprintf(rec.event, sizeof(rec.event), "policy reloaded (generation %" PRIu64 ")",
                 generation);
        field(&rec, "IOMMUD_POLICY_GENERATION", "generation", "%" PRIu64, generation);
        audit_emit(m, &rec);
}
