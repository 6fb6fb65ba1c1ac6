/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The composition root: builds every layer in order (configuration, policy,
 * fd store, backend, topology, loop; then at start the Varlink server and its
 * interfaces, the listening socket, restored sessions, the bus, signals and the
 * watchdog), reloads the policy and tears it all down in reverse.  What the
 * other manager-*.c files do is listed in manager-internal.h.
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "assert-util.h"
#include "backend-vfio.h"
#include "log.h"
#include "manager-audit.h"
#include "manager-internal.h"

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

int manager_make_runtime_dir(Manager *m, Error *err) {
        int r;

        r = mkdir_p(m->runtime_dir, 0755);
        if (r < 0)
                return error_set(err, r, "Creating runtime directory %s failed: %s",
                                 m->runtime_dir, strerror(-r));
        return 0;
}

/*
 * Loads the policy and checks it against the host's topology, as --check-config does; on
 * failure logs every diagnostic and, with ret_diags, returns them too.
 */
static int manager_load_policy(Manager *m, Policy **ret, char ***ret_diags) {
        _cleanup_(policy_freep) Policy *p = NULL;
        PolicyDiagnostics diags = {};
        Error err = ERROR_INIT;
        char **strv = NULL;
        size_t n = 0;
        int r;

        r = policy_load(&p, &m->policy_paths, &diags, &err);
        if (r >= 0) {
                r = policy_check_host(p, m->host.topology, &diags);
                if (r < 0)
                        error_set(&err, r, "it does not fit this host's IOMMU groups");
        }
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
        if (r >= 0)
                *ret = TAKE_PTR(p);
        return r;
}

/* Copies what the configuration names: the caller's strings need not outlive the manager. */
static int manager_copy_config(Manager *m, const ManagerConfig *cfg, Error *err) {
        bool oom = false;

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
        return 0;
}

static int manager_load_topology(Manager *m, Error *err) {
        Error e = ERROR_INIT;
        int r;

        r = topology_load_path(&m->host.topology, m->sysfs_root, &e);
        if (r < 0)
                return error_set(err, r, "Reading the IOMMU topology below %s failed: %s",
                                 m->sysfs_root, error_message(&e));
        for (size_t i = 0; i < m->host.topology->n_problems; i++) {
                const TopologyProblem *p = &m->host.topology->problems[i];

                log_warning("%s/%s:%u: %s, ignoring.", m->sysfs_root, p->path, p->line,
                            p->message);
        }
        return 0;
}

static void manager_on_device_released(const char *device, void *userdata) {
        log_info("%s is free again: no process holds its VFIO file any more.", device);
}

/* The event loop, the fault router that reads fault queues on it, the lingering devices. */
static int manager_new_loop(Manager *m, Error *err) {
        int r;

        m->base = event_base_new();
        if (!m->base)
                return error_set(err, -ENOMEM, "Creating the event loop failed.");
        r = fault_router_new(&m->host.faults, m->base);
        if (r < 0)
                return error_set(err, r, "Creating the fault router failed.");
        fault_router_set_notice(m->host.faults, manager_on_fault, m);
        /* Lingering devices end when their holders exit, not only when asked about. */
        r = lingering_new(&m->host.lingering, m->host.backend, m->base);
        if (r < 0)
                return error_set(err, r, "Creating the table of lingering devices failed.");
        lingering_set_end_fn(m->host.lingering, manager_on_device_released, m);
        return 0;
}

