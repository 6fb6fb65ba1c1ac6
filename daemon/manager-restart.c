/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Restart survival.  Whenever sessions change, their state (JSON, versioned by
 * MANAGER_STATE_VERSION) and the fds that hold their kernel objects go to the
 * service manager's fd store; a restarted daemon takes them back, adopts each
 * session's iommufd (with VFIO type1: its containers and group files, and the
 * backend's own record of them; on a simulated host it recreates its objects)
 * and waits for the clients to reclaim their sessions.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-kernel.h"
#include "backend-sim.h"
#include "backend-vfio.h"
#include "json-util.h"
#include "log.h"
#include "manager-internal.h"
#include "session-state.h"

/* The fd store names of a session's fds: its iommufd, a device's, its fault queue's. */
#define FDNAME_IOMMUFD "s%" PRIu64 "-iommufd"
#define FDNAME_DEVICE "s%" PRIu64 "-dev%" PRIu32
#define FDNAME_FAULT "s%" PRIu64 "-fault%" PRIu32
/* With VFIO type1: a container ("ioasN") or group file ("groupN") of the session. */
#define FDNAME_VFIO "s%" PRIu64 "-vfio-%s"

int manager_fdstore_open(Manager *m, bool fd_store, Error *err) {
        const char *e = getenv("FDSTORE");
        bool enabled = getenv("NOTIFY_SOCKET") && (fd_store || (e && strtoul(e, NULL, 10) > 0));
        _cleanup_free_ char *text = NULL;
        Error se = ERROR_INIT;
        int r;

        r = fdstore_new(&m->fdstore, enabled);
        if (r < 0)
                return error_set(err, r, "Reading the fds passed by the service manager "
                                 "failed: %s", strerror(-r));
        r = fdstore_read_state(m->fdstore, &text, &se);
        if (r >= 0) {
                m->restore_state = json_tokener_parse(text);
                if (!m->restore_state)
                        log_warning("The state passed in the fd store is not JSON, "
                                    "starting afresh.");
        } else if (r != -ENOENT)
                log_warning("The state passed in the fd store is unusable (%s), "
                            "starting afresh.", error_message(&se));
        if (!enabled)
                log_info("No fd store (NOTIFY_SOCKET%s): a restart ends every session.",
                         getenv("NOTIFY_SOCKET") ? " without FDSTORE" : " unset");
        return 0;
}

/* ---- persist --------------------------------------------------------------------------- */

static void json_object_putp(json_object **o) {
        json_object_put(*o);
}

/* The named fds manager_persist() hands to the store (borrowed, the names owned). */
typedef struct PersistFds {
        char **names;
        int *fds;
        size_t n, cap;
} PersistFds;

static void persist_fds_done(PersistFds *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->names[i]);
        free(l->names);
        free(l->fds);
}

