/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Hotplug and restart survival of the real iommud binary on a simulated host, restarted
 * through the fd store as systemd does (fdstore-harness.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "iommud/iommud.h"
#include "fdstore-harness.h"
#include "itest.h"

#define PAGE 4096
#define DEV_A "0000:01:00.0" /* NVMe on vfio-pci, a group of its own */

typedef struct Held {
        uint64_t dev, ioas, hwpt;
        char token[64];
} Held;

/* A device attached to an address space with two mappings at fixed IOVAs. */
static void build_session(ItestClient *c, Held *held, int memfd) {
        held->dev = attach_by_name(c, DEV_A);
        held->ioas = call_u64(c, "org.iommud.Broker.CreateAddressSpace", NULL, "ioasId", NULL, 0);
        held->hwpt = call_u64(c, "org.iommud.Broker.AttachToAddressSpace",
                              itest_params("deviceId", json_object_new_int64((int64_t)held->dev),
                                           "ioasId", json_object_new_int64((int64_t)held->ioas),
                                           NULL),
                              "hwptId", NULL, 0);
        assert_int_equal(map_fixed(c, held->ioas, memfd, 0x100000, 4 * PAGE), 0x100000);
        assert_int_equal(map_fixed(c, held->ioas, memfd, 0x400000, 2 * PAGE), 0x400000);
        assert_int_equal(usage_of(c, "mappings", held->token, sizeof(held->token)), 2);
}

static const char *grant = "\"quotas\": { \"pinned-memory\": \"1M\", \"address-spaces\": 4,"
                           " \"mappings\": 64, \"devices\": 4 },\n"
                           "      \"open-on-behalf\": true";

/* ---- restart survival ---- */

static void test_restart_keeps_mappings(void **state) {
        Harness h;
        ItestClient *c, *c2, *other;
        Held held;
        json_object *r;
        int memfd = itest_memfd(16 * PAGE);

        harness_start(&h, grant);
        assert_int_equal(harness_count(&h, "iommud-state-"), 2);
        c = connect_client(&h);
        build_session(c, &held, memfd);
        assert_int_equal(usage_of(c, "pinnedBytes", NULL, 0), 6 * PAGE);

        harness_kill(&h);
        assert_true(itest_client_is_closed(c));
        itest_client_free(c);
        assert_int_equal(harness_launch(&h), 0);

        /* Until reclaimed, the device stays with the old session. */
        other = connect_client(&h);
        assert_string_equal(call_error(other, "org.iommud.Broker.AttachDevice",
                                       itest_params("device", json_object_new_string(DEV_A), NULL),
                                       &r),
                            "org.iommud.Broker.DeviceBusy");
        json_object_put(r);

        c2 = connect_client(&h);
        join(c2, held.token);
        /* Same usage, same ids, same areas at the same IOVAs. */
        assert_int_equal(usage_of(c2, "mappings", NULL, 0), 2);
        assert_int_equal(usage_of(c2, "pinnedBytes", NULL, 0), 6 * PAGE);
        assert_int_equal(usage_of(c2, "devices", NULL, 0), 1);
        assert_string_equal(call_error(c2, "org.iommud.Broker.Map",
                                       itest_params("ioasId",
                                                    json_object_new_int64((int64_t)held.ioas),
                                                    "memoryFd", json_object_new_int(0), "offset",
                                                    json_object_new_int(0), "length",
                                                    json_object_new_int(PAGE), "iova",
                                                    json_object_new_int(0x100000), "readable",
                                                    json_object_new_boolean(true), "writeable",
                                                    json_object_new_boolean(true), NULL),
                                       &r),
                            "org.varlink.service.InvalidParameter"); /* no fd sent */
        json_object_put(r);
        /* A mapping is removed whole: cutting it fails, the exact area unmaps. */
        assert_string_equal(call_error(c2, "org.iommud.Broker.Unmap",
                                       itest_params("ioasId",
                                                    json_object_new_int64((int64_t)held.ioas),
                                                    "iova", json_object_new_int(0x100000),
                                                    "length", json_object_new_int(PAGE), NULL),
                                       &r),
                            "org.iommud.Broker.InvalidRange");
        json_object_put(r);
        assert_int_equal(unmap(c2, held.ioas, 0x100000, 4 * PAGE), 4 * PAGE);
        assert_int_equal(usage_of(c2, "pinnedBytes", NULL, 0), 2 * PAGE);
        assert_int_equal(map_fixed(c2, held.ioas, memfd, 0x100000, PAGE), 0x100000);
        /* The device is still attached where it was: re-attaching is a replace. */
        json_object_put(ok_call(c2, "org.iommud.Broker.AttachToAddressSpace",
                                itest_params("deviceId", json_object_new_int64((int64_t)held.dev),
                                             "ioasId", json_object_new_int64((int64_t)held.ioas),
                                             NULL),
                                NULL, 0));

        /* And again: a second restart keeps what changed after the first. */
        harness_kill(&h);
        itest_client_free(c2);
        itest_client_free(other);
        assert_int_equal(harness_launch(&h), 0);
        c = connect_client(&h);
        join(c, held.token);
        assert_int_equal(usage_of(c, "mappings", NULL, 0), 2);
        assert_int_equal(unmap(c, held.ioas, 0, UINT64_MAX >> 1), 3 * PAGE);
        itest_client_free(c);

        close(memfd);
        harness_stop(&h);
}

static uint64_t lib_usage(IommudClient *c, const char *resource) {
        IommudSession *s = NULL;
        uint64_t v = UINT64_MAX;

        assert_int_equal(iommud_get_session(c, &s, NULL), 0);
        for (size_t i = 0; i < iommud_session_get_n_usage(s); i++)
                if (streq_safe(iommud_session_get_usage(s, i)->resource, resource))
                        v = iommud_session_get_usage(s, i)->used;
        iommud_session_free(s);
        return v;
}

/*
 * A libiommud client keeps working across SIGKILL and a restart: its next
 * call finds the connection gone, reclaims the session with its token and
 * goes on with the same objects.  Its event stream ends and is opened again.
 */
static void test_libiommud_reclaims(void **state) {
        IommudClient *c = NULL, *other = NULL;
        IommudAttachment *a = NULL, *a2 = NULL;
        IommudEventStream *events = NULL;
        IommudEvent *ev = NULL;
        IommudError *e = NULL;
        IommudIOVARange *ranges = NULL;
        size_t n_ranges = 0;
        Harness h;
        uint64_t iova, fixed = 0x200000, unmapped;
        uint32_t ioas, hwpt;
        int memfd = itest_memfd(16 * PAGE), r;

        harness_start(&h, grant);
        assert_int_equal(iommud_error_new(&e), 0);
        assert_int_equal(iommud_client_new(&c, h.d.socket, e), 0);
        assert_int_equal(iommud_attach_device_name(c, DEV_A, &a, e), 0);
        assert_int_equal(iommud_create_address_space(c, &ioas, e), 0);
        assert_int_equal(iommud_attach_to_address_space(c, a->device_id, ioas, &hwpt, e), 0);
        assert_int_equal(iommud_map(c, ioas, memfd, 0, 4 * PAGE, &fixed,
                                    IOMMUD_MAP_READABLE | IOMMUD_MAP_WRITEABLE, &iova, e),
                         0);
        assert_int_equal(iova, fixed);
        assert_int_equal(iommud_watch_events(&events, c, e), 0);

        harness_kill(&h);
        assert_int_equal(harness_launch(&h), 0);

        /* A read: reclaimed transparently. */
        r = iommud_get_iova_ranges(c, ioas, &ranges, &n_ranges, NULL, e);
        if (r < 0)
                fail_msg("GetIOVARanges after the restart: %s", iommud_error_get_message(e));
        assert_true(n_ranges > 0);
        free(ranges);
        assert_int_equal(iommud_client_get_n_reclaims(c), 1);
        /* The same session: its mapping, its device. */
        assert_int_equal(lib_usage(c, "mappings"), 1);
        assert_int_equal(lib_usage(c, "devices"), 1);
        assert_int_equal(iommud_client_new(&other, h.d.socket, e), 0);
        assert_int_equal(iommud_attach_device_name(other, DEV_A, &a2, e), -EBUSY);
        other = iommud_client_unref(other);

        /* The event stream ended with the old daemon; a new one works. */
        for (unsigned i = 0; i < 1000; i++) {
                r = iommud_event_stream_next(events, &ev, NULL);
                if (r != 0)
                        break;
                (void)poll(&(struct pollfd){ .fd = iommud_event_stream_get_fd(events),
                                             .events = POLLIN }, 1, 10);
        }
        assert_int_equal(r, -ECONNRESET);
        events = iommud_event_stream_free(events);
        assert_int_equal(iommud_watch_events(&events, c, e), 0);

        /* Again; the next call changes something, but it never left, so it is made. */
        harness_kill(&h);
        assert_int_equal(harness_launch(&h), 0);
        assert_int_equal(iommud_unmap(c, ioas, fixed, 4 * PAGE, &unmapped, e), 0);
        assert_int_equal(unmapped, 4 * PAGE);
        assert_int_equal(iommud_client_get_n_reclaims(c), 2);
        assert_int_equal(lib_usage(c, "mappings"), 0);

        /* The new stream hears of the device going away. */
        events = iommud_event_stream_free(events);
        assert_int_equal(iommud_watch_events(&events, c, e), 0);
        simulator(&h, "org.iommud.Simulator.RemoveDevice",
                  itest_params("device", json_object_new_string(DEV_A), NULL));
        for (unsigned i = 0; i < 1000; i++) {
                r = iommud_event_stream_next(events, &ev, e);
                if (r != 0)
                        break;
                (void)poll(&(struct pollfd){ .fd = iommud_event_stream_get_fd(events),
                                             .events = POLLIN }, 1, 10);
        }
        assert_int_equal(r, 1);
        assert_string_equal(ev->kind, "release_requested");
        assert_true(ev->deadline > 0);
        iommud_event_free(ev);
        assert_int_equal(iommud_event_stream_next(events, &ev, e), 1);
        assert_string_equal(ev->kind, "released");
        assert_string_equal(ev->device, DEV_A);
        assert_true(ev->has_device_id);
        assert_int_equal(ev->device_id, a->device_id);
        assert_non_null(ev->reason);
        iommud_event_free(ev);

        iommud_event_stream_free(events);
        iommud_attachment_free(a);
        iommud_client_unref(c);
        iommud_error_free(e);
        close(memfd);
        harness_stop(&h);
}

static void test_unclaimed_session_is_torn_down(void **state) {
        Harness h;
        ItestClient *c;
        Held held;
        json_object *r;
        const char *e;
        int memfd = itest_memfd(16 * PAGE);
        char policy_extra[512];

        /* The grace period is a policy limit; the loop below waits for it, never a clock. */
        snprintf(policy_extra, sizeof(policy_extra), "%s", grant);
        harness_start(&h, policy_extra);
        {
                /* itest's policy has no grace setting: rewrite it with a short one. */
                char *p = itest_policy_for_self(grant);
                char *at = strstr(p, "\"max-connections-per-user\"");
                FILE *f = fopen(h.d.policy, "we");

                assert_non_null(at);
                assert_non_null(f);
                fwrite(p, 1, (size_t)(at - p), f);
                fputs("\"session-reclaim-grace-ms\": 50, ", f);
                fputs(at, f);
                fclose(f);
                free(p);
        }
        harness_kill(&h);
        assert_int_equal(harness_launch(&h), 0);
        c = connect_client(&h);
        build_session(c, &held, memfd);
        harness_kill(&h);
        itest_client_free(c);
        assert_true(harness_count(&h, "iommud-state-") == 2);
        assert_int_equal(harness_launch(&h), 0);

        /* Nobody reclaims it: the device becomes free once the grace period has passed. */
        for (int i = 0;; i++) {
                c = connect_client(&h);
                e = call_error(c, "org.iommud.Broker.AttachDevice",
                               itest_params("device", json_object_new_string(DEV_A), NULL), &r);
                if (!e) {
                        json_object_put(r);
                        break;
                }
                assert_string_equal(e, "org.iommud.Broker.DeviceBusy");
                json_object_put(r);
                itest_client_free(c);
                assert_true(i < 1000);
                usleep(10000);
        }
        /* And its token is gone with it. */
        {
                ItestClient *c3 = connect_client(&h);

                assert_string_equal(call_error(c3, "org.iommud.Broker.JoinSession",
                                               itest_params("token",
                                                            json_object_new_string(held.token),
                                                            NULL),
                                               &r),
                                    "org.iommud.Broker.NoSuchObject");
                json_object_put(r);
                itest_client_free(c3);
        }
        itest_client_free(c);
        close(memfd);
        harness_stop(&h);
}

/* ---- hotplug ---- */

static void expect_event(ItestClient *w, const char *kind, const char *device, uint64_t dev_id) {
        json_object *m = NULL, *p, *ev;
        json_object *cont;

        assert_int_equal(itest_client_recv(w, &m), 1);
        p = itest_reply_params(m);
        assert_true(json_object_object_get_ex(m, "continues", &cont) &&
                    json_object_get_boolean(cont));
        assert_true(json_object_object_get_ex(p, "event", &ev));
        assert_string_equal(itest_get_string(ev, "kind"), kind);
        assert_string_equal(itest_get_string(ev, "device"), device);
        assert_int_equal(itest_get_u64(ev, "deviceId"), dev_id);
        json_object_put(m);
}

static void hotplug_case(void **state, const char *method, json_object *params, const char *kind) {
        Harness h;
        ItestClient *a, *watch, *b;
        Held held;
        uint64_t b_ioas;
        json_object *r;
        int memfd = itest_memfd(16 * PAGE);

        harness_start(&h, grant);
        a = connect_client(&h);
        build_session(a, &held, memfd);
        watch = connect_client(&h);
        join(watch, held.token);
        json_object *wp = json_object_new_object();
        json_object *msg = json_object_new_object();
        json_object_object_add(msg, "method",
                               json_object_new_string("org.iommud.Broker.WatchEvents"));
        json_object_object_add(msg, "parameters", wp);
        json_object_object_add(msg, "more", json_object_new_boolean(true));
        {
                const char *t = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);

                assert_int_equal(itest_client_send_raw(watch, t, strlen(t) + 1, NULL, 0), 0);
        }
        json_object_put(msg);

        /* Another session with its own mapping. */
        b = connect_client(&h);
        b_ioas = call_u64(b, "org.iommud.Broker.CreateAddressSpace", NULL, "ioasId", NULL, 0);
        assert_int_equal(map_fixed(b, b_ioas, memfd, 0x200000, PAGE), 0x200000);

        simulator(&h, method, params);
        /* Asked first, as vfio-pci asks, then released at once (no grace in this policy). */
        expect_event(watch, "release_requested", DEV_A, held.dev);
        expect_event(watch, kind, DEV_A, held.dev);

        /* The holder hears precisely what happened on further use ... */
        assert_string_equal(call_error(a, "org.iommud.Broker.DetachDevice",
                                       itest_params("deviceId",
                                                    json_object_new_int64((int64_t)held.dev),
                                                    NULL),
                                       &r),
                            "org.iommud.Broker.DeviceGone");
        assert_string_equal(itest_get_string(itest_reply_params(r), "device"), DEV_A);
        json_object_put(r);
        assert_int_equal(usage_of(a, "devices", NULL, 0), 0);
        /* ... and the rest of its session works. */
        {
                uint64_t ioas = call_u64(a, "org.iommud.Broker.CreateAddressSpace", NULL, "ioasId",
                                         NULL, 0);

                assert_int_equal(map_fixed(a, ioas, memfd, 0x100000, PAGE), 0x100000);
        }
        /* The other session is unaffected. */
        assert_int_equal(unmap(b, b_ioas, 0x200000, PAGE), PAGE);
        /* The device is out of the topology, or no longer usable. */
        assert_non_null(call_error(b, "org.iommud.Broker.AttachDevice",
                                   itest_params("device", json_object_new_string(DEV_A), NULL),
                                   &r));
        json_object_put(r);

        itest_client_free(a);
        itest_client_free(b);
        itest_client_free(watch);
        close(memfd);
        harness_stop(&h);
}

