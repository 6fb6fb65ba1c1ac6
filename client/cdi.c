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

/* The nodes that reach the device: its cdev, or without one the legacy container and group. */
static int device_nodes(const IommudDevice *d, json_object *nodes) {
        char path[PATH_MAX];

        if (d->cdev) {
                snprintf(path, sizeof(path), "/dev/vfio/devices/%s", d->cdev);
                return json_object_array_add(nodes, device_node(path));
        }
        snprintf(path, sizeof(path), "/dev/vfio/%" PRIu32, d->group);
        if (json_object_array_add(nodes, device_node("/dev/vfio/vfio")) < 0)
                return -ENOMEM;
        return json_object_array_add(nodes, device_node(path));
}

/* The edits every container with any of the devices gets: the socket and where to find it. */
static json_object *common_edits(const CdiOptions *o) {
        json_object *edits = json_object_new_object(), *env = json_object_new_array(),
                    *mounts = json_object_new_array(), *mount = json_object_new_object(),
                    *options = json_object_new_array();
        char *var = NULL;
        int r = -ENOMEM;

        if (asprintf(&var, "IOMMUD_SOCKET=%s", o->container_socket) < 0)
                var = NULL;
        if (edits && env && mounts && mount && options && var &&
            json_object_array_add(env, json_object_new_string(var)) >= 0 &&
            json_object_array_add(options, json_object_new_string("bind")) >= 0 &&
            json_object_array_add(options, json_object_new_string("ro")) >= 0 &&
            json_object_array_add(options, json_object_new_string("nosuid")) >= 0 &&
            json_object_array_add(options, json_object_new_string("nodev")) >= 0 &&
            json_object_array_add(options, json_object_new_string("noexec")) >= 0 &&
            json_util_add(mount, "hostPath", json_object_new_string(o->host_socket)) >= 0 &&
            json_util_add(mount, "containerPath", json_object_new_string(o->container_socket)) >= 0 &&
            json_util_add(mount, "options", TAKE_PTR(options)) >= 0 &&
            json_object_array_add(mounts, mount) >= 0) {
                mount = NULL;
                r = json_util_add(edits, "env", TAKE_PTR(env));
                if (r >= 0)
                        r = json_util_add(edits, "mounts", TAKE_PTR(mounts));
                if (r >= 0 && o->iommufd) {
                        json_object *nodes = json_object_new_array();

                        r = json_util_add(edits, "deviceNodes", nodes);
                        if (r >= 0)
                                r = json_object_array_add(nodes, device_node("/dev/iommu"));
                }
        }
        free(var);
        json_object_put(env);
        json_object_put(mounts);
        json_object_put(mount);
        json_object_put(options);
        if (r < 0) {
                json_object_put(edits);
                return NULL;
        }
        return edits;
}

int cdi_spec_build(const IommudTopology *t, const CdiOptions *o, json_object **ret,
                   size_t *ret_n_devices) {
        json_object *spec = json_object_new_object(), *devices = json_object_new_array(), *edits;
        size_t n = 0;

        if (!spec || !devices) {
                json_object_put(spec);
                json_object_put(devices);
                return -ENOMEM;
        }
        if (json_util_add(spec, "cdiVersion", json_object_new_string(CDI_VERSION)) < 0 ||
            json_util_add(spec, "kind", json_object_new_string(CDI_KIND)) < 0 ||
            json_util_add(spec, "devices", devices) < 0)
                goto nomem;

        for (size_t i = 0; i < iommud_topology_get_n_devices(t); i++) {
                const IommudDevice *d = iommud_topology_get_device(t, i);
                json_object *dev, *dedits, *nodes;

                if (!d->eligible || (!d->cdev && !d->has_group))
                        continue;
                if (!cdi_device_name_is_valid(d->name) || (d->cdev && strchr(d->cdev, '/'))) {
                        json_object_put(spec);
                        return -EINVAL;
                }
                dev = json_object_new_object();
                dedits = json_object_new_object();
                nodes = json_object_new_array();
                if (!dev || !dedits || !nodes || json_object_array_add(devices, dev) < 0) {
                        json_object_put(dev);
                        json_object_put(dedits);
                        json_object_put(nodes);
                        goto nomem;
                }
                if (json_util_add(dedits, "deviceNodes", nodes) < 0 ||
                    device_nodes(d, nodes) < 0 ||
                    json_util_add(dev, "name", json_object_new_string(d->name)) < 0 ||
                    json_util_add(dev, "containerEdits", dedits) < 0)
                        goto nomem;
                n++;
        }

        edits = common_edits(o);
        if (json_util_add(spec, "containerEdits", edits) < 0)
                goto nomem;
        *ret = spec;
        if (ret_n_devices)
                *ret_n_devices = n;
        return 0;

nomem:
        json_object_put(spec);
        return -ENOMEM;
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
