/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * iommuctl attach, map: an administrator's end-to-end check of the broker.
 * Each step prints what iommud answered; everything is undone before exit
 * (and iommud would release it anyway when the connection closes).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>

#include "iommuctl.h"
#include "json-util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(IommudAttachment *, iommud_attachment_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

static int attach(Ctl *ctl, const char *device, IommudAttachment **ret, json_object *out) {
        IommudClient *c;
        int r;

        r = ctl_connect(ctl, &c);
        if (r < 0)
                return r;
        r = iommud_attach_device_name(c, device, ret, ctl->error);
        if (r < 0)
                return -ctl_fail(ctl, r, NULL);
        if (ctl->json) {
                json_object *caps = json_object_new_array();

                json_object_object_add(out, "device", json_object_new_string((*ret)->bdf));
                json_object_object_add(out, "deviceId", json_object_new_int64((*ret)->device_id));
                json_object_object_add(out, "group", json_object_new_int64((*ret)->group));
                json_object_object_add(out, "pasidBits", json_object_new_int64((*ret)->pasid_bits));
                for (size_t i = 0; i < (*ret)->n_capabilities; i++)
                        json_object_array_add(caps, json_object_new_string((*ret)->capabilities[i]));
                json_object_object_add(out, "capabilities", caps);
                return 0;
        }
        printf("Attached %s as device %" PRIu32 " (group %" PRIu32, (*ret)->bdf, (*ret)->device_id,
               (*ret)->group);
        if ((*ret)->pasid_bits > 0)
                printf(", %" PRIu32 " PASID bits", (*ret)->pasid_bits);
        else
                printf(", no PASID");
        for (size_t i = 0; i < (*ret)->n_capabilities; i++)
                printf("%s%s", i == 0 ? ", capabilities: " : ", ", (*ret)->capabilities[i]);
        printf(").\n");
        return 0;
}

static int detach(Ctl *ctl, const IommudAttachment *a) {
        int r;

        r = iommud_detach_device(ctl->client, a->device_id, ctl->error);
        if (r < 0)
                return -ctl_fail(ctl, r, "Detaching failed");
        if (!ctl->json)
                printf("Detached %s.\n", a->bdf);
        return 0;
}

int verb_attach(Ctl *ctl, int argc, char **argv) {
        _cleanup_(iommud_attachment_freep) IommudAttachment *a = NULL;
        _cleanup_(json_object_putp) json_object *out = json_object_new_object();
        char device[CTL_DEVICE_MAX];
        int r;

        r = ctl_parse(ctl, argc, argv, NULL, NULL, NULL, NULL);
        if (r < 0)
                return -r;
        if (r >= argc)
                return ctl_usage("attach", "attach needs a device, e.g. 'iommuctl attach "
                                            "0000:65:00.0'");
        if (r + 1 < argc)
                return ctl_usage("attach", "attach takes one device, got '%s' too", argv[r + 1]);
        r = ctl_device_arg("attach", argv[r], device);
        if (r < 0)
                return -r;
        if (!out)
                return CTL_EXIT_FAILURE;
        r = attach(ctl, device, &a, out);
        if (r < 0)
                return -r;
        r = detach(ctl, a);
        if (r < 0)
                return -r;
        if (ctl->json && ctl_print_json(out) < 0)
                return CTL_EXIT_FAILURE;
        return CTL_EXIT_OK;
}

typedef struct MapArgs {
        uint64_t size;
} MapArgs;

static int opt_map(Ctl *ctl, int c, const char *arg, void *userdata) {
        MapArgs *a = userdata;

        if (ctl_parse_size(arg, &a->size) < 0) {
                ctl_usage("map", "--size takes a positive number of bytes such as 65536, 64K, "
                                 "2M or 1G, not '%s'", arg);
                return -EINVAL;
        }
        return 0;
}

static json_object *range_json(uint64_t start, uint64_t last) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "start", json_object_new_uint64(start));
        json_object_object_add(o, "last", json_object_new_uint64(last));
        return o;
}

/* What map did, for its JSON form. */
typedef struct MapRun {
        uint32_t ioas, hwpt;
        IommudIOVARange *ranges;
        size_t n_ranges;
        uint64_t alignment, iova, unmapped;
} MapRun;

static void map_run_done(MapRun *m) {
        free(m->ranges);
}

