/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <systemd/sd-bus.h>

#include "backend.h"
#include "bus-errors.h"
#include "bus-internal.h"
#include "explain.h"
#include "log.h"
#include "policy.h"

/* ---- pending calls (waiting for credentials or polkit) ---------------------------------- */

struct BusPending {
        Bus *bus;
        BusAuth *auth;
        BusPendingFn run;
        char *device;          /* ExplainDevice */
        uint32_t uid;          /* ExplainDevice */
        BusPending *next, *prev;
};

static BusPending *bus_pending_free(BusPending *p) {
        if (!p)
                return NULL;
        if (p->prev)
                p->prev->next = p->next;
        else if (p->bus->pending == p)
                p->bus->pending = p->next;
        if (p->next)
                p->next->prev = p->prev;
        bus_auth_free(p->auth);
        free(p->device);
        free(p);
        return NULL;
}

static void on_auth(BusAuth *a, int r, const sd_bus_error *error, PeerCreds **creds,
                    void *userdata) {
        BusPending *p = userdata;
        Bus *b = p->bus;
        sd_bus_message *call = bus_auth_get_call(a);
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        if (r > 0)
                r = p->run(b, p, creds, &e);
        else {
                log_debug("%s from %s refused: %s", sd_bus_message_get_member(call),
                          sd_bus_message_get_sender(call), error->message);
                (void)sd_bus_error_copy(&e, error);
                r = -EACCES;
        }
        if (r < 0) {
                if (!sd_bus_error_is_set(&e))
                        (void)sd_bus_error_set_errno(&e, r);
                (void)sd_bus_reply_method_error(call, &e);
        }
        bus_pending_free(p);
        bus_loop_kick(b->loop);
}

sd_bus_message *bus_pending_call(BusPending *p) {
        return bus_auth_get_call(p->auth);
}

int bus_defer(Bus *b, sd_bus_message *m, const char *action, uid_t exempt_uid,
                     BusPendingFn run, BusPending **ret) {
        BusPending *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->bus = b;
        p->run = run;
        p->next = b->pending;
        if (p->next)
                p->next->prev = p;
        b->pending = p;
        r = bus_auth_start(&p->auth, b->bus, m, action, exempt_uid, b->cfg.proc_root, on_auth, p);
        if (r < 0) {
                bus_pending_free(p);
                return r;
        }
        if (ret)
                *ret = p;
        return 1;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static int device_path(const char *name, char **ret) {
        return sd_bus_path_encode(BUS_DEVICE_PREFIX, name, ret);
}

/* Device-only eligibility: match, driver, group, regions; nobody's grants. */
static bool device_eligible(Bus *b, const TopoDevice *d) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};

        return policy_decide(b->cfg.host->policy, b->cfg.host->topology, d, NULL, NULL, &dec) >=
                       0 &&
               dec.allowed;
}

