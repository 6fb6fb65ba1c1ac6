/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "backend-names.h"
#include "bus-errors.h"
#include "bus-internal.h"
#include "log.h"

/* ---- lifetime ------------------------------------------------------------------------------ */

static int on_owner_gone(sd_bus_track *t, void *userdata) {
        BusSession *bs = userdata;

        log_debug("The owner %s of %s left; ending its session.", bs->owner, bs->path);
        bus_session_free(bs);
        return 0;
}

int bus_session_new(BusSession **ret, Bus *b, const char *owner, PeerCreds *creds,
                    BrokerError *err) {
        BusSession *bs;
        int r;

        bs = calloc(1, sizeof(*bs));
        if (!bs)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        bs->bus = b;
        bs->id = ++b->next_session_id;
        snprintf(bs->path, sizeof(bs->path), BUS_SESSION_PREFIX "/%" PRIu64, bs->id);
        bs->owner = strdup(owner);
        if (!bs->owner) {
                free(bs);
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        }
        /*
         * The session ends when the connection that made it leaves the bus.
         * sd_bus_track_add_name() asks the bus driver itself (AddMatch, then
         * whether the name still exists, so an owner that left meanwhile is
         * refused here); those are the only calls that wait for a reply, and
         * only for the bus driver, which answers from memory.
         */
        r = sd_bus_track_new(b->bus, &bs->track, on_owner_gone, bs);
        if (r >= 0)
                r = sd_bus_track_add_name(bs->track, owner);
        if (r < 0) {
                sd_bus_track_unref(bs->track);
                free(bs->owner);
                free(bs);
                return broker_error_system(err, r, "Tracking the caller on the bus");
        }

        b->hook_path = bs->path;
        r = session_new(&bs->session, b->cfg.host, creds, err);
        b->hook_path = NULL;
        if (r < 0) {
                sd_bus_track_unref(bs->track);
                free(bs->owner);
                free(bs);
                return r;
        }
        bs->next = b->sessions;
        if (bs->next)
                bs->next->prev = bs;
        b->sessions = bs;
        (void)sd_bus_emit_object_added(b->bus, bs->path);
        log_debug("D-Bus session %s for %s (%s) opened.", bs->path, session_describe(bs->session),
                  owner);
        *ret = bs;
        return 0;
}

BusSession *bus_session_free(BusSession *bs) {
        Bus *b;

        if (!bs)
                return NULL;
        b = bs->bus;
        if (bs->prev)
                bs->prev->next = bs->next;
        else if (b->sessions == bs)
                b->sessions = bs->next;
        if (bs->next)
                bs->next->prev = bs->prev;

        if (!b->freeing && b->has_name)
                (void)sd_bus_emit_interfaces_removed(b->bus, bs->path, BUS_SESSION_INTERFACE,
                                                     NULL);
        /* Watches go first: the session must outlive them. */
        for (size_t i = 0; i < bs->n_watches; i++)
                fault_watch_free(bs->watches[i]);
        free(bs->watches);
        b->hook_path = bs->path;
        session_free(bs->session);
        b->hook_path = NULL;
        sd_bus_track_unref(bs->track);
        free(bs->owner);
        free(bs);
        bus_loop_kick(b->loop);
        return NULL;
}

BusSession *bus_session_find_path(Bus *b, const char *path) {
        for (BusSession *bs = b->sessions; bs; bs = bs->next)
                if (streq(bs->path, path))
                        return bs;
        return NULL;
}

BusSession *bus_session_from_core(Bus *b, const Session *s) {
        for (BusSession *bs = b->sessions; bs; bs = bs->next)
                if (bs->session == s)
                        return bs;
        return NULL;
}

/* A fault record as the Fault signal, to the owner only: it says what its device touched. */
static int deliver_fault(FaultWatch *w, const FaultEvent *ev, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        BusSession *bs = userdata;
        Bus *b = bs->bus;
        int r;

        if (!b->has_name)
                return -ENOTCONN;
        r = sd_bus_message_new_signal(b->bus, &m, bs->path, BUS_SESSION_INTERFACE, "Fault");
        if (r >= 0)
                r = sd_bus_message_append(m, "tuuuutub", ev->cookie, ev->device_id,
                                          ev->pasid_valid ? ev->pasid : UINT32_MAX, ev->group_id,
                                          ev->perm, ev->address, ev->length, ev->last_page);
        if (r >= 0)
                r = sd_bus_message_set_destination(m, bs->owner);
        if (r >= 0)
                r = sd_bus_send(b->bus, m, NULL);
        bus_loop_kick(b->loop);
        return r < 0 ? r : 0;
}

