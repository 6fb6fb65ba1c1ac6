/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Container Device Interface specs (cdiVersion 0.5.0), one writer for iommuctl and iommud.
 * iommuctl cdi generate writes kind iommud.org/vfio for the devices the policy makes eligible:
 * one CDI device per device, named by its PCI address (CDI device names allow ':' and '.'),
 * with $IOMMUD_DEVICE_<address> set to that address, and what reaches the device in one of
 * three modes:
 *   iommufd  its VFIO cdev /dev/vfio/devices/vfioN, and /dev/iommu for every container that
 *            gets one: the workload binds and maps itself (the policy's "delegation");
 *   legacy   /dev/vfio/vfio and /dev/vfio/<group>, the same on a host without iommufd;
 *   broker   no device node: the broker socket bind-mounted read-only and $IOMMUD_SOCKET
 *            pointing at it, and the workload maps through iommud, under its policy.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define CDI_VERSION "0.5.0"
#define CDI_KIND "iommud.org/vfio"
/*
 * The kind of the specs iommud writes for runtime claims (PrepareClaim): one CDI device per
 * claim, named by the claim id, so that a claim's devices never clash with the same devices
 * in the host-wide spec of CDI_KIND.
 */
#define CDI_CLAIM_KIND "iommud.org/claim"
#define CDI_CLAIM_FILE_PREFIX "iommud-claim-"
/* Generated specs go to the directory of dynamic specs, which runtimes rank above /etc/cdi. */
#define CDI_DEFAULT_DIR "/var/run/cdi"
#define CDI_FILE_NAME "iommud.org-vfio.json"

typedef enum CdiMode {
        CDI_MODE_IOMMUFD,
        CDI_MODE_LEGACY,
        CDI_MODE_BROKER,
        _CDI_MODE_MAX,
        CDI_MODE_AUTO = _CDI_MODE_MAX,
} CdiMode;

/* What a spec needs of one device. */
typedef struct CdiDevice {
        const char *name;             /* its PCI address, the CDI device name */
        const char *cdev;             /* "vfio3"; NULL when it has none */
        bool has_group;
        uint32_t group;
} CdiDevice;

typedef struct CdiOptions {
        CdiMode mode;                 /* not CDI_MODE_AUTO: see cdi_mode_choose() */
        const char *host_socket;      /* the broker socket on the host (broker mode) */
        const char *container_socket; /* where it appears in the container */
} CdiOptions;

/* "iommufd", "legacy", "broker", "auto"; cdi_mode_from_string() gives -EINVAL otherwise. */
const char *cdi_mode_to_string(CdiMode m);
int cdi_mode_from_string(const char *s);
/*
 * The mode the host and the policy choose: device nodes only when the caller may take every
 * device's files itself (delegation), as its cdev where every device has one (iommufd), else
 * through its group (legacy); otherwise the broker.
 */
CdiMode cdi_mode_choose(bool delegation, bool all_cdevs);

/* True when name is a valid CDI device name: [A-Za-z0-9] ([A-Za-z0-9_.:-]* [A-Za-z0-9])?. */
bool cdi_device_name_is_valid(const char *name);
/*
 * Builds the spec of kind CDI_KIND with one CDI device per entry of devs; -ENOMEM, -EINVAL when
 * a device's name is not a valid CDI name, -ENODEV when a device has no node in the mode (no
 * cdev for iommufd, no group for legacy; its name in *ret_bad, owned by devs).
 */
int cdi_spec_build(const CdiDevice *devs, size_t n, const CdiOptions *o, json_object **ret,
                   const char **ret_bad);
/*
 * The same for a claim: kind CDI_CLAIM_KIND, one CDI device named claim_id (-EINVAL when that
 * is not a valid CDI name) with the nodes and variables of every device of devs.
 */
int cdi_claim_spec_build(const char *claim_id, const CdiDevice *devs, size_t n,
                         const CdiOptions *o, json_object **ret, const char **ret_bad);
/* Writes text to dir/name through a temporary file and rename(), with mode 0644. */
int cdi_write_atomic(const char *dir, const char *name, const char *text);