static void test_hotplug_remove(void **state) {
        hotplug_case(state, "org.iommud.Simulator.RemoveDevice",
                     itest_params("device", json_object_new_string(DEV_A), NULL), "released");
}

static void test_hotplug_rebind(void **state) {
        hotplug_case(state, "org.iommud.Simulator.SetDriver",
                     itest_params("device", json_object_new_string(DEV_A), "driver",
                                  json_object_new_string("nvme"), NULL),
                     "released");
}

/* A hotplug change to the simulated host survives a restart, like the sessions. */
static void test_hotplug_survives_restart(void **state) {
        Harness h;
        ItestClient *c;
        json_object *r;

        harness_start(&h, grant);
        simulator(&h, "org.iommud.Simulator.RemoveDevice",
                  itest_params("device", json_object_new_string(DEV_A), NULL));
        harness_kill(&h);
        assert_int_equal(harness_launch(&h), 0);
        c = connect_client(&h);
        assert_string_equal(call_error(c, "org.iommud.Broker.ExplainDevice",
                                       itest_params("device", json_object_new_string(DEV_A), NULL),
                                       &r),
                            "org.iommud.Broker.NoSuchObject");
        json_object_put(r);
        itest_client_free(c);
        harness_stop(&h);
}

/* ---- PASID binds and faults ---- */

