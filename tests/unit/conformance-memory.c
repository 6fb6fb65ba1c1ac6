/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Conformance cases for the memory behind maps, as iommufd's pages.c has it: pages are pinned
 * while an IOAS has a domain, and charged (whole pages) to the process that mapped them when
 * the context's RLIMIT_MODE is per-process and the mapper lacks CAP_IPC_LOCK, up to its
 * RLIMIT_MEMLOCK (ENOMEM past it); copies share their source's pages.  Pinning takes only what
 * pin_user_pages() takes (EFAULT otherwise).  The charge is read as the process's locked memory
 * (VmLck on a real kernel); a factory that cannot set the limits or read the charge skips.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "conformance-case.h"
#include "macros.h"

#define OPS(s) (conf_case_env(s)->backend->ops)
#define P (conf_case_env(s)->page_size)
#define BASE (conf_case_env(s)->base)
#define RW (BACKEND_MAP_READABLE | BACKEND_MAP_WRITEABLE)
/* IOVAs this far apart map the same memory (see conf_case_va()). */
#define SAME_MEMORY (UINT64_C(4) << 20)

/* A context in per-process accounting: what its maps pin is charged to this process. */
static BackendContext *per_process_context(ConfState *s) {
        BackendContext *c;
        uint64_t v = 1;
        int r;

        conf_case_require(s, BACKEND_FEATURE_OPTION); /* RLIMIT_MODE */
        if (!conf_case_env(s)->factory->set_memlock || !conf_case_env(s)->factory->locked_bytes)
                conf_case_skip(s, "the factory cannot set or observe locked memory");
        c = conf_case_context(s);
        r = OPS(s)->option(c, BACKEND_OPTION_RLIMIT_MODE, BACKEND_OPTION_OP_SET, 0, &v, NULL);
        if (r == -EPERM)
                conf_case_skip(s, "setting RLIMIT_MODE needs CAP_SYS_RESOURCE");
        assert_int_equal(r, 0);
        return c;
}

static void memlock(ConfState *s, bool cap_ipc_lock, uint64_t limit) {
        int r = conf_case_env(s)->factory->set_memlock(conf_case_env(s), cap_ipc_lock, limit);

        if (r == -EPERM)
                conf_case_skip(s, "the caller cannot change CAP_IPC_LOCK or RLIMIT_MEMLOCK");
        assert_int_equal(r, 0);
}

static uint64_t locked(ConfState *s) {
        uint64_t v = UINT64_MAX;

        assert_int_equal(conf_case_env(s)->factory->locked_bytes(conf_case_env(s), &v), 0);
        return v;
}

/* Maps len bytes at iova from memory whose VA has iova's low bits. */
static int map(ConfState *s, BackendContext *c, uint32_t ioas, uint64_t iova, uint64_t len,
               uint32_t rw) {
        uint64_t at = iova;

        return OPS(s)->ioas_map_va(c, ioas, BACKEND_MAP_FIXED_IOVA | rw,
                                   conf_case_va(s, iova, len), len, &at, NULL);
}

static int unmap(ConfState *s, BackendContext *c, uint32_t ioas, uint64_t iova, uint64_t len) {
        uint64_t done = 0;

        return OPS(s)->ioas_unmap(c, ioas, iova, len, &done, NULL);
}

static int attach(ConfState *s, BackendContext *c, uint32_t dev, uint32_t ioas) {
        uint32_t pt = ioas;

        return OPS(s)->device_attach(c, dev, BACKEND_NO_PASID, &pt, NULL);
}

/* Nothing is pinned without a domain; the first one pins what is mapped, its end unpins. */
void memory_pins_follow_domains(void **state) {
        ConfState *s = conf_case_state(state);
        BackendContext *c = per_process_context(s);
        uint32_t ioas = conf_case_ioas(s, c), dev;
        uint64_t base;

        memlock(s, false, UINT64_MAX);
        base = locked(s);
        assert_int_equal(map(s, c, ioas, BASE, 4 * P, RW), 0);
        assert_int_equal(locked(s), base);
        dev = conf_case_bind(s, c, CONF_DEV_PLAIN);
        assert_int_equal(attach(s, c, dev, ioas), 0);
        assert_int_equal(locked(s), base + 4 * P);
        assert_int_equal(map(s, c, ioas, BASE + 16 * P, 2 * P, BACKEND_MAP_READABLE), 0);
        assert_int_equal(locked(s), base + 6 * P);
        assert_int_equal(unmap(s, c, ioas, BASE, 4 * P), 0);
        assert_int_equal(locked(s), base + 2 * P);
        assert_int_equal(OPS(s)->device_detach(c, dev, BACKEND_NO_PASID, NULL), 0);
        assert_int_equal(locked(s), base);
        assert_int_equal(unmap(s, c, ioas, 0, UINT64_MAX), 0);
}

