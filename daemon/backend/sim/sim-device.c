/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Devices: identifying a device fd a client passed, opening a device's node, binding a
 * device to a context (group ownership and viability), unbinding, HW info.
 */

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assert-util.h"
#include "node-holders.h"
#include "sim-private.h"

/* ---- device fds ---- */

static bool driver_is_viable(const SimDevModel *m) {
        if (!m->driver)
                return true;
        if (strneq(m->driver, "vfio", 4) || streq(m->driver, "pci-stub"))
                return true;
        return (m->class >> 8) == 0x0604 || (m->class >> 8) == 0x0600; /* bridges */
}

/* Whether the regular file st is the node of a device, and which (*ret). */
static bool node_of_file(SimBackend *s, const struct stat *st, size_t *ret) {
        if (!sim_file_may_be_node(s, st))
                return false;
        for (size_t i = 0; i < s->n_devices; i++)
                if (s->devices[i].cdev && sim_file_is_node(s, &s->devices[i], st)) {
                        *ret = i;
                        return true;
                }
        return false;
}

int sim_device_fd_identify_model(SimBackend *s, int fd, size_t *ret, Error *err) {
        struct stat st;
        int fl;

        fl = fcntl(fd, F_GETFL);
        if (fl < 0)
                return error_set(err, -EBADF, "fd %d is not open", fd);
        if (fl & O_PATH)
                return error_set(err, -EBADF, "fd %d is an O_PATH fd, not an open device", fd);
        if (fstat(fd, &st) < 0)
                return error_set(err, -EBADF, "fd %d cannot be inspected", fd);
        if (!S_ISREG(st.st_mode))
                return error_set(err, -ENODEV, "fd %d is a %s, not a VFIO device", fd,
                                 S_ISDIR(st.st_mode) ? "directory" :
                                 S_ISFIFO(st.st_mode) ? "pipe" :
                                 S_ISSOCK(st.st_mode) ? "socket" :
                                 S_ISCHR(st.st_mode) ? "character device that is not a VFIO cdev" :
                                 "special file");

        if (node_of_file(s, &st, ret))
                return 0;
        return error_set(err, -ENODEV, "fd %d is a regular file, not a VFIO device node", fd);
}

const char *sim_device_node_of_file(Backend *b, const struct stat *st) {
        SimBackend *s = to_sim(b);
        size_t i;

        assert_return(b, NULL);
        assert_return(st, NULL);

        if (!S_ISREG(st->st_mode) || !node_of_file(s, st, &i))
                return NULL;
        return s->devices[i].name;
}

int sim_device_fd_identify(Backend *b, int fd, char **ret_name, Error *err) {
        SimBackend *s = to_sim(b);
        size_t i;
        char *n;
        int r;

        assert_return(b, -EINVAL);
        assert_return(ret_name, -EINVAL);

        r = sim_device_fd_identify_model(s, fd, &i, err);
        if (r < 0)
                return r;
        n = strdup(s->devices[i].name);
        if (!n)
                return error_set(err, -ENOMEM, "Out of memory");
        *ret_name = n;
        return 0;
}

int sim_device_find(SimBackend *s, const char *name, size_t *ret) {
        for (size_t i = 0; i < s->n_devices; i++)
                if (streq(s->devices[i].name, name)) {
                        *ret = i;
                        return 0;
                }
        return -ENODEV;
}

