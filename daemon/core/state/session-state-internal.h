/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the parts of the session record share (session-state.c, session-state-dirty.c). */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "session-internal.h"
#include "session-state.h"

/* Reports a dropped record through rc->on_drop, with a sentence saying which and why. */
#define DROP(s, rc, ...)                                                                           \
        do {                                                                                       \
                char _m[256];                                                                      \
                snprintf(_m, sizeof(_m), __VA_ARGS__);                                             \
                if ((rc)->on_drop)                                                                 \
                        (rc)->on_drop((s), _m, (rc)->userdata);                                    \
        } while (0)

/* Adds "dirtyTracking" (whether on, the page tables and their IOMMU) to the record j of a. */
int session_state_dirty_to_json(const SessionIoas *a, json_object *j);

/*
 * Dirty tracking of the address space record j, into ioas: adopted, its page tables that the
 * iommufd still has; recreated, only the flags (the tables come back with the devices).
 * Fails only for lack of memory.
 */
int session_state_restore_dirty(Session *s, SessionIoas *ioas, json_object *j,
                                const SessionRestoreConfig *rc);

/*
 * Recreated: the dirty-tracking page table device n (id) attaches through, under hwpt_id;
 * false, reported, when it cannot be made.
 */
bool session_state_restore_dirty_page_table(Session *s, const char *n, uint32_t id,
                                            SessionIoas *ioas, uint32_t hwpt_id,
                                            uint32_t *ret_pt, const SessionRestoreConfig *rc);
