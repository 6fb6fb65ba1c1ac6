/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud1.Manager: runtime claims (PrepareClaim, UnprepareClaim, ListClaims), the same
 * as org.iommud.Manager's on the socket, behind polkit's org.iommud1.claim.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-bus.h>

#include "bus-errors.h"
#include "bus-internal.h"
#include "cdi.h"
#include "log.h"
#include "session-handoff.h"

static void strv_freep(char ***a) {
        for (char **s = *a; s && *s; s++)
                free(*s);
        free(*a);
}

static void claims_changed(Bus *b) {
        if (b->cfg.claims_changed)
                b->cfg.claims_changed(b->cfg.userdata);
}

static int reply_claim(sd_bus_message *call, const RuntimeClaims *t, const char *id, bool prepared) {
        char cdi_device[256];
        RuntimeClaimInfo c;

        for (size_t i = 0; runtime_claims_get(t, i, &c) >= 0; i++)
                if (streq(c.id, id)) {
                        snprintf(cdi_device, sizeof(cdi_device), "%s=%s", CDI_CLAIM_KIND, c.id);
                        return sd_bus_reply_method_return(call, "ssb", c.spec_path, cdi_device,
                                                          prepared);
                }
        return -ENOENT;
}

/* The call is read again here, after polkit's answer: nothing of it is kept meanwhile. */
static int run_prepare_claim(Bus *b, BusPending *p, PeerCreds **creds, sd_bus_error *error) {
        sd_bus_message *call = bus_pending_call(p);
        _cleanup_(strv_freep) char **devices = NULL;
        BrokerError e = BROKER_ERROR_INIT;
        const char *id, *unit;
        uint32_t uid, gid;
        size_t n = 0;
        int r;

        r = sd_bus_message_rewind(call, true);
        if (r >= 0)
                r = sd_bus_message_read(call, "s", &id);
        if (r >= 0)
                r = sd_bus_message_read_strv(call, &devices);
        if (r >= 0)
                r = sd_bus_message_read(call, "uus", &uid, &gid, &unit);
        if (r < 0)
                return r;
        while (devices && devices[n])
                n++;
        if (n > SESSION_OPEN_DEVICES_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "A claim holds at most %d devices, not %zu.",
                                         SESSION_OPEN_DEVICES_MAX, n);
        log_info("Claim %s requested over D-Bus by uid %u.", id, (unsigned)(*creds)->uid);
        r = runtime_claims_prepare(b->cfg.claims, id, (const char *const *)devices, n,
                                   &(RuntimeClaimPrincipal){ .uid = uid, .gid = gid,
                                                             .unit = *unit ? unit : NULL },
                                   &e);
        if (r < 0)
                return bus_error_from_broker(error, &e);
        if (r > 0)
                claims_changed(b);
        return reply_claim(call, b->cfg.claims, id, r > 0);
}

int bus_method_prepare_claim(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bus *b = userdata;

        if (!b->cfg.claims)
                return sd_bus_error_set(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                        "This iommud keeps no runtime claims.");
        return bus_defer(b, m, BUS_POLKIT_ACTION_CLAIM, UID_INVALID, run_prepare_claim, NULL);
}

static int run_unprepare_claim(Bus *b, BusPending *p, PeerCreds **creds, sd_bus_error *error) {
        sd_bus_message *call = bus_pending_call(p);
        BrokerError e = BROKER_ERROR_INIT;
        const char *id;
        int r;

        r = sd_bus_message_rewind(call, true);
        if (r >= 0)
                r = sd_bus_message_read(call, "s", &id);
        if (r < 0)
                return r;
        r = runtime_claims_unprepare(b->cfg.claims, id, &e);
        if (r < 0)
                return bus_error_from_broker(error, &e);
        if (r > 0)
                claims_changed(b);
        return sd_bus_reply_method_return(call, "b", r > 0);
}

int bus_method_unprepare_claim(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bus *b = userdata;

        if (!b->cfg.claims)
                return sd_bus_error_set(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                        "This iommud keeps no runtime claims.");
        return bus_defer(b, m, BUS_POLKIT_ACTION_CLAIM, UID_INVALID, run_unprepare_claim, NULL);
}

static int run_list_claims(Bus *b, BusPending *p, PeerCreds **creds, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char cdi_device[256];
        RuntimeClaimInfo c;
        int r;

        r = sd_bus_message_new_method_return(bus_pending_call(p), &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(suusassss)");
        for (size_t i = 0; r >= 0 && b->cfg.claims && runtime_claims_get(b->cfg.claims, i, &c) >= 0;
             i++) {
                r = sd_bus_message_open_container(reply, 'r', "suusassss");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "suus", c.id, (uint32_t)c.uid,
                                                  (uint32_t)c.gid, c.unit ?: "");
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "s");
                for (size_t k = 0; r >= 0 && k < c.n_devices; k++)
                        r = sd_bus_message_append(reply, "s", c.devices[k]);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                snprintf(cdi_device, sizeof(cdi_device), "%s=%s", CDI_CLAIM_KIND, c.id);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "sss", c.spec_path, cdi_device, c.mode);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int bus_method_list_claims(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_defer(userdata, m, BUS_POLKIT_ACTION_CLAIM, UID_INVALID, run_list_claims,
                         NULL);
}