/* A new address space with the device attached, and the IOVA ranges it offers. */
static int map_address_space(Ctl *ctl, const IommudAttachment *a, MapRun *m) {
        int r;

        r = iommud_create_address_space(ctl->client, &m->ioas, ctl->error);
        if (r < 0)
                return -ctl_fail(ctl, r, "Creating an address space failed");
        r = iommud_attach_to_address_space(ctl->client, a->device_id, m->ioas, &m->hwpt,
                                           ctl->error);
        if (r < 0)
                return -ctl_fail(ctl, r, "Attaching the device to the address space failed");
        r = iommud_get_iova_ranges(ctl->client, m->ioas, &m->ranges, &m->n_ranges, &m->alignment,
                                   ctl->error);
        if (r < 0)
                return -ctl_fail(ctl, r, "Reading the IOVA ranges failed");
        if (!ctl->json) {
                printf("Created address space %" PRIu32 "; the device got page table %" PRIu32 ".\n",
                       m->ioas, m->hwpt);
                printf("Usable IOVA ranges (alignment %" PRIu64 "):\n", m->alignment);
                for (size_t i = 0; i < m->n_ranges; i++)
                        printf("  0x%016" PRIx64 "-0x%016" PRIx64 "\n", m->ranges[i].start,
                               m->ranges[i].last);
        }
        return 0;
}

/* Maps size bytes of memfd where iommud chooses, and unmaps them again. */
static int map_and_unmap(Ctl *ctl, int memfd, uint64_t size, MapRun *m) {
        int r;

        r = iommud_map(ctl->client, m->ioas, memfd, 0, size, NULL,
                       IOMMUD_MAP_READABLE | IOMMUD_MAP_WRITEABLE, &m->iova, ctl->error);
        if (r < 0)
                return -ctl_fail(ctl, r, "Mapping the memfd failed");
        if (!ctl->json)
                printf("Mapped %" PRIu64 " bytes of a memfd at IOVA 0x%" PRIx64 "-0x%" PRIx64
                       " (read-write).\n", size, m->iova, m->iova + size - 1);

        r = iommud_unmap(ctl->client, m->ioas, m->iova, size, &m->unmapped, ctl->error);
        if (r < 0)
                return -ctl_fail(ctl, r, "Unmapping failed");
        if (!ctl->json)
                printf("Unmapped %" PRIu64 " bytes.\n", m->unmapped);
        return 0;
}

static int map_print_json(json_object *out, const MapRun *m, uint64_t size) {
        json_object *jr = json_object_new_array();

        for (size_t i = 0; i < m->n_ranges; i++)
                json_object_array_add(jr, range_json(m->ranges[i].start, m->ranges[i].last));
        json_object_object_add(out, "ioasId", json_object_new_int64(m->ioas));
        json_object_object_add(out, "hwptId", json_object_new_int64(m->hwpt));
        json_object_object_add(out, "alignment", json_object_new_uint64(m->alignment));
        json_object_object_add(out, "ranges", jr);
        json_object_object_add(out, "iova", json_object_new_uint64(m->iova));
        json_object_object_add(out, "length", json_object_new_uint64(size));
        json_object_object_add(out, "unmapped", json_object_new_uint64(m->unmapped));
        return ctl_print_json(out) < 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}

int verb_map(Ctl *ctl, int argc, char **argv) {
        static const struct option options[] = {
                { "size", required_argument, NULL, 'S' },
                {},
        };
        _cleanup_(iommud_attachment_freep) IommudAttachment *a = NULL;
        _cleanup_(json_object_putp) json_object *out = json_object_new_object();
        _cleanup_close_ int memfd = -EBADF;
        _cleanup_(map_run_done) MapRun m = {};
        char device[CTL_DEVICE_MAX];
        MapArgs args = {};
        uint64_t page;
        int r;

        r = ctl_parse(ctl, argc, argv, options, "", opt_map, &args);
        if (r < 0)
                return -r;
        if (r >= argc)
                return ctl_usage("map", "map needs a device, e.g. 'iommuctl map 0000:65:00.0 "
                                         "--size 2M'");
        if (r + 1 < argc)
                return ctl_usage("map", "map takes one device, got '%s' too", argv[r + 1]);
        if (args.size == 0)
                return ctl_usage("map", "map needs --size, e.g. --size 2M");
        page = (uint64_t)sysconf(_SC_PAGESIZE);
        if (args.size % page != 0)
                return ctl_usage("map", "--size must be a whole number of %" PRIu64 "-byte pages; "
                                        "%" PRIu64 " bytes is not, %" PRIu64 " would be",
                                 page, args.size, (args.size / page + 1) * page);
        r = ctl_device_arg("map", argv[r], device);
        if (r < 0)
                return -r;
        if (!out)
                return CTL_EXIT_FAILURE;

        memfd = memfd_create("iommuctl-map", MFD_CLOEXEC);
        if (memfd < 0 || ftruncate(memfd, (off_t)args.size) < 0) {
                fprintf(stderr, "Cannot create a memfd of %" PRIu64 " bytes to map: %m.\n",
                        args.size);
                return CTL_EXIT_FAILURE;
        }

        r = attach(ctl, device, &a, out);
        if (r >= 0)
                r = map_address_space(ctl, a, &m);
        if (r >= 0)
                r = map_and_unmap(ctl, memfd, args.size, &m);
        if (r >= 0)
                r = detach(ctl, a);
        if (r < 0)
                return -r;
        r = iommud_destroy_address_space(ctl->client, m.ioas, ctl->error);
        if (r < 0)
                return ctl_fail(ctl, r, "Destroying the address space failed");
        if (ctl->json)
                return map_print_json(out, &m, args.size);
        printf("Destroyed address space %" PRIu32 ".\n", m.ioas);
        return CTL_EXIT_OK;
}