/* ---- objects ------------------------------------------------------------------------------- */

static int session_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                        void **ret_found, sd_bus_error *error) {
        BusSession *bs = bus_session_find_path(userdata, path);

        if (!bs)
                return 0;
        *ret_found = bs;
        return 1;
}

static int session_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
                             sd_bus_error *error) {
        Bus *b = userdata;
        size_t n = 0, i = 0;
        char **nodes;

        for (BusSession *bs = b->sessions; bs; bs = bs->next)
                n++;
        nodes = calloc(n + 1, sizeof(char *));
        if (!nodes)
                return -ENOMEM;
        for (BusSession *bs = b->sessions; bs; bs = bs->next) {
                nodes[i] = strdup(bs->path);
                if (!nodes[i]) {
                        while (i > 0)
                                free(nodes[--i]);
                        free(nodes);
                        return -ENOMEM;
                }
                i++;
        }
        *ret_nodes = nodes;
        return 0;
}

int bus_session_register(Bus *b) {
        int r;

        r = sd_bus_add_fallback_vtable(b->bus, NULL, BUS_SESSION_PREFIX, BUS_SESSION_INTERFACE,
                                       bus_session_vtable, session_find, b);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(b->bus, NULL, BUS_SESSION_PREFIX, session_enumerate, b);
}

/* ---- methods ------------------------------------------------------------------------------- */

int bus_session_check_owner(sd_bus_message *m, BusSession *bs, sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(m);

        if (!sender || !streq(sender, bs->owner))
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Session %s belongs to another connection; only its "
                                         "creator may call it.",
                                         bs->path);
        return 0;
}