/* Appends fd under a formatted name. */
static int persist_fds_add(PersistFds *l, int fd, const char *fmt, ...) _printf_(3, 4);
static int persist_fds_add(PersistFds *l, int fd, const char *fmt, ...) {
        char *name;
        va_list ap;
        int r;

        if (l->n == l->cap) {
                size_t c = MAX(l->cap * 2, (size_t)16);
                char **nn = realloc(l->names, c * sizeof(*nn));

                if (!nn)
                        return -ENOMEM;
                l->names = nn;
                int *nf = realloc(l->fds, c * sizeof(*nf));
                if (!nf)
                        return -ENOMEM;
                l->fds = nf;
                l->cap = c;
        }
        va_start(ap, fmt);
        r = vasprintf(&name, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        l->names[l->n] = name;
        l->fds[l->n++] = fd;
        return 0;
}

/* The kernel objects live in these fds: the store keeps them across restarts. */
static int persist_session_fds(Manager *m, Session *s, json_object *rec, PersistFds *l) {
        uint64_t serial = broker_session_serial(s);
        json_object *devs = NULL, *st = NULL;
        int fd;

        fd = m->host.backend->ops->context_fd(session_get_context(s));
        if (fd < 0)
                return 0;
        if (persist_fds_add(l, fd, FDNAME_IOMMUFD, serial) < 0)
                return -ENOMEM;
        (void)json_util_get_object(rec, "session", 0, &st, NULL);
        (void)json_util_get_array(st, "devices", 0, &devs, NULL);
        for (size_t i = 0; devs && i < json_object_array_length(devs); i++) {
                uint32_t id = 0;

                if (json_util_get_u32(json_object_array_get_idx(devs, i), "id", 0, &id, NULL) < 0)
                        continue;
                fd = backend_kernel_context_device_fd(session_get_context(s), id);
                if (fd >= 0 && persist_fds_add(l, fd, FDNAME_DEVICE, serial, id) < 0)
                        return -ENOMEM;
        }
        /* The fault object survives in the iommufd, but only this fd reads it. */
        if (session_fault_stream(s)) {
                uint32_t id = fault_stream_fault_id(session_fault_stream(s));

                fd = backend_kernel_context_fault_fd(session_get_context(s), id);
                if (fd >= 0 && persist_fds_add(l, fd, FDNAME_FAULT, serial, id) < 0)
                        return -ENOMEM;
        }
        return 0;
}

typedef struct VfioFds {
        uint64_t serial;
        PersistFds *l;
} VfioFds;

static int persist_vfio_fd(const char *name, int fd, void *userdata) {
        VfioFds *v = userdata;

        return persist_fds_add(v->l, fd, FDNAME_VFIO, v->serial, name);
}

/* The containers and group files, and what only the backend knows of them, as "vfio". */
static int persist_vfio_session(Session *s, json_object *rec, PersistFds *l) {
        VfioFds v = { .serial = broker_session_serial(s), .l = l };
        json_object *state = NULL;
        int r;

        r = backend_vfio_context_save(session_get_context(s), &state);
        if (r < 0)
                return r;
        r = json_util_add(rec, "vfio", state);
        if (r < 0)
                return r;
        return backend_vfio_context_foreach_fd(session_get_context(s), persist_vfio_fd, &v);
}

static void manager_write_state(Manager *m, json_object *root, const PersistFds *l) {
        Error e = ERROR_INIT;
        const char *text;
        int r;

        r = fdstore_sync(m->fdstore, (const char *const *)l->names, l->fds, l->n, &e);
        if (r < 0)
                log_warning("Updating the fd store failed, a restart may lose sessions: "
                            "%s, ignoring.",
                            error_message(&e));
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
        r = fdstore_write_state(m->fdstore, text, strlen(text), &e);
        if (r < 0)
                log_warning("Writing the state failed, a restart may lose sessions: %s, ignoring.",
                            error_message(&e));
}

/* Whether there is a store to write the state to, and nothing holds writing back. */
static bool persist_wanted(const Manager *m) {
        return fdstore_enabled(m->fdstore) && !m->preserving && m->broker;
}

void manager_persist(Manager *m) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_(persist_fds_done) PersistFds fds = {};
        json_object *sessions, *claims = NULL;

        if (!persist_wanted(m))
                return;
        root = json_object_new_object();
        sessions = json_object_new_array();
        if (!root || !sessions) {
                json_object_put(sessions);
                log_oom();
                return;
        }
        (void)json_util_add(root, "version", json_object_new_int(MANAGER_STATE_VERSION));
        (void)json_util_add(root, "backend", json_object_new_string(m->host.backend->ops->name));
        (void)json_util_add(root, "sessions", sessions);
        if (m->claims && runtime_claims_to_json(m->claims, &claims) >= 0)
                (void)json_util_add(root, "claims", claims);
        manager_sim_serialize(m, root);

        for (Session *s = m->host.sessions; s; s = session_next(s)) {
                json_object *rec = NULL;

                if (broker_session_to_json(s, &rec) < 0)
                        continue;
                json_object_array_add(sessions, rec);
                if (backend_is_sim(m->host.backend))
                        continue;
                if ((backend_is_vfio(m->host.backend) ? persist_vfio_session(s, rec, &fds) :
                                                        persist_session_fds(m, s, rec, &fds)) < 0) {
                        log_oom();
                        return;
                }
        }
        manager_write_state(m, root, &fds);
}

