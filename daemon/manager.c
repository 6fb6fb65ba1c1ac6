/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "backend-kernel.h"
#include "backend-sim.h"
#include "varlink-broker.h"
#include "bus.h"
#include "fault-router.h"
#include "fdstore.h"
#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "varlink-manager.h"
#include "session-state.h"
#include "session.h"
#include "simtopo.h"
#include "varlink-simulator.h"
#include "topology.h"
#include "uevent.h"
#include "varlink-server.h"

/*
 * The version of the JSON state in the fd store's slots (the slot framing has
 * its own, FDSTORE_STATE_VERSION).  1: sessions with devices, address spaces
 * and mappings.  2: also each session's fault queue and PASID binds.  A daemon
 * restores every version up to its own.
 */
#define MANAGER_STATE_VERSION 2u

struct Manager {
        char *runtime_dir;
        char *socket_path;
        char *sysfs_root;
        char *dev_root;
        char *proc_root;
        char *sim_root; /* materialized simulated host, removed on exit */
        PolicyPaths policy_paths;
        char *policy_vendor_dir, *policy_admin_dir, *policy_file;

        struct event_base *base;
        struct event *sig_term, *sig_int, *sig_hup, *watchdog;
        uint64_t watchdog_usec;

        SessionHost host;
        Broker *broker;
        ManagerVarlink *admin;  /* org.iommud.Manager */
        char *topology_name;    /* the simulated topology's, NULL for the kernel */
        VarlinkServer *server;
        Bus *bus;
        char *bus_address;
        bool no_bus;
        bool socket_bound; /* we created socket_path and remove it on exit */

        /* Restart survival and hotplug. */
        FdStore *fdstore;
        json_object *restore_state; /* the state a previous daemon left, until restored */
        bool preserving;            /* exiting with the fd store holding everything */
        SimTopology *sim_topo;      /* the simulated host as it is now */
        char *sim_name;
        json_object *sim_changes;   /* [[op, device, driver?]...] since start, for the state */
        SimulatorHooks sim_hooks;
        UeventMonitor *uevents;
        struct event *hotplug;      /* coalesces a burst of uevents into one reload */
};

static int manager_sim_apply(Manager *m, const char *op, const char *device, const char *driver,
                             Error *err);
static void manager_persist_cb(void *userdata);
static void manager_on_session(Session *s, SessionEvent event, void *userdata);
static void manager_on_fault(FaultStream *fs, const FaultEvent *ev, bool delivered,
                             FaultClosedReason reason, void *userdata);

