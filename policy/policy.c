/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Decisions: the ordered steps of DESIGN.md, each with a verdict and a
 * sentence that names the rule, sibling, region, holder or quota involved.
 * Every step that can be evaluated is, so that "explain" shows every problem
 * at once; the decision fails at the first step that failed.
 */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "assert-util.h"
#include "glyph.h"
#include "macros.h"
#include "policy-internal.h"
#include "policy.h"

static const char *const step_names[_POLICY_STEP_MAX] = {
        [POLICY_STEP_MATCH] = "match",
        [POLICY_STEP_DRIVER] = "driver",
        [POLICY_STEP_GROUP] = "group",
        [POLICY_STEP_REGIONS] = "regions",
        [POLICY_STEP_PRINCIPAL] = "principal",
        [POLICY_STEP_EXCLUSIVE] = "exclusive",
        [POLICY_STEP_QUOTA] = "quota",
        [POLICY_STEP_DELEGATION] = "delegation",
};

const char *policy_step_to_string(PolicyStep s) {
        if ((unsigned)s >= _POLICY_STEP_MAX)
                return NULL;
        return step_names[s];
}

const char *policy_verdict_to_string(PolicyVerdict v) {
        switch (v) {
        case POLICY_PASS: return "pass";
        case POLICY_FAIL: return "fail";
        case POLICY_SKIP: return "skip";
        }
        return NULL;
}

static bool driver_is_vfio(const char *driver) {
        return driver && strneq(driver, "vfio", 4);
}

/*
 * The reasons of one decision are built in one buffer (on the stack while it
 * fits) and handed out as a single allocation: decisions run for every device
 * on every request, and one malloc per decision instead of one per step, with
 * no printf for the reasons of passing steps, is what keeps a decision within
 * a couple of microseconds on a big host.  Steps are set in order, each once,
 * so the first step's reason starts the block.
 */
typedef struct Reasons {
        char *buf;
        size_t n, size;
        PolicyStep cur;
        size_t off[_POLICY_STEP_MAX];
        PolicyVerdict verdict[_POLICY_STEP_MAX];
        size_t dev_off[_POLICY_STEP_MAX], n_dev[_POLICY_STEP_MAX];
        char stack[2048];
} Reasons;

static void reasons_init(Reasons *R) {
        R->buf = R->stack;
        R->n = 0;
        R->size = sizeof(R->stack);
        for (size_t i = 0; i < _POLICY_STEP_MAX; i++) {
                R->off[i] = SIZE_MAX;
                R->verdict[i] = POLICY_SKIP;
                R->n_dev[i] = 0;
        }
}

static void reasons_done(Reasons *R) {
        if (R->buf != R->stack)
                free(R->buf);
}

static Reasons *reasons_at(Reasons *R, PolicyStep step) {
        R->cur = step;
        return R;
}

static int reasons_reserve(Reasons *R, size_t extra) {
        size_t want;
        char *b;

        if (R->n + extra <= R->size)
                return 0;
        want = MAX(R->size * 2, R->n + extra);
        if (R->buf == R->stack) {
                b = malloc(want);
                if (!b)
                        return -ENOMEM;
                memcpy(b, R->stack, R->n);
        } else {
                b = realloc(R->buf, want);
                if (!b)
                        return -ENOMEM;
        }
        R->buf = b;
        R->size = want;
        return 0;
}

static int step_set(Reasons *R, PolicyVerdict v, const char *fmt, ...) _printf_(3, 4);
static int step_set(Reasons *R, PolicyVerdict v, const char *fmt, ...) {
        va_list ap;
        int k;

        for (;;) {
                va_start(ap, fmt);
                k = vsnprintf(R->buf + R->n, R->size - R->n, fmt, ap);
                va_end(ap);
                if (k < 0)
                        return -EINVAL;
                if ((size_t)k < R->size - R->n)
                        break;
                if (reasons_reserve(R, (size_t)k + 1) < 0)
                        return -ENOMEM;
        }
        R->off[R->cur] = R->n;
        R->verdict[R->cur] = v;
        R->n += (size_t)k + 1;
        return 0;
}

