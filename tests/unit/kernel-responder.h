/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A kernel stand-in for backend-kernel's syscall seam.  It decodes the real
 * iommufd and VFIO-cdev ABI structures exactly as the kernel does and answers
 * by calling another Backend's ops (the simulated backend, or a test double):
 *
 *   - iommufd ioctls: size shorter than the mandatory fields => EINVAL;
 *     longer with a non-zero byte past the known structure => E2BIG; longer
 *     with only zeros => as exact; non-zero reserved fields or unknown flags
 *     => EOPNOTSUPP; an unknown (or disabled) number => ENOTTY.  Output goes
 *     back into at most "size" bytes, as the kernel's copy-out does.
 *   - VFIO cdev ioctls: argsz below the minimum or unknown flags => EINVAL;
 *     bytes past what the flags ask for are ignored.
 *   - fault fds: read/write in whole 40/8-byte records, else ESPIPE.
 *
 * "/dev/iommu" (<dev_root>/iommu) opens a new context of the inner backend,
 * represented by a real fd (an eventfd) so fd numbers stay unique; closing it
 * closes the context, which the simulated backend keeps while a file bound to
 * it lives on.  Device fds are whatever real fds backend-kernel binds, and a
 * binding belongs to the open file, as in the kernel: every dup shares it, a
 * second open() of the node cannot bind, and it ends with the file's last
 * close (an OFD lock marks the bound file).  mmap/munmap are real, and counted.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend-kernel.h"

typedef struct KernelResponder KernelResponder;

struct KernelResponder {
        Backend *inner;                 /* borrowed */
        char *dev_root;

        /* Knobs. */
        bool no_dev_iommu;              /* opening <dev_root>/iommu fails with ENOENT */
        uint64_t disabled_cmds;         /* bit (nr - 0x80): answer ENOTTY as an older kernel */

        /* What backend-kernel sent. */
        unsigned n_ioctls;
        unsigned n_size_not_sizeof;     /* size/argsz differed from our structure's size */
        unsigned n_reserved_set;        /* a reserved field was non-zero */
        unsigned long last_request;
        uint32_t last_size;
        unsigned n_mmaps;               /* mmap calls that succeeded */
        unsigned n_munmaps;             /* munmap calls that succeeded */
        size_t mapped_bytes;            /* bytes currently mapped through the seam */
        int last_mmap_prot;
        int request_trigger;            /* the request interrupt's eventfd (-1: none) */

        struct ResponderFd *fds;
        size_t n_fds;
        struct ResponderBinding *bindings;
        size_t n_bindings;
};

/*
 * inner is borrowed.  The ioctls of features inner lacks answer ENOTTY, so that
 * backend-kernel probes the same features inner has.
 */
int kernel_responder_new(KernelResponder **ret, Backend *inner, const char *dev_root);
KernelResponder *kernel_responder_free(KernelResponder *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(KernelResponder *, kernel_responder_free);

/* The seam: pass with userdata = the responder. */
extern const BackendKernelSyscalls kernel_responder_syscalls;

/* Disables (answers ENOTTY for) the iommufd ioctl with this command number. */
void kernel_responder_disable(KernelResponder *r, uint32_t cmd);

/* The inner context behind an iommufd the responder handed out, NULL if fd is not one. */
BackendContext *kernel_responder_context(KernelResponder *r, int iommufd);

/* Calls the seam's ioctl directly (for structure-level tests). */
int kernel_responder_ioctl(KernelResponder *r, int fd, unsigned long request, void *arg);
