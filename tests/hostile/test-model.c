/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Random method sequences against the real daemon, checked call by call
 * against a reference model of what the state must be: which session holds
 * which device, which address spaces exist, which IOVA ranges are mapped in
 * each, and every usage counter, of each session and of the uid they all
 * belong to, whose totals the quotas limit.  The model predicts each reply's success or
 * its error name; any difference fails with the seed, the step and the
 * recent history, so MODEL_SEED (or HOSTILE_SEED) and MODEL_STEPS reproduce it.
 */

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "hostile.h"

#define PAGE UINT64_C(4096)
#define SESSIONS 3
#define MAX_AREAS 64
#define FIXED_BASE UINT64_C(0x100000)
#define FIXED_SLOTS 64
#define HISTORY 256

#define E_NONE NULL
#define E_NO_SUCH "org.iommud.Broker.NoSuchObject"
#define E_BUSY "org.iommud.Broker.DeviceBusy"
#define E_DENIED "org.iommud.Broker.PolicyDenied"
#define E_QUOTA "org.iommud.Broker.QuotaExceeded"
#define E_IN_USE "org.iommud.Broker.ObjectInUse"
#define E_IOVA "org.iommud.Broker.IOVAInUse"
#define E_RANGE "org.iommud.Broker.InvalidRange"

/* The devices the sequences use; groups as in tests/data/topologies/server.json. */
typedef struct ModelDeviceDef {
        const char *name;
        bool exists;
        bool allowed; /* by the policy: a VFIO driver, viable group, no direct region */
        unsigned group;
} ModelDeviceDef;

static const ModelDeviceDef devices[] = {
        { "0000:c1:00.2", true, true, 21 },
        { "0000:c1:00.3", true, true, 22 },
        { "0000:c1:00.4", true, true, 23 },
        { "0000:41:00.0", true, true, 2 },
        { "0000:41:00.1", true, true, 2 },  /* the same group: held and attached together */
        { "0000:21:00.0", true, false, 1 }, /* a firmware "direct" region */
        { "0000:01:00.0", true, false, 0 }, /* bound to nvme */
        { "0000:ff:1f.7", false, false, 999 },
};
#define N_DEVICES (sizeof(devices) / sizeof(devices[0]))

/* Reserved regions every server group has once a device is attached (MSI, HyperTransport). */
static const struct {
        uint64_t start, last;
} reserved[] = {
        { 0xfee00000, 0xfeefffff },
        { 0xfd00000000, 0xffffffffff },
};

typedef struct ModelArea {
        uint64_t iova, length;
} ModelArea;

typedef struct ModelIoas {
        uint64_t id;
        ModelArea areas[MAX_AREAS];
        size_t n_areas;
        unsigned n_attached;
} ModelIoas;

typedef struct ModelDevice {
        size_t def;       /* index into devices[] */
        uint64_t id;      /* deviceId */
        uint64_t ioas_id; /* 0: not attached */
} ModelDevice;

typedef struct ModelSession {
        ItestClient *c;
        ModelDevice devs[N_DEVICES];
        size_t n_devs;
        ModelIoas ioas[HOSTILE_ADDRESS_SPACES];
        size_t n_ioas;
} ModelSession;

typedef struct Model {
        ItestDaemon daemon;
        HostileSnapshot base;
        ModelSession s[SESSIONS];
        int holder[N_DEVICES]; /* session index or -1 */
        int mem;
        uint32_t rnd;
        unsigned seed, step;
        unsigned n_ok, n_errors[8];
        char history[HISTORY][200];
} Model;

static uint32_t rnd(Model *m) {
        uint32_t x = m->rnd ?: 1;

        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        m->rnd = x;
        return x;
}

__attribute__((format(printf, 2, 3))) static void note(Model *m, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(m->history[m->step % HISTORY], sizeof(m->history[0]), fmt, ap);
        va_end(ap);
}

static void dump_history(Model *m) {
        for (unsigned i = m->step >= HISTORY ? m->step - HISTORY + 1 : 0; i <= m->step; i++)
                fprintf(stderr, "#   step %u: %s\n", i, m->history[i % HISTORY]);
}

