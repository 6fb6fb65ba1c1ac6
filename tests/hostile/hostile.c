/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "hostile.h"

char *hostile_policy(unsigned max_connections, unsigned max_per_uid, unsigned self_connections) {
        char *p = NULL;

        if (asprintf(&p,
                     "{\n"
                     "  \"limits\": { \"max-connections\": %d, \"max-connections-per-user\": %d,\n"
                     "              \"reserved-connections\": 1,\n"
                     "              \"max-message-size\": \"1M\", \"max-fds-per-message\": %d,\n"
                     "              \"device-release-timeout-ms\": 0 },\n"
                     "  \"rules\": { \"all\": { \"action\": \"allow\", \"match\": \"*\" } },\n"
                     "  \"grants\": {\n"
                     "    \"self\": {\n"
                     "      \"principals\": [ { \"user\": %u } ],\n"
                     "      \"devices\": \"*\",\n"
                     "      \"quotas\": { \"pinned-memory\": %d, \"address-spaces\": %d,\n"
                     "                  \"mappings\": %d, \"devices\": %d, \"connections\": %u },\n"
                     "      \"open-on-behalf\": true\n"
                     "    },\n"
                     "    \"nobody\": {\n"
                     "      \"principals\": [ { \"user\": %d } ],\n"
                     "      \"devices\": \"*\",\n"
                     "      \"quotas\": { \"connections\": 1000 }\n"
                     "    }\n"
                     "  }\n"
                     "}\n",
                     max_connections, max_per_uid, HOSTILE_MAX_FDS,
                     (unsigned)getuid(), HOSTILE_PINNED, HOSTILE_ADDRESS_SPACES,
                     HOSTILE_MAPPINGS, HOSTILE_DEVICES, self_connections, HOSTILE_NOBODY) < 0)
                return NULL;
        return p;
}

void hostile_start(ItestDaemon *d, const char *topology) {
        hostile_start_with(d, topology, HOSTILE_MAX_CONNECTIONS, HOSTILE_MAX_PER_UID,
                           HOSTILE_SELF_CONNECTIONS);
}

void hostile_start_with(ItestDaemon *d, const char *topology, unsigned max_connections,
                        unsigned max_per_uid, unsigned self_connections) {
        char *policy = hostile_policy(max_connections, max_per_uid, self_connections);
        int r;

        assert_non_null(policy);
        r = itest_daemon_start(d, topology, policy);
        free(policy);
        if (r < 0)
                fail_msg("starting iommud on '%s' failed: %s", topology, strerror(-r));
}

uint64_t hostile_daemon_rss(const ItestDaemon *d) {
        char path[64], line[256];
        unsigned long long kb = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)d->pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
                        break;
        fclose(f);
        return (uint64_t)kb * 1024;
}

json_object *hostile_u64(uint64_t v) {
        return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t)v);
}

json_object *hostile_call(ItestClient *c, const char *method, json_object *params,
                          const int *fds, size_t n_fds) {
        json_object *r = itest_call(c, method, params, fds, n_fds);

        if (!r)
                fail_msg("no reply to %s", method);
        return r;
}

static uint64_t usage_field(ItestClient *c, const char *resource, const char *field) {
        json_object *r = hostile_call(c, "org.iommud.Broker.GetSession", NULL, NULL, 0), *usage;
        uint64_t v = UINT64_MAX;

        if (itest_reply_error(r))
                fail_msg("GetSession failed: %s", json_object_to_json_string(r));
        assert_true(json_object_object_get_ex(itest_reply_params(r), "usage", &usage));
        for (size_t i = 0; i < json_object_array_length(usage); i++) {
                json_object *u = json_object_array_get_idx(usage, i);
                const char *name = itest_get_string(u, "resource");

                if (name && strcmp(name, resource) == 0)
                        v = itest_get_u64(u, field);
        }
        json_object_put(r);
        if (v == UINT64_MAX)
                fail_msg("GetSession reports no %s for '%s'", field, resource);
        return v;
}

uint64_t hostile_usage(ItestClient *c, const char *resource) {
        return usage_field(c, resource, "used");
}

uint64_t hostile_principal_usage(ItestClient *c, const char *resource) {
        return usage_field(c, resource, "principalUsed");
}