#define DEV_P "0000:01:00.0" /* PASID-capable, behind an IOMMU with fault queues */

static const char pasid_topology[] =
        "{\n"
        "  \"name\": \"pasid\",\n"
        "  \"cdev_major\": 511,\n"
        "  \"iommus\": [ { \"name\": \"dmar0\", \"kind\": \"intel\", \"aperture_start\": \"0x0\",\n"
        "      \"aperture_last\": \"0x7fffffffff\", \"page_sizes\": [\"4K\", \"2M\"],\n"
        "      \"pasid_bits\": 20, \"capabilities\": [\"pasid-exec\"],\n"
        "      \"nesting\": true, \"dirty_tracking\": false, \"fault_queue\": true } ],\n"
        "  \"groups\": [\n"
        "    { \"id\": 1, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"" DEV_P "\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\",\n"
        "        \"pasid_bits\": 20 } ] }\n"
        "  ]\n"
        "}\n";

static const char *pasid_grant =
        "\"quotas\": { \"address-spaces\": 4, \"devices\": 4, \"pasids\": 4,"
        " \"fault-queue-depth\": 8 },\n"
        "      \"pasids\": { \"min\": 16, \"max\": 31 },\n"
        "      \"open-on-behalf\": true";

typedef struct PasidHeld {
        uint64_t dev, ioas, pasid, hwpt;
        char token[64];
} PasidHeld;