/* Sets a reason made of the NULL-terminated list of strings, without printf. */
__attribute__((sentinel)) static int step_concat(Reasons *R, PolicyVerdict v, ...) {
        size_t len = 0, start = R->n;
        const char *part;
        va_list ap;

        va_start(ap, v);
        while ((part = va_arg(ap, const char *)))
                len += strlen(part);
        va_end(ap);
        if (reasons_reserve(R, len + 1) < 0)
                return -ENOMEM;
        va_start(ap, v);
        while ((part = va_arg(ap, const char *))) {
                size_t k = strlen(part);

                memcpy(R->buf + R->n, part, k);
                R->n += k;
        }
        va_end(ap);
        R->buf[R->n++] = 0;
        R->off[R->cur] = start;
        R->verdict[R->cur] = v;
        return 0;
}

/* Decimal digits of v in buf (at least 21 bytes); returns buf. */
static const char *fmt_u(char *buf, uint64_t v) {
        char tmp[21];
        size_t n = 0, i = 0;

        do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        while (n)
                buf[i++] = tmp[--n];
        buf[i] = 0;
        return buf;
}

static const char *dev_name(const TopoDevice *d) {
        return d->name ?: "(unnamed device)";
}

static int step_match(const Policy *p, const TopoDevice *d, Reasons *s) {
        const PolicyRule *allow = NULL, *deny = NULL;
        const DeviceMatcher *allow_m = NULL, *deny_m = NULL;

        for (size_t i = 0; i < p->n_rules && !deny; i++) {
                const PolicyRule *r = p->rules[i];
                ssize_t k;

                if (r->deny ? deny != NULL : allow != NULL)
                        continue;
                k = matcher_list_match(&r->match, d);
                if (k < 0)
                        continue;
                if (r->deny) {
                        deny = r;
                        deny_m = &r->match.items[k];
                } else {
                        allow = r;
                        allow_m = &r->match.items[k];
                }
        }
        /* Deny beats allow: look for an allow only to say what it beat. */
        if (deny && !allow)
                for (size_t i = 0; i < p->n_rules && !allow; i++) {
                        ssize_t k;

                        if (p->rules[i]->deny)
                                continue;
                        k = matcher_list_match(&p->rules[i]->match, d);
                        if (k >= 0) {
                                allow = p->rules[i];
                                allow_m = &allow->match.items[k];
                        }
                }

        if (deny && allow)
                return step_set(s, POLICY_FAIL,
                                "denied by rule '%s' (%s), deny beats allow rule '%s' (%s)",
                                deny->name, deny_m->description, allow->name,
                                allow_m->description);
        if (deny)
                return step_set(s, POLICY_FAIL, "denied by rule '%s' (%s)", deny->name,
                                deny_m->description);
        if (allow)
                return step_concat(s, POLICY_PASS, "allowed by rule '", allow->name, "' (",
                                   allow_m->description, ")", NULL);
        /* A platform device has no PCI ids: name what a rule could match it by. */
        if (!d->is_pci)
                return step_set(s, POLICY_FAIL, "no allow rule matches %s (a platform device%s%s)",
                                dev_name(d), d->driver ? ", driver " : "", d->driver ?: "");
        return step_set(s, POLICY_FAIL, "no allow rule matches %s (id %04x:%04x, class 0x%06x%s%s)",
                        dev_name(d), d->vendor, d->device, d->class, d->driver ? ", driver " : "",
                        d->driver ?: "");
}

static int step_driver(const TopoDevice *d, Reasons *s) {
        if (!d->driver)
                return step_set(s, POLICY_FAIL, "%s is not bound to any driver; bind it to vfio-pci",
                                dev_name(d));
        if (!driver_is_vfio(d->driver))
                return step_set(s, POLICY_FAIL,
                                "%s is bound to host driver %s, not to a VFIO driver such as vfio-pci",
                                dev_name(d), d->driver);
        /* Without iommufd the legacy group file is the way to the device. */
        if (!d->has_cdev && d->group && d->group->vfio_group_node)
                return step_set(s, POLICY_PASS,
                                "bound to %s, reached through its group file /dev/vfio/%u (no "
                                "VFIO cdev: the legacy VFIO API)",
                                d->driver, d->group->id);
        if (!d->has_cdev)
                return step_set(s, POLICY_FAIL,
                                "%s is bound to %s but has no VFIO device cdev (kernel without CONFIG_VFIO_DEVICE_CDEV?)",
                                dev_name(d), d->driver);
        char maj[24], min[24];

        return step_concat(s, POLICY_PASS, "bound to ", d->driver, " with cdev ",
                           d->cdev_name ?: "(unnamed)", " (", fmt_u(maj, d->cdev_major), ":",
                           fmt_u(min, d->cdev_minor), ")", NULL);
}

