/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdi.h"
#include "json-util.h"
#include "macros.h"

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool cdi_device_name_is_valid(const char *name) {
        size_t n;

        if (!name || !*name)
                return false;
        n = strlen(name);
        if (!is_alnum(name[0]) || !is_alnum(name[n - 1]))
                return false;
        for (size_t i = 1; i + 1 < n; i++)
                if (!is_alnum(name[i]) && !strchr("_-.:", name[i]))
                        return false;
        return true;
}

static json_object *device_node(const char *path) {
        json_object *o = json_object_new_object();

        if (!o || json_util_add(o, "path", json_object_new_string(path)) < 0 ||
            json_util_add(o, "type", json_object_new_string("c")) < 0 ||
            json_util_add(o, "permissions", json_object_new_string("rw")) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static const char *const mode_names[] = {
        [CDI_MODE_IOMMUFD] = "iommufd",
        [CDI_MODE_LEGACY] = "legacy",
        [CDI_MODE_BROKER] = "broker",
        [CDI_MODE_AUTO] = "auto",
};

const char *cdi_mode_to_string(CdiMode m) {
        return (size_t)m < ELEMENTSOF(mode_names) ? mode_names[m] : NULL;
}

int cdi_mode_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(mode_names); i++)
                if (streq(s, mode_names[i]))
                        return (int)i;
        return -EINVAL;
}

CdiMode cdi_mode_choose(bool delegation, bool all_cdevs) {
        if (!delegation)
                return CDI_MODE_BROKER;
        return all_cdevs ? CDI_MODE_IOMMUFD : CDI_MODE_LEGACY;
}

/* Adds the nodes that reach d in mode m to nodes; -ENODEV when d has none in that mode. */
static int device_nodes(const CdiDevice *d, CdiMode m, json_object *nodes) {
        char path[PATH_MAX];

        switch (m) {
        case CDI_MODE_IOMMUFD:
                if (!d->cdev || strchr(d->cdev, '/'))
                        return -ENODEV;
                snprintf(path, sizeof(path), "/dev/vfio/devices/%s", d->cdev);
                return json_object_array_add(nodes, device_node(path));
        case CDI_MODE_LEGACY:
                if (!d->has_group)
                        return -ENODEV;
                /* /dev/vfio/vfio, the container, is one for all: in the common edits. */
                snprintf(path, sizeof(path), "/dev/vfio/%" PRIu32, d->group);
                return json_object_array_add(nodes, device_node(path));
        default:
                return 0;
        }
}

/* IOMMUD_DEVICE_0000_65_00_0=0000:65:00.0: which devices the container got, by name. */
static int device_env(const char *name, json_object *env) {
        char var[256];
        size_t k;

        k = (size_t)snprintf(var, sizeof(var), "IOMMUD_DEVICE_");
        for (const char *c = name; *c && k + 1 < sizeof(var); c++)
                var[k++] = is_alnum(*c) ? *c : '_';
        snprintf(var + k, sizeof(var) - k, "=%s", name);
        return json_object_array_add(env, json_object_new_string(var)) < 0 ? -ENOMEM : 0;
}

/*
 * One CDI device called name for devs[0..n): their variables and, but for the broker, their
 * nodes.  -ENODEV with the device in *ret_bad when one has no node in the mode.
 */