static void bind_pasid(ItestClient *c, PasidHeld *p) {
        json_object *r;

        p->dev = attach_by_name(c, DEV_P);
        p->ioas = call_u64(c, "org.iommud.Broker.CreateAddressSpace", NULL, "ioasId", NULL, 0);
        r = ok_call(c, "org.iommud.Broker.BindPASID",
                    itest_params("deviceId", json_object_new_int64((int64_t)p->dev), "ioasId",
                                 json_object_new_int64((int64_t)p->ioas), "faults",
                                 json_object_new_boolean(true), NULL),
                    NULL, 0);
        p->pasid = itest_get_u64(itest_reply_params(r), "pasid");
        p->hwpt = itest_get_u64(itest_reply_params(r), "hwptId");
        json_object_put(r);
        assert_int_equal(usage_of(c, "pasids", p->token, sizeof(p->token)), 1);
}

static void inject_fault(Harness *h, uint64_t pasid, uint64_t addr) {
        simulator(h, "org.iommud.Simulator.InjectFault",
                  itest_params("device", json_object_new_string(DEV_P), "pasid",
                               json_object_new_int64((int64_t)pasid), "address",
                               json_object_new_int64((int64_t)addr), "read",
                               json_object_new_boolean(true), NULL));
}

/* The next fault on a stream: its cookie, after checking PASID and address. */
static uint64_t next_fault(ItestClient *w, uint64_t pasid, uint64_t addr) {
        json_object *m = NULL, *fault;
        uint64_t cookie;

        assert_int_equal(itest_client_recv(w, &m), 1);
        assert_null(itest_reply_error(m));
        assert_true(json_object_object_get_ex(itest_reply_params(m), "fault", &fault));
        assert_int_equal(itest_get_u64(fault, "pasid"), pasid);
        assert_int_equal(itest_get_u64(fault, "address"), addr);
        cookie = itest_get_u64(fault, "cookie");
        json_object_put(m);
        return cookie;
}