/*
 * Records the devices the current step's sentence is about, after its reason in the same
 * block: the full list, where the sentence may name only the first few.
 */
static int step_devices(Reasons *R, const TopoDevice *const *devs, size_t n) {
        size_t len = 0;

        for (size_t i = 0; i < n; i++)
                len += strlen(dev_name(devs[i])) + 1;
        if (reasons_reserve(R, len) < 0)
                return -ENOMEM;
        R->dev_off[R->cur] = R->n;
        R->n_dev[R->cur] = n;
        for (size_t i = 0; i < n; i++) {
                size_t k = strlen(dev_name(devs[i])) + 1;

                memcpy(R->buf + R->n, dev_name(devs[i]), k);
                R->n += k;
        }
        return 0;
}

/* Sets the current step's reason to what write() prints, and records devs. */
static int step_list(Reasons *R, PolicyVerdict v, const char *head, const TopoDevice *const *devs,
                     size_t n, void (*phrase)(FILE *f, const TopoDevice *m), const char *tail) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        FILE *f;
        int r;

        f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        fputs(head, f);
        policy_list_write(f, devs, n, phrase);
        fputs(tail, f);
        if (fclose(f) != 0)
                return -ENOMEM;
        r = step_concat(R, v, text, NULL);
        if (r < 0)
                return r;
        return step_devices(R, devs, n);
}

/*
 * The group step says "viable" exactly when topo_group_viable() does, so that the group
 * listing and explain agree; d itself on a host driver is named too (the driver step
 * says what to do about it).
 */
static int step_group(const TopoDevice *d, Reasons *s) {
        _cleanup_free_ const TopoDevice **bad = NULL, **others = NULL;
        const TopoGroup *g = d->group;
        size_t n_bad = 0, n_others = 0;
        char head[160];

        if (!g)
                return step_set(s, POLICY_FAIL, "%s has no IOMMU group: no IOMMU isolates its DMA",
                                dev_name(d));
        if (g->broken)
                return step_set(s, POLICY_FAIL,
                                "group %u could not be read completely (see the topology problems), so its viability is unknown",
                                g->id);
        if (g->n_devices == 1 && g->devices[0] == d && topo_device_keeps_group_viable(d))
                return step_concat(s, POLICY_PASS, "group ", fmt_u(head, g->id), " is viable: ",
                                   dev_name(d), " is its only member", NULL);
        bad = calloc(g->n_devices, sizeof(*bad));
        others = calloc(g->n_devices, sizeof(*others));
        if (!bad || !others)
                return -ENOMEM;
        for (size_t i = 0; i < g->n_devices; i++) {
                const TopoDevice *m = g->devices[i];

                if (!topo_device_keeps_group_viable(m))
                        bad[n_bad++] = m;
                else if (m != d)
                        others[n_others++] = m;
        }
        if (n_bad > 0) {
                snprintf(head, sizeof(head), "group %u is not viable: ", g->id);
                return step_list(s, POLICY_FAIL, head, bad, n_bad, policy_phrase_host_driver, "");
        }
        snprintf(head, sizeof(head),
                 "group %u is viable: its %zu other member%s unbound, on a VFIO driver, "
                 "pci-stub or a bridge: ",
                 g->id, n_others, n_others == 1 ? " is" : "s are");
        return step_list(s, POLICY_PASS, head, others, n_others, policy_phrase_member, "");
}

static const char *region_action_setting(const PolicyRegionException *e, RegionType t,
                                         char *buf, size_t size) {
        if (e)
                snprintf(buf, size, "exception '%s'", e->name);
        else
                snprintf(buf, size, "reserved-regions.%s", region_type_to_string(t));
        return buf;
}

/*
 * The regions step's sentence: every direct and relaxable range of the group, and the
 * setting that refuses or allows each kind.
 */
