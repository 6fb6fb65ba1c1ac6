/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * How long one policy decision takes on a big server: 4096 devices in groups
 * of mixed shapes, a policy with dozens of rules, pools and grants.  Prints
 * microseconds per decision with a principal, against a baseline measured in
 * the same run (the device-only decision, and a trivial string-compare loop).
 * Never fails on time.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench-report.h"
#include "fake-topology.h"
#include "macros.h"
#include "policy.h"

#define N_DEVICES 4096
#define N_RULES 40
#define N_POOLS 20
#define N_GRANTS 30

static double now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static const struct {
        uint16_t vendor, device;
        uint32_t class;
} kinds[] = {
        { 0x144d, 0xa808, 0x010802 }, /* NVMe */
        { 0x8086, 0x10fb, 0x020000 }, /* 10G NIC */
        { 0x15b3, 0x101d, 0x020000 }, /* ConnectX */
        { 0x10de, 0x2330, 0x030200 }, /* GPU */
        { 0x1234, 0x5678, 0x120000 }, /* accelerator */
};

/* Groups of 1 to 4 members, some behind a bridge, some with a host-bound sibling. */
static Topology *build_topology(char names[][24]) {
        static FakeDevice devs[N_DEVICES];
        static FakeRegion regions[N_DEVICES / 16];
        size_t n = 0, n_regions = 0;
        unsigned group = 0;

        while (n < N_DEVICES) {
                unsigned shape = group % 8, members = 1 + group % 4;
                unsigned bus = group;

                if (shape == 3 && n < N_DEVICES) {
                        snprintf(names[n], 24, "0000:%02x:1c.%u", bus % 256, bus / 256);
                        devs[n] = (FakeDevice){ names[n], group, 0x8086, 0xa33c, 0x060400, "pcieport", false };
                        n++;
                }
                for (unsigned f = 0; f < members && n < N_DEVICES; f++) {
                        unsigned k = (group + f) % ELEMENTSOF(kinds);
                        const char *driver = "vfio-pci";

                        if (shape == 5 && f == 1)
                                driver = "ixgbe";
                        else if (shape == 6 && f == 1)
                                driver = NULL;
                        snprintf(names[n], 24, "%04x:%02x:%02x.%u", bus / 256 % 16, bus % 256, f / 8, f % 8);
                        devs[n] = (FakeDevice){ names[n], group, kinds[k].vendor, kinds[k].device,
                                                kinds[k].class, driver, driver && strneq(driver, "vfio", 4) };
                        n++;
                }
                if (group % 16 == 7 && n_regions < ELEMENTSOF(regions))
                        regions[n_regions++] = (FakeRegion){ group, 0x7b800000, 0x7fffffff,
                                                             group % 32 == 7 ? REGION_DIRECT
                                                                             : REGION_DIRECT_RELAXABLE };
                group++;
        }
        return fake_topology_new(devs, n, regions, n_regions, NULL, 0);
}

static char *build_policy(void) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                abort();
        fputs("{ \"quotas\": { \"devices\": 64 },\n", f);
        fputs("  \"reserved-regions\": { \"exceptions\": {\n", f);
        for (int i = 0; i < 4; i++)
                fprintf(f, "    \"ex%d\": { \"match\": \"%04x:*\", \"direct-relaxable\": \"deny\" }%s\n", i,
                        8 + i, i < 3 ? "," : "");
        fputs("  } },\n  \"rules\": {\n", f);
        for (int i = 0; i < N_RULES; i++) {
                switch (i % 5) {
                case 0:
                        fprintf(f, "    \"r%d\": { \"action\": \"allow\", \"match\": { \"id\": \"%04x:*\" } }", i,
                                0x1000 + i);
                        break;
                case 1:
                        fprintf(f, "    \"r%d\": { \"action\": \"deny\", \"match\": \"%04x:%02x:*\" }", i,
                                15, i);
                        break;
                case 2:
                        fprintf(f, "    \"r%d\": { \"action\": \"allow\", \"match\": [ { \"class\": \"0x%02xxxxx\" }, \"00%02x:*\" ] }",
                                i, 0x20 + i, i);
                        break;
                case 3:
                        fprintf(f, "    \"r%d\": { \"action\": \"deny\", \"match\": { \"id\": \"%04x:%04x\", \"driver\": \"vfio-*\" } }",
                                i, 0x2000 + i, i);
                        break;
                default:
                        fprintf(f, "    \"r%d\": { \"action\": \"allow\", \"match\": { \"bdf\": \"000%x:??:*\", \"class\": \"0x%02xxxxx\" } }",
                                i, i % 16, 0x30 + i);
                        break;
                }
                fputs(",\n", f);
        }
        /* The rules that actually let this host's devices through, last. */
        fputs("    \"nvme\": { \"action\": \"allow\", \"match\": { \"class\": \"0x010802\" } },\n"
              "    \"nics\": { \"action\": \"allow\", \"match\": [ { \"id\": \"8086:*\" }, { \"id\": \"15b3:*\" } ] },\n"
              "    \"accel\": { \"action\": \"allow\", \"match\": { \"class\": \"0x12xxxx\" } },\n"
              "    \"no-gpus\": { \"action\": \"deny\", \"match\": { \"class\": \"0x03xxxx\" } }\n"
              "  },\n  \"pools\": {\n", f);
        for (int i = 0; i < N_POOLS; i++)
                fprintf(f, "    \"p%d\": { \"devices\": [ \"%04x:%02x:*\", { \"id\": \"%04x:*\", \"class\": \"0x02xxxx\" } ] },\n",
                        i, i % 16, i * 7 % 256, 0x3000 + i);
        fputs("    \"everything\": { \"devices\": [ { \"class\": \"0x010802\" }, { \"class\": \"0x02xxxx\" }, { \"class\": \"0x12xxxx\" } ] }\n"
              "  },\n  \"grants\": {\n", f);
        for (int i = 0; i < N_GRANTS; i++)
                fprintf(f, "    \"g%d\": { \"principals\": [ \"user:%d\", { \"group\": %d, \"unit\": \"vm%d-*.scope\" } ],"
                           " \"pools\": [ \"p%d\", \"p%d\" ], \"devices\": [ \"%04x:%02x:00.0\" ] },\n",
                        i, 2000 + i, 3000 + i, i, i % N_POOLS, (i + 1) % N_POOLS, i % 16, i);
        /* The principal measured is named by the last grant, after every other one was tried. */
        fputs("    \"vms\": { \"principals\": [ \"group:4000\", \"unit:machine-qemu*.scope\" ],"
              " \"pools\": [ \"everything\" ] }\n  }\n}\n", f);
        fclose(f);
        return buf;
}

