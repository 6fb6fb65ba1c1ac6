/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assert-util.h"
#include "cdi.h"
#include "json-util.h"
#include "log.h"
#include "principal.h"
#include "runtime-claim.h"
#include "session-handoff.h"
#include "session-internal.h"

typedef struct RuntimeClaim {
        char *id;
        PeerCreds *creds;     /* the principal; pid 0 */
        Session *holder;      /* unlinked, no context: holds the devices as handed over */
        char *spec_path;
        CdiMode mode;
} RuntimeClaim;

struct RuntimeClaims {
        SessionHost *host;
        char *dir;
        RuntimeClaim *claims;
        size_t n_claims;
};

static void json_object_putp(json_object **o) {
        json_object_put(*o);
}

static bool id_char(char c, bool edge) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                return true;
        return !edge && (c == '_' || c == '.' || c == '-');
}

bool runtime_claim_id_is_valid(const char *id) {
        size_t n;

        if (!id)
                return false;
        n = strlen(id);
        if (n == 0 || n > RUNTIME_CLAIM_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!id_char(id[i], i == 0 || i == n - 1))
                        return false;
        return true;
}

int runtime_claims_new(RuntimeClaims **ret, SessionHost *host, const char *cdi_dir) {
        RuntimeClaims *t;

        assert_return(ret && host && cdi_dir, -EINVAL);
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->host = host;
        t->dir = strdup(cdi_dir);
        if (!t->dir) {
                free(t);
                return -ENOMEM;
        }
        *ret = t;
        return 0;
}

/* Lets go of c's devices and, unless keep_spec, removes its spec. */
static void claim_done(RuntimeClaim *c, bool keep_spec) {
        if (c->holder) {
                (void)session_release_devices(c->holder, NULL, 0, NULL);
                session_handoff_release_all(c->holder);
                session_discard(c->holder);
        }
        if (!keep_spec && c->spec_path && unlink(c->spec_path) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Removing the CDI spec %s failed, ignoring: %m",
                                  c->spec_path);
        peer_creds_free(c->creds);
        free(c->spec_path);
        free(c->id);
}

RuntimeClaims *runtime_claims_free(RuntimeClaims *t) {
        if (!t)
                return NULL;
        if (t->host->preserving && t->n_claims > 0)
                log_info("Leaving %zu runtime claim(s) and their CDI specs to the next daemon, "
                         "which holds their devices again.", t->n_claims);
        for (size_t i = 0; i < t->n_claims; i++)
                claim_done(&t->claims[i], t->host->preserving);
        free(t->claims);
        free(t->dir);
        free(t);
        return NULL;
}

static RuntimeClaim *find_claim(RuntimeClaims *t, const char *id) {
        for (size_t i = 0; i < t->n_claims; i++)
                if (streq(t->claims[i].id, id))
                        return &t->claims[i];
        return NULL;
}

/* The credentials a decision for p is made with: uid's account, p's gid and unit. */
static int creds_for(const RuntimeClaimPrincipal *p, PeerCreds **ret, BrokerError *err) {
        _cleanup_(principal_account_done) PrincipalAccount a = PRINCIPAL_ACCOUNT_INIT;
        _cleanup_(peer_creds_freep) PeerCreds *c = NULL;
        int r;

        r = principal_account_resolve(p->uid, p->gid, &a, err);
        if (r < 0)
                return r;
        c = calloc(1, sizeof(*c));
        if (!c)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        *c = (PeerCreds){ .uid = a.principal.uid, .gid = a.principal.gid };
        if (a.principal.n_groups > 0) {
                c->groups = calloc(a.principal.n_groups, sizeof(gid_t));
                if (!c->groups)
                        return broker_error_system(err, -ENOMEM, "Allocating memory");
                memcpy(c->groups, a.principal.groups, a.principal.n_groups * sizeof(gid_t));
                c->n_groups = a.principal.n_groups;
        }
        if (p->unit) {
                c->unit = strdup(p->unit);
                if (!c->unit)
                        return broker_error_system(err, -ENOMEM, "Allocating memory");
        }
        *ret = TAKE_PTR(c);
        return 0;
}

static bool same_principal(const RuntimeClaim *c, const PeerCreds *p) {
        return c->creds->uid == p->uid && c->creds->gid == p->gid &&
               streq(c->creds->unit ?: "", p->unit ?: "");
}

/* Whether names (in any order, as any spelling the topology knows) are exactly c's devices. */
static bool same_devices(RuntimeClaims *t, const RuntimeClaim *c, const char *const *names,
                         size_t n) {
        if (n != session_n_handed_over(c->holder))
                return false;
        for (size_t i = 0; i < n; i++) {
                const TopoDevice *d = topology_find_device(t->host->topology, names[i]);

                if (!d || !session_handoff_find(c->holder, d->name))
                        return false;
        }
        return true;
}

