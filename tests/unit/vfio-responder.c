/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Files, groups and containers of the VFIO responder (see vfio-responder.h). */

#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macros.h"
#include "vfio-abi.h"
#include "vfio-responder-internal.h"

/* ---- lookups ---- */

/*
 * How many fds of this process refer to the file (dev, ino): every copy of an open file
 * counts, dups and what a test keeps as its fd store alike.  The kernel releases a file
 * when the last one goes; so does the responder, when it next looks.
 */
static size_t fds_open_on(dev_t dev, ino_t ino) {
        DIR *d = opendir("/proc/self/fd");
        size_t n = 0;

        if (!d)
                return 0;
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;
                int fd = atoi(de->d_name);

                if (de->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) < 0)
                        continue;
                n += st.st_dev == dev && st.st_ino == ino;
        }
        closedir(d);
        return n;
}

/* A container by any fd of its file (a memfd stands for it: one inode per container). */
static RContainer *container_by_fd(VfioResponder *r, int fd) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return NULL;
        for (size_t i = 0; i < r->n_containers; i++)
                if (r->containers[i]->dev == st.st_dev && r->containers[i]->ino == st.st_ino)
                        return r->containers[i];
        return NULL;
}

/* A group by the inode of any fd of its node (the backend's, a dup, a client's). */
static RGroup *group_by_fd(VfioResponder *r, int fd) {
        struct stat st;

        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return NULL;
        for (size_t i = 0; i < r->n_groups; i++)
                if (r->groups[i].node && r->groups[i].node_dev == st.st_dev &&
                    r->groups[i].node_ino == st.st_ino)
                        return &r->groups[i];
        return NULL;
}

static RGroup *group_by_id(VfioResponder *r, unsigned id) {
        for (size_t i = 0; i < r->n_groups; i++)
                if (r->groups[i].id == id)
                        return &r->groups[i];
        return NULL;
}

static bool is_vfio_driver(const char *driver) {
        return driver && strneq(driver, "vfio", 4);
}

/* iommu_group_claim_dma_owner(): fails while a member is on a driver that uses the DMA API. */
static bool group_viable(VfioResponder *r, const RGroup *g) {
        for (size_t i = 0; i < g->sim->n_devices; i++) {
                const char *drv = r->topo->devices[g->sim->device_indexes[i]].driver;

                if (drv && !is_vfio_driver(drv) && !streq(drv, "pci-stub") &&
                    !streq(drv, "pcieport"))
                        return false;
        }
        return true;
}

static bool group_has_direct(const RGroup *g) {
        for (size_t i = 0; i < g->sim->n_regions; i++)
                if (g->sim->regions[i].type == REGION_DIRECT)
                        return true;
        return false;
}

/* Device fds of the group a client still holds (a pipe's read end sees the hang-up). */
static size_t group_device_users(RGroup *g) {
        size_t j = 0;

        for (size_t i = 0; i < g->n_dev_pipes; i++) {
                struct pollfd p = { .fd = g->dev_pipes[i], .events = POLLIN };

                if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)))
                        safe_close(g->dev_pipes[i]);
                else
                        g->dev_pipes[j++] = g->dev_pipes[i];
        }
        g->n_dev_pipes = j;
        return j;
}

/* ---- containers ---- */

static void container_free(VfioResponder *r, RContainer *c) {
        for (size_t i = 0; i < r->n_containers; i++)
                if (r->containers[i] == c) {
                        r->containers[i] = r->containers[--r->n_containers];
                        break;
                }
        free(c->groups);
        free(c->dmas);
        free(c->iovas);
        free(c);
}

static int container_update_domain(VfioResponder *r, RContainer *c) {
        IovaRange *iovas;
        size_t n;
        uint64_t pgsizes;
        int k;

        k = rtype1_compute_domain(r, c, &iovas, &n, &pgsizes);
        if (k < 0)
                return k;
        free(c->iovas);
        c->iovas = iovas;
        c->n_iovas = n;
        c->pgsize_bitmap = pgsizes;
        return 0;
}

static void container_detach(VfioResponder *r, RGroup *g) {
        RContainer *c = g->container;

        for (size_t i = 0; i < c->n_groups; i++)
                if (c->groups[i] == g) {
                        c->groups[i] = c->groups[--c->n_groups];
                        break;
                }
        g->container = NULL;
        r->n_unset_container++;
        if (c->n_groups == 0) {
                /* The last group out: the container loses its IOMMU and every mapping. */
                c->type = 0;
                c->n_dmas = 0;
                c->dirty_logging = false;
        } else
                (void)container_update_domain(r, c);
}

static bool group_is_open(RGroup *g) {
        return fds_open_on(g->node_dev, g->node_ino) > 0 || group_device_users(g) > 0;
}

