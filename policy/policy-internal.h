/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The policy's in-memory model, shared by the loader (policy-config.c and the
 * parser files of policy-parser.h) and the decision engine (policy.c).
 * Nothing outside policy/ and its tests includes this.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"

/*
 * How a pattern is matched: decisions run for every device on every request,
 * so plain strings and '*'/'?' patterns avoid fnmatch(3); brackets and
 * escapes still go to fnmatch with the same meaning.
 */
typedef enum GlobKind {
        GLOB_EXACT,              /* no metacharacters */
        GLOB_PREFIX,             /* a literal prefix and one trailing '*': "0000:65:*" */
        GLOB_SIMPLE,             /* only '*' and '?' */
        GLOB_FNMATCH,            /* brackets or backslashes */
} GlobKind;

GlobKind policy_glob_kind(const char *pattern);
/* fnmatch(pattern, s, casefold ? FNM_CASEFOLD : 0) == 0, faster for the common kinds. */
bool policy_glob_match(const char *pattern, GlobKind kind, const char *s, bool casefold);

/* One device matcher: every field that is set must match (AND). */
typedef struct DeviceMatcher {
        char *bdf;               /* device name glob (fnmatch, case-insensitive); NULL: any */
        GlobKind bdf_kind;
        bool has_id;
        int32_t vendor, device;  /* -1: any */
        bool has_class;
        uint32_t class_value, class_mask;
        char *driver;            /* bound driver glob; NULL: any; never matches an unbound device */
        GlobKind driver_kind;
        char *description;       /* "id 144d:*, class 0x0108xx", for reasons */
} DeviceMatcher;

/* A list of matchers: any of them (OR). */
typedef struct MatcherList {
        DeviceMatcher *items;
        size_t n;
} MatcherList;

/* Where a value was written, for errors found after all files are merged. */
typedef struct PolicySource {
        char *file;
        unsigned line, column;
        char *path;
} PolicySource;

typedef enum RegionAction {
        REGION_ACTION_UNSET = -1,
        REGION_ACTION_DENY,
        REGION_ACTION_ALLOW,
} RegionAction;

/* Named entries start with their name, so that one helper merges them all. */
typedef struct PolicyRule {
        char *name;
        bool deny;
        MatcherList match;
} PolicyRule;

typedef struct PolicyPool {
        char *name;
        MatcherList devices;
} PolicyPool;

typedef struct PolicyRegionException {
        char *name;
        MatcherList match;
        RegionAction direct;
        RegionAction direct_relaxable;
} PolicyRegionException;

/* One principal matcher: every field that is set must match (AND). */
typedef struct PrincipalMatcher {
        bool has_uid;
        uid_t uid;
        bool has_gid;            /* primary or supplementary */
        gid_t gid;
        char *unit;              /* systemd unit glob; NULL: any */
        GlobKind unit_kind;
        char *description;       /* "user qemu (uid 107)" */
} PrincipalMatcher;

typedef enum QuotaField {
        QUOTA_PINNED_BYTES,
        QUOTA_ADDRESS_SPACES,
        QUOTA_MAPPINGS,
        QUOTA_DEVICES,
        QUOTA_PASIDS,
        QUOTA_FAULT_QUEUE_DEPTH,
        QUOTA_CONNECTIONS,
        _QUOTA_FIELD_MAX,
} QuotaField;

typedef struct QuotaSet {
        uint64_t v[_QUOTA_FIELD_MAX];
        unsigned set;            /* bit per QuotaField given in this grant */
} QuotaSet;

typedef struct PoolRef {
        char *name;
        PolicySource source;
        const PolicyPool *pool;  /* resolved after the merge */
} PoolRef;

typedef struct PolicyGrant {
        char *name;
        PrincipalMatcher *principals;
        size_t n_principals;
        MatcherList devices;
        PoolRef *pools;
        size_t n_pools;
        QuotaSet quotas;
        IovaWindow *windows;
        PolicySource *window_sources; /* where each window was written, for policy_check_host() */
        size_t n_windows;
        bool has_pasids;
        uint32_t pasid_min, pasid_max;
        bool delegation;
        bool no_dirty_tracking; /* "dirty-tracking": false */
        bool open_on_behalf;
} PolicyGrant;