/* What the host offers, and with a device what its IOMMU offers, next to the policy's view. */
static const char *const kernel_feature_names[] = {
        "ioas", "option", "vfio-cdev", "hwpt-alloc", "hw-info", "dirty-tracking",
        "hwpt-invalidate", "fault-queue", "map-file", "pasid", "viommu", "change-process",
        "nesting", "dirty-all-pinned",
};
static const char *const device_cap_names[] = {
        "dirty-tracking", "pci-pasid-exec", "pci-pasid-priv",
};
static const char *const policy_feature_names[] = { "dirty-tracking", "delegation" };

static void features_print(Ctl *ctl, const IommudFeatures *f, const char *device,
                           json_object *out) {
        json_object *kernel = json_object_new_array(), *caps = json_object_new_array();
        json_object *policy = json_object_new_object();

        if (!ctl->json)
                printf("Backend: %s\nKernel:", iommud_features_get_backend(f));
        FOREACH_ARRAY(n, kernel_feature_names, ELEMENTSOF(kernel_feature_names))
                if (iommud_features_kernel_has(f, *n)) {
                        json_object_array_add(kernel, json_object_new_string(*n));
                        if (!ctl->json)
                                printf(" %s", *n);
                }
        if (!ctl->json && device)
                printf("\nDevice %s:", device);
        FOREACH_ARRAY(n, device_cap_names, ELEMENTSOF(device_cap_names))
                if (device && iommud_features_device_has(f, *n)) {
                        json_object_array_add(caps, json_object_new_string(*n));
                        if (!ctl->json)
                                printf(" %s", *n);
                }
        if (!ctl->json)
                printf("\n");
        FOREACH_ARRAY(n, policy_feature_names, ELEMENTSOF(policy_feature_names)) {
                bool offered = false, granted = false;
                json_object *o = json_object_new_object();

                if (iommud_features_get_policy(f, *n, &offered, &granted) < 0)
                        continue;
                json_object_object_add(o, "offered", json_object_new_boolean(offered));
                json_object_object_add(o, "granted", json_object_new_boolean(granted));
                json_object_object_add(policy, *n, o);
                if (!ctl->json)
                        printf("  %-16s %s, %s\n", *n, offered ? "offered" : "not offered",
                               granted ? "granted" : "not granted");
        }
        json_object_object_add(out, "backend",
                               json_object_new_string(iommud_features_get_backend(f)));
        json_object_object_add(out, "kernel", kernel);
        if (device)
                json_object_object_add(out, "capabilities", caps);
        else
                json_object_put(caps);
        json_object_object_add(out, "policy", policy);
}

int verb_features(Ctl *ctl, int argc, char **argv) {
        _cleanup_(iommud_attachment_freep) IommudAttachment *a = NULL;
        _cleanup_(json_object_putp) json_object *out = json_object_new_object();
        IommudFeatures *f = NULL;
        char device[CTL_DEVICE_MAX];
        IommudClient *c;
        int r, r2;

        r = ctl_parse(ctl, argc, argv, NULL, NULL, NULL, NULL);
        if (r < 0)
                return -r;
        if (r + 1 < argc)
                return ctl_usage("features", "features takes at most one device, got '%s' too",
                                 argv[r + 1]);
        if (r < argc && (r2 = ctl_device_arg("features", argv[r], device)) < 0)
                return -r2;
        if (!out)
                return CTL_EXIT_FAILURE;
        r2 = ctl_connect(ctl, &c);
        if (r2 < 0)
                return -r2;
        /* iommud describes a device's IOMMU to the client that holds it: held for the question. */
        if (r < argc && (r = iommud_attach_device_name(c, device, &a, ctl->error)) < 0)
                return ctl_fail(ctl, r, NULL);
        r = iommud_get_features(c, a ? &a->device_id : NULL, &f, ctl->error);
        if (r >= 0) {
                features_print(ctl, f, a ? a->bdf : NULL, out);
                iommud_features_free(f);
        }
        if (a)
                (void)iommud_detach_device(c, a->device_id, NULL);
        if (r < 0)
                return ctl_fail(ctl, r, "Reading the features failed");
        if (ctl->json && ctl_print_json(out) < 0)
                return CTL_EXIT_FAILURE;
        return CTL_EXIT_OK;
}