static char *strdup_or_null(const char *s, bool *oom) {
        char *d;

        if (!s)
                return NULL;
        d = strdup(s);
        if (!d)
                *oom = true;
        return d;
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* Loads the policy; on failure logs every diagnostic and, with ret_diags, returns them too. */
static int manager_load_policy(Manager *m, Policy **ret, char ***ret_diags) {
        PolicyDiagnostics diags = {};
        Error err = ERROR_INIT;
        char **strv = NULL;
        size_t n = 0;
        int r;

        r = policy_load(ret, &m->policy_paths, &diags, &err);
        if (r < 0) {
                if (ret_diags)
                        strv = calloc(diags.n + 2, sizeof(char *));
                for (size_t i = 0; i < diags.n; i++) {
                        const PolicyDiagnostic *d = &diags.items[i];

                        log_error("%s:%u:%u: %s%s%s", d->file ?: "(policy)", d->line, d->column,
                                  d->json_path ?: "", d->json_path ? ": " : "", d->message);
                        if (strv && asprintf(&strv[n], "%s:%u:%u: %s%s%s", d->file ?: "(policy)",
                                             d->line, d->column, d->json_path ?: "",
                                             d->json_path ? ": " : "", d->message) >= 0)
                                n++;
                }
                if (strv && diags.n == 0 && asprintf(&strv[n], "%s", error_message(&err)) >= 0)
                        n++;
                log_error_errno(r, "Loading the policy failed: %s", error_message(&err));
        }
        policy_diagnostics_clear(&diags);
        if (ret_diags)
                *ret_diags = strv;
        return r;
}

int manager_new(Manager **ret, const ManagerConfig *cfg, Error *err) {
        _cleanup_(manager_freep) Manager *m = NULL;
        bool oom = false;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return error_set(err, -ENOMEM, "Out of memory.");
        m->host = SESSION_HOST_INIT;
        m->host.on_session = manager_on_session;
        m->host.on_session_userdata = m;

        m->runtime_dir = strdup_or_null(cfg->runtime_dir ?: IOMMUD_RUNTIME_DIR, &oom);
        m->proc_root = strdup_or_null(cfg->proc_root ?: "/proc", &oom);
        m->bus_address = strdup_or_null(cfg->bus_address, &oom);
        m->no_bus = cfg->no_bus;
        m->policy_vendor_dir = strdup_or_null(cfg->policy_paths.vendor_dir, &oom);
        m->policy_admin_dir = strdup_or_null(cfg->policy_paths.admin_dir, &oom);
        m->policy_file = strdup_or_null(cfg->policy_paths.file, &oom);
        if (oom)
                return error_set(err, -ENOMEM, "Out of memory.");
        m->policy_paths = (PolicyPaths){
                .vendor_dir = m->policy_vendor_dir,
                .admin_dir = m->policy_admin_dir,
                .file = m->policy_file,
        };
        if (cfg->socket_path)
                m->socket_path = strdup(cfg->socket_path);
        else if (asprintf(&m->socket_path, "%s/%s", m->runtime_dir, IOMMUD_SOCKET_NAME) < 0)
                m->socket_path = NULL;
        if (!m->socket_path)
                return error_set(err, -ENOMEM, "Out of memory.");

        r = manager_load_policy(m, &m->host.policy, NULL);
        if (r < 0)
                return error_set(err, r, "The policy is invalid (see above).");

        {
                const char *e = getenv("FDSTORE");
                bool enabled = getenv("NOTIFY_SOCKET") &&
                               (cfg->fd_store || (e && strtoul(e, NULL, 10) > 0));
                _cleanup_free_ char *text = NULL;
                Error se = ERROR_INIT;

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
        }
        m->sim_changes = json_object_new_array();
        if (!m->sim_changes)
                return error_set(err, -ENOMEM, "Out of memory.");

        if (cfg->sim) {
                _cleanup_(simtopo_freep) SimTopology *st = NULL;
                Error e = ERROR_INIT;

                r = simtopo_load(&st, cfg->sim, &e);
                if (r < 0)
                        return error_set(err, r, "Loading simulated topology '%s' failed: %s",
                                         cfg->sim, error_message(&e));
                m->sim_name = strdup(cfg->sim);
                if (!m->sim_name)
                        return error_set(err, -ENOMEM, "Out of memory.");
                m->sim_topo = TAKE_PTR(st);
                /* The simulated host lived in the old process: replay what hotplug did to it. */
                if (m->restore_state) {
                        json_object *sim = NULL, *changes = NULL;
                        const char *name = NULL;

                        if (json_util_get_object(m->restore_state, "sim", 0, &sim, NULL) >= 0 &&
                            json_util_get_string(sim, "topology", 0, &name, NULL) >= 0 &&
                            streq(name, cfg->sim) &&
                            json_util_get_array(sim, "changes", 0, &changes, NULL) >= 0)
                                for (size_t i = 0; i < json_object_array_length(changes); i++) {
                                        json_object *c = json_object_array_get_idx(changes, i);
                                        const char *op = json_object_get_string(
                                                json_object_array_get_idx(c, 0));
                                        const char *dev = json_object_get_string(
                                                json_object_array_get_idx(c, 1));
                                        const char *drv = json_object_get_string(
                                                json_object_array_get_idx(c, 2));

                                        if (!op || !dev ||
                                            manager_sim_apply(m, op, dev, drv, &e) < 0)
                                                log_warning("Replaying a simulated hotplug "
                                                            "change failed: %s, ignoring.",
                                                            error_message(&e));
                                }
                        else
                                log_warning("The state was left by a daemon simulating another "
                                            "host, or by a real one; its sessions are dropped.");
                }
                st = m->sim_topo;
                r = mkdir_p(m->runtime_dir, 0755);
                if (r < 0)
                        return error_set(err, r, "Creating runtime directory %s failed: %s",
                                         m->runtime_dir, strerror(-r));
                if (asprintf(&m->sim_root, "%s/sim", m->runtime_dir) < 0)
                        return error_set(err, -ENOMEM, "Out of memory.");
                /* A previous run may have left its tree behind; it is ours to replace. */
                (void)simtopo_remove(m->sim_root);
                r = simtopo_materialize(st, m->sim_root, &e);
                if (r < 0)
                        return error_set(err, r, "Materializing '%s' into %s failed: %s",
                                         cfg->sim, m->sim_root, error_message(&e));
                if (asprintf(&m->sysfs_root, "%s/sys", m->sim_root) < 0 ||
                    asprintf(&m->dev_root, "%s/dev", m->sim_root) < 0)
                        return error_set(err, -ENOMEM, "Out of memory.");
                r = backend_sim_new(&m->host.backend, st, m->sim_root, &e);
                if (r < 0)
                        return error_set(err, r, "Starting the simulated backend failed: %s",
                                         error_message(&e));
                m->topology_name = strdup(st->name);
                if (!m->topology_name)
                        return error_set(err, -ENOMEM, "Out of memory.");
                log_info("Simulating topology '%s' (%s) below %s.", st->name,
                         st->description ?: "no description", m->sim_root);
                st = NULL; /* m->sim_topo keeps it */
        } else {
                BackendKernelConfig kc = BACKEND_KERNEL_CONFIG_INIT;
                Error e = ERROR_INIT;

                m->sysfs_root = strdup(cfg->sysfs_root ?: "/sys");
                m->dev_root = strdup("/dev");
                if (!m->sysfs_root || !m->dev_root)
                        return error_set(err, -ENOMEM, "Out of memory.");
                kc.sysfs_root = m->sysfs_root;
                kc.dev_root = m->dev_root;
                r = backend_kernel_new(&m->host.backend, &kc, &e);
                if (r < 0)
                        return error_set(err, r, "The kernel backend is unavailable: %s",
                                         error_message(&e));
        }
        if (cfg->sim && cfg->sysfs_root)
                log_warning("--sysfs-root %s is ignored with --sim, the simulated tree is read.",
                            cfg->sysfs_root);

        {
                Error e = ERROR_INIT;

                r = topology_load_path(&m->host.topology, m->sysfs_root, &e);
                if (r < 0)
                        return error_set(err, r, "Reading the IOMMU topology below %s failed: %s",
                                         m->sysfs_root, error_message(&e));
                for (size_t i = 0; i < m->host.topology->n_problems; i++) {
                        const TopologyProblem *p = &m->host.topology->problems[i];

                        log_warning("%s/%s:%u: %s, ignoring.", m->sysfs_root, p->path, p->line,
                                    p->message);
                }
        }

        m->base = event_base_new();
        if (!m->base)
                return error_set(err, -ENOMEM, "Creating the event loop failed.");
        r = fault_router_new(&m->host.faults, m->base);
        if (r < 0)
                return error_set(err, r, "Creating the fault router failed.");
        fault_router_set_notice(m->host.faults, manager_on_fault, m);

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;

        /* Monitor streams end first, and session events stop reaching it. */
        m->admin = manager_varlink_free(m->admin);
        /* D-Bus sessions first: they are core sessions the bus front end owns. */
        m->bus = bus_free(m->bus);
        /* The server's disconnect hooks free the sessions, releasing every device. */
        /* With the fd store holding every session, exiting must not touch the stored state. */
        m->preserving = m->preserving || fdstore_enabled(m->fdstore);
        m->server = varlink_server_free(m->server);
        /* Restored sessions nobody reclaimed have no connection to free them with. */
        broker_release_sessions(m->broker);
        session_host_done(&m->host);
        m->uevents = uevent_monitor_free(m->uevents);
        if (m->hotplug)
                event_free(m->hotplug);
        json_object_put(m->restore_state);
        json_object_put(m->sim_changes);
        m->fdstore = fdstore_free(m->fdstore);
        simtopo_free(m->sim_topo);
        free(m->sim_name);
        m->host.faults = fault_router_free(m->host.faults);
        m->broker = broker_free(m->broker);
        if (m->socket_bound)
                (void)unlink(m->socket_path);

        if (m->sig_term)
                event_free(m->sig_term);
        if (m->sig_int)
                event_free(m->sig_int);
        if (m->sig_hup)
                event_free(m->sig_hup);
        if (m->watchdog)
                event_free(m->watchdog);
        if (m->base)
                event_base_free(m->base);

        backend_free(m->host.backend);
        topology_free(m->host.topology);
        policy_free(m->host.policy);
        if (m->sim_root)
                (void)simtopo_remove(m->sim_root);

        free(m->runtime_dir);
        free(m->socket_path);
        free(m->sysfs_root);
        free(m->dev_root);
        free(m->proc_root);
        free(m->bus_address);
        free(m->sim_root);
        free(m->topology_name);
        free(m->policy_vendor_dir);
        free(m->policy_admin_dir);
        free(m->policy_file);
        free(m);
        return NULL;
}

static void manager_notify_status(Manager *m) {
        char status[256];

        snprintf(status, sizeof(status),
                 "STATUS=%zu session(s), %zu device(s) claimed, policy generation %" PRIu64
                 ", %s backend",
                 m->host.n_sessions, m->host.n_claims, policy_generation(m->host.policy),
                 m->host.backend->ops->name);
        (void)sd_notify(0, status);
}

static bool manager_monitored(Manager *m) {
        return manager_varlink_n_subscribers(m->admin) > 0;
}

/* Adds a string member when value is not NULL; payload may be NULL (out of memory). */
static void payload_add_string(json_object *payload, const char *key, const char *value) {
        if (payload && value)
                (void)json_util_add(payload, key, json_object_new_string(value));
}

static void payload_add_u64(json_object *payload, const char *key, uint64_t value) {
        if (payload)
                (void)json_util_add(payload, key,
                                    value > INT64_MAX ? json_object_new_uint64(value) :
                                                        json_object_new_int64((int64_t)value));
}

/* The members every event about one session carries. */
static json_object *session_payload(Manager *m, Session *s) {
        json_object *payload = json_object_new_object();

        payload_add_u64(payload, "session", manager_varlink_session_id(m->admin, s));
        payload_add_u64(payload, "uid", session_creds(s)->uid);
        return payload;
}

/*
 * A session lost a device (hotplug or policy reload).  This is the one place
 * such events leave the session core: the holder's WatchEvents() streams and
 * the org.iommud.Manager event stream get it here (D-Bus sees the device
 * itself go away through bus_topology_changed()).
 */
static void manager_device_event(Manager *m, Session *s, const char *device, const char *reason) {
        const TopoDevice *td = topology_find_device(m->host.topology, device);
        const char *kind = !td ? "removed" : !td->has_cdev ? "rebound" : "revoked";
        uint32_t id = UINT32_MAX;

        (void)session_device_id(s, device, &id);
        log_warning("%s loses device %s (%s): %s; detached it and tore down what only it used.",
                    session_describe(s), device, kind, reason);
        broker_session_event(s, kind, device, id, reason);
        if (manager_monitored(m)) {
                json_object *payload = session_payload(m, s);
                char message[512];

                snprintf(message, sizeof(message),
                         "session %" PRIu64 " of %s lost device %s (%s): %s",
                         manager_varlink_session_id(m->admin, s), session_describe(s), device,
                         kind, reason);
                payload_add_string(payload, "device", device);
                payload_add_string(payload, "kind", kind);
                payload_add_string(payload, "reason", reason);
                manager_emit_event(m, "device-lost", message, payload);
        }
}

static bool same_driver(const char *a, const char *b) {
        return a && b ? streq(a, b) : a == b;
}

static void emit_device_event(Manager *m, const char *type, const char *device,
                              const char *driver, const char *previous) {
        json_object *payload = json_object_new_object();
        char message[256];

        if (streq(type, "device-added"))
                snprintf(message, sizeof(message), "device %s added (driver %s)", device,
                         driver ?: "none");
        else if (streq(type, "device-removed"))
                snprintf(message, sizeof(message), "device %s removed (driver was %s)", device,
                         previous ?: "none");
        else
                snprintf(message, sizeof(message), "device %s %s%s (was %s)", device,
                         driver ? "bound to " : "unbound", driver ?: "", previous ?: "unbound");
        payload_add_string(payload, "device", device);
        payload_add_string(payload, "driver", driver);
        payload_add_string(payload, "previousDriver", previous);
        manager_emit_event(m, type, message, payload);
}

/* Tells Monitor() subscribers how the devices differ between old and the current topology. */
/*
 * Every fault group the router delivers or answers itself.  On the fault path:
 * without a subscriber this is one comparison, nothing is allocated.
 */
static void manager_on_fault(FaultStream *fs, const FaultEvent *ev, bool delivered,
                             FaultClosedReason reason, void *userdata) {
        Manager *m = userdata;
        const char *outcome = delivered ? "delivered" : fault_closed_reason_to_string(reason);
        Session *s = fault_stream_get_userdata(fs);
        const char *device = s ? session_device_name(s, ev->device_id) : NULL;
        json_object *payload;
        char message[512], pasid[32] = "";

        if (!manager_monitored(m))
                return;
        payload = s ? session_payload(m, s) : json_object_new_object();
        payload_add_string(payload, "device", device);
        if (ev->pasid_valid) {
                payload_add_u64(payload, "pasid", ev->pasid);
                snprintf(pasid, sizeof(pasid), " pasid %" PRIu32, ev->pasid);
        }
        payload_add_u64(payload, "address", ev->address);
        payload_add_string(payload, "outcome", outcome);
        if (delivered)
                snprintf(message, sizeof(message),
                         "fault at 0x%" PRIx64 " of %s%s delivered to session %" PRIu64 " of %s",
                         ev->address, device ?: "a device", pasid,
                         s ? manager_varlink_session_id(m->admin, s) : 0,
                         s ? session_describe(s) : "?");
        else
                snprintf(message, sizeof(message),
                         "fault at 0x%" PRIx64 " of %s%s answered invalid by iommud (%s), "
                         "session %" PRIu64 " of %s",
                         ev->address, device ?: "a device", pasid, outcome,
                         s ? manager_varlink_session_id(m->admin, s) : 0,
                         s ? session_describe(s) : "?");
        manager_emit_event(m, "fault", message, payload);
}

static void manager_emit_topology_events(Manager *m, const Topology *old) {
        const Topology *t = m->host.topology;

        if (!manager_monitored(m))
                return;
        for (size_t i = 0; i < old->n_devices; i++) {
                const TopoDevice *o = old->devices[i];
                const TopoDevice *d = topology_find_device(t, o->name);

                if (!d)
                        emit_device_event(m, "device-removed", o->name, NULL, o->driver);
                else if (!same_driver(o->driver, d->driver) || o->has_cdev != d->has_cdev)
                        emit_device_event(m, "device-changed", d->name, d->driver, o->driver);
        }
        for (size_t i = 0; i < t->n_devices; i++)
                if (!topology_find_device(old, t->devices[i]->name))
                        emit_device_event(m, "device-added", t->devices[i]->name,
                                          t->devices[i]->driver, NULL);
}

static void on_drop(Session *s, const char *device, const char *reason, void *userdata) {
        manager_device_event(userdata, s, device, reason);
}

/*
 * The one session hook of the host, fanned out to whoever listens: the
 * org.iommud.Manager event stream and the D-Bus signals.  Either may be absent
 * (not started yet, or already gone while the daemon exits).
 */
static void manager_on_session(Session *s, SessionEvent event, void *userdata) {
        Manager *m = userdata;

        manager_varlink_session_event(m->admin, s, event);
        bus_session_event(m->bus, s, event);
}

void manager_emit_event(Manager *m, const char *type, const char *message, json_object *payload) {
        manager_varlink_emit(m->admin, type, message, payload);
}

int manager_reload_policy(Manager *m) {
        return manager_reload_policy_full(m, NULL);
}

int manager_reload_policy_full(Manager *m, char ***ret_diagnostics) {
        char message[128];
        json_object *payload;
        Policy *p = NULL;
        int r;

        (void)sd_notify(0, "RELOADING=1");
        r = manager_load_policy(m, &p, ret_diagnostics);
        if (r < 0) {
                log_error("Keeping the policy in force (generation %" PRIu64 ").",
                          policy_generation(m->host.policy));
                (void)sd_notify(0, "READY=1");
                return r;
        }

        policy_free(m->host.policy);
        m->host.policy = p;
        for (Session *s = m->host.sessions; s; s = session_next(s))
                (void)session_revalidate(s, on_drop, m);
        manager_persist_cb(m);
        log_info("Policy reloaded (generation %" PRIu64 ").", policy_generation(p));
        bus_policy_reloaded(m->bus);
        (void)sd_notify(0, "READY=1");
        manager_notify_status(m);
        snprintf(message, sizeof(message), "policy reloaded (generation %" PRIu64 ")",
                 policy_generation(p));
        payload = json_object_new_object();
        if (payload)
                (void)json_object_object_add(payload, "generation",
                                             json_object_new_int64((int64_t)policy_generation(p)));
        manager_emit_event(m, "policy-reloaded", message, payload);
        return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *userdata) {
        Manager *m = userdata;

        if (sig == SIGHUP) {
                (void)manager_reload_policy(m);
                return;
        }
        log_info("Received %s, shutting down.", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        manager_exit(m);
}

static void on_watchdog(evutil_socket_t fd, short what, void *userdata) {
        (void)sd_notify(0, "WATCHDOG=1");
}

void manager_exit(Manager *m) {
        (void)sd_notify(0, "STOPPING=1");
        event_base_loopexit(m->base, NULL);
}

static int manager_listen(Manager *m, Error *err) {
        FdStoreEntry *passed;
        size_t n;
        int r, used = 0;

        /* Socket activation and the fd store arrive together; fdstore_new() read both. */
        passed = fdstore_passed(m->fdstore, &n);
        for (size_t i = 0; i < n; i++) {
                const char *name = passed[i].name;
                int fd = passed[i].fd;

                if (fd < 0 || (name && !streq(name, IOMMUD_SOCKET_NAME) &&
                               !streq(name, "unknown") && !streq(name, "varlink")))
                        continue;
                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
                        log_warning("Passed fd %d is not a listening Unix stream socket, "
                                    "ignoring.",
                                    fd);
                        continue;
                }
                fd = TAKE_FD(passed[i].fd);
                r = varlink_server_listen_fd(m->server, fd);
                if (r < 0)
                        return error_set(err, r, "Listening on passed fd %d failed: %s", fd,
                                         strerror(-r));
                used++;
        }
        if (used > 0) {
                log_info("Listening on %d socket(s) passed by the service manager.", used);
                return 0;
        }

        r = mkdir_p(m->runtime_dir, 0755);
        if (r < 0)
                return error_set(err, r, "Creating runtime directory %s failed: %s",
                                 m->runtime_dir, strerror(-r));
        int fd = varlink_server_listen_unix(m->socket_path,
                                            policy_limits(m->host.policy)->socket_mode);
        if (fd < 0)
                return error_set(err, fd, "Binding %s failed: %s", m->socket_path,
                                 strerror(-fd));
        m->socket_bound = true;
        r = varlink_server_listen_fd(m->server, fd);
        if (r < 0)
                return error_set(err, r, "Listening on %s failed: %s", m->socket_path,
                                 strerror(-r));
        log_info("Listening on %s (mode %04o).", m->socket_path,
                 (unsigned)policy_limits(m->host.policy)->socket_mode);
        return 0;
}

static int reload_policy_hook(void *userdata, char ***ret_diagnostics) {
        return manager_reload_policy_full(userdata, ret_diagnostics);
}

static int reload_policy_cb(void *userdata) {
        return manager_reload_policy(userdata);
}

/* The bus is optional: without one the daemon serves its socket, and says so once. */
static void manager_connect_bus(Manager *m) {
        BusConfig bc = {
                .base = m->base,
                .host = &m->host,
                .broker = m->broker,
                .server = m->server,
                .proc_root = m->proc_root,
                .address = m->bus_address,
                .reload_policy = reload_policy_cb,
                .userdata = m,
        };
        Error e = ERROR_INIT;
        int r;

        if (m->no_bus) {
                log_info("D-Bus disabled (--no-bus); serving the socket only.");
                return;
        }
        r = bus_new(&m->bus, &bc, &e);
        if (r < 0)
                log_notice("No D-Bus (%s); serving the socket only.", error_message(&e));
}

/* ---- hotplug --------------------------------------------------------------------------- */

/* Reads the whole topology again: a few ms even for thousands of devices (see bench/). */
static int manager_hotplug_reload(Manager *m) {
        _cleanup_(topology_freep) Topology *t = NULL, *old = NULL;
        Error e = ERROR_INIT;
        int r;

        r = topology_load_path(&t, m->sysfs_root, &e);
        if (r < 0)
                return log_error_errno(r, "Reading the IOMMU topology below %s after hotplug "
                                       "failed, keeping the old one: %s",
                                       m->sysfs_root, error_message(&e));
        /* Kept until everyone was told what changed; sessions never point into it. */
        old = m->host.topology;
        m->host.topology = TAKE_PTR(t);
        for (Session *s = m->host.sessions, *next; s; s = next) {
                next = session_next(s);
                (void)session_revalidate(s, on_drop, m);
        }
        manager_persist_cb(m);
        manager_notify_status(m);
        bus_topology_changed(m->bus, old);
        manager_emit_topology_events(m, old);
        return 0;
}

static void on_hotplug(evutil_socket_t fd, short what, void *userdata) {
        (void)manager_hotplug_reload(userdata);
}

static void manager_on_uevent(const Uevent *u, void *userdata) {
        Manager *m = userdata;

        log_debug("uevent %s %s (%s%s%s)", u->action, u->devpath, u->subsystem ?: "?",
                  u->driver ? ", driver " : "", u->driver ?: "");
        /* One reload for a burst (a bind is add + bind + vfio-dev add), once the loop is idle. */
        if (!m->hotplug)
                m->hotplug = event_new(m->base, -1, 0, on_hotplug, m);
        if (m->hotplug && !event_pending(m->hotplug, EV_TIMEOUT, NULL))
                event_active(m->hotplug, EV_TIMEOUT, 0);
}

/* ---- the simulated host ---------------------------------------------------------------- */

static int sim_remove_device(SimTopology *t, size_t i) {
        SimDevice *d = &t->devices[i];

        for (size_t g = 0; g < t->n_groups; g++) {
                SimGroup *grp = &t->groups[g];

                for (size_t k = 0; k < grp->n_devices;) {
                        if (grp->device_indexes[k] == i) {
                                memmove(&grp->device_indexes[k], &grp->device_indexes[k + 1],
                                        (grp->n_devices - k - 1) * sizeof(size_t));
                                grp->n_devices--;
                                continue;
                        }
                        if (grp->device_indexes[k] > i)
                                grp->device_indexes[k]--;
                        k++;
                }
        }
        free(d->name);
        free(d->label);
        free(d->driver);
        memmove(d, d + 1, (t->n_devices - i - 1) * sizeof(*d));
        t->n_devices--;
        return 0;
}

/* A fresh vfio cdev minor, as the kernel would give. */
static unsigned sim_free_minor(const SimTopology *t) {
        unsigned minor = 0;

        for (size_t k = 0; k < t->n_devices; k++)
                if (t->devices[k].cdev)
                        minor = MAX(minor, t->devices[k].cdev_minor + 1);
        return minor;
}

/*
 * Puts back a device of the simulated topology that hotplug removed, as the
 * topology describes it (driver, group), like a hot-plugged card.
 */
static int sim_add_device(Manager *m, const char *device, bool present, Error *err) {
        _cleanup_(simtopo_freep) SimTopology *orig = NULL;
        SimTopology *t = m->sim_topo;
        const SimDevice *o;
        SimDevice *devices, *d;
        SimGroup *g = NULL;
        size_t *idx;
        Error e = ERROR_INIT;
        int r;

        if (present)
                return error_set(err, -EEXIST, "Device %s is present on the simulated host.",
                                 device);
        r = simtopo_load(&orig, m->sim_name, &e);
        if (r < 0)
                return error_set(err, r, "Reading simulated topology '%s' again failed: %s",
                                 m->sim_name, error_message(&e));
        o = simtopo_find_device(orig, device);
        if (!o)
                return error_set(err, -ENODEV, "The simulated host has no device %s.", device);
        for (size_t k = 0; k < t->n_groups; k++)
                if (t->groups[k].id == orig->groups[o->group_index].id)
                        g = &t->groups[k];
        if (!g)
                return error_set(err, -ENODEV, "The simulated host has no group %u for %s.",
                                 orig->groups[o->group_index].id, device);
        devices = realloc(t->devices, (t->n_devices + 1) * sizeof(*devices));
        if (!devices)
                return error_set(err, -ENOMEM, "Out of memory.");
        t->devices = devices;
        idx = realloc(g->device_indexes, (g->n_devices + 1) * sizeof(*idx));
        if (!idx)
                return error_set(err, -ENOMEM, "Out of memory.");
        g->device_indexes = idx;

        d = &t->devices[t->n_devices];
        *d = *o;
        d->group_index = (size_t)(g - t->groups);
        d->name = strdup(o->name);
        d->label = o->label ? strdup(o->label) : NULL;
        d->driver = o->driver ? strdup(o->driver) : NULL;
        if (!d->name || (o->label && !d->label) || (o->driver && !d->driver)) {
                free(d->name);
                free(d->label);
                free(d->driver);
                return error_set(err, -ENOMEM, "Out of memory.");
        }
        /* Its old minor, unless a device bound meanwhile took it. */
        for (size_t k = 0; d->cdev && k < t->n_devices; k++)
                if (t->devices[k].cdev && t->devices[k].cdev_minor == d->cdev_minor) {
                        d->cdev_minor = sim_free_minor(t);
                        break;
                }
        g->device_indexes[g->n_devices++] = t->n_devices++;
        return 0;
}

static int manager_sim_apply(Manager *m, const char *op, const char *device, const char *driver,
                             Error *err) {
        SimTopology *t = m->sim_topo;
        size_t i;

        for (i = 0; i < t->n_devices; i++)
                if (streq(t->devices[i].name, device))
                        break;
        if (streq(op, "add"))
                return sim_add_device(m, device, i < t->n_devices, err);
        if (i == t->n_devices)
                return error_set(err, -ENODEV, "The simulated host has no device %s.", device);
        if (streq(op, "remove"))
                return sim_remove_device(t, i);
        if (streq(op, "driver")) {
                SimDevice *d = &t->devices[i];
                char *n = driver ? strdup(driver) : NULL;
                bool cdev = driver && strneq(driver, "vfio", 4);

                if (driver && !n)
                        return error_set(err, -ENOMEM, "Out of memory.");
                if (cdev && !d->cdev) {
                        unsigned minor = 0;

                        /* A fresh cdev minor, as the kernel would give. */
                        for (size_t k = 0; k < t->n_devices; k++)
                                if (t->devices[k].cdev || k == i)
                                        minor = MAX(minor, t->devices[k].cdev_minor + 1);
                        d->cdev_minor = minor;
                }
                free(d->driver);
                d->driver = n;
                d->cdev = cdev;
                return 0;
        }
        return error_set(err, -EINVAL, "Unknown simulated hotplug change '%s'.", op);
}

static int manager_sim_hotplug(Manager *m, const char *op, const char *device, const char *driver,
                               Error *err) {
        json_object *c;
        const SimDevice *d;
        int r;

        r = manager_sim_apply(m, op, device, driver, err);
        if (r < 0)
                return r;
        d = simtopo_find_device(m->sim_topo, device);
        r = backend_sim_set_device(m->host.backend, device, d ? d->driver : NULL,
                                   d ? d->cdev : false, err);
        if (r < 0)
                return r;
        r = simtopo_rematerialize_sys(m->sim_topo, m->sim_root, err);
        if (r < 0)
                return r;
        c = json_object_new_array();
        if (c) {
                json_object_array_add(c, json_object_new_string(op));
                json_object_array_add(c, json_object_new_string(device));
                json_object_array_add(c, driver ? json_object_new_string(driver) : NULL);
                json_object_array_add(m->sim_changes, c);
        }
        log_info("Simulated hotplug: %s %s%s%s.", op, device, driver ? " → " : "",
                 driver ?: "");
        /* From here on, exactly what a kernel uevent does. */
        (void)manager_hotplug_reload(m);
        return 0;
}

static int sim_hook_set_driver(void *userdata, const char *device, const char *driver,
                               Error *err) {
        return manager_sim_hotplug(userdata, "driver", device, driver, err);
}

static int sim_hook_remove(void *userdata, const char *device, Error *err) {
        return manager_sim_hotplug(userdata, "remove", device, NULL, err);
}

static int sim_hook_add(void *userdata, const char *device, Error *err) {
        return manager_sim_hotplug(userdata, "add", device, NULL, err);
}

/* ---- restart survival ------------------------------------------------------------------ */

static void json_object_putp(json_object **o) {
        json_object_put(*o);
}

/* Appends fd under a formatted name to the lists manager_persist() hands to the store. */
static int fdlist_add(char ***names, int **fds, size_t *n, size_t *cap, int fd, const char *fmt,
                      ...) _printf_(6, 7);
static int fdlist_add(char ***names, int **fds, size_t *n, size_t *cap, int fd, const char *fmt,
                      ...) {
        char *name;
        va_list ap;
        int r;

        if (*n == *cap) {
                size_t c = MAX(*cap * 2, (size_t)16);
                char **nn = realloc(*names, c * sizeof(*nn));

                if (!nn)
                        return -ENOMEM;
                *names = nn;
                int *nf = realloc(*fds, c * sizeof(*nf));
                if (!nf)
                        return -ENOMEM;
                *fds = nf;
                *cap = c;
        }
        va_start(ap, fmt);
        r = vasprintf(&name, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        (*names)[*n] = name;
        (*fds)[(*n)++] = fd;
        return 0;
}

static void manager_persist(Manager *m) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        json_object *sessions, *sim;
        _cleanup_free_ char **names = NULL;
        _cleanup_free_ int *fds = NULL;
        size_t n = 0, cap = 0;
        Error e = ERROR_INIT;
        const char *text;
        int r;

        if (!fdstore_enabled(m->fdstore) || m->preserving || !m->broker)
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
        if (m->sim_topo) {
                sim = json_object_new_object();
                (void)json_util_add(sim, "topology", json_object_new_string(m->sim_name));
                (void)json_util_add(sim, "changes", json_object_get(m->sim_changes));
                (void)json_util_add(root, "sim", sim);
        }

        for (Session *s = m->host.sessions; s; s = session_next(s)) {
                json_object *rec = NULL, *devs = NULL, *st = NULL;
                uint64_t serial = broker_session_serial(s);
                int fd;

                if (broker_session_to_json(s, &rec) < 0)
                        continue;
                json_object_array_add(sessions, rec);
                if (backend_is_sim(m->host.backend))
                        continue;
                /* The kernel objects live in these fds: the store keeps them across restarts. */
                fd = m->host.backend->ops->context_fd(session_get_context(s));
                if (fd < 0)
                        continue;
                if (fdlist_add(&names, &fds, &n, &cap, fd, "s%" PRIu64 "-iommufd", serial) < 0)
                        goto oom;
                (void)json_util_get_object(rec, "session", 0, &st, NULL);
                (void)json_util_get_array(st, "devices", 0, &devs, NULL);
                for (size_t i = 0; devs && i < json_object_array_length(devs); i++) {
                        uint32_t id = 0;

                        if (json_util_get_u32(json_object_array_get_idx(devs, i), "id", 0, &id,
                                              NULL) < 0)
                                continue;
                        fd = backend_kernel_context_device_fd(session_get_context(s), id);
                        if (fd >= 0 && fdlist_add(&names, &fds, &n, &cap, fd,
                                                  "s%" PRIu64 "-dev%" PRIu32, serial, id) < 0)
                                goto oom;
                }
                /* The fault object survives in the iommufd, but only this fd reads it. */
                if (session_fault_stream(s)) {
                        uint32_t id = fault_stream_fault_id(session_fault_stream(s));

                        fd = backend_kernel_context_fault_fd(session_get_context(s), id);
                        if (fd >= 0 && fdlist_add(&names, &fds, &n, &cap, fd,
                                                  "s%" PRIu64 "-fault%" PRIu32, serial, id) < 0)
                                goto oom;
                }
        }

        r = fdstore_sync(m->fdstore, (const char *const *)names, fds, n, &e);
        if (r < 0)
                log_warning("Updating the fd store failed, a restart may lose sessions: "
                            "%s, ignoring.",
                            error_message(&e));
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
        r = fdstore_write_state(m->fdstore, text, strlen(text), &e);
        if (r < 0)
                log_warning("Writing the state failed, a restart may lose sessions: %s, ignoring.",
                            error_message(&e));
        goto free_names;
oom:
        log_oom();
free_names:
        for (size_t i = 0; i < n; i++)
                free(names[i]);
}

static void manager_persist_cb(void *userdata) {
        manager_persist(userdata);
}

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

static void manager_restore_one(Manager *m, json_object *rec) {
        SessionRestoreConfig rc = { .on_drop = on_restore_drop, .userdata = m };
        uint32_t fault_id;
        json_object *pr = NULL, *st = NULL, *devs = NULL;
        PeerCreds *creds = NULL;
        BackendContext *ctx = NULL;
        Session *s = NULL;
        const char *token = NULL;
        uint64_t serial = 0;
        Error e = ERROR_INIT;
        char name[64];
        int r;

        if (json_util_get_u64(rec, "serial", 0, &serial, NULL) < 0 ||
            json_util_get_string(rec, "token", 0, &token, NULL) < 0 ||
            json_util_get_object(rec, "principal", 0, &pr, NULL) < 0 ||
            json_util_get_object(rec, "session", 0, &st, NULL) < 0 ||
            creds_from_json(pr, &creds) < 0) {
                log_warning("A session record in the state is malformed, dropped.");
                return;
        }
        if (backend_is_sim(m->host.backend)) {
                r = m->host.backend->ops->context_new(m->host.backend, &ctx, &e);
                rc.prepare_id = backend_sim_context_set_next_id;
        } else {
                _cleanup_free_ uint32_t *ids = NULL;
                _cleanup_free_ int *dfds = NULL;
                size_t nd = 0, k = 0;
                int iommufd;

                snprintf(name, sizeof(name), "s%" PRIu64 "-iommufd", serial);
                r = fdstore_take(m->fdstore, name, &iommufd);
                if (r < 0) {
                        log_warning("Session %" PRIu64 " of uid %u: its iommufd is not in the fd "
                                    "store, dropped.", serial, (unsigned)creds->uid);
                        peer_creds_free(creds);
                        return;
                }
                (void)json_util_get_array(st, "devices", 0, &devs, NULL);
                nd = devs ? json_object_array_length(devs) : 0;
                ids = calloc(nd + 1, sizeof(*ids));
                dfds = calloc(nd + 1, sizeof(*dfds));
                for (size_t i = 0; ids && dfds && i < nd; i++) {
                        uint32_t id;
                        int fd;

                        if (json_util_get_u32(json_object_array_get_idx(devs, i), "id", 0, &id,
                                              NULL) < 0)
                                continue;
                        snprintf(name, sizeof(name), "s%" PRIu64 "-dev%" PRIu32, serial, id);
                        if (fdstore_take(m->fdstore, name, &fd) < 0)
                                continue; /* the device check below drops it */
                        ids[k] = id;
                        dfds[k++] = fd;
                }
                if (!ids || !dfds) {
                        for (size_t i = 0; i < k; i++)
                                safe_close(dfds[i]);
                        safe_close(iommufd);
                        peer_creds_free(creds);
                        log_oom();
                        return;
                }
                r = backend_kernel_context_adopt(m->host.backend, iommufd, ids, dfds, k, &ctx,
                                                 &e);
                if (r >= 0 &&
                    json_util_get_u32(st, "faultQueue", 0, &fault_id, NULL) >= 0) {
                        int ffd;

                        snprintf(name, sizeof(name), "s%" PRIu64 "-fault%" PRIu32, serial,
                                 fault_id);
                        /* Missing: the session drops the fault queue and its PASIDs. */
                        if (fdstore_take(m->fdstore, name, &ffd) >= 0 &&
                            backend_kernel_context_adopt_fault(ctx, fault_id, ffd) < 0)
                                log_warning("Session %" PRIu64 ": adopting fault queue %" PRIu32
                                            " failed, ignoring.", serial, fault_id);
                }
                rc.fault_fd = backend_kernel_context_fault_fd;
        }
        if (r < 0) {
                log_warning("Session %" PRIu64 ": no backend context (%s), dropped.", serial,
                            error_message(&e));
                peer_creds_free(creds);
                return;
        }
        r = session_restore(&s, &m->host, creds, ctx, st, &rc);
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
        (void)session_revalidate(s, on_drop, m);
        log_info("Restored the session of %s: %zu device(s), %zu address space(s), %zu "
                 "PASID(s); waiting %" PRIu64 " ms for its client to reclaim it.",
                 session_describe(s), session_n_devices(s), session_n_address_spaces(s),
                 session_n_pasids(s),
                 policy_limits(m->host.policy)->session_reclaim_grace_ms);
}

static void manager_restore(Manager *m) {
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
                else
                        for (size_t i = 0; i < json_object_array_length(sessions); i++)
                                manager_restore_one(m, json_object_array_get_idx(sessions, i));
                json_object_put(m->restore_state);
                m->restore_state = NULL;
        }
        /* Whatever nobody adopted is closed here and removed from the store below. */
        n = fdstore_close_unused(m->fdstore);
        if (n > 0)
                log_info("Closed %zu fd(s) from the fd store that no restored session uses.", n);
        manager_persist(m);
}