static int regions_verdict(Reasons *s, const TopoDevice *d, RegionAction direct,
                           const PolicyRegionException *direct_by, RegionAction relaxable,
                           const PolicyRegionException *relaxable_by) {
        _cleanup_free_ char *text = NULL;
        bool denied = false;
        size_t len = 0, n_direct, n_relaxable = 0;
        char who[256];
        FILE *f;

        f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        n_direct = policy_regions_write(f, d, REGION_DIRECT);
        if (n_direct > 0) {
                denied = direct == REGION_ACTION_DENY;
                fprintf(f, denied ? ": such devices are not handed to userspace (%s is \"deny\")" :
                                    ", allowed by %s",
                        region_action_setting(direct_by, REGION_DIRECT, who, sizeof(who)));
        }
        for (size_t i = 0; i < d->group->n_regions; i++)
                n_relaxable += d->group->regions[i].type == REGION_DIRECT_RELAXABLE;
        /* Relaxable regions are named too unless only an allowed kind would follow a refusal. */
        if (n_relaxable > 0 && (!denied || relaxable == REGION_ACTION_DENY)) {
                fputs(n_direct > 0 ? "; " : "", f);
                (void)policy_regions_write(f, d, REGION_DIRECT_RELAXABLE);
                denied = denied || relaxable == REGION_ACTION_DENY;
                fprintf(f, relaxable == REGION_ACTION_DENY ? ", denied by %s" : ", allowed by %s",
                        region_action_setting(relaxable_by, REGION_DIRECT_RELAXABLE, who,
                                              sizeof(who)));
        }
        if (n_direct == 0 && n_relaxable == 0)
                fprintf(f, "no direct-mapped reserved regions in group %u%s", d->group->id,
                        d->group->broken ? " as far as it could be read (see the topology problems)" :
                                           "");
        if (fclose(f) != 0)
                return -ENOMEM;
        return step_concat(s, denied ? POLICY_FAIL : POLICY_PASS, text, NULL);
}

static int step_regions(const Policy *p, const TopoDevice *d, Reasons *s) {
        const PolicyRegionException *direct_by = NULL, *relaxable_by = NULL;
        RegionAction direct = p->direct, relaxable = p->direct_relaxable;
        RegionAction ex_direct = REGION_ACTION_UNSET, ex_relaxable = REGION_ACTION_UNSET;

        if (!d->group)
                return step_set(s, POLICY_SKIP, "no IOMMU group, so no reserved regions to check");

        /* Exceptions override the defaults; among exceptions, deny wins. */
        for (size_t i = 0; i < p->n_exceptions; i++) {
                const PolicyRegionException *e = p->exceptions[i];

                if (matcher_list_match(&e->match, d) < 0)
                        continue;
                if (e->direct != REGION_ACTION_UNSET &&
                    (ex_direct == REGION_ACTION_UNSET || e->direct == REGION_ACTION_DENY) &&
                    ex_direct != REGION_ACTION_DENY) {
                        ex_direct = e->direct;
                        direct_by = e;
                }
                if (e->direct_relaxable != REGION_ACTION_UNSET &&
                    (ex_relaxable == REGION_ACTION_UNSET || e->direct_relaxable == REGION_ACTION_DENY) &&
                    ex_relaxable != REGION_ACTION_DENY) {
                        ex_relaxable = e->direct_relaxable;
                        relaxable_by = e;
                }
        }
        if (ex_direct != REGION_ACTION_UNSET)
                direct = ex_direct;
        if (ex_relaxable != REGION_ACTION_UNSET)
                relaxable = ex_relaxable;

        return regions_verdict(s, d, direct, direct_by, relaxable, relaxable_by);
}

static void principal_describe(const Principal *pr, char *buf, size_t size) {
        char uid[24];
        int n;

        n = snprintf(buf, size, "uid %s", fmt_u(uid, pr->uid));
        if (pr->unit && n >= 0 && (size_t)n < size)
                snprintf(buf + n, size - (size_t)n, " (%s)", pr->unit);
        else if (pr->unit_refused && n >= 0 && (size_t)n < size)
                snprintf(buf + n, size - (size_t)n, " (no unit: %s)", pr->unit_refused);
}

/* "uid 1003 (gid 1003, groups 27 500, unit foo.scope)": everything a grant could match on. */
static void principal_describe_full(const Principal *pr, char *buf, size_t size) {
        size_t n;

        n = (size_t)snprintf(buf, size, "uid %u (gid %u", (unsigned)pr->uid, (unsigned)pr->gid);
        for (size_t i = 0; i < pr->n_groups && n < size; i++)
                n += (size_t)snprintf(buf + n, size - n, "%s%u", i == 0 ? ", groups " : " ",
                                      (unsigned)pr->groups[i]);
        if (pr->unit && n < size)
                n += (size_t)snprintf(buf + n, size - n, ", unit %s", pr->unit);
        else if (pr->unit_refused && n < size)
                n += (size_t)snprintf(buf + n, size - n, ", no unit: %s", pr->unit_refused);
        if (n < size)
                snprintf(buf + n, size - n, ")");
}

