/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The files of the simulated device nodes, and binding through them as the kernel binds a
 * VFIO cdev: per open file description (OFD), not per device.
 *
 * A bind takes an OFD lock (F_OFD_SETLK on byte 0 of the node) through the fd it was given:
 * every dup of that fd shares the open file, and with it the lock, so the binding lives as long
 * as any process keeps a copy, and ends at the last close, when the lock goes with the file.
 * Another open() of the node is another open file: it finds the lock and is refused (EINVAL),
 * as the kernel refuses a second bind of a device.  Whether a binding lives on is asked
 * through a fresh open of the node, which takes no lock: F_OFD_GETLK from it sees any lock
 * another open file holds.
 *
 * The backend keeps a copy of each file it bound (the daemon's, like backend-kernel's); a
 * device whose copy is gone but whose file lives on in a client is lingering: still bound to
 * its context, which lives on with every object in it (the context is "closed" then, kept by
 * its lingering devices), until a reap finds the file gone.
 */

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assert-util.h"
#include "sim-private.h"

/* The device's node: ROOT/dev/vfio/devices/vfioN, or the anchor memfd without a root. */
static void model_node_path(SimBackend *s, SimDevModel *m, char *buf, size_t size) {
        snprintf(buf, size, "%s/dev/vfio/devices/vfio%u", s->root, m->cdev_minor);
}

/*
 * The anchor of a simulated host without a root: a memfd that is the node (made on first use;
 * each device_open() opens it anew).  With a root the node is a file under it, and no fd is
 * kept for it.
 */
int sim_file_anchor(SimBackend *s, SimDevModel *m) {
        char name[32];
        struct stat st;
        int fd;

        assert(!s->root);
        if (m->anchor_fd >= 0)
                return m->anchor_fd;
        snprintf(name, sizeof(name), "vfio%u", m->cdev_minor);
        fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0) {
                int r = negative_errno();

                safe_close(fd);
                return r;
        }
        m->anchor_fd = fd;
        m->node = (SimIdentity){ st.st_dev, st.st_ino };
        return fd;
}

int sim_file_node(SimBackend *s, SimDevModel *m, struct stat *ret) {
        char path[PATH_MAX];

        if (s->root) {
                model_node_path(s, m, path, sizeof(path));
                return stat(path, ret) < 0 ? negative_errno() : 0;
        }
        if (sim_file_anchor(s, m) < 0)
                return -ENOENT;
        *ret = (struct stat){ .st_mode = S_IFREG, .st_dev = m->node.dev, .st_ino = m->node.ino };
        return 0;
}

/* A fresh open file of the node, which holds no lock: it sees every lock of the others. */
static int open_fresh(SimBackend *s, SimDevModel *m, int flags) {
        char path[PATH_MAX];
        int fd;

        if (s->root)
                model_node_path(s, m, path, sizeof(path));
        else {
                int anchor = sim_file_anchor(s, m);

                if (anchor < 0)
                        return anchor;
                /* Through /proc: a new open file of the same inode, as open() of a node gives. */
                snprintf(path, sizeof(path), "/proc/self/fd/%d", anchor);
        }
        fd = open(path, flags | O_CLOEXEC | O_NOCTTY);
        return fd < 0 ? negative_errno() : fd;
}

bool sim_file_is_node(SimBackend *s, SimDevModel *m, const struct stat *st) {
        struct stat nst;

        if (!s->root && m->anchor_fd < 0)
                return false; /* never opened: no fd can be of it */
        return sim_file_node(s, m, &nst) == 0 && nst.st_dev == st->st_dev &&
               nst.st_ino == st->st_ino;
}

/*
 * The nodes of a root are files of ROOT/dev/vfio/devices (hot-plug renames new ones into it
 * from a staging tree on the same file system), as every VFIO cdev is a character device of
 * the VFIO major: a file on another file system, a memfd above all, is no node, which one
 * stat of the directory tells without a path per device.  Without a root the anchors are
 * memfds, whose identities sim_file_is_node() compares without a system call.
 */
bool sim_file_may_be_node(SimBackend *s, const struct stat *st) {
        struct stat dst;

        if (!s->root)
                return true;
        return stat(s->devices_dir, &dst) == 0 && dst.st_dev == st->st_dev;
}

int sim_file_open(SimBackend *s, SimDevModel *m, int *ret_fd) {
        int fd = open_fresh(s, m, O_RDWR);

        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}

/* The type of lock another open file than fd's holds on the node, F_UNLCK for none. */
static int lock_held_against(int fd) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

        if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
                return F_UNLCK;
        return fl.l_type;
}

bool sim_file_bound(SimBackend *s, SimDevModel *m) {
        _cleanup_close_ int fd = open_fresh(s, m, O_RDONLY);

        /* A node that cannot be opened: only a binding the model knows of may hold it. */
        if (fd < 0)
                return m->ctx != NULL;
        return lock_held_against(fd) != F_UNLCK;
}