/* One probe: false if the daemon did not answer (the caller retries or fails). */
static bool snapshot_once(const ItestDaemon *d, HostileSnapshot *ret) {
        HostileSnapshot s = {};
        ItestClient *c;
        json_object *r, *usage, *devs;
        size_t off = 0;

        if (itest_client_connect(&c, d->socket) < 0)
                return false;
        r = itest_call(c, "org.iommud.Broker.GetSession", NULL, NULL, 0);
        if (!r || itest_reply_error(r)) {
                json_object_put(r);
                itest_client_free(c);
                return false;
        }
        assert_true(json_object_object_get_ex(itest_reply_params(r), "usage", &usage));
        for (size_t i = 0; i < json_object_array_length(usage); i++) {
                json_object *u = json_object_array_get_idx(usage, i);
                const char *name = itest_get_string(u, "resource");
                uint64_t used = itest_get_u64(u, "used");

                if (name && strcmp(name, "connections") == 0)
                        s.connections = itest_get_u64(u, "principalUsed") - 1;
                else if (used != 0)
                        fail_msg("a new session starts with %s used %llu: %s", name,
                                 (unsigned long long)used, json_object_to_json_string(r));
        }
        json_object_put(r);

        r = itest_call(c, "org.iommud.Simulator.GetStats", NULL, NULL, 0);
        if (!r || itest_reply_error(r))
                fail_msg("Simulator.GetStats failed: %s",
                         r ? json_object_to_json_string(r) : "(no reply)");
        s.contexts = itest_get_u64(itest_reply_params(r), "contexts") - 1;
        s.objects = itest_get_u64(itest_reply_params(r), "objects");
        s.mappings = itest_get_u64(itest_reply_params(r), "mappings");
        s.pinned = itest_get_u64(itest_reply_params(r), "pinnedBytes");
        s.memory_files = itest_get_u64(itest_reply_params(r), "memoryFiles");
        json_object_put(r);

        r = itest_call(c, "org.iommud.Broker.GetTopology", NULL, NULL, 0);
        if (!r || itest_reply_error(r))
                fail_msg("GetTopology failed");
        assert_true(json_object_object_get_ex(itest_reply_params(r), "devices", &devs));
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                json_object *dev = json_object_array_get_idx(devs, i);
                const char *holder = itest_get_string(dev, "heldBy");

                if (holder && off < sizeof(s.held))
                        off += (size_t)snprintf(s.held + off, sizeof(s.held) - off, "%s=%s;",
                                                itest_get_string(dev, "name"), holder);
        }
        json_object_put(r);

        s.fds = itest_daemon_count_fds(d);
        itest_client_free(c);
        *ret = s;
        return true;
}

void hostile_snapshot(const ItestDaemon *d, HostileSnapshot *ret) {
        if (!snapshot_once(d, ret))
                fail_msg("the daemon does not answer GetSession on a fresh connection");
}

bool hostile_snapshot_equal(const HostileSnapshot *a, const HostileSnapshot *b) {
        return a->fds == b->fds && a->connections == b->connections && a->contexts == b->contexts &&
               a->objects == b->objects && a->mappings == b->mappings && a->pinned == b->pinned &&
               a->memory_files == b->memory_files && strcmp(a->held, b->held) == 0;
}

void hostile_snapshot_format(const HostileSnapshot *s, char *buf, size_t size) {
        snprintf(buf, size,
                 "fds %d, connections %llu, contexts %llu, objects %llu, mappings %llu, pinned %llu, "
                 "memory files %llu, held [%s]",
                 s->fds, (unsigned long long)s->connections, (unsigned long long)s->contexts,
                 (unsigned long long)s->objects, (unsigned long long)s->mappings,
                 (unsigned long long)s->pinned, (unsigned long long)s->memory_files, s->held);
}

void hostile_assert_at(const ItestDaemon *d, const HostileSnapshot *want) {
        HostileSnapshot now = {};
        char a[700], b[700];

        /* Disconnects are processed by the daemon's loop after the client is gone: poll. */
        for (int i = 0; i < 2000; i++) {
                if (snapshot_once(d, &now) && hostile_snapshot_equal(&now, want))
                        return;
                usleep(5000);
        }
        hostile_snapshot_format(&now, a, sizeof(a));
        hostile_snapshot_format(want, b, sizeof(b));
        fail_msg("the daemon is not back at its baseline: now %s; baseline %s", a, b);
}

int hostile_send(int fd, const void *data, size_t n, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * 253)];
        } control = {};
        struct iovec iov = { .iov_base = (void *)data, .iov_len = n };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        size_t sent = 0;

        if (n_fds > 253)
                return -E2BIG;
        if (n_fds > 0) {
                struct cmsghdr *cm;

                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }
        while (sent < n || (n == 0 && n_fds > 0 && sent == 0)) {
                ssize_t k;

                iov.iov_base = (char *)data + sent;
                iov.iov_len = n - sent;
                k = sendmsg(fd, &mh, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                sent += (size_t)k;
                mh.msg_control = NULL;
                mh.msg_controllen = 0;
                if (n == 0)
                        break;
        }
        return 0;
}

bool hostile_device_cdev(ItestClient *c, const char *device, char *ret, size_t size) {
        json_object *r = hostile_call(c, "org.iommud.Broker.GetTopology", NULL, NULL, 0), *devs;
        bool found = false;

        assert_true(json_object_object_get_ex(itest_reply_params(r), "devices", &devs));
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                json_object *d = json_object_array_get_idx(devs, i);
                const char *name = itest_get_string(d, "name"), *cdev = itest_get_string(d, "cdev");

                if (name && cdev && strcmp(name, device) == 0) {
                        snprintf(ret, size, "%s", cdev);
                        found = true;
                }
        }
        json_object_put(r);
        return found;
}

int hostile_open_device(const ItestDaemon *d, const char *cdev) {
        char path[512];
        int fd;

        snprintf(path, sizeof(path), "%s/vfio/devices/%s", d->dev_root, cdev);
        fd = open(path, O_RDWR | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

void hostile_write_byte(int fd, char c) {
        while (write(fd, &c, 1) < 0 && errno == EINTR)
                ;
}

char hostile_read_byte(int fd) {
        char c = 0;
        ssize_t k;

        do
                k = read(fd, &c, 1);
        while (k < 0 && errno == EINTR);
        return k == 1 ? c : 0;
}