static void model_fail(Model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void model_fail(Model *m, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        dump_history(m);
        fail_msg("seed %u (MODEL_SEED=%u reproduces), step %u: %s", m->seed, m->seed, m->step,
                 msg);
}

static const char *const error_names[] = { E_NO_SUCH, E_BUSY, E_DENIED, E_QUOTA,
                                           E_IN_USE,  E_IOVA, E_RANGE };

/* The reply is the predicted success or error name; returns the reply for further checks. */
static json_object *expect(Model *m, json_object *r, const char *want) {
        const char *got = itest_reply_error(r);

        if ((want == NULL) != (got == NULL) || (want && strcmp(want, got) != 0)) {
                dump_history(m);
                fail_msg("seed %u (MODEL_SEED=%u reproduces), step %u: expected %s, got %s",
                         m->seed, m->seed, m->step, want ?: "success",
                         json_object_to_json_string(r));
        }
        if (!want)
                m->n_ok++;
        else
                for (size_t i = 0; i < sizeof(error_names) / sizeof(error_names[0]); i++)
                        if (strcmp(error_names[i], want) == 0)
                                m->n_errors[i]++;
        return r;
}

/* ---- model queries ------------------------------------------------------------------------ */

static uint64_t model_pinned(const ModelSession *s) {
        uint64_t sum = 0;

        for (size_t i = 0; i < s->n_ioas; i++)
                for (size_t k = 0; k < s->ioas[i].n_areas; k++)
                        sum += s->ioas[i].areas[k].length;
        return sum;
}

static uint64_t model_mappings(const ModelSession *s) {
        uint64_t n = 0;

        for (size_t i = 0; i < s->n_ioas; i++)
                n += s->ioas[i].n_areas;
        return n;
}

/* What every session holds together: the principal's totals, which the quotas limit. */
static void model_totals(const Model *m, uint64_t ret[4]) {
        memset(ret, 0, 4 * sizeof(uint64_t));
        for (size_t i = 0; i < SESSIONS; i++) {
                ret[0] += m->s[i].n_devs;
                ret[1] += m->s[i].n_ioas;
                ret[2] += model_mappings(&m->s[i]);
                ret[3] += model_pinned(&m->s[i]);
        }
}

static ModelIoas *find_ioas(ModelSession *s, uint64_t id) {
        for (size_t i = 0; i < s->n_ioas; i++)
                if (s->ioas[i].id == id)
                        return &s->ioas[i];
        return NULL;
}

static ModelDevice *find_dev(ModelSession *s, uint64_t id) {
        for (size_t i = 0; i < s->n_devs; i++)
                if (s->devs[i].id == id)
                        return &s->devs[i];
        return NULL;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
        return a <= b + (blen - 1) && b <= a + (alen - 1);
}

static bool ioas_range_busy(const ModelIoas *io, uint64_t iova, uint64_t length) {
        for (size_t k = 0; k < io->n_areas; k++)
                if (overlaps(io->areas[k].iova, io->areas[k].length, iova, length))
                        return true;
        if (io->n_attached > 0)
                for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
                        if (overlaps(reserved[k].start, reserved[k].last - reserved[k].start + 1,
                                     iova, length))
                                return true;
        return false;
}

static void ioas_add_area(ModelIoas *io, uint64_t iova, uint64_t length) {
        size_t k = io->n_areas;

        assert_true(k < MAX_AREAS);
        while (k > 0 && io->areas[k - 1].iova > iova) {
                io->areas[k] = io->areas[k - 1];
                k--;
        }
        io->areas[k] = (ModelArea){ iova, length };
        io->n_areas++;
}

/* A random id that this session does not use, or one it does. */
static uint64_t pick_id(Model *m, const uint64_t *ids, size_t n) {
        if (n == 0 || rnd(m) % 5 == 0)
                return 4000 + rnd(m) % 100;
        return ids[rnd(m) % n];
}

static uint64_t pick_ioas(Model *m, ModelSession *s) {
        uint64_t ids[HOSTILE_ADDRESS_SPACES] = {};

        for (size_t i = 0; i < s->n_ioas; i++)
                ids[i] = s->ioas[i].id;
        return pick_id(m, ids, s->n_ioas);
}

static uint64_t pick_dev(Model *m, ModelSession *s) {
        uint64_t ids[N_DEVICES] = {};

        for (size_t i = 0; i < s->n_devs; i++)
                ids[i] = s->devs[i].id;
        return pick_id(m, ids, s->n_devs);
}

/* ---- operations --------------------------------------------------------------------------- */

static void op_attach_device(Model *m, int si) {
        ModelSession *s = &m->s[si];
        size_t d = rnd(m) % N_DEVICES;
        const char *want = E_NONE;
        uint64_t total[4];
        json_object *r;

        note(m, "session %d: AttachDevice(%s)", si, devices[d].name);
        if (!devices[d].exists)
                want = E_NO_SUCH;
        else if (m->holder[d] == si)
                want = E_BUSY;
        else if (!devices[d].allowed)
                want = E_DENIED;
        else
                for (size_t k = 0; k < N_DEVICES; k++)
                        if (devices[k].group == devices[d].group && m->holder[k] >= 0 &&
                            m->holder[k] != si)
                                want = E_BUSY;
        if (want)
                ;
        else if (model_totals(m, total), total[0] >= HOSTILE_DEVICES)
                want = E_QUOTA;
        r = expect(m, hostile_call(s->c, "org.iommud.Broker.AttachDevice",
                                   itest_params("device", json_object_new_string(devices[d].name),
                                                NULL),
                                   NULL, 0),
                   want);
        if (!want) {
                uint64_t id = itest_get_u64(itest_reply_params(r), "deviceId");

                if (find_dev(s, id))
                        model_fail(m, "deviceId %llu handed out twice", (unsigned long long)id);
                s->devs[s->n_devs++] = (ModelDevice){ .def = d, .id = id };
                m->holder[d] = si;
        }
        json_object_put(r);
}

static void op_detach_device(Model *m, int si) {
        ModelSession *s = &m->s[si];
        uint64_t id = pick_dev(m, s);
        ModelDevice *d = find_dev(s, id);

        note(m, "session %d: DetachDevice(%llu)", si, (unsigned long long)id);
        json_object_put(expect(m, hostile_call(s->c, "org.iommud.Broker.DetachDevice",
                                               itest_params("deviceId", hostile_u64(id), NULL),
                                               NULL, 0),
                               d ? E_NONE : E_NO_SUCH));
        if (!d)
                return;
        if (d->ioas_id)
                find_ioas(s, d->ioas_id)->n_attached--;
        m->holder[d->def] = -1;
        *d = s->devs[--s->n_devs];
}

static void op_create_ioas(Model *m, int si) {
        ModelSession *s = &m->s[si];
        uint64_t total[4];
        const char *want;
        json_object *r;

        model_totals(m, total);
        want = total[1] >= HOSTILE_ADDRESS_SPACES ? E_QUOTA : E_NONE;

        note(m, "session %d: CreateAddressSpace()", si);
        r = expect(m, hostile_call(s->c, "org.iommud.Broker.CreateAddressSpace", NULL, NULL, 0),
                   want);
        if (!want) {
                uint64_t id = itest_get_u64(itest_reply_params(r), "ioasId");

                if (find_ioas(s, id))
                        model_fail(m, "ioasId %llu handed out twice", (unsigned long long)id);
                s->ioas[s->n_ioas++] = (ModelIoas){ .id = id };
        }
        json_object_put(r);
}

static void op_destroy_ioas(Model *m, int si) {
        ModelSession *s = &m->s[si];
        uint64_t id = pick_ioas(m, s);
        ModelIoas *io = find_ioas(s, id);
        const char *want = !io ? E_NO_SUCH : io->n_attached > 0 ? E_IN_USE : E_NONE;

        note(m, "session %d: DestroyAddressSpace(%llu)", si, (unsigned long long)id);
        json_object_put(expect(m, hostile_call(s->c, "org.iommud.Broker.DestroyAddressSpace",
                                               itest_params("ioasId", hostile_u64(id), NULL), NULL,
                                               0),
                               want));
        if (!want)
                *io = s->ioas[--s->n_ioas];
}

static void op_attach_to_ioas(Model *m, int si) {
        ModelSession *s = &m->s[si];
        uint64_t dev_id = pick_dev(m, s), ioas_id = pick_ioas(m, s);
        ModelDevice *d = find_dev(s, dev_id);
        ModelIoas *io = find_ioas(s, ioas_id);
        const char *want = E_NONE;

        note(m, "session %d: AttachToAddressSpace(%llu, %llu)", si, (unsigned long long)dev_id,
             (unsigned long long)ioas_id);
        if (!d || !io)
                want = E_NO_SUCH;
        else if (d->ioas_id != ioas_id) {
                /* The devices of a group share one page table: a first attach must go where
                 * the group's other devices are, the other device is in use there. */
                if (d->ioas_id == 0)
                        for (size_t k = 0; k < s->n_devs; k++)
                                if (&s->devs[k] != d &&
                                    devices[s->devs[k].def].group == devices[d->def].group &&
                                    s->devs[k].ioas_id != 0 && s->devs[k].ioas_id != ioas_id)
                                        want = E_IN_USE;
                /* The device's reserved regions must be free in the target. */
                for (size_t k = 0; k < io->n_areas && !want; k++)
                        for (size_t j = 0; j < sizeof(reserved) / sizeof(reserved[0]); j++)
                                if (overlaps(reserved[j].start,
                                             reserved[j].last - reserved[j].start + 1,
                                             io->areas[k].iova, io->areas[k].length))
                                        want = E_IOVA;
        }
        json_object_put(expect(m, hostile_call(s->c, "org.iommud.Broker.AttachToAddressSpace",
                                               itest_params("deviceId", hostile_u64(dev_id),
                                                            "ioasId", hostile_u64(ioas_id), NULL),
                                               NULL, 0),
                               want));
        if (want || d->ioas_id == ioas_id)
                return;
        /* A replace moves the whole group along, as the kernel does. */
        uint64_t from = d->ioas_id;

        for (size_t k = 0; k < s->n_devs; k++) {
                ModelDevice *x = &s->devs[k];

                if (x != d && (from == 0 || x->ioas_id != from ||
                               devices[x->def].group != devices[d->def].group))
                        continue;
                if (x->ioas_id)
                        find_ioas(s, x->ioas_id)->n_attached--;
                x->ioas_id = ioas_id;
                io->n_attached++;
        }
}

static void op_map(Model *m, int si) {
        ModelSession *s = &m->s[si];
        uint64_t ioas_id = pick_ioas(m, s), length = PAGE * (1 + rnd(m) % 32);
        bool fixed = rnd(m) % 4 != 0;
        uint64_t iova = FIXED_BASE + PAGE * 16 * (rnd(m) % FIXED_SLOTS) + PAGE * (rnd(m) % 2);
        ModelIoas *io = find_ioas(s, ioas_id);
        const char *want = E_NONE;
        uint64_t total[4];
        json_object *p, *r;

        model_totals(m, total);
        note(m, "session %d: Map(%llu, length 0x%llx, iova %s0x%llx)", si,
             (unsigned long long)ioas_id, (unsigned long long)length, fixed ? "" : "auto, not ",
             (unsigned long long)iova);
        if (!io)
                want = E_NO_SUCH;
        else if (total[2] + 1 > HOSTILE_MAPPINGS)
                want = E_QUOTA;
        else if (total[3] + length > HOSTILE_PINNED)
                want = E_QUOTA;
        else if (fixed && ioas_range_busy(io, iova, length))
                want = E_IOVA;

        p = itest_params("ioasId", hostile_u64(ioas_id), "memoryFd", hostile_u64(0), "offset",
                         hostile_u64(0), "length", hostile_u64(length), "readable",
                         json_object_new_boolean(true), "writeable",
                         json_object_new_boolean(rnd(m) % 2), NULL);
        if (fixed)
                json_object_object_add(p, "iova", hostile_u64(iova));
        r = expect(m, hostile_call(s->c, "org.iommud.Broker.Map", p, &m->mem, 1), want);
        if (!want) {
                uint64_t got = itest_get_u64(itest_reply_params(r), "iova");

                if (fixed && got != iova)
                        model_fail(m, "a fixed map at 0x%llx landed at 0x%llx",
                                   (unsigned long long)iova, (unsigned long long)got);
                /* An automatic IOVA must be free too: the daemon may not double-map. */
                if (!fixed && ioas_range_busy(io, got, length))
                        model_fail(m, "an automatic IOVA 0x%llx overlaps what is mapped",
                                   (unsigned long long)got);
                ioas_add_area(io, got, length);
        }
        json_object_put(r);
}

static void op_unmap(Model *m, int si) {
        ModelSession *s = &m->s[si];
        uint64_t ioas_id = pick_ioas(m, s), iova, length, expect_unmapped = 0;
        ModelIoas *io = find_ioas(s, ioas_id);
        const char *want = E_NONE;
        unsigned kind = rnd(m) % 5;
        size_t first = SIZE_MAX, end = 0;
        json_object *r;

        if (io && io->n_areas > 0 && kind < 3) {
                size_t k = rnd(m) % io->n_areas;

                iova = io->areas[k].iova;
                length = io->areas[k].length;
                if (kind == 1 && k + 1 < io->n_areas) /* this one through the next */
                        length = io->areas[k + 1].iova + io->areas[k + 1].length - iova;
                if (kind == 2 && length > PAGE) /* cuts it */
                        length -= PAGE;
        } else if (kind == 3) {
                iova = 0;
                length = UINT64_MAX;
        } else {
                iova = FIXED_BASE + PAGE * (rnd(m) % (16 * FIXED_SLOTS));
                length = PAGE * (1 + rnd(m) % 8);
        }
        note(m, "session %d: Unmap(%llu, 0x%llx, 0x%llx)", si, (unsigned long long)ioas_id,
             (unsigned long long)iova, (unsigned long long)length);

        if (!io)
                want = E_NO_SUCH;
        else {
                uint64_t last = length == UINT64_MAX ? UINT64_MAX : iova + (length - 1);

                for (size_t k = 0; k < io->n_areas; k++) {
                        const ModelArea *a = &io->areas[k];

                        if (a->iova > last || a->iova + (a->length - 1) < iova)
                                continue;
                        if (a->iova < iova || a->iova + (a->length - 1) > last)
                                want = E_RANGE; /* mappings are removed whole or not at all */
                        if (first == SIZE_MAX)
                                first = k;
                        end = k + 1;
                        expect_unmapped += a->length;
                }
                if (first == SIZE_MAX && !(iova == 0 && length == UINT64_MAX))
                        want = E_RANGE;
        }
        r = expect(m, hostile_call(s->c, "org.iommud.Broker.Unmap",
                                   itest_params("ioasId", hostile_u64(ioas_id), "iova",
                                                hostile_u64(iova), "length", hostile_u64(length),
                                                NULL),
                                   NULL, 0),
                   want);
        if (!want) {
                uint64_t got = itest_get_u64(itest_reply_params(r), "unmapped");

                if (got != expect_unmapped)
                        model_fail(m, "unmapped %llu bytes, the model has %llu",
                                   (unsigned long long)got, (unsigned long long)expect_unmapped);
                if (first != SIZE_MAX) {
                        memmove(&io->areas[first], &io->areas[end],
                                (io->n_areas - end) * sizeof(ModelArea));
                        io->n_areas -= end - first;
                }
        }
        json_object_put(r);
}

/* Every usage counter the daemon reports against the model's. */
static void op_check_usage(Model *m, int si) {
        ModelSession *s = &m->s[si];
        static const char *const names[] = { "devices", "addressSpaces", "mappings",
                                             "pinnedBytes" };
        uint64_t want[4] = { s->n_devs, s->n_ioas, model_mappings(s), model_pinned(s) }, total[4];

        note(m, "session %d: GetSession()", si);
        model_totals(m, total);
        for (size_t i = 0; i < 4; i++) {
                uint64_t got = hostile_usage(s->c, names[i]);

                if (got != want[i])
                        model_fail(m, "usage of %s is %llu, the model has %llu", names[i],
                                   (unsigned long long)got, (unsigned long long)want[i]);
                got = hostile_principal_usage(s->c, names[i]);
                if (got != total[i])
                        model_fail(m, "the uid's usage of %s is %llu, the model has %llu",
                                   names[i], (unsigned long long)got,
                                   (unsigned long long)total[i]);
        }
}

/* Who holds what, as GetTopology says, against the model. */
static void op_check_claims(Model *m, int si) {
        json_object *r, *devs;

        note(m, "session %d: GetTopology()", si);
        r = hostile_call(m->s[si].c, "org.iommud.Broker.GetTopology", NULL, NULL, 0);
        assert_true(json_object_object_get_ex(itest_reply_params(r), "devices", &devs));
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                json_object *d = json_object_array_get_idx(devs, i);
                const char *name = itest_get_string(d, "name");
                bool held = itest_get_string(d, "heldBy") != NULL;

                for (size_t k = 0; k < N_DEVICES; k++)
                        if (strcmp(devices[k].name, name) == 0 && held != (m->holder[k] >= 0))
                                model_fail(m, "%s is %sheld, the model says otherwise", name,
                                           held ? "" : "not ");
        }
        json_object_put(r);
}