static const char *respond(ItestClient *c, uint64_t cookie, const char *code, json_object **ret) {
        return call_error(c, "org.iommud.Broker.RespondFault",
                          itest_params("cookie", json_object_new_int64((int64_t)cookie), "code",
                                       json_object_new_string(code), NULL),
                          ret);
}

/* A PASID bound with faults survives a crash: same PASID, same page table, faults flow. */
static void test_restart_keeps_pasids(void **state) {
        Harness h;
        ItestClient *c, *w, *c2, *w2;
        PasidHeld p;
        json_object *r;
        uint64_t old_cookie, cookie;

        harness_start_on(&h, pasid_grant, pasid_topology);
        c = connect_client(&h);
        bind_pasid(c, &p);
        w = watch_faults(&h, p.token);
        inject_fault(&h, p.pasid, 0x10000);
        old_cookie = next_fault(w, p.pasid, 0x10000);

        harness_kill(&h);
        itest_client_free(c);
        itest_client_free(w);
        assert_int_equal(harness_launch(&h), 0);

        c2 = connect_client(&h);
        join(c2, p.token);
        assert_int_equal(usage_of(c2, "pasids", NULL, 0), 1);
        /* A fault pending at the crash died with the old process's cookies. */
        assert_string_equal(respond(c2, old_cookie, "success", &r),
                            "org.iommud.Broker.NoSuchObject");
        json_object_put(r);

        /* The PASID still routes faults to the session, through a recreated queue. */
        w2 = watch_faults(&h, p.token);
        inject_fault(&h, p.pasid, 0x20000);
        cookie = next_fault(w2, p.pasid, 0x20000);
        assert_null(respond(c2, cookie, "success", &r));
        json_object_put(r);
        assert_int_equal(sim_stat(&h, "responsesSuccess"), 1);

        /* The PASID is known host-wide and in the session: taken, then unbound. */
        assert_string_equal(call_error(c2, "org.iommud.Broker.BindPASID",
                                       itest_params("deviceId",
                                                    json_object_new_int64((int64_t)p.dev),
                                                    "ioasId",
                                                    json_object_new_int64((int64_t)p.ioas),
                                                    "pasid",
                                                    json_object_new_int64((int64_t)p.pasid),
                                                    NULL),
                                       &r),
                            "org.iommud.Broker.ObjectInUse");
        json_object_put(r);
        json_object_put(ok_call(c2, "org.iommud.Broker.UnbindPASID",
                                itest_params("deviceId", json_object_new_int64((int64_t)p.dev),
                                             "pasid", json_object_new_int64((int64_t)p.pasid),
                                             NULL),
                                NULL, 0));
        assert_int_equal(usage_of(c2, "pasids", NULL, 0), 0);
        /* Unbound, the address space can go. */
        json_object_put(ok_call(c2, "org.iommud.Broker.DestroyAddressSpace",
                                itest_params("ioasId", json_object_new_int64((int64_t)p.ioas),
                                             NULL),
                                NULL, 0));

        itest_client_free(w2);
        itest_client_free(c2);
        harness_stop(&h);
}