int manager_new(Manager **ret, const ManagerConfig *cfg, Error *err) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        assert_return(ret, -EINVAL);
        assert_return(cfg, -EINVAL);

        m = calloc(1, sizeof(*m));
        if (!m)
                return error_set(err, -ENOMEM, "Out of memory.");
        m->host = SESSION_HOST_INIT;
        m->host.on_session = manager_on_session;
        m->host.on_session_userdata = m;
        m->host.on_device = manager_on_device;
        m->host.on_device_userdata = m;
        m->host.on_audit = manager_audit_session;
        m->host.on_audit_userdata = m;

        r = manager_copy_config(m, cfg, err);
        if (r < 0)
                return r;
        /* Before the backend: a simulated host replays the hotplug the stored state records. */
        r = manager_fdstore_open(m, cfg->fd_store, err);
        if (r < 0)
                return r;
        r = manager_setup_backend(m, cfg, err);
        if (r < 0)
                return r;
        r = manager_load_topology(m, err);
        if (r < 0)
                return r;
        /* After the topology: the policy is checked against the host's IOMMU groups. */
        r = manager_load_policy(m, &m->host.policy, NULL);
        if (r < 0)
                return error_set(err, r, "The policy is invalid (see above).");
        r = manager_new_loop(m, err);
        if (r < 0)
                return r;
        r = runtime_claims_new(&m->claims, &m->host, cfg->cdi_dir ?: IOMMUD_CDI_DIR);
        if (r < 0)
                return error_set(err, r, "Creating the table of runtime claims failed.");

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;

        m->exiting = true;
        /* Monitor streams end first, and session events stop reaching it. */
        m->admin = manager_varlink_free(m->admin);
        /* D-Bus sessions first: they are core sessions the bus front end owns. */
        m->bus = bus_free(m->bus);
        /* The server's disconnect hooks free the sessions, releasing every device. */
        /* With the fd store holding every session, exiting must not touch the stored state. */
        m->preserving = m->preserving || fdstore_enabled(m->fdstore);
        m->host.preserving = m->preserving;
        /* Leaving type1 is an act, not the closing of an fd: with VFIO, act on nothing. */
        if (m->preserving)
                backend_vfio_keep_kernel_state(m->host.backend);
        m->server = varlink_server_free(m->server);
        /* Restored sessions nobody reclaimed have no connection to free them with. */
        broker_release_sessions(m->broker);
        /* Kept for the next daemon with the store; else released, their specs removed. */
        m->claims = runtime_claims_free(m->claims);
        session_host_done(&m->host);
        m->uevents = uevent_monitor_free(m->uevents);
        if (m->hotplug)
                event_free(m->hotplug);
        free(m->hotplug_groups);
        json_object_put(m->restore_state);
        json_object_put(m->sim_changes);
        manager_sim_pending_free(m);
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
        free(m->backend_reason);
        free(m->policy_vendor_dir);
        free(m->policy_admin_dir);
        free(m->policy_file);
        free(m);
        return NULL;
}

void manager_notify_status(Manager *m) {
        char status[256];

        snprintf(status, sizeof(status),
                 "STATUS=%zu session(s), %zu device(s) claimed, policy generation %" PRIu64
                 ", %s backend",
                 m->host.n_sessions, m->host.n_claims, policy_generation(m->host.policy),
                 m->host.backend->ops->name);
        (void)sd_notify(0, status);
}

int manager_reload_policy(Manager *m) {
        assert_return(m, -EINVAL);

        return manager_reload_policy_full(m, NULL);
}

