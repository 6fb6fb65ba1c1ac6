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
        uint64_t received_usec; /* when the call came, the latest its sender can have started */
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

/* What GetConnectionCredentials says of the caller, as the bus recorded it when it connected. */
typedef struct BusCreds {
        uint32_t uid;      /* UINT32_MAX: not given */
        uint32_t pid;      /* 0: not given */
        gid_t *groups;     /* UnixGroupIDs: the bus's SO_PEERGROUPS */
        size_t n_groups;
        int pidfd;         /* ProcessFD (dbus-broker, newer dbus-daemon), borrowed from the reply */
} BusCreds;

static int read_credential(sd_bus_message *m, BusCreds *bc) {
        const char *key;
        int r;

        r = sd_bus_message_read(m, "s", &key);
        if (r < 0)
                return r;
        if (streq(key, "UnixUserID"))
                return sd_bus_message_read(m, "v", "u", &bc->uid);
        if (streq(key, "ProcessID"))
                return sd_bus_message_read(m, "v", "u", &bc->pid);
        if (streq(key, "ProcessFD"))
                return sd_bus_message_read(m, "v", "h", &bc->pidfd);
        if (!streq(key, "UnixGroupIDs"))
                return sd_bus_message_skip(m, "v");
        r = sd_bus_message_enter_container(m, 'v', "au");
        if (r >= 0)
                r = read_groups(m, &bc->groups, &bc->n_groups);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r;
}

static int read_credentials(sd_bus_message *m, BusCreds *bc) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r > 0) {
                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r <= 0)
                        break;
                r = read_credential(m, bc);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = 1;
        }
        if (r >= 0 && bc->uid == UINT32_MAX)
                r = -EPROTO;
        return r;
}

static int on_credentials(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusAuth *a = userdata;
        BusCreds bc = { .uid = UINT32_MAX, .pidfd = -EBADF };
        _cleanup_free_ gid_t *groups = NULL;
        Error err = ERROR_INIT;
        int r;

        if (sd_bus_message_get_error(reply)) {
                bus_auth_done(a, -ESRCH, SD_BUS_ERROR_ACCESS_DENIED,
                              "The caller's credentials are unknown to the bus.");
                return 0;
        }
        r = read_credentials(reply, &bc);
        groups = bc.groups;
        if (r < 0) {
                bus_auth_done(a, r, SD_BUS_ERROR_ACCESS_DENIED,
                              "The bus reported no user id for the caller.");
                return 0;
        }
        /* The gid and the unit are /proc's to say, checked against the process as the socket is. */
        r = peer_creds_from_source(&a->creds,
                                   &(PeerCredsSource){
                                           .uid = (uid_t)bc.uid,
                                           .gid = GID_INVALID,
                                           .groups = bc.groups,
                                           .n_groups = bc.n_groups,
                                           .process = { .pid = (pid_t)bc.pid,
                                                        .pidfd = bc.pidfd,
                                                        .accepted_usec = a->received_usec },
                                           .proc_root = a->proc_root,
                                   },
                                   &err);
        if (r < 0) {
                bus_auth_done(a, r, SD_BUS_ERROR_NO_MEMORY, error_message(&err));
                return 0;
        }

        a->slot = sd_bus_slot_unref(a->slot);
        if (!a->action || bc.uid == 0 || (uid_t)bc.uid == a->exempt_uid) {
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
        a->received_usec = peer_process_now();
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