/* The client goes away; everything it held is released, a new one starts empty. */
static void op_reconnect(Model *m, int si) {
        ModelSession *s = &m->s[si];

        note(m, "session %d: disconnect and reconnect", si);
        itest_client_free(s->c);
        for (size_t k = 0; k < N_DEVICES; k++)
                if (m->holder[k] == si)
                        m->holder[k] = -1;
        *s = (ModelSession){};
        assert_int_equal(itest_client_connect(&s->c, m->daemon.socket), 0);
        /*
         * Claims and usage go with the old connection's session: wait until the daemon has seen
         * it close, which is when the uid is back at one connection per model session.
         */
        for (int i = 0; i < 2000; i++) {
                if (hostile_principal_usage(s->c, "connections") == SESSIONS)
                        return;
                usleep(5000);
        }
        model_fail(m, "the daemon never released the session of the closed connection");
}

static int group_setup(void **state) {
        ItestDaemon *d = calloc(1, sizeof(*d));

        assert_non_null(d);
        hostile_start(d, "server");
        *state = d;
        return 0;
}

static int group_teardown(void **state) {
        ItestDaemon *d = *state;

        if (!d)
                return 0;
        /* A clean exit status also means no sanitizer report and no leak in the daemon. */
        assert_int_equal(itest_daemon_stop(d), 0);
        free(d);
        return 0;
}