static int append_regions(sd_bus_message *m, const TopoGroup *g) {
        int r = sd_bus_message_open_container(m, 'a', "(tts)");

        for (size_t i = 0; r >= 0 && g && i < g->n_regions; i++)
                r = sd_bus_message_append(m, "(tts)", g->regions[i].start, g->regions[i].last,
                                          region_type_to_string(g->regions[i].type));
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static int append_decision(sd_bus_message *m, const PolicyDecision *dec) {
        int r = sd_bus_message_append(m, "b", dec->allowed);

        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(sss)");
        for (size_t i = 0; r >= 0 && i < dec->n_steps; i++)
                r = sd_bus_message_append(m, "(sss)", policy_step_to_string(dec->steps[i].step),
                                          policy_verdict_to_string(dec->steps[i].verdict),
                                          dec->steps[i].reason ?: "");
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* ---- org.iommud1.Manager properties -------------------------------------------------------- */

static int prop_version(sd_bus *bus, const char *path, const char *interface,
                        const char *property, sd_bus_message *reply, void *userdata,
                        sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

static int prop_backend(sd_bus *bus, const char *path, const char *interface,
                        const char *property, sd_bus_message *reply, void *userdata,
                        sd_bus_error *error) {
        Bus *b = userdata;

        return sd_bus_message_append(reply, "s", b->cfg.host->backend->ops->name);
}

static int prop_features(sd_bus *bus, const char *path, const char *interface,
                         const char *property, sd_bus_message *reply, void *userdata,
                         sd_bus_error *error) {
        Bus *b = userdata;
        const char *names[64];
        int n, r;

        n = backend_features_to_strv(b->cfg.host->backend->features, names, ELEMENTSOF(names));
        if (n < 0)
                return n;
        r = sd_bus_message_open_container(reply, 'a', "s");
        for (int i = 0; r >= 0 && i < n && i < (int)ELEMENTSOF(names); i++)
                r = sd_bus_message_append(reply, "s", names[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int prop_session_count(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error) {
        Bus *b = userdata;

        return sd_bus_message_append(reply, "u", (uint32_t)b->cfg.host->n_sessions);
}

static int prop_device_count(sd_bus *bus, const char *path, const char *interface,
                             const char *property, sd_bus_message *reply, void *userdata,
                             sd_bus_error *error) {
        Bus *b = userdata;

        return sd_bus_message_append(reply, "u", (uint32_t)b->cfg.host->topology->n_devices);
}

static int prop_policy_generation(sd_bus *bus, const char *path, const char *interface,
                                  const char *property, sd_bus_message *reply, void *userdata,
                                  sd_bus_error *error) {
        Bus *b = userdata;

        return sd_bus_message_append(reply, "t", policy_generation(b->cfg.host->policy));
}

/* ---- org.iommud1.Manager methods ----------------------------------------------------------- */

static int method_list_devices(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Bus *b = userdata;
        const Topology *t = b->cfg.host->topology;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sqqsubo)");
        for (size_t i = 0; r >= 0 && i < t->n_devices; i++) {
                const TopoDevice *d = t->devices[i];
                _cleanup_free_ char *path = NULL;

                r = device_path(d->name, &path);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "(sqqsubo)", d->name, d->vendor,
                                                  d->device, d->driver ?: "",
                                                  d->group ? d->group->id : UINT32_MAX,
                                                  device_eligible(b, d), path);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_groups(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Bus *b = userdata;
        const Topology *t = b->cfg.host->topology;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(usbasa(tts))");
        for (size_t i = 0; r >= 0 && i < t->n_groups; i++) {
                const TopoGroup *g = t->groups[i];

                r = sd_bus_message_open_container(reply, 'r', "usbasa(tts)");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "usb", g->id, g->type ?: "",
                                                  session_group_viable(g));
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "s");
                for (size_t k = 0; r >= 0 && k < g->n_devices; k++)
                        r = sd_bus_message_append(reply, "s", g->devices[k]->name);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = append_regions(reply, g);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Replies to call with the decision for device and who, or fills error. */
static int reply_explain(Bus *b, sd_bus_message *call, const char *device,
                         const ExplainSubject *who, sd_bus_error *error) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        BrokerError e = BROKER_ERROR_INIT;
        int r;

        r = explain_device_for(&EXPLAIN_SCOPE_HOST(b->cfg.host), device, who, &dec, &e);
        if (r < 0)
                return bus_error_from_broker(error, &e);
        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = append_decision(reply, &dec);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int run_explain(Bus *b, BusPending *p, PeerCreds **creds, sd_bus_error *error) {
        ExplainSubject who = EXPLAIN_SUBJECT_UID((uid_t)p->uid);

        who.caller = *creds;
        return reply_explain(b, bus_auth_get_call(p->auth), p->device, &who, error);
}

static int method_explain_device(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bus *b = userdata;
        const char *device;
        BusPending *p;
        uint32_t uid;
        int r;

        r = sd_bus_message_read(m, "su", &device, &uid);
        if (r < 0)
                return r;
        /* The device's own eligibility needs no authorization. */
        if (uid == UID_INVALID)
                return reply_explain(b, m, device, &EXPLAIN_SUBJECT_UID(UID_INVALID), error);
        /* About oneself: no authorization; about another user: manage. */
        r = bus_defer(b, m, BUS_POLKIT_ACTION_MANAGE, (uid_t)uid, run_explain, &p);
        if (r < 0)
                return r;
        p->uid = uid;
        p->device = strdup(device);
        if (!p->device) {
                bus_pending_free(p);
                return -ENOMEM;
        }
        return 1;
}

static int run_list_sessions(Bus *b, BusPending *p, PeerCreds **creds, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(bus_auth_get_call(p->auth), &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ossuusuu)");
        for (Session *s = b->cfg.host->sessions; r >= 0 && s; s = session_next(s)) {
                BusSession *bs = bus_session_from_core(b, s);
                const PeerCreds *c = session_creds(s);

                r = sd_bus_message_append(reply, "(ossuusuu)", bs ? bs->path : "/",
                                          bs ? "dbus" : "varlink", session_describe(s), c->uid,
                                          (uint32_t)c->pid, c->unit ?: "",
                                          (uint32_t)session_n_devices(s),
                                          (uint32_t)session_n_address_spaces(s));
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_sessions(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_defer(userdata, m, BUS_POLKIT_ACTION_MANAGE, UID_INVALID, run_list_sessions,
                         NULL);
}

static int run_reload(Bus *b, BusPending *p, PeerCreds **creds, sd_bus_error *error) {
        int r;

        log_info("Policy reload requested over D-Bus by uid %u.", (unsigned)(*creds)->uid);
        r = b->cfg.reload_policy(b->cfg.userdata);
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR_POLICY_INVALID,
                                         "The policy was not reloaded: %s; generation %" PRIu64
                                         " stays in force (see the daemon's log).",
                                         strerror(-r), policy_generation(b->cfg.host->policy));
        return sd_bus_reply_method_return(bus_auth_get_call(p->auth), "t",
                                          policy_generation(b->cfg.host->policy));
}

static int method_reload_policy(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_defer(userdata, m, BUS_POLKIT_ACTION_RELOAD, UID_INVALID, run_reload, NULL);
}

static int run_create_session(Bus *b, BusPending *p, PeerCreds **creds, sd_bus_error *error) {
        sd_bus_message *call = bus_auth_get_call(p->auth);
        BrokerError e = BROKER_ERROR_INIT;
        BusSession *bs;
        int r;

        r = bus_session_new(&bs, b, sd_bus_message_get_sender(call), *creds, &e);
        if (r < 0)
                return bus_error_from_broker(error, &e);
        *creds = NULL;
        return sd_bus_reply_method_return(call, "o", bs->path);
}

static int method_create_session(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_defer(userdata, m, BUS_POLKIT_ACTION_OPEN_SESSION, UID_INVALID,
                         run_create_session, NULL);
}

static int run_open_session(Bus *b, BusPending *p, PeerCreds **creds, sd_bus_error *error) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = broker_open_connection(b->cfg.broker, b->cfg.server, TAKE_PTR(*creds), &fd);
        if (r == -EDQUOT)
                return sd_bus_error_setf(error, BROKER_ERROR_QUOTA_EXCEEDED,
                                         "The caller has as many sessions as it may have.");
        /* The socket's total, the same refusal a client connecting itself reads. */
        if (r == -EUSERS)
                return sd_bus_error_setf(error, BROKER_ERROR_QUOTA_EXCEEDED,
                                         "iommud has as many connections as it may have.");
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(bus_auth_get_call(p->auth), "h", fd);
}

static int method_open_session(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_defer(userdata, m, BUS_POLKIT_ACTION_OPEN_SESSION, UID_INVALID,
                         run_open_session, NULL);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", prop_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Backend", "s", prop_backend, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Features", "as", prop_features, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SessionCount", "u", prop_session_count, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DeviceCount", "u", prop_device_count, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PolicyGeneration", "t", prop_policy_generation, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListDevices", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sqqsubo)", devices), method_list_devices, 0),
        SD_BUS_METHOD_WITH_ARGS("ListGroups", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(usbasa(tts))", groups), method_list_groups, 0),
        SD_BUS_METHOD_WITH_ARGS("ExplainDevice", SD_BUS_ARGS("s", device, "u", uid),
                                SD_BUS_RESULT("b", allowed, "a(sss)", steps),
                                method_explain_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListSessions", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(ossuusuu)", sessions), method_list_sessions,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReloadPolicy", SD_BUS_NO_ARGS, SD_BUS_RESULT("t", generation),
                                method_reload_policy, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateSession", SD_BUS_NO_ARGS, SD_BUS_RESULT("o", session),
                                method_create_session, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenSession", SD_BUS_NO_ARGS, SD_BUS_RESULT("h", socket),
                                method_open_session, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PrepareClaim",
                                SD_BUS_ARGS("s", claim_id, "as", devices, "u", uid, "u", gid, "s",
                                            unit),
                                SD_BUS_RESULT("s", spec, "s", cdi_device, "b", prepared),
                                bus_method_prepare_claim, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnprepareClaim", SD_BUS_ARGS("s", claim_id),
                                SD_BUS_RESULT("b", released), bus_method_unprepare_claim,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListClaims", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(suusassss)", claims), bus_method_list_claims,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceAdded", SD_BUS_ARGS("s", device, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceRemoved", SD_BUS_ARGS("s", device, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceReleaseRequested",
                                SD_BUS_ARGS("s", device, "o", path, "t", deadline), 0),
        SD_BUS_SIGNAL_WITH_ARGS("PolicyReloaded", SD_BUS_ARGS("t", generation), 0),
        SD_BUS_SIGNAL_WITH_ARGS("SessionOpened",
                                SD_BUS_ARGS("o", session, "u", uid, "s", description), 0),
        SD_BUS_SIGNAL_WITH_ARGS("SessionClosed",
                                SD_BUS_ARGS("o", session, "u", uid, "s", description), 0),
        SD_BUS_VTABLE_END,
};

/* ---- org.iommud1.Device --------------------------------------------------------------------- */

static int device_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                       void **ret_found, sd_bus_error *error) {
        Bus *b = userdata;
        _cleanup_free_ char *name = NULL;
        const TopoDevice *d;
        int r;

        r = sd_bus_path_decode(path, BUS_DEVICE_PREFIX, &name);
        if (r <= 0)
                return r;
        d = topology_find_device(b->cfg.host->topology, name);
        if (!d)
                return 0;
        *ret_found = (void *)d;
        return 1;
}

static int device_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
                            sd_bus_error *error) {
        Bus *b = userdata;
        const Topology *t = b->cfg.host->topology;
        char **nodes;

        nodes = calloc(t->n_devices + 1, sizeof(char *));
        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_devices; i++) {
                int r = device_path(t->devices[i]->name, &nodes[i]);

                if (r < 0) {
                        for (size_t k = 0; k < i; k++)
                                free(nodes[k]);
                        free(nodes);
                        return r;
                }
        }
        *ret_nodes = nodes;
        return 0;
}

/* A device property's userdata is the device; the Bus is the userdata of the fallback's slot. */
static Bus *device_bus(sd_bus *bus) {
        return sd_bus_slot_get_userdata(sd_bus_get_current_slot(bus));
}

#define DEVICE_PROPERTY(fn, sig, expr)                                                             \
        static int fn(sd_bus *bus, const char *path, const char *interface, const char *property,  \
                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {                \
                const TopoDevice *d = userdata;                                                    \
                return sd_bus_message_append(reply, sig, expr);                                    \
        }

DEVICE_PROPERTY(prop_dev_name, "s", d->name)
DEVICE_PROPERTY(prop_dev_vendor, "q", d->vendor)
DEVICE_PROPERTY(prop_dev_device, "q", d->device)
DEVICE_PROPERTY(prop_dev_class, "u", d->class)
DEVICE_PROPERTY(prop_dev_driver, "s", d->driver ?: "")
DEVICE_PROPERTY(prop_dev_cdev, "s", d->cdev_name ?: "")
DEVICE_PROPERTY(prop_dev_group, "u", d->group ? d->group->id : UINT32_MAX)
DEVICE_PROPERTY(prop_dev_iommu, "s", d->iommu ? d->iommu->name : "")

static int prop_dev_regions(sd_bus *bus, const char *path, const char *interface,
                            const char *property, sd_bus_message *reply, void *userdata,
                            sd_bus_error *error) {
        const TopoDevice *d = userdata;

        return append_regions(reply, d->group);
}

static int prop_dev_eligible(sd_bus *bus, const char *path, const char *interface,
                             const char *property, sd_bus_message *reply, void *userdata,
                             sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", device_eligible(device_bus(bus), userdata));
}

static int prop_dev_reason(sd_bus *bus, const char *path, const char *interface,
                           const char *property, sd_bus_message *reply, void *userdata,
                           sd_bus_error *error) {
        _cleanup_(policy_decision_clear) PolicyDecision dec = {};
        Bus *b = device_bus(bus);
        const char *reason = "";

        if (policy_decide(b->cfg.host->policy, b->cfg.host->topology, userdata, NULL,
                          NULL, &dec) >= 0 &&
            !dec.allowed)
                for (size_t i = 0; i < dec.n_steps; i++)
                        if (dec.steps[i].step == dec.failed_step)
                                reason = dec.steps[i].reason ?: "";
        return sd_bus_message_append(reply, "s", reason);
}

static int prop_dev_holder(sd_bus *bus, const char *path, const char *interface,
                           const char *property, sd_bus_message *reply, void *userdata,
                           sd_bus_error *error) {
        const TopoDevice *d = userdata;
        const char *held_by = session_host_device_held_by(device_bus(bus)->cfg.host, d->name,
                                                          NULL);

        return sd_bus_message_append(reply, "s", held_by ?: "");
}

static const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", prop_dev_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("VendorId", "q", prop_dev_vendor, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DeviceId", "q", prop_dev_device, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Class", "u", prop_dev_class, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Driver", "s", prop_dev_driver, 0, 0),
        SD_BUS_PROPERTY("Cdev", "s", prop_dev_cdev, 0, 0),
        SD_BUS_PROPERTY("Group", "u", prop_dev_group, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("IOMMU", "s", prop_dev_iommu, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ReservedRegions", "a(tts)", prop_dev_regions, 0,
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Eligible", "b", prop_dev_eligible, 0, 0),
        SD_BUS_PROPERTY("IneligibleReason", "s", prop_dev_reason, 0, 0),
        SD_BUS_PROPERTY("Holder", "s", prop_dev_holder, 0, 0),
        SD_BUS_VTABLE_END,
};

/* ---- signals -------------------------------------------------------------------------------- */

void bus_session_event(Bus *b, Session *s, SessionEvent event) {
        const PeerCreds *c = session_creds(s);
        bool opened = event == SESSION_OPENED;

        /* SessionClosed goes out once the counts no longer include the session. */
        if (!b || b->freeing || !b->has_name || event == SESSION_CLOSING)
                return;
        (void)sd_bus_emit_signal(b->bus, BUS_PATH, BUS_MANAGER_INTERFACE,
                                 opened ? "SessionOpened" : "SessionClosed", "ous",
                                 b->hook_path ?: "/", c->uid, session_describe(s));
        (void)sd_bus_emit_properties_changed(b->bus, BUS_PATH, BUS_MANAGER_INTERFACE,
                                             "SessionCount", NULL);
        bus_loop_kick(b->loop);
}

void bus_policy_reloaded(Bus *b) {
        if (!b || !b->has_name)
                return;
        (void)sd_bus_emit_signal(b->bus, BUS_PATH, BUS_MANAGER_INTERFACE, "PolicyReloaded", "t",
                                 policy_generation(b->cfg.host->policy));
        (void)sd_bus_emit_properties_changed(b->bus, BUS_PATH, BUS_MANAGER_INTERFACE,
                                             "PolicyGeneration", NULL);
        bus_loop_kick(b->loop);
}

static void emit_device(Bus *b, const char *name, bool added) {
        _cleanup_free_ char *path = NULL;

        if (device_path(name, &path) < 0)
                return;
        if (added)
                (void)sd_bus_emit_object_added(b->bus, path);
        else
                (void)sd_bus_emit_interfaces_removed(b->bus, path, BUS_DEVICE_INTERFACE, NULL);
        (void)sd_bus_emit_signal(b->bus, BUS_PATH, BUS_MANAGER_INTERFACE,
                                 added ? "DeviceAdded" : "DeviceRemoved", "so", name, path);
}

void bus_device_release_requested(Bus *b, const char *device, uint64_t deadline_usec) {
        _cleanup_free_ char *path = NULL;

        if (!b || b->freeing || !b->has_name || device_path(device, &path) < 0)
                return;
        (void)sd_bus_emit_signal(b->bus, BUS_PATH, BUS_MANAGER_INTERFACE,
                                 "DeviceReleaseRequested", "sot", device, path, deadline_usec);
        bus_loop_kick(b->loop);
}

void bus_topology_changed(Bus *b, const TopologyDiff *diff) {
        if (!b || !b->has_name)
                return;
        FOREACH_ARRAY(c, diff->changes, diff->n_changes)
                if (c->kind == TOPOLOGY_DEVICE_REMOVED)
                        emit_device(b, c->previous->name, false);
                else if (c->kind == TOPOLOGY_DEVICE_ADDED)
                        emit_device(b, c->device->name, true);
        (void)sd_bus_emit_properties_changed(b->bus, BUS_PATH, BUS_MANAGER_INTERFACE,
                                             "DeviceCount", NULL);
        bus_loop_kick(b->loop);
}

/* ---- connection ----------------------------------------------------------------------------- */

static void bus_drop_sessions(Bus *b) {
        while (b->sessions)
                bus_session_free(b->sessions);
        while (b->pending)
                bus_pending_free(b->pending);
}

static void on_disconnect(BusLoop *l, void *userdata) {
        Bus *b = userdata;

        log_warning("Lost the D-Bus connection; serving the socket only from now on.");
        b->has_name = false;
        /* Their owners can no longer reach them. */
        bus_drop_sessions(b);
}

static int on_name(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Bus *b = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e) {
                log_warning("Cannot own %s on the bus (%s); serving the socket only.", BUS_NAME,
                            e->message ?: e->name);
                return 0;
        }
        b->has_name = true;
        log_info("Acquired %s on the bus.", BUS_NAME);
        return 0;
}

int bus_new(Bus **ret, const BusConfig *cfg, Error *err) {
        _cleanup_(bus_freep) Bus *b = NULL;
        int r;

        b = calloc(1, sizeof(*b));
        if (!b)
                return error_set(err, -ENOMEM, "Out of memory.");
        b->cfg = *cfg;

        if (cfg->address) {
                r = sd_bus_new(&b->bus);
                if (r >= 0)
                        r = sd_bus_set_address(b->bus, cfg->address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(b->bus, true);
                if (r >= 0)
                        r = sd_bus_set_trusted(b->bus, false);
                if (r >= 0)
                        r = sd_bus_negotiate_fds(b->bus, true);
                if (r >= 0)
                        r = sd_bus_start(b->bus);
        } else
                r = sd_bus_open_system(&b->bus);
        if (r < 0)
                return error_set(err, r, "Connecting to the bus %s failed: %s",
                                 cfg->address ?: "(system)", strerror(-r));
        (void)sd_bus_set_description(b->bus, "iommud");

        r = sd_bus_add_object_vtable(b->bus, NULL, BUS_PATH, BUS_MANAGER_INTERFACE,
                                     manager_vtable, b);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(b->bus, NULL, BUS_DEVICE_PREFIX,
                                               BUS_DEVICE_INTERFACE, device_vtable, device_find,
                                               b);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(b->bus, NULL, BUS_DEVICE_PREFIX,
                                               device_enumerate, b);
        if (r >= 0)
                r = bus_session_register(b);
        if (r >= 0)
                r = sd_bus_add_object_manager(b->bus, NULL, BUS_PATH);
        if (r < 0)
                return error_set(err, r, "Registering the D-Bus objects failed: %s",
                                 strerror(-r));
        r = sd_bus_request_name_async(b->bus, NULL, BUS_NAME, 0, on_name, b);
        if (r < 0)
                return error_set(err, r, "Requesting %s failed: %s", BUS_NAME, strerror(-r));
        r = bus_loop_new(&b->loop, cfg->base, b->bus, on_disconnect, b);
        if (r < 0)
                return error_set(err, r, "Attaching the bus to the event loop failed: %s",
                                 strerror(-r));

        *ret = TAKE_PTR(b);
        return 0;
}

Bus *bus_free(Bus *b) {
        if (!b)
                return NULL;
        b->freeing = true;
        bus_drop_sessions(b);
        b->loop = bus_loop_free(b->loop);
        /* Writes what is queued (the last SessionClosed signals) before closing. */
        b->bus = sd_bus_flush_close_unref(b->bus);
        free(b);
        return NULL;
}