static int reply_device_info(sd_bus_message *m, const SessionDeviceInfo *info) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *names[16];
        int n, r;

        n = backend_hw_caps_to_strv(info->capabilities, names, ELEMENTSOF(names));
        if (n < 0)
                return n;
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "usuy", info->device_id, info->bdf, info->group,
                                          info->pasid_bits);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "s");
        for (int i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(reply, "s", names[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_attach_device(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        SessionDeviceInfo info;
        int fd, r;

        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        if (session_attach_device_fd(bs->session, fd, &info, &e) < 0)
                return bus_error_from_broker(error, &e);
        return reply_device_info(m, &info);
}

static int method_attach_device_by_name(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        SessionDeviceInfo info;
        const char *name;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        if (session_attach_device_name(bs->session, name, &info, &e) < 0)
                return bus_error_from_broker(error, &e);
        return reply_device_info(m, &info);
}

static int method_detach_device(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        uint32_t id;
        int r;

        r = sd_bus_message_read(m, "u", &id);
        if (r < 0)
                return r;
        if (session_detach_device(bs->session, id, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_create_address_space(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        uint32_t id;

        if (session_create_address_space(bs->session, &id, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, "u", id);
}

static int method_destroy_address_space(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        uint32_t id;
        int r;

        r = sd_bus_message_read(m, "u", &id);
        if (r < 0)
                return r;
        if (session_destroy_address_space(bs->session, id, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_attach_to_address_space(sd_bus_message *m, void *userdata,
                                          sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        uint32_t dev, ioas, hwpt;
        int r;

        r = sd_bus_message_read(m, "uu", &dev, &ioas);
        if (r < 0)
                return r;
        if (session_attach_to_address_space(bs->session, dev, ioas, &hwpt, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, "u", hwpt);
}

static int method_create_dirty_tracking_address_space(sd_bus_message *m, void *userdata,
                                                      sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        uint32_t id;

        if (session_create_address_space_full(bs->session, true, &id, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, "u", id);
}

static int method_set_dirty_tracking(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        uint32_t id;
        int enabled, r;

        r = sd_bus_message_read(m, "ub", &id, &enabled);
        if (r < 0)
                return r;
        if (session_set_dirty_tracking(bs->session, id, enabled, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_read_dirty_bitmap(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        SessionDirtyArgs a = {};
        int clear, r;

        r = sd_bus_message_read(m, "utttbh", &a.ioas_id, &a.iova, &a.length, &a.page_size, &clear,
                                &a.bitmap_fd);
        if (r < 0)
                return r;
        a.clear = clear;
        if (session_read_dirty_bitmap(bs->session, &a, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_unmap_dirty(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        SessionDirtyArgs a = {};
        uint64_t unmapped;
        int r;

        r = sd_bus_message_read(m, "uttth", &a.ioas_id, &a.iova, &a.length, &a.page_size,
                                &a.bitmap_fd);
        if (r < 0)
                return r;
        if (session_unmap_dirty(bs->session, &a, &unmapped, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, "t", unmapped);
}

static int append_strv(sd_bus_message *reply, const char *const *names, int n) {
        int r = sd_bus_message_open_container(reply, 'a', "s");

        for (int i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(reply, "s", names[i]);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

/* device_id 0: no device (iommufd never gives out id 0). */
static int method_get_features(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *names[32], *caps[16];
        SessionFeatures f;
        uint32_t id;
        int n, n_caps, r;

        r = sd_bus_message_read(m, "u", &id);
        if (r < 0)
                return r;
        if (session_get_features(bs->session, id != 0, id, &f, &e) < 0)
                return bus_error_from_broker(error, &e);
        n = backend_features_to_strv(f.kernel, names, ELEMENTSOF(names));
        n_caps = backend_hw_caps_to_strv(f.hw.capabilities, caps, ELEMENTSOF(caps));
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", f.backend);
        if (r >= 0)
                r = append_strv(reply, names, MAX(n, 0));
        if (r >= 0)
                r = append_strv(reply, caps, f.has_device ? MAX(n_caps, 0) : 0);
        if (r >= 0)
                r = sd_bus_message_append(reply, "a(sbb)", 2, "dirty-tracking",
                                          f.dirty_tracking_offered, f.dirty_tracking_granted,
                                          "delegation", f.delegation_offered,
                                          f.delegation_granted);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_copy(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        SessionCopyArgs a = {};
        uint32_t flags;
        uint64_t iova;
        int r;

        r = sd_bus_message_read(m, "ututtu", &a.src_ioas_id, &a.src_iova, &a.dst_ioas_id,
                                &a.dst_iova, &a.length, &flags);
        if (r < 0)
                return r;
        if (flags & ~BUS_MAP_FIXED_IOVA)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Unknown Copy flags 0x%" PRIx32 ".",
                                         flags & ~BUS_MAP_FIXED_IOVA);
        a.fixed_iova = flags & BUS_MAP_FIXED_IOVA;
        if (session_copy(bs->session, &a, &iova, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, "t", iova);
}

static int method_bind_pasid(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        SessionBindPasidArgs a = {};
        const char *stage1_type;
        const void *data;
        uint32_t flags, pasid, hwpt;
        size_t len;
        int r;

        r = sd_bus_message_read(m, "uuuus", &a.device_id, &a.ioas_id, &a.pasid, &flags,
                                &stage1_type);
        if (r >= 0)
                r = sd_bus_message_read_array(m, 'y', &data, &len);
        if (r < 0)
                return r;
        if (flags & ~(BUS_PASID_FIXED | BUS_PASID_FAULTS))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Unknown BindPASID flags 0x%" PRIx32 ".",
                                         flags & ~(BUS_PASID_FIXED | BUS_PASID_FAULTS));
        a.has_pasid = flags & BUS_PASID_FIXED;
        a.faults = flags & BUS_PASID_FAULTS;
        if (streq(stage1_type, ""))
                a.stage1_type = BACKEND_HWPT_DATA_NONE;
        else if (backend_stage1_type_from_string(stage1_type, &a.stage1_type) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Stage-1 type '%s' is neither \"\" (none) nor a "
                                         "stage-1 type of org.iommud1(5).",
                                         stage1_type);
        if (a.stage1_type != BACKEND_HWPT_DATA_NONE) {
                a.stage1_data = data;
                a.stage1_len = len;
        }
        if (session_bind_pasid(bs->session, &a, &pasid, &hwpt, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, "uu", pasid, hwpt);
}

static int method_unbind_pasid(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        uint32_t dev, pasid;
        int r;

        r = sd_bus_message_read(m, "uu", &dev, &pasid);
        if (r < 0)
                return r;
        if (session_unbind_pasid(bs->session, dev, pasid, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_watch_faults(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        FaultWatch **a, *w = NULL;
        uint32_t dev;
        int r;

        r = sd_bus_message_read(m, "u", &dev);
        if (r < 0)
                return r;
        a = realloc(bs->watches, (bs->n_watches + 1) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        bs->watches = a;
        /* Faults already queued may be signalled from inside, just before the reply. */
        if (session_watch_faults(bs->session, dev, deliver_fault, bs, &w, &e) < 0)
                return bus_error_from_broker(error, &e);
        bs->watches[bs->n_watches++] = w;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_respond_fault(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        uint64_t cookie;
        uint32_t code;
        int r;

        r = sd_bus_message_read(m, "tu", &cookie, &code);
        if (r < 0)
                return r;
        if (session_respond_fault(bs->session, cookie, code, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_get_device_fd(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        _cleanup_close_ int fd = -EBADF;
        uint32_t id;
        int r;

        r = sd_bus_message_read(m, "u", &id);
        if (r < 0)
                return r;
        if (session_device_fd(bs->session, id, &fd, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, "h", fd);
}

static int method_delegate(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        _cleanup_close_ int fd = -EBADF;

        if (session_delegate(bs->session, &fd, &e) < 0)
                return bus_error_from_broker(error, &e);
        return sd_bus_reply_method_return(m, "h", fd);
}

static int method_close(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SESSION_CALL(m, userdata, error);
        int r;

        (void)e;
        r = sd_bus_reply_method_return(m, NULL);
        bus_session_free(bs);
        return r;
}

/* ---- properties ---------------------------------------------------------------------------- */

static int prop_owner(sd_bus *bus, const char *path, const char *interface, const char *property,
                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusSession *bs = userdata;

        return sd_bus_message_append(reply, "s", bs->owner);
}

static int prop_creds(sd_bus *bus, const char *path, const char *interface, const char *property,
                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const PeerCreds *c = session_creds(((BusSession *)userdata)->session);

        if (streq(property, "UserId"))
                return sd_bus_message_append(reply, "u", c->uid);
        if (streq(property, "GroupId"))
                return sd_bus_message_append(reply, "u", c->gid);
        if (streq(property, "ProcessId"))
                return sd_bus_message_append(reply, "u", (uint32_t)c->pid);
        return sd_bus_message_append(reply, "s", c->unit ?: "");
}

static int prop_counts(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const Session *s = ((BusSession *)userdata)->session;

        return sd_bus_message_append(reply, "u",
                                     (uint32_t)(streq(property, "Devices")
                                                        ? session_n_devices(s)
                                                        : session_n_address_spaces(s)));
}

static int prop_usage(sd_bus *bus, const char *path, const char *interface, const char *property,
                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const Session *s = ((BusSession *)userdata)->session;
        SessionUsage rows[SESSION_USAGE_MAX];
        SessionInfo info;
        size_t n_rows;
        int r;

        /* Usage: this session's share; PrincipalUsage: what its uid holds on every transport. */
        bool principal = streq(property, "PrincipalUsage");

        session_get_info(s, &info);
        n_rows = session_usage_rows(&info, rows);
        r = sd_bus_message_open_container(reply, 'a', "(stt)");
        for (size_t i = 0; r >= 0 && i < n_rows; i++)
                r = sd_bus_message_append(reply, "(stt)", rows[i].resource,
                                          principal ? rows[i].principal_used : rows[i].used,
                                          rows[i].limit);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

const sd_bus_vtable bus_session_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Owner", "s", prop_owner, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UserId", "u", prop_creds, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("GroupId", "u", prop_creds, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ProcessId", "u", prop_creds, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Unit", "s", prop_creds, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Devices", "u", prop_counts, 0, 0),
        SD_BUS_PROPERTY("AddressSpaces", "u", prop_counts, 0, 0),
        SD_BUS_PROPERTY("Usage", "a(stt)", prop_usage, 0, 0),
        SD_BUS_PROPERTY("PrincipalUsage", "a(stt)", prop_usage, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("AttachDevice", SD_BUS_ARGS("h", fd),
                                SD_BUS_RESULT("u", device_id, "s", bdf, "u", group, "y",
                                              pasid_bits, "as", capabilities),
                                method_attach_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AttachDeviceByName", SD_BUS_ARGS("s", device),
                                SD_BUS_RESULT("u", device_id, "s", bdf, "u", group, "y",
                                              pasid_bits, "as", capabilities),
                                method_attach_device_by_name, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DetachDevice", SD_BUS_ARGS("u", device_id), SD_BUS_NO_RESULT,
                                method_detach_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetDeviceFd", SD_BUS_ARGS("u", device_id),
                                SD_BUS_RESULT("h", device_fd), method_get_device_fd,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateAddressSpace", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("u", ioas_id), method_create_address_space,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DestroyAddressSpace", SD_BUS_ARGS("u", ioas_id),
                                SD_BUS_NO_RESULT, method_destroy_address_space,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AttachToAddressSpace", SD_BUS_ARGS("u", device_id, "u", ioas_id),
                                SD_BUS_RESULT("u", hwpt_id), method_attach_to_address_space,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetIOVARanges", SD_BUS_ARGS("u", ioas_id),
                                SD_BUS_RESULT("a(tt)", ranges, "t", alignment),
                                bus_method_get_iova_ranges, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AllowIOVAs", SD_BUS_ARGS("u", ioas_id, "a(tt)", ranges),
                                SD_BUS_NO_RESULT, bus_method_allow_iovas,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Map",
                                SD_BUS_ARGS("u", ioas_id, "h", memory_fd, "t", offset, "t",
                                            length, "t", iova, "u", flags),
                                SD_BUS_RESULT("t", iova), bus_method_map,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unmap", SD_BUS_ARGS("u", ioas_id, "t", iova, "t", length),
                                SD_BUS_RESULT("t", unmapped), bus_method_unmap,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MapBatch",
                                SD_BUS_ARGS("u", ioas_id, "ah", memory_fds, "a(utttu)", areas),
                                SD_BUS_RESULT("at", iovas), bus_method_map_batch,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnmapBatch", SD_BUS_ARGS("u", ioas_id, "a(tt)", ranges),
                                SD_BUS_RESULT("t", unmapped), bus_method_unmap_batch,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateDirtyTrackingAddressSpace", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("u", ioas_id),
                                method_create_dirty_tracking_address_space,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetDirtyTracking", SD_BUS_ARGS("u", ioas_id, "b", enabled),
                                SD_BUS_NO_RESULT, method_set_dirty_tracking,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReadDirtyBitmap",
                                SD_BUS_ARGS("u", ioas_id, "t", iova, "t", length, "t", page_size,
                                            "b", clear, "h", bitmap_fd),
                                SD_BUS_NO_RESULT, method_read_dirty_bitmap,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnmapDirty",
                                SD_BUS_ARGS("u", ioas_id, "t", iova, "t", length, "t", page_size,
                                            "h", bitmap_fd),
                                SD_BUS_RESULT("t", unmapped), method_unmap_dirty,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetFeatures", SD_BUS_ARGS("u", device_id),
                                SD_BUS_RESULT("s", backend, "as", kernel, "as", capabilities,
                                              "a(sbb)", policy),
                                method_get_features, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Copy",
                                SD_BUS_ARGS("u", src_ioas_id, "t", src_iova, "u", dst_ioas_id, "t",
                                            dst_iova, "t", length, "u", flags),
                                SD_BUS_RESULT("t", iova), method_copy, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("BindPASID",
                                SD_BUS_ARGS("u", device_id, "u", ioas_id, "u", pasid, "u", flags,
                                            "s", stage1_type, "ay", stage1_data),
                                SD_BUS_RESULT("u", pasid, "u", hwpt_id), method_bind_pasid,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnbindPASID", SD_BUS_ARGS("u", device_id, "u", pasid),
                                SD_BUS_NO_RESULT, method_unbind_pasid, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("WatchFaults", SD_BUS_ARGS("u", device_id), SD_BUS_NO_RESULT,
                                method_watch_faults, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RespondFault", SD_BUS_ARGS("t", cookie, "u", code),
                                SD_BUS_NO_RESULT, method_respond_fault,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Delegate", SD_BUS_NO_ARGS, SD_BUS_RESULT("h", iommufd),
                                method_delegate, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenDevices", SD_BUS_ARGS("as", devices),
                                SD_BUS_RESULT("h", iommufd, "a(shsu)", devices),
                                bus_session_method_open_devices, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReleaseDevices", SD_BUS_ARGS("as", devices), SD_BUS_NO_RESULT,
                                bus_session_method_release_devices, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Close", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_close,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Fault",
                                SD_BUS_ARGS("t", cookie, "u", device_id, "u", pasid, "u",
                                            group_id, "u", perm, "t", address, "u", length, "b",
                                            last_page),
                                0),
        SD_BUS_VTABLE_END,
};
