/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Restart survival of sessions: the record a restarted daemon needs to take a
 * session over (JSON, for the state memfd in systemd's fd store) and the
 * rebuild of a session from that record.  Outside the core proper so that the
 * session core knows no JSON; this library alone shares the core's private
 * tables (session-internal.h).  Used by the composition root, which restores,
 * and by the Varlink broker, which writes each session's record.
 */

#include <json-c/json.h>

#include "backend.h"
#include "peer-creds.h"
#include "session.h"

/*
 * session_to_json() records what a restarted daemon needs
 * to take the session over: devices (id, name, address space, page table),
 * address spaces (id, allowed list, mappings as [iova, length, flags]) and,
 * since state version 2, the fault queue's id and the PASID binds (device,
 * PASID, address space, page table, nesting parent and stage-1 table, whether
 * faults were requested), and whether the session delegated its iommufd (after which iommud
 * mediates nothing for it); an address space with dirty tracking records whether tracking is
 * on and its dirty-tracking page tables (id, IOMMU); since state version 3, the devices
 * handed over as fds (OpenDevices), whose claims are all iommud keeps of them.  Usage is not
 * recorded: it follows from the rest.
 * Pending faults are not recorded: their cookies die with the process.
 */
int session_to_json(const Session *s, json_object **ret);

/* The session's backend context (its iommufd), whose fds go to the fd store. */
BackendContext *session_get_context(const Session *s);

typedef struct SessionRestoreConfig {
        /*
         * NULL: ctx is the adopted iommufd and still holds every object; each
         * recorded one is checked against it (IOAS by IOVA_RANGES, device by
         * HW_INFO, every mapping by copying it into a scratch IOAS, a PASID by
         * attaching its recorded page table again, a replace with itself, a
         * dirty-tracking page table by reading its bitmap without clearing, or turning
         * tracking off again where it was off) and what does not match is dropped.
         * Otherwise ctx is fresh and the objects are
         * recreated under their recorded ids (prepare_id() is called before each
         * allocation): the simulated backend, whose state lived in the old process.
         */
        void (*prepare_id)(BackendContext *c, uint32_t id);
        /*
         * Adopted contexts only: the fd of fault queue fault_id that ctx took
         * over (borrowed), negative when it has none.  NULL: no fault queue
         * survives, and PASIDs bound with faults are unbound.
         */
        int (*fault_fd)(BackendContext *c, uint32_t fault_id);
        /* Each record dropped, with a sentence saying which and why. */
        void (*on_drop)(Session *s, const char *what, void *userdata);
        void *userdata;
} SessionRestoreConfig;

/*
 * Rebuilds a session from its record over ctx for creds (both taken in every
 * case) and links it into host.  Fails only for lack of memory;
 * everything else is dropped and reported.  Call session_revalidate()
 * afterwards: topology and policy may have changed meanwhile.
 */
int session_restore(Session **ret, SessionHost *host, PeerCreds *creds, BackendContext *ctx,
                    json_object *state, const SessionRestoreConfig *rc);
