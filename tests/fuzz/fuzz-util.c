/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fuzz.h"
#include "macros.h"
#include "simtopo.h"

static const char small_host[] =
        "{\"name\":\"fuzz\",\"iommus\":[{\"name\":\"dmar0\",\"kind\":\"intel\","
        "\"aperture_last\":\"0x7fffffffff\",\"page_sizes\":[\"4K\",\"2M\",\"1G\"],\"pasid_bits\":20}],"
        "\"groups\":["
        "{\"id\":1,\"type\":\"DMA-FQ\",\"reserved_regions\":["
        "{\"start\":\"0x0\",\"last\":\"0xffffff\",\"type\":\"direct-relaxable\"},"
        "{\"start\":\"0xfee00000\",\"last\":\"0xfeefffff\",\"type\":\"msi\"}],"
        "\"devices\":[{\"name\":\"0000:00:14.0\",\"vendor\":\"0x8086\",\"device\":\"0x7ae0\","
        "\"class\":\"0x0c0330\",\"driver\":\"xhci_hcd\"}]},"
        "{\"id\":2,\"reserved_regions\":[{\"start\":\"0xfee00000\",\"last\":\"0xfeefffff\",\"type\":\"msi\"}],"
        "\"devices\":[{\"name\":\"0000:01:00.0\",\"vendor\":\"0x144d\",\"device\":\"0xa80a\","
        "\"class\":\"0x010802\",\"driver\":\"vfio-pci\",\"numa_node\":0}]},"
        "{\"id\":3,\"reserved_regions\":[{\"start\":\"0xfee00000\",\"last\":\"0xfeefffff\",\"type\":\"msi\"}],"
        "\"devices\":[{\"name\":\"0000:02:00.0\",\"vendor\":\"0x8086\",\"device\":\"0x1572\","
        "\"class\":\"0x020000\",\"driver\":\"vfio-pci\"},"
        "{\"name\":\"0000:02:00.1\",\"vendor\":\"0x8086\",\"device\":\"0x1572\","
        "\"class\":\"0x020000\",\"driver\":\"i40e\"}]}]}";

static char *host_root;

char *fuzz_strndup(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);

        if (!s)
                abort();
        if (size > 0)
                memcpy(s, data, size);
        s[size] = '\0';
        return s;
}

static void small_host_remove(void) {
        if (!host_root)
                return;
        (void)simtopo_remove(host_root);
        (void)rmdir(host_root);
        free(host_root);
        host_root = NULL;
}

const char *fuzz_small_host(void) {
        _cleanup_(simtopo_freep) SimTopology *t = NULL;
        Error err = ERROR_INIT;
        const char *tmp = getenv("TMPDIR");
        char *dir;

        if (host_root)
                return host_root;
        if (!tmp || !*tmp)
                tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        if (asprintf(&dir, "%s/iommud-fuzz-XXXXXX", tmp) < 0)
                abort();
        if (!mkdtemp(dir)) {
                perror(dir);
                abort();
        }
        host_root = dir;
        atexit(small_host_remove);
        if (simtopo_parse(&t, small_host, sizeof(small_host) - 1, &err) < 0 ||
            simtopo_materialize(t, host_root, &err) < 0) {
                fprintf(stderr, "small host: %s\n", error_message(&err));
                abort();
        }
        error_clear(&err);
        return host_root;
}