/* A device removed with a PASID bound and a fault pending: the router answers the fault. */
static void test_hotplug_remove_with_pasid(void **state) {
        Harness h;
        ItestClient *c, *w;
        PasidHeld p;
        json_object *r;
        uint64_t cookie;
        json_object *fp;

        harness_start_on(&h, pasid_grant, pasid_topology);
        c = connect_client(&h);
        bind_pasid(c, &p);
        w = watch_faults(&h, p.token);
        inject_fault(&h, p.pasid, 0x30000);
        cookie = next_fault(w, p.pasid, 0x30000);

        simulator(&h, "org.iommud.Simulator.RemoveDevice",
                  itest_params("device", json_object_new_string(DEV_P), NULL));
        assert_string_equal(respond(c, cookie, "success", &r),
                            "org.iommud.Broker.FaultNotPending");
        assert_string_equal(itest_get_string(itest_reply_params(r), "reason"), "device_gone");
        json_object_put(r);
        /* Answered by iommud itself, not left to the detach. */
        assert_int_equal(sim_stat(&h, "responsesInvalid"), 1);
        assert_int_equal(sim_stat(&h, "autoInvalid"), 0);
        assert_int_equal(usage_of(c, "pasids", NULL, 0), 0);
        r = ok_call(c, "org.iommud.Broker.GetSession", NULL, NULL, 0);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "faults", &fp));
        assert_int_equal(itest_get_u64(fp, "dropped"), 1);
        assert_int_equal(itest_get_u64(fp, "pending"), 0);
        json_object_put(r);
        assert_string_equal(call_error(c, "org.iommud.Broker.UnbindPASID",
                                       itest_params("deviceId",
                                                    json_object_new_int64((int64_t)p.dev),
                                                    "pasid",
                                                    json_object_new_int64((int64_t)p.pasid),
                                                    NULL),
                                       &r),
                            "org.iommud.Broker.DeviceGone");
        json_object_put(r);

        itest_client_free(w);
        itest_client_free(c);
        harness_stop(&h);
}

