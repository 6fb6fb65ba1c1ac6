/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * PASID binds and the fault router in the session core, on the simulated
 * backend with a real event loop: groups routed whole and in order, cookies
 * that are the session's own, the queue depth, a client that cannot take a
 * fault, ended watches, unbinds, timeouts and session teardown, with the
 * model's counters as the device's view.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "backend-sim.h"
#include "fault-router.h"
#include "policy.h"
#include "session.h"
#include "sim-host.h"
#include "simtopo.h"
#include "topology.h"

#define PASID_DEV "0000:e1:00.0"   /* server: 20 PASID bits behind ivhd1 (fault queues) */
#define NO_PASID_DEV "0000:c1:00.2" /* server: a VF without PASID */
#define DEPTH 3

typedef struct Env {
        char root[64];
        struct event_base *base;
        SessionHost host;
        FaultEvent seen[32];
        size_t n_seen;
        int deliver_result;       /* what the watch callback returns */
} Env;

static const char policy_text[] =
        "{ \"limits\": { \"fault-response-timeout-ms\": 20 },\n"
        "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
        "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ], \"devices\": \"*\",\n"
        "    \"open-on-behalf\": true, \"pasids\": { \"min\": 100, \"max\": 103 },\n"
        "    \"quotas\": { \"pasids\": 3, \"fault-queue-depth\": 3 } } } }\n";

static int setup(void **state) {
        Env *e = calloc(1, sizeof(*e));

        assert_non_null(e);
        sim_host_setup(&e->host, e->root, sizeof(e->root), "server", policy_text);
        e->base = event_base_new();
        assert_non_null(e->base);
        assert_int_equal(fault_router_new(&e->host.faults, e->base), 0);
        *state = e;
        return 0;
}

static int teardown(void **state) {
        Env *e = *state;

        session_host_done(&e->host);
        fault_router_free(e->host.faults);
        event_base_free(e->base);
        sim_host_teardown(&e->host, e->root);
        free(e);
        return 0;
}

static Session *new_session(Env *e) {
        PeerCreds *c = NULL;
        Session *s = NULL;

        assert_int_equal(peer_creds_new(&c, "/nonexistent", 4242, 1000, 1000, NULL), 0);
        assert_int_equal(session_new(&s, &e->host, c, NULL), 0);
        return s;
}

static uint32_t attach(Session *s, const char *name) {
        SessionDeviceInfo info;
        BrokerError err = BROKER_ERROR_INIT;

        if (session_attach_device_name(s, name, &info, &err) < 0)
                fail_msg("attach %s: %s", name, error_message(&err.error));
        return info.device_id;
}

/* A session holding the PASID device with one PASID bound with faults. */
static Session *bound_session(Env *e, uint32_t *ret_dev, uint32_t *ret_pasid) {
        Session *s = new_session(e);
        BrokerError err = BROKER_ERROR_INIT;
        SessionBindPasidArgs a = { .faults = true };
        uint32_t hwpt;

        a.device_id = attach(s, PASID_DEV);
        assert_int_equal(session_create_address_space(s, &a.ioas_id, NULL), 0);
        if (session_bind_pasid(s, &a, ret_pasid, &hwpt, &err) < 0)
                fail_msg("bind: %s", error_message(&err.error));
        *ret_dev = a.device_id;
        return s;
}

static int collect(FaultWatch *w, const FaultEvent *ev, void *userdata) {
        Env *e = userdata;

        if (e->deliver_result < 0)
                return e->deliver_result;
        assert_true(e->n_seen < ELEMENTSOF(e->seen));
        e->seen[e->n_seen++] = *ev;
        return 0;
}

static void inject(Env *e, uint32_t pasid, uint64_t addr, bool last, uint32_t group) {
        assert_int_equal(backend_sim_inject_fault(e->host.backend, PASID_DEV, pasid, addr,
                                                  FAULT_PERM_READ, last, group, NULL),
                         0);
}

static void dispatch(Session *s) {
        (void)fault_stream_dispatch(session_fault_stream(s));
}

static BackendSimStats sim_stats(Env *e) {
        BackendSimStats st;

        backend_sim_get_stats(e->host.backend, &st);
        return st;
}