/* Per-process accounting stops at RLIMIT_MEMLOCK; with CAP_IPC_LOCK nothing is charged. */
void memory_enomem_at_memlock_limit(void **state) {
        ConfState *s = conf_case_state(state);
        BackendContext *c = per_process_context(s);
        uint32_t ioas = conf_case_ioas(s, c), dev = conf_case_bind(s, c, CONF_DEV_PLAIN);
        uint64_t base;

        assert_int_equal(attach(s, c, dev, ioas), 0);
        memlock(s, false, UINT64_MAX);
        base = locked(s);
        memlock(s, false, base + 8 * P);
        assert_int_equal(map(s, c, ioas, BASE, 6 * P, RW), 0);
        assert_int_equal(map(s, c, ioas, BASE + 16 * P, 4 * P, RW), -ENOMEM);
        assert_int_equal(locked(s), base + 6 * P);
        assert_int_equal(unmap(s, c, ioas, BASE + 16 * P, 4 * P), -ENOENT);
        /* Up to the limit exactly. */
        assert_int_equal(map(s, c, ioas, BASE + 16 * P, 2 * P, RW), 0);
        assert_int_equal(locked(s), base + 8 * P);
        assert_int_equal(unmap(s, c, ioas, 0, UINT64_MAX), 0);
        assert_int_equal(locked(s), base);

        memlock(s, true, base + 8 * P);
        assert_int_equal(map(s, c, ioas, BASE, 16 * P, RW), 0);
        assert_int_equal(locked(s), base);
        assert_int_equal(unmap(s, c, ioas, 0, UINT64_MAX), 0);
}

/* A copy pins nothing new: it shares the pages of its source.  A second map pins again. */
void memory_copies_charged_once(void **state) {
        ConfState *s = conf_case_state(state);
        BackendContext *c = per_process_context(s);
        uint32_t ioas = conf_case_ioas(s, c), dev = conf_case_bind(s, c, CONF_DEV_PLAIN);
        uint64_t base, at = BASE + 64 * P;

        assert_int_equal(attach(s, c, dev, ioas), 0);
        memlock(s, false, UINT64_MAX);
        base = locked(s);
        assert_int_equal(map(s, c, ioas, BASE, 8 * P, RW), 0);
        assert_int_equal(OPS(s)->ioas_copy(c, ioas, ioas, BACKEND_MAP_FIXED_IOVA | RW,
                                           BASE + 2 * P, 4 * P, &at, NULL), 0);
        assert_int_equal(locked(s), base + 8 * P);
        assert_int_equal(map(s, c, ioas, BASE + SAME_MEMORY, 8 * P, RW), 0);
        assert_int_equal(locked(s), base + 16 * P);
        /* The source goes; its copy keeps the four pages it shares. */
        assert_int_equal(unmap(s, c, ioas, BASE, 8 * P), 0);
        assert_int_equal(locked(s), base + 12 * P);
        assert_int_equal(unmap(s, c, ioas, 0, UINT64_MAX), 0);
        assert_int_equal(locked(s), base);
}

/* The [vvar] mapping's range (VM_IO | VM_PFNMAP on x86), if the process has one. */
static bool find_vvar(uint64_t *ret_start, uint64_t *ret_len) {
        FILE *f = fopen("/proc/self/maps", "re");
        char line[512];
        bool found = false;

        if (!f)
                return false;
        while (!found && fgets(line, sizeof(line), f)) {
                unsigned long long lo, hi;

                if (strstr(line, "[vvar]\n") && sscanf(line, "%llx-%llx", &lo, &hi) == 2) {
                        *ret_start = lo;
                        *ret_len = hi - lo;
                        found = true;
                }
        }
        fclose(f);
        return found;
}

/* Memory pin_user_pages() refuses is EFAULT, when it is pinned: at map time or at attach. */
void memory_unpinnable_va_efault(void **state) {
        ConfState *s = conf_case_state(state);
        const uint32_t fixed = BACKEND_MAP_FIXED_IOVA;
        uint64_t at = BASE, va, len;
        BackendContext *c;
        uint32_t ioas, dev;
        char *hole;

        /* VFIO type1 pins at VFIO_IOMMU_MAP_DMA, into a container: no IOAS without a domain. */
        conf_case_require(s, BACKEND_FEATURE_HWPT_ALLOC);
        c = conf_case_context(s);
        ioas = conf_case_ioas(s, c);
        dev = conf_case_bind(s, c, CONF_DEV_PLAIN);
        hole = mmap(NULL, 4 * P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(hole != MAP_FAILED);
        assert_int_equal(munmap(hole + 2 * P, 2 * P), 0);
        va = (uint64_t)(uintptr_t)hole;
        /* Without a domain the map is lazy; the domain's arrival pins, and fails. */
        assert_int_equal(OPS(s)->ioas_map_va(c, ioas, fixed | BACKEND_MAP_READABLE, va + 2 * P,
                                             2 * P, &at, NULL), 0);
        assert_int_equal(attach(s, c, dev, ioas), -EFAULT);
        assert_int_equal(unmap(s, c, ioas, BASE, 2 * P), 0);
        assert_int_equal(attach(s, c, dev, ioas), 0);
        /* Not mapped; read-only memory for a writeable map; then what may be pinned. */
        assert_int_equal(OPS(s)->ioas_map_va(c, ioas, fixed | BACKEND_MAP_READABLE, va + P,
                                             2 * P, &at, NULL), -EFAULT);
        assert_int_equal(OPS(s)->ioas_map_va(c, ioas, fixed | RW, va, 2 * P, &at, NULL), -EFAULT);
        assert_int_equal(OPS(s)->ioas_map_va(c, ioas, fixed | BACKEND_MAP_READABLE, va, 2 * P,
                                             &at, NULL), 0);
        at = BASE + 64 * P;
        if (find_vvar(&va, &len))
                assert_int_equal(OPS(s)->ioas_map_va(c, ioas, fixed | BACKEND_MAP_READABLE, va,
                                                     len, &at, NULL), -EFAULT);
        assert_int_equal(unmap(s, c, ioas, 0, UINT64_MAX), 0);
        munmap(hole, 2 * P);
}