static unsigned clamp_uint(uint64_t v) {
        return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

int manager_start(Manager *m, Error *err) {
        const PolicyLimits *pl = policy_limits(m->host.policy);
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        int r;

        limits.max_message_bytes = pl->max_message_bytes;
        limits.max_fds_per_message = MIN(clamp_uint(pl->max_fds_per_message), 253u);
        limits.max_queued_output_bytes = pl->max_queued_output_bytes;
        limits.max_connections = clamp_uint(pl->max_connections);
        limits.max_connections_per_uid = clamp_uint(pl->max_connections_per_uid);

        r = varlink_server_new(&m->server, m->base, &limits);
        if (r < 0)
                return error_set(err, r, "Creating the Varlink server failed: %s", strerror(-r));
        r = broker_new(&m->broker, &m->host, m->dev_root, m->proc_root);
        if (r < 0)
                return error_set(err, r, "Creating the broker failed: %s", strerror(-r));
        r = broker_attach(m->broker, m->server);
        if (r < 0)
                return error_set(err, r, "Registering org.iommud.Broker failed: %s",
                                 strerror(-r));
        broker_set_lifecycle(m->broker, m->base, pl->session_reclaim_grace_ms,
                             manager_persist_cb, m);
        if (m->sim_topo) {
                /* Fault injection, the model's counters and hotplug exist only on a simulated host. */
                m->sim_hooks = (SimulatorHooks){
                        .backend = m->host.backend,
                        .set_driver = sim_hook_set_driver,
                        .remove_device = sim_hook_remove,
                        .add_device = sim_hook_add,
                        .userdata = m,
                        .owner_uid = geteuid(),
                };
                r = simulator_attach(m->server, &m->sim_hooks);
                if (r < 0)
                        return error_set(err, r, "Registering org.iommud.Simulator failed: %s",
                                         strerror(-r));
        } else {
                r = uevent_monitor_new(&m->uevents, m->base, manager_on_uevent, m);
                if (r < 0)
                        log_warning_errno(r, "Watching kernel uevents failed, hotplug goes "
                                          "unnoticed until a restart: %m, ignoring.");
        }
        r = manager_varlink_new(&m->admin, &(ManagerVarlinkConfig){
                                                   .host = &m->host,
                                                   .topology = m->topology_name,
                                                   .reload_policy = reload_policy_hook,
                                                   .userdata = m,
                                           });
        if (r >= 0)
                r = manager_varlink_attach(m->admin, m->server);
        if (r < 0)
                return error_set(err, r, "Registering org.iommud.Manager failed: %s",
                                 strerror(-r));
        r = manager_listen(m, err);
        if (r < 0)
                return r;
        manager_restore(m);
        manager_connect_bus(m);

        /* Shutdown and reload come through the loop, never from a signal handler's stack. */
        m->sig_term = evsignal_new(m->base, SIGTERM, on_signal, m);
        m->sig_int = evsignal_new(m->base, SIGINT, on_signal, m);
        m->sig_hup = evsignal_new(m->base, SIGHUP, on_signal, m);
        if (!m->sig_term || !m->sig_int || !m->sig_hup || evsignal_add(m->sig_term, NULL) < 0 ||
            evsignal_add(m->sig_int, NULL) < 0 || evsignal_add(m->sig_hup, NULL) < 0)
                return error_set(err, -ENOMEM, "Installing signal handlers failed.");
        (void)signal(SIGPIPE, SIG_IGN);

        if (sd_watchdog_enabled(false, &m->watchdog_usec) > 0 && m->watchdog_usec > 0) {
                struct timeval tv = {
                        .tv_sec = (time_t)(m->watchdog_usec / 2 / 1000000),
                        .tv_usec = (suseconds_t)(m->watchdog_usec / 2 % 1000000),
                };

                m->watchdog = event_new(m->base, -1, EV_PERSIST, on_watchdog, m);
                if (!m->watchdog || event_add(m->watchdog, &tv) < 0)
                        return error_set(err, -ENOMEM, "Arming the watchdog timer failed.");
        }

        (void)sd_notify(0, "READY=1");
        manager_notify_status(m);
        return 0;
}

int manager_run(Manager *m) {
        int r = event_base_dispatch(m->base);

        if (r < 0)
                return log_error_errno(EIO, "The event loop failed.");
        return 0;
}