int manager_reload_policy_full(Manager *m, char ***ret_diagnostics) {
        Policy *p = NULL;
        int r;

        assert_return(m, -EINVAL);

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
                (void)session_revalidate(s, manager_on_device_lost, m);
        (void)runtime_claims_revalidate(m->claims);
        manager_persist(m);
        bus_policy_reloaded(m->bus);
        (void)sd_notify(0, "READY=1");
        manager_notify_status(m);
        manager_audit_policy_reloaded(m, policy_generation(p));
        return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *userdata) {
        Manager *m = userdata;

        if (sig == SIGHUP) {
                /* The one full rescan an admin can ask for; hotplug reads only what changed. */
                (void)manager_hotplug_reload(m);
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
        assert(m);

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

        r = manager_make_runtime_dir(m, err);
        if (r < 0)
                return r;
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
                .claims = m->claims,
                .claims_changed = manager_persist_cb,
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

static unsigned clamp_uint(uint64_t v) {
        return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

static int manager_new_server(Manager *m, Error *err) {
        const PolicyLimits *pl = policy_limits(m->host.policy);
        VarlinkLimits limits = VARLINK_LIMITS_DEFAULT;
        int r;

        limits.max_message_bytes = pl->max_message_bytes;
        limits.max_fds_per_message = MIN(clamp_uint(pl->max_fds_per_message), 253u);
        limits.max_queued_output_bytes = pl->max_queued_output_bytes;
        limits.max_connections = clamp_uint(pl->max_connections);
        /* The per-uid limit is not the server's: policy_quotas() caps each principal with it. */
        limits.reserved_connections = clamp_uint(pl->reserved_connections);
        limits.idle_timeout_usec = pl->idle_timeout_ms > UINT64_MAX / 1000
                                           ? UINT64_MAX
                                           : pl->idle_timeout_ms * 1000;

        r = varlink_server_new(&m->server, m->base, &limits);
        if (r < 0)
                return error_set(err, r, "Creating the Varlink server failed: %s", strerror(-r));
        return 0;
}

/* org.iommud.Broker: the sessions; every change to them is persisted for a restart. */
static int manager_attach_broker(Manager *m, Error *err) {
        int r;

        r = broker_new(&m->broker, &m->host, m->dev_root, m->proc_root);
        if (r < 0)
                return error_set(err, r, "Creating the broker failed: %s", strerror(-r));
        r = broker_attach(m->broker, m->server);
        if (r < 0)
                return error_set(err, r, "Registering org.iommud.Broker failed: %s",
                                 strerror(-r));
        broker_set_lifecycle(m->broker, m->base,
                             policy_limits(m->host.policy)->session_reclaim_grace_ms,
                             manager_persist_cb, m);
        return 0;
}

/* org.iommud.Manager: status, sessions, reload and Monitor() for admins. */
static int manager_attach_admin(Manager *m, Error *err) {
        int r;

        r = manager_varlink_new(&m->admin, &(ManagerVarlinkConfig){
                                                   .host = &m->host,
                                                   .topology = m->topology_name,
                                                   .backend_reason = m->backend_reason,
                                                   .reload_policy = reload_policy_hook,
                                                   .claims = m->claims,
                                                   .claims_changed = manager_persist_cb,
                                                   .userdata = m,
                                           });
        if (r >= 0)
                r = manager_varlink_attach(m->admin, m->server);
        if (r < 0)
                return error_set(err, r, "Registering org.iommud.Manager failed: %s",
                                 strerror(-r));
        return 0;
}

/* Shutdown and reload come through the loop, never from a signal handler's stack. */
static int manager_watch_signals(Manager *m, Error *err) {
        m->sig_term = evsignal_new(m->base, SIGTERM, on_signal, m);
        m->sig_int = evsignal_new(m->base, SIGINT, on_signal, m);
        m->sig_hup = evsignal_new(m->base, SIGHUP, on_signal, m);
        if (!m->sig_term || !m->sig_int || !m->sig_hup || evsignal_add(m->sig_term, NULL) < 0 ||
            evsignal_add(m->sig_int, NULL) < 0 || evsignal_add(m->sig_hup, NULL) < 0)
                return error_set(err, -ENOMEM, "Installing signal handlers failed.");
        (void)signal(SIGPIPE, SIG_IGN);
        return 0;
}

/* WATCHDOG=1 at half the interval the service manager asked for, when it asked. */
static int manager_arm_watchdog(Manager *m, Error *err) {
        struct timeval tv;

        if (sd_watchdog_enabled(false, &m->watchdog_usec) <= 0 || m->watchdog_usec == 0)
                return 0;
        tv = (struct timeval){
                .tv_sec = (time_t)(m->watchdog_usec / 2 / 1000000),
                .tv_usec = (suseconds_t)(m->watchdog_usec / 2 % 1000000),
        };
        m->watchdog = event_new(m->base, -1, EV_PERSIST, on_watchdog, m);
        if (!m->watchdog || event_add(m->watchdog, &tv) < 0)
                return error_set(err, -ENOMEM, "Arming the watchdog timer failed.");
        return 0;
}

int manager_start(Manager *m, Error *err) {
        int r;

        assert_return(m, -EINVAL);
        assert_return(!m->server, -EBUSY);

        r = manager_new_server(m, err);
        if (r < 0)
                return r;
        r = manager_attach_broker(m, err);
        if (r < 0)
                return r;
        if (m->sim_topo) {
                r = manager_sim_attach(m, err);
                if (r < 0)
                        return r;
        } else
                manager_hotplug_watch(m);
        r = manager_attach_admin(m, err);
        if (r < 0)
                return r;
        r = manager_listen(m, err);
        if (r < 0)
                return r;
        manager_restore(m);
        manager_connect_bus(m);
        r = manager_watch_signals(m, err);
        if (r < 0)
                return r;
        r = manager_arm_watchdog(m, err);
        if (r < 0)
                return r;

        (void)sd_notify(0, "READY=1");
        manager_notify_status(m);
        return 0;
}

int manager_run(Manager *m) {
        int r;

        assert_return(m, -EINVAL);

        r = event_base_dispatch(m->base);
        if (r < 0)
                return log_error_errno(EIO, "The event loop failed.");
        return 0;
}