static const char *holder_none(void *userdata, const TopoDevice *d) {
        return NULL;
}

/* The best of rounds passes over every device: the least disturbed by other load. */
static double time_decisions(const Policy *p, const Topology *t, const Principal *pr,
                             const PolicyRuntime *rt, unsigned rounds, unsigned *ret_allowed) {
        double best = 1e300;
        unsigned allowed = 0;

        for (unsigned r = 0; r < rounds; r++) {
                double start = now_us(), us;

                allowed = 0;
                for (size_t i = 0; i < t->n_devices; i++) {
                        PolicyDecision dec;

                        if (policy_decide(p, t, t->devices[i], pr, rt, &dec) < 0)
                                abort();
                        allowed += dec.allowed;
                        policy_decision_clear(&dec);
                }
                us = (now_us() - start) / (double)t->n_devices;
                best = MIN(best, us);
        }
        *ret_allowed = allowed;
        return best;
}

/* What a decision cannot be faster than: one string compare per rule, per device. */
static double time_trivial(const Topology *t, unsigned rounds, unsigned *ret_hits) {
        char rule_names[N_RULES][16];
        volatile unsigned hits = 0;
        double best = 1e300;

        for (int i = 0; i < N_RULES; i++)
                snprintf(rule_names[i], sizeof(rule_names[i]), "0000:%02x:00.7", i);
        for (unsigned r = 0; r < rounds; r++) {
                double start = now_us(), us;

                for (size_t i = 0; i < t->n_devices; i++)
                        for (int k = 0; k < N_RULES; k++)
                                if (streq(rule_names[k], t->devices[i]->name))
                                        hits++;
                us = (now_us() - start) / (double)t->n_devices;
                best = MIN(best, us);
        }
        *ret_hits = hits;
        return best;
}

int main(int argc, char **argv) {
        static char names[N_DEVICES][24];
        static const gid_t groups[] = { 100, 4000 };
        const Principal pr = { .uid = 1000, .gid = 1000, .groups = groups, .n_groups = 2,
                               .unit = "machine-qemu-7-vm.scope" };
        PolicyQuotas usage = { .devices = 3 };
        PolicyRuntime rt = { .device_holder = holder_none, .usage = &usage };
        unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 20;
        _cleanup_free_ char *text = NULL;
        PolicyDiagnostics diags = {};
        Topology *t;
        Policy *p;
        double with, without, trivial, load_start, load_us;
        unsigned allowed, eligible, hits;

        if (rounds == 0)
                rounds = 1;
        t = build_topology(names);
        text = build_policy();
        load_start = now_us();
        if (policy_load_string(&p, "bench.json", text, strlen(text), &diags, NULL) < 0) {
                policy_diagnostics_print(&diags, stderr);
                return EXIT_FAILURE;
        }
        load_us = now_us() - load_start;

        /* Warm up caches and the allocator. */
        time_decisions(p, t, &pr, &rt, 1, &allowed);

        without = time_decisions(p, t, NULL, NULL, rounds, &eligible);
        with = time_decisions(p, t, &pr, &rt, rounds, &allowed);
        trivial = time_trivial(t, rounds, &hits);

        printf("policy_decide over %zu devices in %zu groups; policy of %d rules, %d pools, %d grants "
               "(%zu bytes, loaded in %.0f µs)\n",
               t->n_devices, t->n_groups, N_RULES + 4, N_POOLS + 1, N_GRANTS + 1, strlen(text), load_us);
        printf("  %u devices eligible, %u allowed for the principal\n", eligible, allowed);
        printf("  best of %u passes over every device\n", rounds);
        printf("  with principal and runtime:   %7.3f µs/decision\n", with);
        printf("  device only (baseline):       %7.3f µs/decision\n", without);
        printf("  trivial loop (%d strcmp):     %7.3f µs/device\n", N_RULES, trivial);
        printf("  ratio with/device-only:       %7.2f\n", with / without);
        printf("  ratio with/trivial loop:      %7.2f\n", with / trivial);
        printf("  target <= 2 µs per decision:  %s\n", with <= 2.0 ? "met" : "NOT met");
        bench_report("policy.decision", with, "us", without, 2.0, 0, 1);
        bench_report("policy.decision-vs-strcmp-loop", with, "us", trivial, BENCH_NONE, 0, 1);

        policy_free(p);
        fake_topology_free(t);
        return EXIT_SUCCESS;
}