struct Policy {
        uint64_t generation;
        PolicyLimits limits;
        uint64_t default_quotas[_QUOTA_FIELD_MAX];
        RegionAction direct;             /* never UNSET */
        RegionAction direct_relaxable;   /* never UNSET */
        PolicyRegionException **exceptions;
        size_t n_exceptions;
        PolicyRule **rules;
        size_t n_rules;
        PolicyPool **pools;
        size_t n_pools;
        PolicyGrant **grants;
        size_t n_grants;
};

#define PASID_MAX_DEFAULT 0xFFFFFu       /* PASIDs are 20 bits wide */
#define PASID_MIN_DEFAULT 1u             /* PASID 0 stands for "no PASID" (RID_PASID) */

bool device_matcher_match(const DeviceMatcher *m, const TopoDevice *d);
/* Index of the first matcher in l that matches d, or -1. */
ssize_t matcher_list_match(const MatcherList *l, const TopoDevice *d);
bool principal_matcher_match(const PrincipalMatcher *m, const Principal *p);
/* The first principal matcher of g that matches p, or NULL. */
const PrincipalMatcher *policy_grant_match_principal(const PolicyGrant *g, const Principal *p);
/*
 * The first grant, in policy order, that names principal, gives it d and has the bool at
 * flag_offset in PolicyGrant set ("delegation", "open-on-behalf"); NULL when none does.
 */
const PolicyGrant *policy_grant_with(const Policy *p, const Principal *principal,
                                      const TopoDevice *d, size_t flag_offset);
/* Whether g covers d; on success names the pool (NULL: the grant's own devices) and matcher. */
bool policy_grant_covers(const PolicyGrant *g, const TopoDevice *d, const PolicyPool **ret_pool,
                         const DeviceMatcher **ret_matcher);

/* policy-model.c: a Policy of built-in defaults, and releasing what the model holds. */
int policy_new_defaults(Policy **ret);
void policy_source_done(PolicySource *s);
void device_matcher_done(DeviceMatcher *m);
void matcher_list_done(MatcherList *l);
/* Each frees one named entry (a void * so that one list function serves them all). */
void policy_rule_free(void *p);
void policy_pool_free(void *p);
void policy_region_exception_free(void *p);
void policy_grant_free(void *p);
/* Replaces the entry of the same name in place, or appends.  Takes item, also on failure. */
int policy_named_list_put(void ***items, size_t *n, void *item, void (*free_one)(void *));
/* Frees and removes the entry called name, if there is one. */
void policy_named_list_remove(void ***items, size_t *n, const char *name,
                              void (*free_one)(void *));

/* policy-lists.c: the lists in the decision's sentences. */
/*
 * Writes "A, B and C", each item as phrase() says it; a longer list is summarised on
 * purpose: "A, B, C, D and 12 more: E, F, G, …".
 */
void policy_list_write(FILE *f, const TopoDevice *const *devs, size_t n,
                       void (*phrase)(FILE *f, const TopoDevice *m));
/* "0000:00:1f.3 is bound to host driver snd_hda_intel" */
void policy_phrase_host_driver(FILE *f, const TopoDevice *m);
/* "0000:00:1f.0 (a bridge)", "0000:41:00.1 (vfio-pci)", "0000:06:00.1 (unbound)" */
void policy_phrase_member(FILE *f, const TopoDevice *m);
/*
 * "group 7 has the 'direct' reserved regions R1 and R2 (what they are)" for d's group and
 * regions of type t (REGION_DIRECT or REGION_DIRECT_RELAXABLE); writes nothing when the
 * group has none.  Returns how many it has.
 */
size_t policy_regions_write(FILE *f, const TopoDevice *d, RegionType t);