static FaultCounters counters(Session *s) {
        SessionInfo info;

        session_get_info(s, &info);
        return info.faults;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_bind_rules(void **state) {
        Env *e = *state;
        Session *s = new_session(e);
        BrokerError err = BROKER_ERROR_INIT;
        SessionBindPasidArgs a = {};
        uint32_t pasid, hwpt;
        static const struct {
                bool has_pasid;
                uint32_t pasid;
                int r;
                const char *error;
        } cases[] = {
                { true, 99, -EPERM, BROKER_ERROR_POLICY_DENIED },
                { true, 104, -EPERM, BROKER_ERROR_POLICY_DENIED },
                { true, 0, -EINVAL, BROKER_ERROR_INVALID_PARAMETER },
                { true, 1u << 20, -EINVAL, BROKER_ERROR_INVALID_PARAMETER },
                { true, 101, 0, NULL },
                { true, 101, -EBUSY, BROKER_ERROR_OBJECT_IN_USE },
                { false, 0, 0, NULL },   /* the lowest free: 100 */
                { false, 0, 0, NULL },   /* 102 */
                { false, 0, -EDQUOT, BROKER_ERROR_QUOTA_EXCEEDED },
        };

        a.device_id = attach(s, NO_PASID_DEV);
        assert_int_equal(session_create_address_space(s, &a.ioas_id, NULL), 0);
        assert_int_equal(session_bind_pasid(s, &a, &pasid, &hwpt, &err), -EOPNOTSUPP);
        assert_string_equal(err.error.name, BROKER_ERROR_NOT_SUPPORTED);
        assert_string_equal(broker_error_get(&err, "feature")->str, "pasid");

        a.device_id = attach(s, PASID_DEV);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int r;

                broker_error_clear(&err);
                a.has_pasid = cases[i].has_pasid;
                a.pasid = cases[i].pasid;
                r = session_bind_pasid(s, &a, &pasid, &hwpt, &err);
                if (cases[i].error) {
                        assert_string_equal(err.error.name, cases[i].error);
                        if (cases[i].r != -EDQUOT)
                                assert_int_equal(r, cases[i].r);
                        else
                                assert_true(r < 0);
                } else
                        assert_int_equal(r, 0);
        }
        assert_int_equal(session_n_pasids(s), 3);

        /* Unbind gives the PASID and the quota back; the lowest free one is reused. */
        assert_int_equal(session_unbind_pasid(s, a.device_id, 100, NULL), 0);
        assert_int_equal(session_unbind_pasid(s, a.device_id, 100, &err), -ENOENT);
        a.has_pasid = false;
        assert_int_equal(session_bind_pasid(s, &a, &pasid, &hwpt, NULL), 0);
        assert_int_equal(pasid, 100);

        /* A bad stage-1 table costs nothing. */
        a.stage1_type = BACKEND_HWPT_DATA_VTD_S1;
        a.stage1_data = "short";
        a.stage1_len = 5;
        assert_int_equal(session_unbind_pasid(s, a.device_id, 100, NULL), 0);
        broker_error_clear(&err);
        assert_int_equal(session_bind_pasid(s, &a, &pasid, &hwpt, &err), -EINVAL);
        assert_string_equal(broker_error_get(&err, "parameter")->str, "stage1");
        assert_int_equal(session_n_pasids(s), 2);

        /* Detaching the device unbinds all of its PASIDs. */
        assert_int_equal(session_detach_device(s, a.device_id, NULL), 0);
        assert_int_equal(session_n_pasids(s), 0);
        session_free(s);
}

static void test_routing_order_and_answers(void **state) {
        Env *e = *state;
        BackendSimStats before = sim_stats(e), after;
        BrokerError err = BROKER_ERROR_INIT;
        FaultWatch *w = NULL;
        uint32_t dev, pasid;
        Session *s = bound_session(e, &dev, &pasid);

        assert_int_equal(session_watch_faults(s, FAULT_WATCH_ALL, collect, e, &w, NULL), 0);
        inject(e, pasid, 0x1000, false, 7);
        inject(e, pasid, 0x2000, true, 7);
        inject(e, pasid, 0x9000, true, 8);
        dispatch(s);

        assert_int_equal(e->n_seen, 3);
        assert_int_equal(e->seen[0].address, 0x1000);
        assert_int_equal(e->seen[1].address, 0x2000);
        assert_int_equal(e->seen[2].address, 0x9000);
        assert_false(e->seen[0].last_page);
        assert_true(e->seen[1].last_page);
        assert_int_equal(e->seen[0].cookie, e->seen[1].cookie);
        assert_true(e->seen[2].cookie > e->seen[1].cookie);
        assert_true(e->seen[0].pasid_valid);
        assert_int_equal(e->seen[0].pasid, pasid);
        assert_int_equal(e->seen[0].device_id, dev);
        assert_int_equal(e->seen[0].group_id, 7);

        assert_int_equal(session_respond_fault(s, e->seen[0].cookie, FAULT_RESPONSE_SUCCESS, NULL),
                         0);
        assert_int_equal(session_respond_fault(s, e->seen[0].cookie, FAULT_RESPONSE_SUCCESS, &err),
                         -ESTALE);
        assert_string_equal(broker_error_get(&err, "reason")->str, "answered");
        broker_error_clear(&err);
        assert_int_equal(session_respond_fault(s, e->seen[2].cookie + 100,
                                               FAULT_RESPONSE_SUCCESS, &err),
                         -ENOENT);
        assert_int_equal(session_respond_fault(s, e->seen[2].cookie, 7, NULL), -EINVAL);
        assert_int_equal(session_respond_fault(s, e->seen[2].cookie, FAULT_RESPONSE_INVALID, NULL),
                         0);

        after = sim_stats(e);
        assert_int_equal(after.responses_success - before.responses_success, 1);
        assert_int_equal(after.responses_invalid - before.responses_invalid, 1);
        assert_int_equal(counters(s).delivered, 2);
        assert_int_equal(counters(s).answered, 2);
        assert_int_equal(counters(s).pending, 0);
        fault_watch_free(w);
        session_free(s);
}