static void test_model_sequences(void **state) {
        Model *m = calloc(1, sizeof(*m));
        const char *seed = getenv("MODEL_SEED") ?: getenv("HOSTILE_SEED");
        const char *steps = getenv("MODEL_STEPS");
        unsigned n_steps = steps ? (unsigned)strtoul(steps, NULL, 0) : 3000;
        static void (*const ops[])(Model *, int) = {
                op_attach_device, op_attach_device, op_detach_device, op_create_ioas,
                op_create_ioas,   op_destroy_ioas,  op_attach_to_ioas, op_attach_to_ioas,
                op_map,           op_map,           op_map,            op_map,
                op_unmap,         op_unmap,         op_unmap,          op_check_usage,
                op_check_claims,
        };

        assert_non_null(m);
        m->daemon = *(ItestDaemon *)*state;
        m->seed = seed ? (unsigned)strtoul(seed, NULL, 0) : 0x5eed;
        m->rnd = m->seed;
        fprintf(stderr, "# model: seed %u, %u steps (MODEL_SEED, MODEL_STEPS)\n", m->seed,
                n_steps);
        hostile_snapshot(&m->daemon, &m->base);
        m->mem = itest_memfd(HOSTILE_PINNED);
        assert_true(m->mem >= 0);
        for (size_t k = 0; k < N_DEVICES; k++)
                m->holder[k] = -1;
        for (int i = 0; i < SESSIONS; i++)
                assert_int_equal(itest_client_connect(&m->s[i].c, m->daemon.socket), 0);

        for (m->step = 0; m->step < n_steps; m->step++) {
                int si = (int)(rnd(m) % SESSIONS);

                if (rnd(m) % 200 == 0)
                        op_reconnect(m, si);
                else
                        ops[rnd(m) % (sizeof(ops) / sizeof(ops[0]))](m, si);
        }
        fprintf(stderr, "# model: %u calls succeeded as predicted; predicted errors:", m->n_ok);
        for (size_t i = 0; i < sizeof(error_names) / sizeof(error_names[0]); i++)
                fprintf(stderr, " %s %u", strrchr(error_names[i], '.') + 1, m->n_errors[i]);
        fprintf(stderr, "\n");
        /* Every kind of outcome happened: a sequence that only ever fails proves little. */
        assert_true(m->n_ok > n_steps / 10);
        for (int i = 0; i < SESSIONS; i++)
                op_check_usage(m, i);
        for (int i = 0; i < SESSIONS; i++)
                itest_client_free(m->s[i].c);
        hostile_assert_at(&m->daemon, &m->base);
        close(m->mem);
        free(m);
}