/*
 * Also computes the principal's device quota on the way (the largest among the
 * grants that name it, as policy_quotas() does), so that the quota step does
 * not match every grant against the principal a second time.
 */
static int step_principal(const Policy *p, const TopoDevice *d, const Principal *pr,
                          Reasons *s, char **ret_pool, uint64_t *ret_device_quota) {
        const PolicyGrant *named = NULL, *granted = NULL;
        const PrincipalMatcher *granted_pm = NULL;
        const PolicyPool *pool = NULL;
        const DeviceMatcher *dm = NULL;
        uint64_t quota = 0;
        size_t n_named = 0;
        char who[512];

        for (size_t i = 0; i < p->n_grants; i++) {
                const PolicyGrant *g = p->grants[i];
                const PrincipalMatcher *pm;
                uint64_t q;

                pm = policy_grant_match_principal(g, pr);
                if (!pm)
                        continue;
                if (!named)
                        named = g;
                n_named++;
                q = g->quotas.set & (1u << QUOTA_DEVICES) ? g->quotas.v[QUOTA_DEVICES]
                                                          : p->default_quotas[QUOTA_DEVICES];
                quota = MAX(quota, q);
                if (!granted && policy_grant_covers(g, d, &pool, &dm)) {
                        granted = g;
                        granted_pm = pm;
                }
        }
        *ret_device_quota = quota;

        principal_describe(pr, who, sizeof(who));
        if (granted && pool) {
                *ret_pool = strdup(pool->name);
                if (!*ret_pool)
                        return -ENOMEM;
                return step_concat(s, POLICY_PASS, who, " is granted ", dev_name(d), " by grant '",
                                   granted->name, "' (", granted_pm->description, ") through pool '",
                                   pool->name, "' (", dm->description, ")", NULL);
        }
        if (granted)
                return step_concat(s, POLICY_PASS, who, " is granted ", dev_name(d), " by grant '",
                                   granted->name, "' (", granted_pm->description, ") for ",
                                   dm->description, NULL);
        if (named)
                return step_set(s, POLICY_FAIL,
                                "%s is named by grant '%s'%s, but no grant gives it %s", who,
                                named->name, n_named > 1 ? " and others" : "", dev_name(d));
        principal_describe_full(pr, who, sizeof(who));
        return step_set(s, POLICY_FAIL, "no grant names %s: it may use no device", who);
}

static int step_exclusive(const PolicyRuntime *rt, const TopoDevice *d, Reasons *s) {
        const char *holder;

        if (!rt || !rt->device_holder)
                return step_set(s, POLICY_SKIP, "no session state given");
        holder = rt->device_holder(rt->userdata, d);
        if (holder)
                return step_set(s, POLICY_FAIL, "held by %s", holder);
        return step_concat(s, POLICY_PASS, "not held by another session", NULL);
}

static int step_quota(const PolicyRuntime *rt, bool granted, uint64_t device_quota, Reasons *s) {
        char used[24], limit[24];

        if (!granted)
                return step_set(s, POLICY_SKIP, "no grant applies, so there is no quota to check");
        if (!rt || !rt->usage)
                return step_set(s, POLICY_SKIP, "no usage given");
        if (device_quota == UINT64_MAX)
                return step_set(s, POLICY_PASS, "no device quota (%" PRIu64 " in use)",
                                rt->usage->devices);
        if (rt->usage->devices >= device_quota)
                return step_set(s, POLICY_FAIL,
                                "device quota %" PRIu64 " reached (%" PRIu64 " in use)",
                                device_quota, rt->usage->devices);
        return step_concat(s, POLICY_PASS, fmt_u(used, rt->usage->devices), " of ",
                           fmt_u(limit, device_quota), " devices in use", NULL);
}

/*
 * Whether the principal may take the device's fds itself (OpenDevices, a claim with device
 * nodes) rather than use it through iommud.  Only a handoff is refused by it.
 */