static int conflict(BrokerError *err, const char *id, const char *reason) {
        broker_error_set(err, -EBUSY, RUNTIME_CLAIM_ERROR_CONFLICT,
                         "Claim %s is prepared already %s.", id, reason);
        broker_error_add_string(err, "claimId", id);
        broker_error_add_string(err, "reason", reason);
        return -EBUSY;
}

static int claim_failed(BrokerError *err, int r, const char *id, const char *reason) {
        broker_error_set(err, r, RUNTIME_CLAIM_ERROR_FAILED, "Preparing claim %s failed: %s.",
                         id, reason);
        broker_error_add_string(err, "claimId", id);
        broker_error_add_string(err, "reason", reason);
        return r;
}

/* What the spec needs of each device c holds; ClaimFailed for one that left the topology. */
static int spec_devices(RuntimeClaims *t, const RuntimeClaim *c, CdiDevice *devs,
                        bool *ret_all_cdevs, BrokerError *err) {
        bool all_cdevs = true;

        for (size_t i = 0; i < session_n_handed_over(c->holder); i++) {
                const char *name = session_handed_over(c->holder, i);
                const TopoDevice *d = topology_find_device(t->host->topology, name);
                char reason[160];

                if (!d) {
                        snprintf(reason, sizeof(reason), "device %s left the host", name);
                        return claim_failed(err, -ENODEV, c->id, reason);
                }
                devs[i] = (CdiDevice){ .name = d->name, .cdev = d->cdev_name,
                                       .has_group = d->group, .group = d->group ? d->group->id : 0 };
                all_cdevs = all_cdevs && d->cdev_name;
        }
        *ret_all_cdevs = all_cdevs;
        return 0;
}

/*
 * c's spec, written through a temporary file and rename(): its cdevs and /dev/iommu where
 * every device has a cdev, else its groups and /dev/vfio/vfio.
 */