/*
 * What the kernel does when the last reference to a file goes: a group file with no fd
 * and no device fd left leaves its container; a container with no fd and no group goes.
 */
static void responder_sync(VfioResponder *r) {
        for (size_t i = 0; i < r->n_groups; i++)
                if (r->groups[i].container && !group_is_open(&r->groups[i]))
                        container_detach(r, &r->groups[i]);
        for (size_t i = r->n_containers; i > 0; i--) {
                RContainer *c = r->containers[i - 1];

                if (c->n_groups == 0 && fds_open_on(c->dev, c->ino) == 0)
                        container_free(r, c);
        }
}

/* type1's attach_group: the IOMMU refuses RMRR devices; mappings must stay valid. */
static int container_attach(VfioResponder *r, RContainer *c, RGroup *g) {
        RGroup **v = reallocarray(c->groups, c->n_groups + 1, sizeof(*v));
        IovaRange *iovas;
        uint64_t pgsizes;
        size_t n;
        int k;

        if (!v)
                return -ENOMEM;
        c->groups = v;
        if (c->type && group_has_direct(g))
                return -EPERM;
        c->groups[c->n_groups++] = g;
        if (c->type) {
                k = rtype1_compute_domain(r, c, &iovas, &n, &pgsizes);
                if (k < 0 || !rtype1_dmas_inside(c, iovas, n)) {
                        if (k >= 0)
                                free(iovas);
                        c->n_groups--;
                        return k < 0 ? k : -EINVAL;
                }
                free(c->iovas);
                c->iovas = iovas;
                c->n_iovas = n;
                c->pgsize_bitmap = pgsizes;
        }
        g->container = c;
        return 0;
}

static int set_iommu(VfioResponder *r, RContainer *c, unsigned long type) {
        bool offered = !r->no_type1 && (type == IOMMUD_VFIO_TYPE1_IOMMU ||
                                        (type == IOMMUD_VFIO_TYPE1v2_IOMMU && !r->type1_only));

        if (c->n_groups == 0 || c->type)
                return -EINVAL;
        if (!offered)
                return -ENODEV;
        for (size_t i = 0; i < c->n_groups; i++)
                if (group_has_direct(c->groups[i]))
                        return -EPERM;
        c->type = (int)type;
        return container_update_domain(r, c);
}

static int check_extension(VfioResponder *r, RContainer *c, unsigned long ext) {
        switch (ext) {
        case IOMMUD_VFIO_TYPE1_IOMMU:
                return !r->no_type1;
        case IOMMUD_VFIO_TYPE1v2_IOMMU:
                return !r->no_type1 && !r->type1_only;
        case IOMMUD_VFIO_UNMAP_ALL:
                return !r->no_type1 && !r->no_unmap_all;
        default:
                return 0;
        }
}

static int container_ioctl(VfioResponder *r, RContainer *c, unsigned long request, void *arg) {
        switch (request) {
        case IOMMUD_VFIO_GET_API_VERSION:
                return IOMMUD_VFIO_API_VERSION;
        case IOMMUD_VFIO_CHECK_EXTENSION:
                return check_extension(r, c, (unsigned long)(uintptr_t)arg);
        case IOMMUD_VFIO_SET_IOMMU:
                return set_iommu(r, c, (unsigned long)(uintptr_t)arg);
        default:
                /* No IOMMU driver yet: vfio_fops_unl_ioctl() answers EINVAL. */
                if (!c->type)
                        return -EINVAL;
                return rtype1_ioctl(r, c, request, arg);
        }
}

/* ---- groups ---- */

static int group_status(VfioResponder *r, RGroup *g, void *arg) {
        struct iommud_vfio_group_status st;

        if (!arg)
                return -EFAULT;
        memcpy(&st, arg, sizeof(st));
        if (st.argsz < IOMMUD_VFIO_GROUP_STATUS_MINSZ)
                return -EINVAL;
        st.flags = 0;
        if (g->container)
                st.flags = IOMMUD_VFIO_GROUP_FLAGS_CONTAINER_SET | IOMMUD_VFIO_GROUP_FLAGS_VIABLE;
        else if (group_viable(r, g))
                st.flags = IOMMUD_VFIO_GROUP_FLAGS_VIABLE;
        memcpy(arg, &st, sizeof(st));
        return 0;
}

static int group_set_container(VfioResponder *r, RGroup *g, void *arg) {
        RContainer *c;
        int32_t fd;

        if (!arg)
                return -EFAULT;
        memcpy(&fd, arg, sizeof(fd));
        if (fd < 0 || fcntl(fd, F_GETFD) < 0)
                return -EBADF;
        if (g->container)
                return -EINVAL;
        c = container_by_fd(r, fd);
        if (!c)
                return -EBADFD;
        if (!group_viable(r, g))
                return -EPERM;
        r->n_set_container++;
        return container_attach(r, c, g);
}