static void test_depth_and_full_client(void **state) {
        Env *e = *state;
        BackendSimStats before = sim_stats(e);
        FaultWatch *w = NULL;
        uint32_t dev, pasid;
        Session *s = bound_session(e, &dev, &pasid);

        /* Nobody watches yet: groups wait, and beyond the depth the device hears INVALID. */
        for (uint32_t i = 0; i < DEPTH + 2; i++)
                inject(e, pasid, 0x1000 * (i + 1), true, i);
        dispatch(s);
        assert_int_equal(counters(s).pending, DEPTH);
        assert_int_equal(counters(s).dropped, 2);
        assert_int_equal(sim_stats(e).responses_invalid - before.responses_invalid, 2);

        /* A client that cannot take them: each is answered INVALID and the queue empties. */
        e->deliver_result = -ENOBUFS;
        assert_int_equal(session_watch_faults(s, dev, collect, e, &w, NULL), 0);
        assert_int_equal(e->n_seen, 0);
        assert_int_equal(counters(s).pending, 0);
        assert_int_equal(counters(s).dropped, 2 + DEPTH);
        assert_int_equal(sim_stats(e).responses_invalid - before.responses_invalid, 2 + DEPTH);

        /* One watch per device. */
        FaultWatch *w2 = NULL;
        BrokerError err = BROKER_ERROR_INIT;
        assert_int_equal(session_watch_faults(s, dev, collect, e, &w2, &err), -EBUSY);
        assert_string_equal(err.error.name, BROKER_ERROR_OBJECT_IN_USE);
        fault_watch_free(w);
        session_free(s);
}

typedef struct Notice {
        uint64_t address;
        bool delivered;
        FaultClosedReason reason;
        Session *session;
} Notice;

static Notice notices[16];
static size_t n_notices;

static void on_notice(FaultStream *fs, const FaultEvent *ev, bool delivered,
                      FaultClosedReason reason, void *userdata) {
        assert_true(n_notices < ELEMENTSOF(notices));
        notices[n_notices++] = (Notice){ .address = ev->address, .delivered = delivered,
                                         .reason = reason,
                                         .session = fault_stream_get_userdata(fs) };
}

/* Monitors hear of every group delivered and every group the router answers itself. */
static void test_notices(void **state) {
        Env *e = *state;
        FaultWatch *w = NULL;
        uint32_t dev, pasid;
        Session *s;

        n_notices = 0;
        fault_router_set_notice(e->host.faults, on_notice, NULL);
        s = bound_session(e, &dev, &pasid);
        /* DEPTH wait, the next one overflows at once. */
        for (uint32_t i = 0; i < DEPTH + 1; i++)
                inject(e, pasid, 0x1000 * (i + 1), true, i);
        dispatch(s);
        assert_int_equal(n_notices, 1);
        assert_false(notices[0].delivered);
        assert_int_equal(notices[0].reason, FAULT_CLOSED_OVERFLOW);
        assert_int_equal(notices[0].address, 0x1000 * (DEPTH + 1));
        assert_ptr_equal(notices[0].session, s);

        /* A watch takes the queued ones: one notice each, in order. */
        assert_int_equal(session_watch_faults(s, dev, collect, e, &w, NULL), 0);
        assert_int_equal(n_notices, 1 + DEPTH);
        for (size_t i = 1; i <= DEPTH; i++) {
                assert_true(notices[i].delivered);
                assert_int_equal(notices[i].address, 0x1000 * i);
        }
        /* The client answers one itself: no notice; the rest go with the session. */
        assert_int_equal(session_respond_fault(s, e->seen[0].cookie, FAULT_RESPONSE_SUCCESS, NULL),
                         0);
        assert_int_equal(n_notices, 1 + DEPTH);
        fault_watch_free(w);
        assert_int_equal(n_notices, 1 + DEPTH + (DEPTH - 1));
        assert_int_equal(notices[n_notices - 1].reason, FAULT_CLOSED_DISCONNECTED);
        session_free(s);
        fault_router_set_notice(e->host.faults, NULL, NULL);
}