static uint64_t call_id(ItestClient *c, const char *method, json_object *params, const char *key) {
        json_object *r = hostile_call(c, method, params, NULL, 0);
        uint64_t id;

        if (itest_reply_error(r))
                fail_msg("%s: %s", method, json_object_to_json_string(r));
        id = itest_get_u64(itest_reply_params(r), key);
        json_object_put(r);
        return id;
}

static const char *call_error(ItestClient *c, const char *method, json_object *params) {
        static char name[128];
        json_object *r = hostile_call(c, method, params, NULL, 0);

        snprintf(name, sizeof(name), "%s", itest_reply_error(r) ?: "");
        json_object_put(r);
        return name;
}

/*
 * Both devices of one IOMMU group in one session: moving one to another
 * address space moves the group, and the address space they left must be
 * free to destroy at once (the sequences above found this).
 */
static void test_group_replace(void **state) {
        ItestDaemon *d = *state;
        HostileSnapshot base;
        ItestClient *c;
        uint64_t a, b, io1, io2;

        hostile_snapshot(d, &base);
        assert_int_equal(itest_client_connect(&c, d->socket), 0);
        a = call_id(c, "org.iommud.Broker.AttachDevice",
                    itest_params("device", json_object_new_string("0000:41:00.0"), NULL),
                    "deviceId");
        b = call_id(c, "org.iommud.Broker.AttachDevice",
                    itest_params("device", json_object_new_string("0000:41:00.1"), NULL),
                    "deviceId");
        io1 = call_id(c, "org.iommud.Broker.CreateAddressSpace", NULL, "ioasId");
        io2 = call_id(c, "org.iommud.Broker.CreateAddressSpace", NULL, "ioasId");
        (void)call_id(c, "org.iommud.Broker.AttachToAddressSpace",
                      itest_params("deviceId", hostile_u64(a), "ioasId", hostile_u64(io1), NULL),
                      "hwptId");
        (void)call_id(c, "org.iommud.Broker.AttachToAddressSpace",
                      itest_params("deviceId", hostile_u64(b), "ioasId", hostile_u64(io1), NULL),
                      "hwptId");
        (void)call_id(c, "org.iommud.Broker.AttachToAddressSpace",
                      itest_params("deviceId", hostile_u64(a), "ioasId", hostile_u64(io2), NULL),
                      "hwptId");

        assert_string_equal(call_error(c, "org.iommud.Broker.DestroyAddressSpace",
                                       itest_params("ioasId", hostile_u64(io2), NULL)),
                            "org.iommud.Broker.ObjectInUse");
        assert_string_equal(call_error(c, "org.iommud.Broker.DestroyAddressSpace",
                                       itest_params("ioasId", hostile_u64(io1), NULL)),
                            "");
        /* b went along with a: detaching a alone leaves io2 in use. */
        assert_string_equal(call_error(c, "org.iommud.Broker.DetachDevice",
                                       itest_params("deviceId", hostile_u64(a), NULL)),
                            "");
        assert_string_equal(call_error(c, "org.iommud.Broker.DestroyAddressSpace",
                                       itest_params("ioasId", hostile_u64(io2), NULL)),
                            "org.iommud.Broker.ObjectInUse");
        assert_string_equal(call_error(c, "org.iommud.Broker.DetachDevice",
                                       itest_params("deviceId", hostile_u64(b), NULL)),
                            "");
        assert_string_equal(call_error(c, "org.iommud.Broker.DestroyAddressSpace",
                                       itest_params("ioasId", hostile_u64(io2), NULL)),
                            "");
        itest_client_free(c);
        hostile_assert_at(d, &base);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_group_replace),
                cmocka_unit_test(test_model_sequences),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests_name("hostile-model", tests, group_setup, group_teardown);
}
