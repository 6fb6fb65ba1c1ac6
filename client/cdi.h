/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A Container Device Interface spec (cdiVersion 0.5.0, kind iommud.org/vfio)
 * for the devices of a topology that the policy makes eligible: one CDI
 * device per eligible device, named by its PCI address (CDI device names
 * allow ':' and '.'), with its VFIO cdev node, or on a host without iommufd
 * (no cdevs) the legacy nodes /dev/vfio/vfio and /dev/vfio/<group>; plus the
 * broker socket bind-mounted read-only and $IOMMUD_SOCKET pointing at it for
 * every container that gets any of them.
 */

#include <stdbool.h>

#include <json-c/json.h>

#include "iommud/iommud.h"

#define CDI_VERSION "0.5.0"
#define CDI_KIND "iommud.org/vfio"
/* Generated specs go to the directory of dynamic specs, which runtimes rank above /etc/cdi. */
#define CDI_DEFAULT_DIR "/var/run/cdi"
#define CDI_FILE_NAME "iommud.org-vfio.json"

typedef struct CdiOptions {
        const char *host_socket;      /* the broker socket on the host */
        const char *container_socket; /* where it appears in the container */
        bool iommufd;                 /* add /dev/iommu (delegation) */
} CdiOptions;

/* True when name is a valid CDI device name: [A-Za-z0-9] ([A-Za-z0-9_.:-]* [A-Za-z0-9])?. */
bool cdi_device_name_is_valid(const char *name);
/* Builds the spec; -ENOMEM, or -EINVAL when a device's name is not a valid CDI name. */
int cdi_spec_build(const IommudTopology *t, const CdiOptions *o, json_object **ret,
                   size_t *ret_n_devices);
/* Writes text to dir/name through a temporary file and rename(), with mode 0644. */
int cdi_write_atomic(const char *dir, const char *name, const char *text);