static void test_watch_end_unbind_and_free(void **state) {
        Env *e = *state;
        BackendSimStats before = sim_stats(e), after;
        BrokerError err = BROKER_ERROR_INIT;
        FaultWatch *w = NULL;
        uint32_t dev, pasid;
        uint64_t cookie;
        Session *s = bound_session(e, &dev, &pasid);

        /* Ending a watch answers what it delivered; an undelivered group waits for the next. */
        assert_int_equal(session_watch_faults(s, FAULT_WATCH_ALL, collect, e, &w, NULL), 0);
        inject(e, pasid, 0x1000, true, 1);
        dispatch(s);
        assert_int_equal(e->n_seen, 1);
        cookie = e->seen[0].cookie;
        w = fault_watch_free(w);
        assert_int_equal(sim_stats(e).responses_invalid - before.responses_invalid, 1);
        assert_int_equal(session_respond_fault(s, cookie, FAULT_RESPONSE_SUCCESS, &err), -ESTALE);
        assert_string_equal(broker_error_get(&err, "reason")->str, "disconnected");

        /* Unbind: the kernel answers, the router forgets. */
        assert_int_equal(session_watch_faults(s, FAULT_WATCH_ALL, collect, e, &w, NULL), 0);
        inject(e, pasid, 0x2000, true, 2);
        dispatch(s);
        assert_int_equal(e->n_seen, 2);
        cookie = e->seen[1].cookie;
        assert_int_equal(session_unbind_pasid(s, dev, pasid, NULL), 0);
        broker_error_clear(&err);
        assert_int_equal(session_respond_fault(s, cookie, FAULT_RESPONSE_SUCCESS, &err), -ESTALE);
        assert_string_equal(broker_error_get(&err, "reason")->str, "unbound");
        after = sim_stats(e);
        assert_int_equal(after.auto_invalid - before.auto_invalid, 1);
        assert_int_equal(after.responses_invalid - before.responses_invalid, 1);

        /* Freeing the session answers its pending groups before the devices go. */
        SessionBindPasidArgs a = { .device_id = dev, .faults = true };
        uint32_t hwpt;
        assert_int_equal(session_create_address_space(s, &a.ioas_id, NULL), 0);
        assert_int_equal(session_bind_pasid(s, &a, &pasid, &hwpt, NULL), 0);
        fault_watch_free(w);
        inject(e, pasid, 0x3000, true, 3);
        dispatch(s);
        assert_int_equal(counters(s).pending, 1);
        before = sim_stats(e);
        session_free(s);
        after = sim_stats(e);
        assert_int_equal(after.responses_invalid - before.responses_invalid, 1);
        assert_int_equal(after.auto_invalid - before.auto_invalid, 0);
}

/* Runs the loop until the stream has timed out want groups; the bound only catches a hang. */
static void loop_until_timed_out(Env *e, Session *s, uint64_t want) {
        for (int i = 0; i < 10000 && counters(s).timed_out < want; i++)
                (void)event_base_loop(e->base, EVLOOP_ONCE);
        assert_int_equal(counters(s).timed_out, want);
}

static void test_timeout_from_the_loop(void **state) {
        Env *e = *state;
        BackendSimStats before = sim_stats(e);
        BrokerError err = BROKER_ERROR_INIT;
        FaultWatch *w = NULL;
        uint32_t dev, pasid;
        Session *s = bound_session(e, &dev, &pasid);

        assert_int_equal(session_watch_faults(s, FAULT_WATCH_ALL, collect, e, &w, NULL), 0);
        inject(e, pasid, 0x1000, true, 1);
        inject(e, pasid, 0x2000, true, 2);
        /* The loop reads the queue (the fd is readable) and later times both out. */
        for (int i = 0; i < 10000 && e->n_seen < 2; i++)
                (void)event_base_loop(e->base, EVLOOP_ONCE);
        assert_int_equal(e->n_seen, 2);
        assert_int_equal(session_respond_fault(s, e->seen[1].cookie, FAULT_RESPONSE_SUCCESS, NULL),
                         0);
        loop_until_timed_out(e, s, 1);
        assert_int_equal(session_respond_fault(s, e->seen[0].cookie, FAULT_RESPONSE_SUCCESS, &err),
                         -ESTALE);
        assert_string_equal(broker_error_get(&err, "reason")->str, "timed_out");
        assert_int_equal(sim_stats(e).responses_invalid - before.responses_invalid, 1);
        assert_int_equal(sim_stats(e).responses_success - before.responses_success, 1);
        fault_watch_free(w);
        session_free(s);
}