static int step_delegation(const Policy *p, const TopoDevice *d, const Principal *pr,
                           const PolicyRuntime *rt, bool granted, Reasons *s) {
        const PolicyGrant *g;
        char who[256];

        principal_describe(pr, who, sizeof(who));
        if (!granted)
                return step_concat(s, POLICY_SKIP, "no grant gives ", who, " ", dev_name(d),
                                   ", so it cannot take its fds either", NULL);
        g = policy_grant_with(p, pr, d, offsetof(PolicyGrant, delegation));
        if (g)
                return step_concat(s, POLICY_PASS, who, " may take the fds of ", dev_name(d),
                                   " itself (OpenDevices) by grant '", g->name, "'", NULL);
        if (rt && rt->handoff)
                return step_concat(s, POLICY_FAIL, "no grant that gives ", who, " ", dev_name(d),
                                   " has \"delegation\": true: iommud hands it out only "
                                   "through its own calls, never as fds",
                                   NULL);
        return step_concat(s, POLICY_SKIP, "use through iommud only: no grant that gives ", who,
                           " ", dev_name(d),
                           " has \"delegation\": true, so OpenDevices would refuse it", NULL);
}

/* The steps about who asks; without a principal each is skipped with one reason. */
static int steps_principal(const Policy *p, const TopoDevice *d, const Principal *principal,
                           const PolicyRuntime *rt, Reasons *R, char **ret_pool) {
        uint64_t device_quota = 0;
        bool granted;
        int r;

        if (!principal) {
                const char *why = "no principal given: device eligibility only";

                r = step_concat(reasons_at(R, POLICY_STEP_PRINCIPAL), POLICY_SKIP, why, NULL);
                if (r >= 0)
                        r = step_concat(reasons_at(R, POLICY_STEP_EXCLUSIVE), POLICY_SKIP, why, NULL);
                if (r >= 0)
                        r = step_concat(reasons_at(R, POLICY_STEP_QUOTA), POLICY_SKIP, why, NULL);
                if (r >= 0)
                        r = step_concat(reasons_at(R, POLICY_STEP_DELEGATION), POLICY_SKIP, why,
                                        NULL);
                return r;
        }
        r = step_principal(p, d, principal, reasons_at(R, POLICY_STEP_PRINCIPAL), ret_pool,
                           &device_quota);
        if (r >= 0)
                r = step_exclusive(rt, d, reasons_at(R, POLICY_STEP_EXCLUSIVE));
        if (r < 0)
                return r;
        granted = R->verdict[POLICY_STEP_PRINCIPAL] == POLICY_PASS;
        r = step_quota(rt, granted, device_quota, reasons_at(R, POLICY_STEP_QUOTA));
        if (r < 0)
                return r;
        return step_delegation(p, d, principal, rt, granted, reasons_at(R, POLICY_STEP_DELEGATION));
}

int policy_decide(const Policy *p, const Topology *t, const TopoDevice *d,
                  const Principal *principal, const PolicyRuntime *rt, PolicyDecision *ret) {
        PolicyDecision dec = { .n_steps = _POLICY_STEP_MAX };
        Reasons R;
        char *block;
        int r;

        assert_return(p && d && ret, -EINVAL);
        (void)t;
        reasons_init(&R);

        r = step_match(p, d, reasons_at(&R, POLICY_STEP_MATCH));
        if (r >= 0)
                r = step_driver(d, reasons_at(&R, POLICY_STEP_DRIVER));
        if (r >= 0)
                r = step_group(d, reasons_at(&R, POLICY_STEP_GROUP));
        if (r >= 0)
                r = step_regions(p, d, reasons_at(&R, POLICY_STEP_REGIONS));
        if (r >= 0)
                r = steps_principal(p, d, principal, rt, &R, &dec.pool);
        if (r >= 0) {
                block = malloc(R.n);
                if (!block)
                        r = -ENOMEM;
        }
        if (r < 0) {
                reasons_done(&R);
                free(dec.pool);
                return r;
        }
        /* Every step was set, the match step first: block is steps[0].reason. */
        assert(R.off[POLICY_STEP_MATCH] == 0);
        memcpy(block, R.buf, R.n);
        reasons_done(&R);

        dec.allowed = true;
        for (PolicyStep i = 0; i < _POLICY_STEP_MAX; i++) {
                dec.steps[i] = (PolicyDecisionStep){
                        .step = i,
                        .verdict = R.verdict[i],
                        .reason = block + R.off[i],
                        .devices = R.n_dev[i] > 0 ? block + R.dev_off[i] : NULL,
                        .n_devices = R.n_dev[i],
                };
                if (dec.allowed && R.verdict[i] == POLICY_FAIL) {
                        dec.allowed = false;
                        dec.failed_step = i;
                }
        }
        *ret = dec;
        return 0;
}

