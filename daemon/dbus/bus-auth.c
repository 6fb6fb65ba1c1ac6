/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "bus-auth.h"
#include "log.h"

struct BusAuth {
        sd_bus *bus;
        sd_bus_message *call;
        char *action;
        char *proc_root;
        uid_t exempt_uid;
        sd_bus_slot *slot;
        PeerCreds *creds;
        BusAuthFn cb;
        void *userdata;
};

/* polkit's CheckAuthorizationFlags */
#define POLKIT_ALLOW_USER_INTERACTION 1u

BusAuth *bus_auth_free(BusAuth *a) {
        if (!a)
                return NULL;
        sd_bus_slot_unref(a->slot);
        sd_bus_message_unref(a->call);
        sd_bus_unref(a->bus);
        peer_creds_free(a->creds);
        free(a->action);
        free(a->proc_root);
        free(a);
        return NULL;
}

sd_bus_message *bus_auth_get_call(BusAuth *a) {
        return a->call;
}

static void bus_auth_done(BusAuth *a, int r, const char *name, const char *message) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        a->slot = sd_bus_slot_unref(a->slot);
        if (r <= 0)
                (void)sd_bus_error_set(&error, name ?: SD_BUS_ERROR_ACCESS_DENIED, message);
        a->cb(a, r, &error, &a->creds, a->userdata);
}

static int on_check_authorization(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusAuth *a = userdata;
        const sd_bus_error *e;
        int authorized, challenge, r;

        e = sd_bus_message_get_error(reply);
        if (e) {
                /* No polkit on the bus, or it failed: nobody but root is allowed. */
                log_debug("polkit check of %s failed: %s: %s", a->action, e->name, e->message);
                bus_auth_done(a, 0, SD_BUS_ERROR_ACCESS_DENIED,
                              "Authorization could not be checked: polkit is unavailable.");
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0) {
                bus_auth_done(a, r, SD_BUS_ERROR_ACCESS_DENIED,
                              "Authorization could not be checked: malformed polkit reply.");
                return 0;
        }
        if (authorized) {
                bus_auth_done(a, 1, NULL, NULL);
                return 0;
        }
        if (challenge && !sd_bus_message_get_allow_interactive_authorization(a->call)) {
                bus_auth_done(a, 0, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                              "Interactive authentication is required for this action; call "
                              "with interactive authorization allowed.");
                return 0;
        }
        bus_auth_done(a, 0, SD_BUS_ERROR_ACCESS_DENIED, "Not authorized by polkit.");
        return 0;
}

static int bus_auth_polkit(BusAuth *a) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        uint32_t flags = 0;
        int r;

        if (sd_bus_message_get_allow_interactive_authorization(a->call))
                flags |= POLKIT_ALLOW_USER_INTERACTION;
        r = sd_bus_message_new_method_call(a->bus, &m, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority",
                                           "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s",
                                  sd_bus_message_get_sender(a->call), a->action, 0, flags, "");
        if (r < 0)
                return r;
        /* A user answering an authentication dialog may take a while. */
        return sd_bus_call_async(a->bus, &a->slot, m, on_check_authorization, a,
                                 flags ? UINT64_C(300000000) : 0);
}

static int read_groups(sd_bus_message *m, gid_t **ret, size_t *ret_n) {
        _cleanup_free_ gid_t *g = NULL;
        const void *p;
        size_t sz;
        int r;

        r = sd_bus_message_read_array(m, 'u', &p, &sz);
        if (r < 0)
                return r;
        if (sz > 0) {
                g = malloc(sz);
                if (!g)
                        return -ENOMEM;
                memcpy(g, p, sz);
        }
        *ret = TAKE_PTR(g);
        *ret_n = sz / sizeof(uint32_t);
        return 0;
}

/* The real gid of pid from its /proc entry; the bus driver does not record it. */
static gid_t pid_gid(pid_t pid, uid_t fallback) {
        sd_bus_creds *c = NULL;
        gid_t gid = (gid_t)fallback;

        if (sd_bus_creds_new_from_pid(&c, pid, SD_BUS_CREDS_GID) >= 0)
                (void)sd_bus_creds_get_gid(c, &gid);
        sd_bus_creds_unref(c);
        return gid;
}

static int on_credentials(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusAuth *a = userdata;
        _cleanup_free_ gid_t *groups = NULL;
        size_t n_groups = 0;
        bool have_groups = false;
        uint32_t uid = UINT32_MAX, pid = 0;
        const sd_bus_error *e;
        Error err = ERROR_INIT;
        int r;

        e = sd_bus_message_get_error(reply);
        if (e) {
                bus_auth_done(a, -ESRCH, SD_BUS_ERROR_ACCESS_DENIED,
                              "The caller's credentials are unknown to the bus.");
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r > 0) {
                const char *key;

                r = sd_bus_message_enter_container(reply, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        break;
                if (streq(key, "UnixUserID"))
                        r = sd_bus_message_read(reply, "v", "u", &uid);
                else if (streq(key, "ProcessID"))
                        r = sd_bus_message_read(reply, "v", "u", &pid);
                else if (streq(key, "UnixGroupIDs")) {
                        r = sd_bus_message_enter_container(reply, 'v', "au");
                        if (r >= 0)
                                r = read_groups(reply, &groups, &n_groups);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                        have_groups = r >= 0;
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        break;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        break;
                r = 1;
        }
        if (r < 0 || uid == UINT32_MAX) {
                bus_auth_done(a, r < 0 ? r : -EPROTO, SD_BUS_ERROR_ACCESS_DENIED,
                              "The bus reported no user id for the caller.");
                return 0;
        }
        r = peer_creds_new(&a->creds, a->proc_root, (pid_t)pid, (uid_t)uid,
                           pid > 0 ? pid_gid((pid_t)pid, uid) : (gid_t)uid, &err);
        if (r < 0) {
                bus_auth_done(a, r, SD_BUS_ERROR_NO_MEMORY, error_message(&err));
                return 0;
        }
        /* The groups the bus recorded at connect time are the authoritative ones. */
        if (have_groups) {
                free(a->creds->groups);
                a->creds->groups = TAKE_PTR(groups);
                a->creds->n_groups = n_groups;
        }

        a->slot = sd_bus_slot_unref(a->slot);
        if (!a->action || uid == 0 || (uid_t)uid == a->exempt_uid) {
                bus_auth_done(a, 1, NULL, NULL);
                return 0;
        }
        r = bus_auth_polkit(a);
        if (r < 0)
                bus_auth_done(a, r, SD_BUS_ERROR_ACCESS_DENIED,
                              "Authorization could not be checked: asking polkit failed.");
        return 0;
}

int bus_auth_start(BusAuth **ret, sd_bus *bus, sd_bus_message *call, const char *action,
                   uid_t exempt_uid, const char *proc_root, BusAuthFn cb, void *userdata) {
        _cleanup_(bus_auth_freep) BusAuth *a = NULL;
        const char *sender = sd_bus_message_get_sender(call);
        int r;

        if (!sender)
                return -EBADMSG;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->bus = sd_bus_ref(bus);
        a->call = sd_bus_message_ref(call);
        a->exempt_uid = exempt_uid;
        a->cb = cb;
        a->userdata = userdata;
        a->action = action ? strdup(action) : NULL;
        a->proc_root = proc_root ? strdup(proc_root) : NULL;
        if ((action && !a->action) || (proc_root && !a->proc_root))
                return -ENOMEM;
        r = sd_bus_call_method_async(bus, &a->slot, "org.freedesktop.DBus",
                                     "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                     "GetConnectionCredentials", on_credentials, a, "s", sender);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}