static void test_other_session_cookie(void **state) {
        Env *e = *state;
        BrokerError err = BROKER_ERROR_INIT;
        FaultWatch *w = NULL;
        uint32_t dev, pasid;
        Session *s = bound_session(e, &dev, &pasid);
        Session *other = new_session(e);

        assert_int_equal(session_watch_faults(s, FAULT_WATCH_ALL, collect, e, &w, NULL), 0);
        inject(e, pasid, 0x1000, true, 1);
        dispatch(s);
        assert_int_equal(e->n_seen, 1);
        /* other has no fault queue at all: still "not yours", not "unknown". */
        assert_int_equal(session_respond_fault(other, e->seen[0].cookie, FAULT_RESPONSE_SUCCESS,
                                               &err),
                         -EPERM);
        assert_string_equal(err.error.name, BROKER_ERROR_FAULT_NOT_OWNED);
        assert_int_equal(session_respond_fault(s, e->seen[0].cookie, FAULT_RESPONSE_SUCCESS, NULL),
                         0);
        fault_watch_free(w);
        session_free(other);
        session_free(s);
}

/* A device taken from the session: its PASIDs go and the router answers its faults itself. */
static void test_device_gone(void **state) {
        static const char deny_text[] =
                "{ \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" },\n"
                "             \"no\": { \"action\": \"deny\", \"match\": \"" PASID_DEV "\" } },\n"
                "  \"grants\": { \"vm\": { \"principals\": [ { \"user\": 1000 } ],\n"
                "    \"devices\": \"*\", \"open-on-behalf\": true } } }\n";
        Env *e = *state;
        BackendSimStats before = sim_stats(e), after;
        BrokerError err = BROKER_ERROR_INIT;
        FaultWatch *w = NULL;
        Policy *deny = NULL;
        SessionInfo info;
        uint32_t dev, pasid;
        uint64_t cookie;
        Session *s = bound_session(e, &dev, &pasid);

        assert_int_equal(session_watch_faults(s, FAULT_WATCH_ALL, collect, e, &w, NULL), 0);
        inject(e, pasid, 0x1000, true, 1);
        dispatch(s);
        assert_int_equal(e->n_seen, 1);
        cookie = e->seen[0].cookie;

        /* A policy reload refuses the device from now on. */
        assert_int_equal(policy_load_string(&deny, "deny.json", deny_text, strlen(deny_text),
                                            NULL, NULL),
                         0);
        policy_free(e->host.policy);
        e->host.policy = deny;
        assert_int_equal(session_revalidate(s, NULL, NULL), 1);

        assert_int_equal(session_n_devices(s), 0);
        assert_int_equal(session_n_pasids(s), 0);
        after = sim_stats(e);
        /* Answered by the router (a response), not left to the detach (auto). */
        assert_int_equal(after.responses_invalid - before.responses_invalid, 1);
        assert_int_equal(after.auto_invalid - before.auto_invalid, 0);
        assert_int_equal(session_respond_fault(s, cookie, FAULT_RESPONSE_SUCCESS, &err), -ESTALE);
        assert_string_equal(broker_error_get(&err, "reason")->str, "device_gone");
        session_get_info(s, &info);
        assert_int_equal(info.faults.dropped, 1);
        assert_int_equal(info.faults.pending, 0);
        /* The PASID is free for others again. */
        broker_error_clear(&err);
        assert_int_equal(session_unbind_pasid(s, dev, pasid, &err), -ENODEV);
        assert_string_equal(err.error.name, BROKER_ERROR_DEVICE_GONE);

        fault_watch_free(w);
        session_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_bind_rules, setup, teardown),
                cmocka_unit_test_setup_teardown(test_routing_order_and_answers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_depth_and_full_client, setup, teardown),
                cmocka_unit_test_setup_teardown(test_notices, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_end_unbind_and_free, setup, teardown),
                cmocka_unit_test_setup_teardown(test_timeout_from_the_loop, setup, teardown),
                cmocka_unit_test_setup_teardown(test_other_session_cookie, setup, teardown),
                cmocka_unit_test_setup_teardown(test_device_gone, setup, teardown),
        };

        return cmocka_run_group_tests_name("fault-router", tests, NULL, NULL);
}