bool sim_file_binds(SimBackend *s, SimDevModel *m, int fd) {
        /* Bound, and no other open file than fd's holds the lock: fd's does. */
        return m->ctx && sim_file_bound(s, m) && lock_held_against(fd) == F_UNLCK;
}

int sim_file_lock(int fd) {
        int fl = fcntl(fd, F_GETFL);
        struct flock lk = { .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

        if (fl < 0)
                return negative_errno();
        /* A write lock needs a file open for writing; a read lock still conflicts with binds. */
        lk.l_type = (fl & O_ACCMODE) == O_RDONLY ? F_RDLCK : F_WRLCK;
        if (lock_held_against(fd) != F_UNLCK)
                return -EBUSY;
        if (fcntl(fd, F_OFD_SETLK, &lk) < 0)
                return errno == EAGAIN || errno == EACCES ? -EBUSY : negative_errno();
        return 0;
}

/* ---- lingering bindings and closed contexts ---- */

static bool context_has_devices(SimContext *c) {
        for (size_t id = 1; id < c->n_objs; id++)
                if (c->objs[id] && c->objs[id]->type == SIM_OBJ_DEVICE)
                        return true;
        return false;
}

/* A closed context goes with its last device. */
static void context_release_if_done(SimContext *c) {
        SimBackend *s = c->sim;

        if (!c->closed || context_has_devices(c))
                return;
        for (size_t i = 0; i < s->n_closed; i++)
                if (s->closed[i] == c) {
                        s->closed[i] = s->closed[--s->n_closed];
                        break;
                }
        sim_context_destroy(c);
}

int sim_file_reap_model(SimBackend *s, SimDevModel *m) {
        SimContext *c = m->ctx;
        SimDev *d;

        if (!c)
                return 0;
        d = (SimDev *)sim_obj_get(c, m->dev_id);
        /* The backend's own copy keeps the file: only a binding without one can have ended. */
        if (!d || d->file >= 0 || sim_file_bound(s, m))
                return 0;
        /* The last close of the bound file: the kernel detaches and unbinds now. */
        sim_device_free(c, d);
        context_release_if_done(c);
        return 1;
}

void sim_file_reap(SimBackend *s) {
        for (size_t i = 0; i < s->n_devices; i++)
                (void)sim_file_reap_model(s, &s->devices[i]);
}

int sim_file_close_context(SimContext *c) {
        SimBackend *s = c->sim;
        SimContext **v;

        /* The backend's copies go; what no client holds any more unbinds now. */
        for (size_t id = 1; id < c->n_objs; id++) {
                SimObject *o = c->objs[id];

                if (o && o->type == SIM_OBJ_DEVICE)
                        ((SimDev *)o)->file = safe_close(((SimDev *)o)->file);
        }
        for (size_t id = 1; id < c->n_objs; id++) {
                SimObject *o = c->objs[id];

                if (o && o->type == SIM_OBJ_DEVICE)
                        (void)sim_file_reap_model(s, sim_dev_model(c, (SimDev *)o));
        }
        if (!context_has_devices(c))
                return 0;
        /* Files bound to it live on in clients: so does the context, objects and all. */
        v = reallocarray(s->closed, s->n_closed + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        s->closed = v;
        s->closed[s->n_closed++] = c;
        c->closed = true;
        return 1;
}

/* ---- for the kernel responder, which plays the kernel behind backend-kernel's fds ---- */

int backend_sim_file_binding(Backend *b, int fd, BackendContext **ret_ctx, uint32_t *ret_dev_id) {
        SimBackend *s = to_sim(b);
        size_t i;

        assert_return(backend_is_sim(b), -EINVAL);
        assert_return(ret_ctx && ret_dev_id, -EINVAL);

        if (sim_device_fd_identify_model(s, fd, &i, NULL) < 0)
                return -ENOENT;
        (void)sim_file_reap_model(s, &s->devices[i]);
        if (!sim_file_binds(s, &s->devices[i], fd))
                return -ENOENT;
        *ret_ctx = &s->devices[i].ctx->base;
        *ret_dev_id = s->devices[i].dev_id;
        return 0;
}

int backend_sim_device_drop_copy(BackendContext *bc, uint32_t dev_id) {
        SimContext *c = to_ctx(bc);
        SimDev *d;
        int r;

        assert_return(bc, -EINVAL);

        r = sim_obj_lookup(c, dev_id, SIM_OBJ_DEVICE, (void **)&d, NULL);
        if (r < 0)
                return r;
        d->file = safe_close(d->file);
        return sim_file_reap_model(c->sim, sim_dev_model(c, d)) > 0 ? 0 : 1;
}

int backend_sim_context_device_fd(BackendContext *bc, uint32_t dev_id) {
        SimDev *d;

        assert_return(bc, -EINVAL);

        if (sim_obj_lookup(to_ctx(bc), dev_id, SIM_OBJ_DEVICE, (void **)&d, NULL) < 0 ||
            d->file < 0)
                return -ENOENT;
        return d->file;
}

void backend_sim_reap(Backend *b) {
        assert(backend_is_sim(b));
        sim_file_reap(to_sim(b));
}