static int write_spec(RuntimeClaims *t, RuntimeClaim *c, BrokerError *err) {
        _cleanup_(json_object_putp) json_object *spec = NULL;
        _cleanup_free_ CdiDevice *devs = NULL;
        _cleanup_free_ char *text = NULL;
        const char *bad = NULL;
        char reason[PATH_MAX + 64];
        bool all_cdevs;
        CdiOptions o;
        int r;

        devs = calloc(session_n_handed_over(c->holder) + 1, sizeof(*devs));
        if (!devs)
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        r = spec_devices(t, c, devs, &all_cdevs, err);
        if (r < 0)
                return r;
        c->mode = all_cdevs ? CDI_MODE_IOMMUFD : CDI_MODE_LEGACY;
        o = (CdiOptions){ .mode = c->mode };
        r = cdi_claim_spec_build(c->id, devs, session_n_handed_over(c->holder), &o, &spec, &bad);
        if (r == -ENODEV) {
                snprintf(reason, sizeof(reason), "device %s has neither a VFIO cdev nor an IOMMU "
                         "group to give", bad);
                return claim_failed(err, r, c->id, reason);
        }
        if (r < 0 || asprintf(&text, "%s\n",
                              json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PRETTY |
                                                                           JSON_C_TO_STRING_SPACED |
                                                                           JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
                return broker_error_system(err, -ENOMEM, "Building the CDI spec");
        if (mkdir(t->dir, 0755) < 0 && errno != EEXIST)
                r = negative_errno();
        else
                r = cdi_write_atomic(t->dir, strrchr(c->spec_path, '/') + 1, text);
        if (r < 0) {
                snprintf(reason, sizeof(reason), "writing %s: %s", c->spec_path, strerror(-r));
                return claim_failed(err, r, c->id, reason);
        }
        return 0;
}

static int invalid_claim_id(BrokerError *err, const char *id) {
        char reason[128];

        snprintf(reason, sizeof(reason), "a claim id is 1 to %d letters, digits, '_', '.' or "
                 "'-', beginning and ending with a letter or digit", RUNTIME_CLAIM_ID_MAX);
        broker_error_set(err, -EINVAL, RUNTIME_CLAIM_ERROR_INVALID_ID, "'%s' is not a claim id: "
                         "%s.", id, reason);
        broker_error_add_string(err, "claimId", id);
        broker_error_add_string(err, "reason", reason);
        return -EINVAL;
}

/* Makes claim id of creds (taken) hold devices; on failure nothing is held or written. */
static int claim_add(RuntimeClaims *t, const char *id, PeerCreds *creds,
                     const char *const *devices, size_t n, BrokerError *err) {
        RuntimeClaim c = { .creds = creds }, *a;
        int r;

        a = reallocarray(t->claims, t->n_claims + 1, sizeof(*a));
        if (a)
                t->claims = a;
        c.id = strdup(id);
        c.holder = a && c.id ? session_alloc(t->host, creds) : NULL;
        if (!c.holder || asprintf(&c.spec_path, "%s/%s%s.json", t->dir, CDI_CLAIM_FILE_PREFIX,
                                  id) < 0) {
                c.spec_path = NULL;
                claim_done(&c, true);
                return broker_error_system(err, -ENOMEM, "Allocating memory");
        }
        snprintf(c.holder->description, sizeof(c.holder->description), "claim %s (uid %u%s%s)",
                 id, (unsigned)creds->uid, creds->unit ? ", " : "", creds->unit ?: "");
        r = session_hold_devices(c.holder, devices, n, err);
        if (r >= 0)
                r = write_spec(t, &c, err);
        if (r < 0) {
                /* A spec of this id that was there before is not this claim's: keep it. */
                claim_done(&c, true);
                return r;
        }
        t->claims[t->n_claims++] = c;
        log_info("Prepared claim %s for uid %u: %zu device(s), CDI spec %s (%s mode).", id,
                 (unsigned)creds->uid, n, c.spec_path, cdi_mode_to_string(c.mode));
        return 1;
}

int runtime_claims_prepare(RuntimeClaims *t, const char *id, const char *const *devices,
                           size_t n, const RuntimeClaimPrincipal *p, BrokerError *err) {
        _cleanup_(peer_creds_freep) PeerCreds *creds = NULL;
        RuntimeClaim *c;
        char why[160];
        int r;

        assert_return(t && id && p, -EINVAL);
        assert_return(devices || n == 0, -EINVAL);

        if (!runtime_claim_id_is_valid(id))
                return invalid_claim_id(err, id);
        r = creds_for(p, &creds, err);
        if (r < 0)
                return r;
        c = find_claim(t, id);
        if (!c)
                return claim_add(t, id, TAKE_PTR(creds), devices, n, err);
        /* A retry: the same answer, and the spec again in case it was removed meanwhile. */
        if (!same_principal(c, creds)) {
                snprintf(why, sizeof(why), "for another principal, uid %u (gid %u%s%s)",
                         (unsigned)c->creds->uid, (unsigned)c->creds->gid,
                         c->creds->unit ? ", unit " : "", c->creds->unit ?: "");
                return conflict(err, id, why);
        }
        if (!same_devices(t, c, devices, n))
                return conflict(err, id, "with other devices");
        r = write_spec(t, c, err);
        return r < 0 ? r : 0;
}

int runtime_claims_unprepare(RuntimeClaims *t, const char *id, BrokerError *err) {
        RuntimeClaim *c;

        assert_return(t && id, -EINVAL);

        if (!runtime_claim_id_is_valid(id))
                return invalid_claim_id(err, id);
        c = find_claim(t, id);
        if (!c)
                return 0;
        log_info("Unprepared claim %s: %zu device(s) released, %s removed.", id,
                 session_n_handed_over(c->holder), c->spec_path);
        claim_done(c, false);
        memmove(c, c + 1, (size_t)(t->claims + t->n_claims - (c + 1)) * sizeof(*c));
        t->n_claims--;
        return 1;
}

static void on_claim_device_dropped(Session *s, const char *device, const char *reason,
                                    void *userdata) {
        log_warning("%s loses %s: %s.", session_describe(s), device, reason);
}

size_t runtime_claims_revalidate(RuntimeClaims *t) {
        BrokerError e = BROKER_ERROR_INIT;
        size_t dropped = 0;

        assert_return(t, 0);
        for (size_t i = 0; i < t->n_claims;) {
                RuntimeClaim *c = &t->claims[i];
                int n = session_handoff_revalidate(c->holder, on_claim_device_dropped, NULL);

                i++;
                if (n <= 0)
                        continue;
                dropped += (size_t)n;
                if (session_n_handed_over(c->holder) == 0) {
                        /* Nothing left to give a container: no spec may say otherwise. */
                        (void)runtime_claims_unprepare(t, c->id, &e);
                        i--;
                } else if (write_spec(t, c, &e) < 0) {
                        log_warning("%s", error_message(&e.error));
                        broker_error_clear(&e);
                }
        }
        return dropped;
}

size_t runtime_claims_n(const RuntimeClaims *t) {
        return t ? t->n_claims : 0;
}

int runtime_claims_get(const RuntimeClaims *t, size_t i, RuntimeClaimInfo *ret) {
        const RuntimeClaim *c;

        assert_return(t && ret, -EINVAL);
        if (i >= t->n_claims)
                return -ENOENT;
        c = &t->claims[i];
        *ret = (RuntimeClaimInfo){
                .id = c->id,
                .uid = c->creds->uid,
                .gid = c->creds->gid,
                .unit = c->creds->unit,
                .devices = (const char *const *)c->holder->handed_over,
                .n_devices = session_n_handed_over(c->holder),
                .spec_path = c->spec_path,
                .mode = cdi_mode_to_string(c->mode),
        };
        return 0;
}

static json_object *claim_to_json(const RuntimeClaim *c) {
        json_object *o = json_object_new_object(), *devs = json_object_new_array();

        if (!o || !devs || json_util_add(o, "devices", devs) < 0) {
                json_object_put(o);
                json_object_put(devs);
                return NULL;
        }
        for (size_t i = 0; i < session_n_handed_over(c->holder); i++)
                if (json_object_array_add(devs, json_object_new_string(
                                                        session_handed_over(c->holder, i))) < 0)
                        goto fail;
        if (json_util_add(o, "id", json_object_new_string(c->id)) < 0 ||
            json_util_add(o, "uid", json_object_new_int64(c->creds->uid)) < 0 ||
            json_util_add(o, "gid", json_object_new_int64(c->creds->gid)) < 0 ||
            (c->creds->unit && json_util_add(o, "unit", json_object_new_string(c->creds->unit)) < 0))
                goto fail;
        return o;
fail:
        json_object_put(o);
        return NULL;
}

int runtime_claims_to_json(const RuntimeClaims *t, json_object **ret) {
        json_object *a;

        assert_return(t && ret, -EINVAL);
        a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_claims; i++) {
                json_object *o = claim_to_json(&t->claims[i]);

                if (!o || json_object_array_add(a, o) < 0) {
                        json_object_put(o);
                        json_object_put(a);
                        return -ENOMEM;
                }
        }
        *ret = a;
        return 0;
}

/* One record of runtime_claims_to_json() prepared again; a sentence in why on failure. */
static int restore_one(RuntimeClaims *t, json_object *rec, const char **ret_id, char *why,
                       size_t size) {
        const char *names[SESSION_OPEN_DEVICES_MAX];
        RuntimeClaimPrincipal p = { .gid = GID_INVALID };
        BrokerError e = BROKER_ERROR_INIT;
        json_object *devs = NULL;
        size_t n;
        int r;

        if (json_util_get_string(rec, "id", 0, ret_id, NULL) < 0 ||
            json_util_get_u32(rec, "uid", 0, &p.uid, NULL) < 0 ||
            json_util_get_u32(rec, "gid", 0, &p.gid, NULL) < 0 ||
            json_util_get_string(rec, "unit", JSON_UTIL_OPTIONAL, &p.unit, NULL) < 0 ||
            json_util_get_array(rec, "devices", 0, &devs, NULL) < 0 ||
            json_object_array_length(devs) > ELEMENTSOF(names)) {
                snprintf(why, size, "the record is malformed");
                return -EINVAL;
        }
        n = json_object_array_length(devs);
        for (size_t i = 0; i < n; i++)
                names[i] = json_object_get_string(json_object_array_get_idx(devs, i));
        r = runtime_claims_prepare(t, *ret_id, names, n, &p, &e);
        if (r < 0)
                snprintf(why, size, "%s", error_message(&e.error));
        broker_error_clear(&e);
        return r;
}

size_t runtime_claims_restore(RuntimeClaims *t, json_object *claims,
                              void (*on_drop)(const char *id, const char *why, void *userdata),
                              void *userdata) {
        size_t restored = 0;

        assert_return(t, 0);
        for (size_t i = 0; claims && i < json_object_array_length(claims); i++) {
                const char *id = NULL;
                char why[ERROR_MESSAGE_MAX + 32], path[PATH_MAX];

                if (restore_one(t, json_object_array_get_idx(claims, i), &id, why,
                                sizeof(why)) >= 0) {
                        restored++;
                        continue;
                }
                /* Its devices are not held any more: a runtime must not find the spec. */
                if (id && runtime_claim_id_is_valid(id)) {
                        snprintf(path, sizeof(path), "%s/%s%s.json", t->dir,
                                 CDI_CLAIM_FILE_PREFIX, id);
                        (void)unlink(path);
                }
                if (on_drop)
                        on_drop(id ?: "?", why, userdata);
        }
        return restored;
}