static int group_unset_container(VfioResponder *r, RGroup *g) {
        if (!g->container)
                return -EINVAL;
        if (group_device_users(g) > 0)
                return -EBUSY;
        container_detach(r, g);
        return 0;
}

static bool group_has_vfio_member(VfioResponder *r, const RGroup *g, const char *name) {
        for (size_t i = 0; i < g->sim->n_devices; i++) {
                const SimDevice *d = &r->topo->devices[g->sim->device_indexes[i]];

                if (streq(d->name, name) && is_vfio_driver(d->driver))
                        return true;
        }
        return false;
}

static int group_get_device_fd(VfioResponder *r, RGroup *g, const char *name) {
        int p[2], *v;

        if (!name)
                return -EFAULT;
        if (!g->container || !g->container->type)
                return -EINVAL;
        if (!group_has_vfio_member(r, g, name))
                return -ENODEV;
        v = reallocarray(g->dev_pipes, g->n_dev_pipes + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        g->dev_pipes = v;
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        g->dev_pipes[g->n_dev_pipes++] = p[0];
        return p[1];
}

static int group_ioctl(VfioResponder *r, RGroup *g, unsigned long request, void *arg) {
        switch (request) {
        case IOMMUD_VFIO_GROUP_GET_STATUS:
                return group_status(r, g, arg);
        case IOMMUD_VFIO_GROUP_SET_CONTAINER:
                return group_set_container(r, g, arg);
        case IOMMUD_VFIO_GROUP_UNSET_CONTAINER:
                return group_unset_container(r, g);
        case IOMMUD_VFIO_GROUP_GET_DEVICE_FD:
                return group_get_device_fd(r, g, arg);
        default:
                return -ENOTTY;
        }
}

/* ---- the seam ---- */

int vfio_responder_ioctl(VfioResponder *r, int fd, unsigned long request, void *arg) {
        RContainer *c;
        RGroup *g;

        r->n_ioctls++;
        r->last_request = request;
        if (fcntl(fd, F_GETFD) < 0)
                return -EBADF;
        if (_IOC_TYPE(request) != IOMMUD_VFIO_TYPE || _IOC_DIR(request) != _IOC_NONE ||
            _IOC_SIZE(request) != 0)
                return -ENOTTY;
        c = container_by_fd(r, fd);
        if (c)
                return container_ioctl(r, c, request, arg);
        g = group_by_fd(r, fd);
        if (g)
                return group_ioctl(r, g, request, arg);
        return -ENOTTY;
}

static int seam_ioctl(void *userdata, int fd, unsigned long request, void *arg) {
        return vfio_responder_ioctl(userdata, fd, request, arg);
}

static int open_container(VfioResponder *r) {
        RContainer *c, **v;
        struct stat st;
        int fd;

        if (r->no_container_node)
                return -ENOENT;
        v = reallocarray(r->containers, r->n_containers + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        r->containers = v;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        fd = memfd_create("vfio-container", MFD_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                safe_close(fd);
                free(c);
                return -EMFILE;
        }
        c->dev = st.st_dev;
        c->ino = st.st_ino;
        r->containers[r->n_containers++] = c;
        return fd;
}

static int open_group(VfioResponder *r, RGroup *g) {
        int fd;

        responder_sync(r);
        /* The open file, or a device fd holding it, makes a second open fail. */
        if (group_is_open(g))
                return -EBUSY;
        fd = open(g->node, O_RDWR | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

static int seam_open(void *userdata, const char *path, int flags) {
        VfioResponder *r = userdata;
        char buf[PATH_MAX];
        int fd;

        snprintf(buf, sizeof(buf), "%s/vfio/vfio", r->dev_root);
        if (streq(path, buf))
                return open_container(r);
        for (size_t i = 0; i < r->n_groups; i++)
                if (r->groups[i].node && streq(path, r->groups[i].node))
                        return open_group(r, &r->groups[i]);
        fd = open(path, flags | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

static int seam_close(void *userdata, int fd) {
        int k = close(fd) < 0 ? negative_errno() : 0;

        responder_sync(userdata);
        return k;
}

static int seam_mmap(void *userdata, size_t length, int prot, int fd, uint64_t offset,
                     void **ret_addr) {
        void *p = mmap(NULL, length, prot, MAP_SHARED, fd, (off_t)offset);

        if (p == MAP_FAILED)
                return negative_errno();
        *ret_addr = p;
        return 0;
}

static int seam_munmap(void *userdata, void *addr, size_t length) {
        return munmap(addr, length) < 0 ? negative_errno() : 0;
}

const BackendVfioSyscalls vfio_responder_syscalls = {
        .open = seam_open,
        .close = seam_close,
        .ioctl = seam_ioctl,
        .mmap = seam_mmap,
        .munmap = seam_munmap,
};

/* ---- setup ---- */

static int make_node(const char *path, dev_t *ret_dev, ino_t *ret_ino) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        *ret_dev = st.st_dev;
        *ret_ino = st.st_ino;
        return 0;
}

static int add_groups(VfioResponder *r) {
        r->groups = calloc(r->topo->n_groups, sizeof(RGroup));
        if (!r->groups)
                return -ENOMEM;
        for (size_t i = 0; i < r->topo->n_groups; i++) {
                RGroup *g = &r->groups[r->n_groups++];
                bool vfio = false;

                *g = (RGroup){ .sim = &r->topo->groups[i], .id = r->topo->groups[i].id };
                for (size_t k = 0; k < g->sim->n_devices; k++)
                        vfio |= is_vfio_driver(r->topo->devices[g->sim->device_indexes[k]].driver);
                if (!vfio)
                        continue;
                if (asprintf(&g->node, "%s/vfio/%u", r->dev_root, g->id) < 0)
                        return -ENOMEM;
                if (make_node(g->node, &g->node_dev, &g->node_ino) < 0)
                        return -EIO;
        }
        return 0;
}

int vfio_responder_new(VfioResponder **ret, const SimTopology *topo, const char *root) {
        _cleanup_(vfio_responder_freep) VfioResponder *r = calloc(1, sizeof(VfioResponder));
        char path[PATH_MAX];
        dev_t dev;
        ino_t ino;
        int k;

        if (!r)
                return -ENOMEM;
        r->topo = topo;
        r->dma_entry_limit = 65535;
        r->max_dirty_bitmap_size = UINT64_C(256) << 20;
        if (asprintf(&r->dev_root, "%s/dev", root) < 0) {
                r->dev_root = NULL;
                return -ENOMEM;
        }
        snprintf(path, sizeof(path), "%s/vfio", r->dev_root);
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        snprintf(path, sizeof(path), "%s/vfio/vfio", r->dev_root);
        k = make_node(path, &dev, &ino);
        if (k >= 0)
                k = add_groups(r);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

VfioResponder *vfio_responder_free(VfioResponder *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_groups; i++) {
                RGroup *g = &r->groups[i];

                for (size_t k = 0; k < g->n_dev_pipes; k++)
                        safe_close(g->dev_pipes[k]);
                free(g->dev_pipes);
                free(g->node);
        }
        while (r->n_containers > 0)
                container_free(r, r->containers[0]);
        free(r->containers);
        free(r->groups);
        free(r->dev_root);
        free(r);
        return NULL;
}

/* ---- queries ---- */

int vfio_responder_open_group(VfioResponder *r, unsigned group_id) {
        RGroup *g = group_by_id(r, group_id);

        if (!g || !g->node)
                return -ENOENT;
        return open_group(r, g);
}

size_t vfio_responder_n_containers(VfioResponder *r) {
        responder_sync(r);
        return r->n_containers;
}

size_t vfio_responder_open_fds(VfioResponder *r) {
        size_t n = 0;

        responder_sync(r);
        for (size_t i = 0; i < r->n_containers; i++)
                n += fds_open_on(r->containers[i]->dev, r->containers[i]->ino);
        for (size_t i = 0; i < r->n_groups; i++)
                if (r->groups[i].node)
                        n += fds_open_on(r->groups[i].node_dev, r->groups[i].node_ino);
        return n;
}

uint64_t vfio_responder_mapped_bytes(VfioResponder *r) {
        uint64_t n = 0;

        for (size_t i = 0; i < r->n_containers; i++)
                for (size_t k = 0; k < r->containers[i]->n_dmas; k++)
                        n += r->containers[i]->dmas[k].size;
        return n;
}

bool vfio_responder_dma_reaches(VfioResponder *r, unsigned group_id, uint64_t iova,
                                uint64_t *ret_vaddr) {
        RGroup *g = group_by_id(r, group_id);
        RContainer *c = g ? g->container : NULL;

        if (!c || !c->type)
                return false;
        for (size_t i = 0; i < c->n_dmas; i++)
                if (c->dmas[i].iova <= iova && iova - c->dmas[i].iova < c->dmas[i].size) {
                        if (ret_vaddr)
                                *ret_vaddr = c->dmas[i].vaddr + (iova - c->dmas[i].iova);
                        return true;
                }
        return false;
}

const void *vfio_responder_group_container(VfioResponder *r, unsigned group_id) {
        RGroup *g = group_by_id(r, group_id);

        return g ? g->container : NULL;
}