void policy_decision_clear(PolicyDecision *d) {
        if (!d)
                return;
        /* All reasons live in one block, which the first step's reason starts. */
        free(d->steps[0].reason);
        free(d->pool);
        *d = (PolicyDecision){};
}

static int step_devices_to_json(const PolicyDecisionStep *s, json_object *e) {
        json_object *a;
        const char *name = s->devices;

        if (s->n_devices == 0)
                return 0;
        a = json_object_new_array();
        if (!a || json_object_object_add(e, "devices", a) < 0) {
                json_object_put(a);
                return -ENOMEM;
        }
        for (size_t i = 0; i < s->n_devices; i++, name += strlen(name) + 1)
                if (json_object_array_add(a, json_object_new_string(name)) < 0)
                        return -ENOMEM;
        return 0;
}

int policy_decision_to_json(const PolicyDecision *d, json_object **ret) {
        json_object *o = NULL, *steps = NULL;

        assert_return(d && ret, -EINVAL);

        o = json_object_new_object();
        steps = json_object_new_array();
        if (!o || !steps)
                goto oom;
        if (json_object_object_add(o, "allowed", json_object_new_boolean(d->allowed)) < 0)
                goto oom;
        if (!d->allowed &&
            json_object_object_add(o, "failedStep",
                                   json_object_new_string(policy_step_to_string(d->failed_step))) < 0)
                goto oom;
        if (d->pool && json_object_object_add(o, "pool", json_object_new_string(d->pool)) < 0)
                goto oom;
        for (size_t i = 0; i < d->n_steps; i++) {
                const PolicyDecisionStep *s = &d->steps[i];
                json_object *e = json_object_new_object();

                if (!e || json_object_array_add(steps, e) < 0) {
                        json_object_put(e);
                        goto oom;
                }
                if (json_object_object_add(e, "step", json_object_new_string(policy_step_to_string(s->step))) < 0 ||
                    json_object_object_add(e, "verdict",
                                           json_object_new_string(policy_verdict_to_string(s->verdict))) < 0 ||
                    json_object_object_add(e, "reason", json_object_new_string(s->reason ?: "")) < 0 ||
                    step_devices_to_json(s, e) < 0)
                        goto oom;
        }
        if (json_object_object_add(o, "steps", steps) < 0)
                goto oom;
        *ret = o;
        return 0;
oom:
        json_object_put(steps);
        json_object_put(o);
        return -ENOMEM;
}

int policy_decision_print(const PolicyDecision *d, const TopoDevice *dev, FILE *f) {
        assert_return(d && f, -EINVAL);

        if (dev && !dev->is_pci)
                fprintf(f, "%s (platform device), driver %s", dev_name(dev),
                        dev->driver ?: "(none)");
        else if (dev)
                fprintf(f, "%s [%04x:%04x] class 0x%06x, driver %s", dev_name(dev), dev->vendor,
                        dev->device, dev->class, dev->driver ?: "(none)");
        if (dev) {
                if (dev->group)
                        fprintf(f, ", group %u", dev->group->id);
                fputs(": ", f);
        }
        if (d->allowed)
                fputs("allowed\n", f);
        else
                fprintf(f, "not allowed (first failure: %s)\n", policy_step_to_string(d->failed_step));
        if (d->pool)
                fprintf(f, "  pool: %s\n", d->pool);
        for (size_t i = 0; i < d->n_steps; i++) {
                const PolicyDecisionStep *s = &d->steps[i];
                const char *mark = s->verdict == POLICY_PASS ? glyph(GLYPH_CHECK) :
                                   s->verdict == POLICY_FAIL ? glyph(GLYPH_CROSS) : "-";

                fprintf(f, "  %s %-10s %s\n", mark, policy_step_to_string(s->step), s->reason ?: "");
        }
        fflush(f);
        return ferror(f) ? -EIO : 0;
}