void manager_persist_cb(void *userdata) {
        /* Asked after every Map and Unmap: without a store, answer before setting up a write. */
        if (persist_wanted(userdata))
                manager_persist(userdata);
}

/* ---- restore --------------------------------------------------------------------------- */

static void on_restore_drop(Session *s, const char *what, void *userdata) {
        log_warning("Restoring the session of %s: %s, dropped.", session_describe(s), what);
}

static int creds_from_json(json_object *j, PeerCreds **ret) {
        _cleanup_(peer_creds_freep) PeerCreds *c = calloc(1, sizeof(PeerCreds));
        json_object *groups = NULL;
        const char *unit = NULL;
        uint32_t v;

        if (!c)
                return -ENOMEM;
        if (json_util_get_u32(j, "uid", 0, &c->uid, NULL) < 0 ||
            json_util_get_u32(j, "gid", 0, &c->gid, NULL) < 0 ||
            json_util_get_array(j, "groups", 0, &groups, NULL) < 0 ||
            json_util_get_string(j, "unit", JSON_UTIL_OPTIONAL, &unit, NULL) < 0)
                return -EBADMSG;
        if (json_util_get_u32(j, "pid", 0, &v, NULL) >= 0)
                c->pid = (pid_t)v;
        if (json_object_array_length(groups) > 0) {
                c->groups = calloc(json_object_array_length(groups), sizeof(gid_t));
                if (!c->groups)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < json_object_array_length(groups); i++) {
                uint64_t g;

                if (json_util_to_u64(json_object_array_get_idx(groups, i), &g) < 0 ||
                    g > UINT32_MAX)
                        return -EBADMSG;
                c->groups[c->n_groups++] = (gid_t)g;
        }
        if (unit) {
                c->unit = strdup(unit);
                if (!c->unit)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

static int log_no_context(uint64_t serial, const Error *e, int r) {
        log_warning("Session %" PRIu64 ": no backend context (%s), dropped.", serial,
                    error_message(e));
        return r;
}

/* The simulated backend's state lived in the old process: its objects are made again. */
static int restore_sim_context(Manager *m, uint64_t serial, SessionRestoreConfig *rc,
                               BackendContext **ret) {
        Error e = ERROR_INIT;
        int r;

        r = m->host.backend->ops->context_new(m->host.backend, ret, &e);
        if (r < 0)
                return log_no_context(serial, &e, r);
        rc->prepare_id = backend_sim_context_set_next_id;
        /* Its mappings are recreated from their IOVAs: memory of the old process. */
        backend_sim_context_adopt_memory(*ret);
        return 0;
}

/* Takes the fds of the session's devices out of the store; a device without one is dropped. */
static int restore_take_device_fds(Manager *m, uint64_t serial, json_object *st,
                                   uint32_t **ret_ids, int **ret_fds, size_t *ret_n) {
        _cleanup_free_ uint32_t *ids = NULL;
        _cleanup_free_ int *fds = NULL;
        json_object *devs = NULL;
        size_t nd, k = 0;
        char name[64];

        (void)json_util_get_array(st, "devices", 0, &devs, NULL);
        nd = devs ? json_object_array_length(devs) : 0;
        ids = calloc(nd + 1, sizeof(*ids));
        fds = calloc(nd + 1, sizeof(*fds));
        if (!ids || !fds)
                return -ENOMEM;
        for (size_t i = 0; i < nd; i++) {
                uint32_t id;
                int fd;

                if (json_util_get_u32(json_object_array_get_idx(devs, i), "id", 0, &id, NULL) < 0)
                        continue;
                snprintf(name, sizeof(name), FDNAME_DEVICE, serial, id);
                if (fdstore_take(m->fdstore, name, &fd) < 0)
                        continue; /* the device check of session_restore() drops it */
                ids[k] = id;
                fds[k++] = fd;
        }
        *ret_ids = TAKE_PTR(ids);
        *ret_fds = TAKE_PTR(fds);
        *ret_n = k;
        return 0;
}

/* Missing from the store: the session drops the fault queue and its PASIDs. */
static void restore_fault_queue(Manager *m, uint64_t serial, BackendContext *ctx,
                                uint32_t fault_id) {
        char name[64];
        int fd;

        snprintf(name, sizeof(name), FDNAME_FAULT, serial, fault_id);
        if (fdstore_take(m->fdstore, name, &fd) >= 0 &&
            backend_kernel_context_adopt_fault(ctx, fault_id, fd) < 0)
                log_warning("Session %" PRIu64 ": adopting fault queue %" PRIu32
                            " failed, ignoring.", serial, fault_id);
}

/* The session's iommufd still holds its objects: adopted with the fds the store kept. */
static int restore_kernel_context(Manager *m, uint64_t serial, const PeerCreds *creds,
                                  json_object *st, SessionRestoreConfig *rc,
                                  BackendContext **ret) {
        _cleanup_free_ uint32_t *ids = NULL;
        _cleanup_free_ int *dfds = NULL;
        BackendContext *ctx = NULL;
        Error e = ERROR_INIT;
        uint32_t fault_id;
        char name[64];
        size_t n = 0;
        int iommufd, r;

        snprintf(name, sizeof(name), FDNAME_IOMMUFD, serial);
        r = fdstore_take(m->fdstore, name, &iommufd);
        if (r < 0) {
                log_warning("Session %" PRIu64 " of uid %u: its iommufd is not in the fd "
                            "store, dropped.", serial, (unsigned)creds->uid);
                return r;
        }
        r = restore_take_device_fds(m, serial, st, &ids, &dfds, &n);
        if (r < 0) {
                safe_close(iommufd);
                return log_oom();
        }
        r = backend_kernel_context_adopt(m->host.backend, iommufd, ids, dfds, n, &ctx, &e);
        if (r < 0)
                return log_no_context(serial, &e, r);
        if (json_util_get_u32(st, "faultQueue", 0, &fault_id, NULL) >= 0)
                restore_fault_queue(m, serial, ctx, fault_id);
        rc->fault_fd = backend_kernel_context_fault_fd;
        *ret = ctx;
        return 0;
}

typedef struct VfioTake {
        Manager *m;
        uint64_t serial;
} VfioTake;

static int take_vfio_fd(const char *name, void *userdata) {
        VfioTake *t = userdata;
        char full[96];
        int fd;

        snprintf(full, sizeof(full), FDNAME_VFIO, t->serial, name);
        return fdstore_take(t->m->fdstore, full, &fd) < 0 ? -ENOENT : fd;
}

/* The containers and group files still hold the session's objects: adopted as recorded. */
static int restore_vfio_context(Manager *m, uint64_t serial, json_object *rec,
                                BackendContext **ret) {
        VfioTake t = { .m = m, .serial = serial };
        json_object *state = NULL;
        Error e = ERROR_INIT;
        int r;

        if (json_util_get_object(rec, "vfio", 0, &state, NULL) < 0) {
                r = error_set(&e, -EBADMSG, "the state has no record of its VFIO containers");
                return log_no_context(serial, &e, r);
        }
        r = backend_vfio_context_adopt(m->host.backend, state, take_vfio_fd, &t, ret, &e);
        if (r < 0)
                return log_no_context(serial, &e, r);
        return 0;
}

static void manager_restore_one(Manager *m, json_object *rec) {
        SessionRestoreConfig rc = { .on_drop = on_restore_drop, .userdata = m };
        _cleanup_(peer_creds_freep) PeerCreds *creds = NULL;
        json_object *pr = NULL, *st = NULL;
        BackendContext *ctx = NULL;
        const char *token = NULL;
        uint64_t serial = 0;
        Session *s = NULL;
        int r;

        if (json_util_get_u64(rec, "serial", 0, &serial, NULL) < 0 ||
            json_util_get_string(rec, "token", 0, &token, NULL) < 0 ||
            json_util_get_object(rec, "principal", 0, &pr, NULL) < 0 ||
            json_util_get_object(rec, "session", 0, &st, NULL) < 0 ||
            creds_from_json(pr, &creds) < 0) {
                log_warning("A session record in the state is malformed, dropped.");
                return;
        }
        if (backend_is_sim(m->host.backend))
                r = restore_sim_context(m, serial, &rc, &ctx);
        else if (backend_is_vfio(m->host.backend))
                r = restore_vfio_context(m, serial, rec, &ctx);
        else
                r = restore_kernel_context(m, serial, creds, st, &rc, &ctx);
        if (r < 0)
                return;
        /* Takes creds and ctx in every case. */
        r = session_restore(&s, &m->host, TAKE_PTR(creds), ctx, st, &rc);
        if (r < 0) {
                log_oom();
                return;
        }
        r = broker_adopt_session(m->broker, s, serial, token);
        if (r < 0) {
                session_free(s);
                log_warning_errno(r, "Session %" PRIu64 " could not be adopted, dropped: %m",
                                  serial);
                return;
        }
        (void)session_revalidate(s, manager_on_device_lost, m);
        log_info("Restored the session of %s: %zu device(s), %zu address space(s), %zu "
                 "PASID(s); waiting %" PRIu64 " ms for its client to reclaim it.",
                 session_describe(s), session_n_devices(s), session_n_address_spaces(s),
                 session_n_pasids(s),
                 policy_limits(m->host.policy)->session_reclaim_grace_ms);
}

static void on_claim_dropped(const char *id, const char *why, void *userdata) {
        log_warning("Restoring claim %s: %s, dropped; its CDI spec is removed.", id, why);
}

/* After the sessions, which held their devices first: claims made no session wait. */
static void manager_restore_claims(Manager *m) {
        json_object *claims = NULL;
        size_t n;

        if (!m->claims || json_util_get_array(m->restore_state, "claims", JSON_UTIL_OPTIONAL,
                                              &claims, NULL) < 0 || !claims)
                return;
        n = runtime_claims_restore(m->claims, claims, on_claim_dropped, m);
        log_info("Restored %zu of %zu runtime claim(s).", n, json_object_array_length(claims));
}

void manager_restore(Manager *m) {
        json_object *sessions = NULL;
        const char *backend = NULL;
        uint32_t version = 0;
        size_t n;

        if (m->restore_state) {
                if (json_util_get_u32(m->restore_state, "version", 0, &version, NULL) < 0 ||
                    version < 1 || version > MANAGER_STATE_VERSION ||
                    json_util_get_string(m->restore_state, "backend", 0, &backend, NULL) < 0 ||
                    !streq(backend, m->host.backend->ops->name) ||
                    json_util_get_array(m->restore_state, "sessions", 0, &sessions, NULL) < 0)
                        log_warning("The state left by the previous daemon does not fit this "
                                    "one (version or backend), its sessions are dropped.");
                else {
                        for (size_t i = 0; i < json_object_array_length(sessions); i++)
                                manager_restore_one(m, json_object_array_get_idx(sessions, i));
                        manager_restore_claims(m);
                }
                json_object_put(m->restore_state);
                m->restore_state = NULL;
        }
        /* Whatever nobody adopted is closed here and removed from the store below. */
        n = fdstore_close_unused(m->fdstore);
        if (n > 0)
                log_info("Closed %zu fd(s) from the fd store that no restored session uses.", n);
        manager_persist(m);
}