/* Only root and the daemon's own user drive the simulated host. */
static void test_simulator_access(void **state) {
        Harness h;
        ItestClient *c;
        json_object *r;

        harness_start(&h, grant);
        c = connect_client(&h);
        /* The same process is the daemon's user: allowed, and a precise error for a bad name. */
        assert_string_equal(call_error(c, "org.iommud.Simulator.RemoveDevice",
                                       itest_params("device",
                                                    json_object_new_string("0000:ff:1f.7"), NULL),
                                       &r),
                            "org.iommud.Simulator.NoSuchDevice");
        json_object_put(r);
        r = ok_call(c, "org.iommud.Simulator.GetStats", NULL, NULL, 0);
        assert_int_equal(itest_get_u64(itest_reply_params(r), "injected"), 0);
        json_object_put(r);
        itest_client_free(c);
        harness_stop(&h);
}

/*
 * A start that fails after the simulated host was loaded (here: a runtime
 * directory below a regular file) says why and exits with 1, freeing what it
 * built once.
 */
static void test_failed_start_exits(void **state) {
        const char *binary = getenv("IOMMUD_BINARY");
        char dir[] = "/tmp/iommud-lifecycle-XXXXXX", file[320], runtime[340], log[320], none[320];
        char buf[4096];
        int status, fd;
        ssize_t n;
        pid_t pid;

        assert_non_null(mkdtemp(dir));
        snprintf(file, sizeof(file), "%s/file", dir);
        snprintf(runtime, sizeof(runtime), "%s/runtime", file);
        snprintf(log, sizeof(log), "%s/log", dir);
        snprintf(none, sizeof(none), "%s/none", dir); /* no policy at all: the defaults */
        fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
        fd = open(log, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);

        pid = itest_fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (dup2(fd, STDERR_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0)
                        _exit(126);
                unsetenv("NOTIFY_SOCKET");
                unsetenv("LISTEN_FDS");
                execl(binary, binary, "--sim", "workstation", "--runtime-dir", runtime,
                      "--no-bus", "--policy", none, "--policy-dir", none, "--vendor-policy-dir",
                      none, NULL);
                _exit(127);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1);
        n = pread(fd, buf, sizeof(buf) - 1, 0);
        assert_true(n > 0);
        buf[n] = '\0';
        assert_non_null(strstr(buf, "Creating runtime directory"));
        close(fd);
        assert_int_equal(unlink(log), 0);
        assert_int_equal(unlink(file), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* ---- restored sessions in every view ---- */

/*
 * The id of the session ListSessions lists as holding DEV_A (exactly one does), after
 * checking its uid and that the list has as many sessions as GetStatus counts.
 */
static uint64_t listed_session(ItestClient *admin) {
        json_object *r = ok_call(admin, "org.iommud.Manager.ListSessions", NULL, NULL, 0);
        json_object *st = ok_call(admin, "org.iommud.Manager.GetStatus", NULL, NULL, 0);
        json_object *list, *devs;
        uint64_t id = 0;

        assert_true(json_object_object_get_ex(itest_reply_params(r), "sessions", &list));
        assert_int_equal(json_object_array_length(list),
                         itest_get_u64(itest_reply_params(st), "sessions"));
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *one = json_object_array_get_idx(list, i);

                assert_true(json_object_object_get_ex(one, "devices", &devs));
                if (json_object_array_length(devs) == 0)
                        continue;
                assert_int_equal(id, 0);
                assert_string_equal(json_object_get_string(json_object_array_get_idx(devs, 0)),
                                    DEV_A);
                assert_int_equal(itest_get_u64(one, "uid"), getuid());
                id = itest_get_u64(one, "id");
                assert_true(id > 0);
        }
        if (id == 0)
                fail_msg("ListSessions lists no session holding %s: %s", DEV_A,
                         json_object_to_json_string(list));
        json_object_put(st);
        json_object_put(r);
        return id;
}

/*
 * A session restored from the fd store is listed, counted and watched like one opened
 * now: ListSessions names it before and after its client reclaims it, with the id its
 * session-closed event carries.
 */
static void test_restored_session_in_every_view(void **state) {
        ItestClient *c, *admin, *mon;
        json_object *m = NULL, *ev;
        Harness h;
        Held held;
        uint64_t id;
        int memfd = itest_memfd(16 * PAGE);

        harness_start(&h, grant);
        c = connect_client(&h);
        build_session(c, &held, memfd);
        harness_kill(&h);
        itest_client_free(c);
        assert_int_equal(harness_launch(&h), 0);

        admin = connect_client(&h);
        id = listed_session(admin);

        mon = connect_client(&h);
        {
                static const char monitor[] =
                        "{\"method\":\"org.iommud.Manager.Monitor\",\"more\":true}";

                assert_int_equal(itest_client_send_raw(mon, monitor, sizeof(monitor), NULL, 0), 0);
        }
        c = connect_client(&h);
        join(c, held.token);
        assert_int_equal(listed_session(admin), id);
        itest_client_free(c);

        /* Its end reaches Monitor() with the id it was listed under. */
        for (;;) {
                json_object_put(m);
                assert_int_equal(itest_client_recv(mon, &m), 1);
                assert_true(json_object_object_get_ex(itest_reply_params(m), "event", &ev));
                if (streq_safe(itest_get_string(ev, "type"), "session-closed") &&
                    itest_get_u64(ev, "session") == id)
                        break;
        }
        assert_int_equal(itest_get_u64(ev, "uid"), getuid());
        json_object_put(m);
        itest_client_free(mon);
        itest_client_free(admin);
        close(memfd);
        harness_stop(&h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_restart_keeps_mappings),
                cmocka_unit_test(test_unclaimed_session_is_torn_down),
                cmocka_unit_test(test_libiommud_reclaims),
                cmocka_unit_test(test_hotplug_remove),
                cmocka_unit_test(test_hotplug_rebind),
                cmocka_unit_test(test_hotplug_survives_restart),
                cmocka_unit_test(test_restart_keeps_pasids),
                cmocka_unit_test(test_hotplug_remove_with_pasid),
                cmocka_unit_test(test_simulator_access),
                cmocka_unit_test(test_restored_session_in_every_view),
                cmocka_unit_test(test_failed_start_exits),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests_name("lifecycle", tests, NULL, NULL);
}