int sim_device_open(Backend *b, const char *name, int *ret_fd, Error *err) {
        SimBackend *s = to_sim(b);
        size_t i;
        int r;

        assert_return(b, -EINVAL);
        assert_return(name, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        if (sim_device_find(s, name, &i) < 0)
                return error_set(err, -ENODEV, "No device %s", name);
        if (!s->devices[i].cdev)
                return error_set(err, -ENODEV, "Device %s has no VFIO cdev", name);
        r = sim_file_open(s, &s->devices[i], ret_fd);
        if (r < 0)
                return error_set(err, r, "Opening the node of %s failed: %s", name, strerror(-r));
        return 0;
}

int sim_device_holders(Backend *b, const char *name, pid_t *pids, size_t n_max, size_t *ret_n,
                       Error *err) {
        SimBackend *s = to_sim(b);
        struct stat st;
        size_t i;
        int r;

        assert_return(b, -EINVAL);
        assert_return(pids || n_max == 0, -EINVAL);
        assert_return(ret_n, -EINVAL);

        if (sim_device_find(s, name, &i) < 0)
                return error_set(err, -ENODEV, "No device %s", name);
        if (!s->devices[i].cdev || sim_file_node(s, &s->devices[i], &st) < 0) {
                *ret_n = 0;
                return 0;
        }
        r = node_holders(&st, pids, n_max, ret_n);
        if (r < 0)
                return error_set(err, r, "Reading the processes' fds in /proc failed: %s",
                                 strerror(-r));
        return 0;
}

/* ---- binding ---- */

/* What the kernel checks before it binds model i to c through the file of device_fd. */
static int bind_check(SimContext *c, size_t i, int device_fd, Error *err) {
        SimBackend *s = c->sim;
        SimDevModel *m = &s->devices[i];
        SimGroupModel *g = &s->groups[m->group];

        /* A binding whose file is gone ended at its last close; so may the group's. */
        for (size_t k = 0; k < g->n_devices; k++)
                (void)sim_file_reap_model(s, &s->devices[g->devices[k]]);
        if (m->ctx && sim_file_binds(s, m, device_fd))
                return error_set(err, -EINVAL, "This open file of device %s is bound already",
                                 m->name);
        if (m->ctx || sim_file_bound(s, m))
                return error_set(err, -EINVAL,
                                 "Device %s is bound through another open file of its node",
                                 m->name);
        if (g->owner && g->owner != c)
                return error_set(err, -EPERM, "IOMMU group %u of %s is owned by another iommufd",
                                 g->id, m->name);
        for (size_t k = 0; k < g->n_devices; k++) {
                SimDevModel *sib = &s->devices[g->devices[k]];

                if (sib != m && !driver_is_viable(sib))
                        return error_set(err, -EPERM,
                                         "IOMMU group %u of %s is not viable: %s is bound to %s",
                                         g->id, m->name, sib->name, sib->driver);
        }
        SIM_FOREACH(reg, g->regions, g->n_regions)
                if (reg->type == REGION_DIRECT)
                        return error_set(err, -EINVAL,
                                         "Device %s needs a firmware 1:1 mapping of 0x%" PRIx64
                                         "-0x%" PRIx64,
                                         m->name, reg->start, reg->last);
        return 0;
}

int sim_device_bind(BackendContext *bc, int device_fd, uint32_t *ret_dev_id, Error *err) {
        SimContext *c = to_ctx(bc);
        _cleanup_close_ int copy = -EBADF;
        SimGroupModel *g;
        SimDevModel *m;
        SimDev *d;
        size_t i;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ret_dev_id, -EINVAL);

        r = sim_device_fd_identify_model(c->sim, device_fd, &i, err);
        if (r < 0)
                return r;
        m = &c->sim->devices[i];
        g = &c->sim->groups[m->group];
        r = bind_check(c, i, device_fd, err);
        if (r < 0)
                return r;
        /* The backend's copy of the client's file, as backend-kernel keeps one. */
        copy = fcntl(device_fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return error_set(err, negative_errno(), "Duplicating fd %d failed: %m",
                                 device_fd);
        d = calloc(1, sizeof(SimDev));
        if (!d)
                return error_set(err, -ENOMEM, "Out of memory for a device");
        d->model = i;
        r = sim_obj_add(c, &d->obj, SIM_OBJ_DEVICE, err);
        if (r < 0) {
                free(d);
                return r;
        }
        /* Last, so that nothing fails after it: the lock is the binding, until the file goes. */
        r = sim_file_lock(copy);
        if (r < 0) {
                sim_obj_remove(c, &d->obj);
                free(d);
                if (r == -EBUSY)
                        return error_set(err, -EINVAL,
                                         "Device %s was bound through another open file", m->name);
                return error_set(err, r, "Locking the node of %s failed: %s", m->name,
                                 strerror(-r));
        }
        d->file = TAKE_FD(copy);
        m->ctx = c;
        m->dev_id = d->obj.id;
        m->req_efd = -EBADF;
        g->owner = c;
        g->n_bound++;
        *ret_dev_id = d->obj.id;
        return 0;
}

void sim_device_free(SimContext *c, SimDev *d) {
        SimDevModel *m = sim_dev_model(c, d);
        SimGroupModel *g = sim_dev_group(c, d);

        sim_device_detach_all(c, d);
        safe_close(d->file);
        m->ctx = NULL;
        m->dev_id = 0;
        m->req_efd = safe_close(m->req_efd);
        if (--g->n_bound == 0)
                g->owner = NULL;
        sim_obj_remove(c, &d->obj);
        free(d->pasids);
        free(d->partial);
        free(d);
}

int sim_device_unbind(BackendContext *bc, uint32_t dev_id, Error *err) {
        SimContext *c = to_ctx(bc);
        SimDev *d;
        int r;

        assert_return(bc, -EINVAL);

        r = sim_obj_lookup(c, dev_id, SIM_OBJ_DEVICE, (void **)&d, err);
        if (r < 0)
                return r;
        /* Through the bound file first: whoever keeps it, the device's DMA is blocked. */
        sim_device_detach_all(c, d);
        d->file = safe_close(d->file);
        /* The binding ends with the file's last close, which may be a client's. */
        return sim_file_reap_model(c->sim, sim_dev_model(c, d)) > 0 ? 0 : 1;
}

int sim_device_request_fd(BackendContext *bc, uint32_t dev_id, int *ret_fd, Error *err) {
        SimContext *c = to_ctx(bc);
        SimDevModel *m;
        SimDev *d;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        r = sim_obj_lookup(c, dev_id, SIM_OBJ_DEVICE, (void **)&d, err);
        if (r < 0)
                return r;
        m = sim_dev_model(c, d);
        if (m->req_efd < 0) {
                m->req_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (m->req_efd < 0)
                        return error_set(err, negative_errno(), "Creating an eventfd failed");
        }
        *ret_fd = m->req_efd;
        return 0;
}

int backend_sim_request_device(Backend *b, const char *name) {
        SimBackend *s = to_sim(b);
        SimDevModel *m;
        SimDev *d;
        size_t i;

        assert_return(backend_is_sim(b), -EINVAL);
        assert_return(name, -EINVAL);

        if (sim_device_find(s, name, &i) < 0)
                return -ENODEV;
        m = &s->devices[i];
        (void)sim_file_reap_model(s, m);
        d = m->ctx ? (SimDev *)sim_obj_get(m->ctx, m->dev_id) : NULL;
        /*
         * Only a holder with its own copy of the file is asked.  A file only a client kept
         * would block the kernel's removal until the client closes it; the simulated host
         * does not model that wait and lets the change go on.
         */
        if (!d || d->file < 0)
                return 0;
        /* As vfio-pci does: signal the holder, if it listens, and wait for the release. */
        if (m->req_efd >= 0)
                (void)eventfd_write(m->req_efd, 1);
        s->stats.device_requests++;
        return 1;
}

int sim_hw_info(BackendContext *bc, uint32_t dev_id, HwInfo *ret, Error *err) {
        SimContext *c = to_ctx(bc);
        SimIommuModel *m;
        SimDev *d;
        int r;

        assert_return(bc, -EINVAL);
        assert_return(ret, -EINVAL);

        r = sim_obj_lookup(c, dev_id, SIM_OBJ_DEVICE, (void **)&d, err);
        if (r < 0)
                return r;
        m = sim_dev_iommu(c, d);
        *ret = (HwInfo){
                .type = m->hw_info_type,
                .max_pasid_log2 = sim_dev_pasid_width(c, d),
                .capabilities = m->capabilities |
                                (m->dirty_tracking ? BACKEND_HW_CAP_DIRTY_TRACKING : 0),
        };
        return 0;
}
