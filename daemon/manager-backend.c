/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The backend choice.  iommufd when /dev/iommu works, else the legacy VFIO type1 API
 * (v2, else v1, as the kernel offers), else a clear error that says why neither works;
 * --backend forces one, and a forced backend that does not work is an error, never a
 * fallback.  --sim brings its own backend.  Whichever it is, the reason is kept for
 * GetStatus, iommuctl status and the log.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backend-kernel.h"
#include "backend-vfio.h"
#include "log.h"
#include "manager-internal.h"

/* iommufd through the host's /dev. */
static int setup_iommufd(Manager *m, Error *err) {
        BackendKernelConfig kc = BACKEND_KERNEL_CONFIG_INIT;

        kc.sysfs_root = m->sysfs_root;
        kc.dev_root = m->dev_root;
        return backend_kernel_new(&m->host.backend, &kc, err);
}

/* The legacy VFIO container and group files through the host's /dev. */
static int setup_vfio(Manager *m, Error *err) {
        BackendVfioConfig vc = BACKEND_VFIO_CONFIG_INIT;

        vc.sysfs_root = m->sysfs_root;
        vc.dev_root = m->dev_root;
        return backend_vfio_new(&m->host.backend, &vc, err);
}

static int set_reason(Manager *m, Error *err, const char *fmt, ...) _printf_(3, 4);
static int set_reason(Manager *m, Error *err, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&m->backend_reason, fmt, ap);
        va_end(ap);
        if (r < 0) {
                m->backend_reason = NULL;
                return error_set(err, -ENOMEM, "Out of memory.");
        }
        log_info("IOMMU backend: %s.", m->backend_reason);
        return 0;
}

static int forced(Manager *m, const char *name, Error *err) {
        Error e = ERROR_INIT;
        bool vfio = streq(name, "vfio");
        int r;

        r = vfio ? setup_vfio(m, &e) : setup_iommufd(m, &e);
        if (r < 0)
                return error_set(err, r, "The %s backend (--backend %s) is unavailable: %s",
                                 vfio ? "VFIO type1" : "iommufd", name, error_message(&e));
        if (vfio)
                return set_reason(m, err, "VFIO %s, forced by --backend %s",
                                  backend_vfio_iommu_type(m->host.backend), name);
        return set_reason(m, err, "iommufd, forced by --backend %s", name);
}

static int probe(Manager *m, Error *err) {
        Error e_iommufd = ERROR_INIT, e_vfio = ERROR_INIT;
        int r;

        r = setup_iommufd(m, &e_iommufd);
        if (r >= 0)
                return set_reason(m, err, "iommufd, found by probing: %s/iommu works",
                                  m->dev_root);
        r = setup_vfio(m, &e_vfio);
        if (r >= 0)
                return set_reason(m, err,
                                  "VFIO %s, found by probing: iommufd is unavailable (%s)",
                                  backend_vfio_iommu_type(m->host.backend),
                                  error_message(&e_iommufd));
        return error_set(err, r,
                         "No IOMMU backend works here. iommufd: %s. VFIO type1: %s. "
                         "(--sim TOPOLOGY serves a simulated host.)",
                         error_message(&e_iommufd), error_message(&e_vfio));
}

int manager_setup_backend(Manager *m, const ManagerConfig *cfg, Error *err) {
        const char *name = cfg->backend ?: "auto";
        int r;

        if (cfg->sim) {
                if (!streq(name, "auto") && !streq(name, "sim"))
                        return error_set(err, -EINVAL, "--backend %s contradicts --sim %s.",
                                         name, cfg->sim);
                r = manager_sim_setup(m, cfg->sim, err);
                if (r >= 0 && cfg->sysfs_root)
                        log_warning("--sysfs-root %s is ignored with --sim, the simulated tree "
                                    "is read.",
                                    cfg->sysfs_root);
                return r;
        }
        if (streq(name, "sim"))
                return error_set(err, -EINVAL, "--backend sim needs --sim TOPOLOGY.");
        m->sysfs_root = strdup(cfg->sysfs_root ?: "/sys");
        m->dev_root = strdup("/dev");
        if (!m->sysfs_root || !m->dev_root)
                return error_set(err, -ENOMEM, "Out of memory.");
        if (streq(name, "auto"))
                return probe(m, err);
        if (streq(name, "iommufd") || streq(name, "kernel") || streq(name, "vfio"))
                return forced(m, name, err);
        return error_set(err, -EINVAL,
                         "Unknown --backend '%s': expected auto, iommufd (or kernel), vfio or "
                         "sim.",
                         name);
}