static int spec_device(const char *name, const CdiDevice *devs, size_t n, CdiMode m,
                       json_object *devices, const char **ret_bad) {
        json_object *dev = json_object_new_object(), *edits = json_object_new_object(), *nodes,
                    *env = json_object_new_array();
        int r;

        if (!dev || !edits || !env || json_object_array_add(devices, dev) < 0) {
                json_object_put(dev);
                json_object_put(edits);
                json_object_put(env);
                return -ENOMEM;
        }
        if (json_util_add(dev, "name", json_object_new_string(name)) < 0 ||
            json_util_add(dev, "containerEdits", edits) < 0 ||
            json_util_add(edits, "env", env) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (device_env(devs[i].name, env) < 0)
                        return -ENOMEM;
        if (m == CDI_MODE_BROKER)
                return 0;
        nodes = json_object_new_array();
        if (json_util_add(edits, "deviceNodes", nodes) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = device_nodes(&devs[i], m, nodes);
                if (r == -ENODEV && ret_bad)
                        *ret_bad = devs[i].name;
                if (r < 0)
                        return r == -ENODEV ? r : -ENOMEM;
        }
        return 0;
}

/* The socket, bind-mounted read-only, and $IOMMUD_SOCKET naming it. */
static int broker_edits(const CdiOptions *o, json_object *edits) {
        json_object *env = json_object_new_array(), *mounts = json_object_new_array(),
                    *mount = json_object_new_object(), *options = json_object_new_array();
        _cleanup_free_ char *var = NULL;
        int r = -ENOMEM;

        if (asprintf(&var, "IOMMUD_SOCKET=%s", o->container_socket) < 0)
                var = NULL;
        if (env && mounts && mount && options && var &&
            json_object_array_add(env, json_object_new_string(var)) >= 0 &&
            json_object_array_add(options, json_object_new_string("bind")) >= 0 &&
            json_object_array_add(options, json_object_new_string("ro")) >= 0 &&
            json_object_array_add(options, json_object_new_string("nosuid")) >= 0 &&
            json_object_array_add(options, json_object_new_string("nodev")) >= 0 &&
            json_object_array_add(options, json_object_new_string("noexec")) >= 0 &&
            json_util_add(mount, "hostPath", json_object_new_string(o->host_socket)) >= 0 &&
            json_util_add(mount, "containerPath",
                          json_object_new_string(o->container_socket)) >= 0 &&
            json_util_add(mount, "options", TAKE_PTR(options)) >= 0 &&
            json_object_array_add(mounts, mount) >= 0) {
                mount = NULL;
                r = json_util_add(edits, "env", TAKE_PTR(env));
                if (r >= 0)
                        r = json_util_add(edits, "mounts", TAKE_PTR(mounts));
        }
        json_object_put(env);
        json_object_put(mounts);
        json_object_put(mount);
        json_object_put(options);
        return r < 0 ? -ENOMEM : 0;
}

/* The edits every container with any of the devices gets, by mode. */
static json_object *common_edits(const CdiOptions *o) {
        json_object *edits = json_object_new_object(), *nodes;
        int r = edits ? 0 : -ENOMEM;

        if (r >= 0 && o->mode == CDI_MODE_BROKER)
                r = broker_edits(o, edits);
        else if (r >= 0) {
                nodes = json_object_new_array();
                r = json_util_add(edits, "deviceNodes", nodes);
                if (r >= 0)
                        r = json_object_array_add(nodes, device_node(o->mode == CDI_MODE_IOMMUFD
                                                                             ? "/dev/iommu"
                                                                             : "/dev/vfio/vfio"));
        }
        if (r < 0) {
                json_object_put(edits);
                return NULL;
        }
        return edits;
}

/* The spec's frame: version, kind, an empty device list in *ret_devices, the common edits. */
static json_object *spec_new(const char *kind, const CdiOptions *o, json_object **ret_devices) {
        json_object *spec = json_object_new_object(), *devices = json_object_new_array();

        if (!spec || !devices ||
            json_util_add(spec, "cdiVersion", json_object_new_string(CDI_VERSION)) < 0 ||
            json_util_add(spec, "kind", json_object_new_string(kind)) < 0 ||
            json_util_add(spec, "devices", json_object_get(devices)) < 0 ||
            json_util_add(spec, "containerEdits", common_edits(o)) < 0) {
                json_object_put(spec);
                json_object_put(devices);
                return NULL;
        }
        *ret_devices = devices;
        json_object_put(devices); /* the spec holds it */
        return spec;
}

static int spec_finish(json_object *spec, int r, json_object **ret) {
        if (r < 0) {
                json_object_put(spec);
                return r == -EINVAL || r == -ENODEV ? r : -ENOMEM;
        }
        *ret = spec;
        return 0;
}

int cdi_spec_build(const CdiDevice *devs, size_t n, const CdiOptions *o, json_object **ret,
                   const char **ret_bad) {
        json_object *spec, *devices = NULL;
        int r = 0;

        if (o->mode >= _CDI_MODE_MAX || (n > 0 && !devs) || !ret)
                return -EINVAL;
        spec = spec_new(CDI_KIND, o, &devices);
        if (!spec)
                return -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = cdi_device_name_is_valid(devs[i].name)
                            ? spec_device(devs[i].name, &devs[i], 1, o->mode, devices, ret_bad)
                            : -EINVAL;
        return spec_finish(spec, r, ret);
}

int cdi_claim_spec_build(const char *claim_id, const CdiDevice *devs, size_t n,
                         const CdiOptions *o, json_object **ret, const char **ret_bad) {
        json_object *spec, *devices = NULL;
        int r;

        if (o->mode >= _CDI_MODE_MAX || (n > 0 && !devs) || !ret ||
            !cdi_device_name_is_valid(claim_id))
                return -EINVAL;
        spec = spec_new(CDI_CLAIM_KIND, o, &devices);
        if (!spec)
                return -ENOMEM;
        r = spec_device(claim_id, devs, n, o->mode, devices, ret_bad);
        return spec_finish(spec, r, ret);
}

int cdi_write_atomic(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *tmp = NULL, *final = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t len = strlen(text), done = 0;
        int r;

        if (asprintf(&tmp, "%s/.%s.XXXXXX", dir, name) < 0 ||
            asprintf(&final, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        while (done < len) {
                ssize_t k = write(fd, text + done, len - done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        goto fail;
                }
                done += (size_t)k;
        }
        /* Runtimes read the spec as any user; the temp file was made 0600. */
        if (fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
                r = negative_errno();
                goto fail;
        }
        fd = safe_close(fd);
        if (rename(tmp, final) < 0) {
                r = negative_errno();
                goto fail;
        }
        return 0;

fail:
        (void)unlink(tmp);
        return r;
}
