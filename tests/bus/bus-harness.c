/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus-errors.h"
#include "bus-harness.h"
#include "itest.h"

#define WAIT_ROUNDS 600 /* of 50 ms */

void bus_harness_reap(pid_t *pid) {
        if (*pid <= 0)
                return;
        kill(*pid, SIGTERM);
        while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
                ;
        *pid = 0;
}

bool bus_harness_alive(pid_t pid) {
        return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

void bus_harness_remove_dir(const char *dir) {
        char cmd[400];

        if (!dir[0])
                return;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        (void)!system(cmd);
}

int bus_harness_start_dbus(const char *dir, pid_t *ret_pid, sd_bus **ret_bus) {
        const char *config = getenv("IOMMUD_BUS_CONFIG");
        char listen[300], line[256];
        pid_t pid;
        int p[2], r;
        ssize_t n;

        if (!config)
                return -ENOENT;
        snprintf(listen, sizeof(listen), "unix:path=%s/bus", dir);
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        /* It dies with the test: a failed test must not leave it holding meson's pipe. */
        pid = itest_fork();
        if (pid < 0)
                return pid;
        if (pid == 0) {
                char config_arg[300], address_arg[320];

                dup2(p[1], 3);
                snprintf(config_arg, sizeof(config_arg), "--config-file=%s", config);
                snprintf(address_arg, sizeof(address_arg), "--address=%s", listen);
                execlp("dbus-daemon", "dbus-daemon", config_arg, address_arg, "--nofork",
                       "--print-address=3", "--nosyslog", NULL);
                _exit(127);
        }
        *ret_pid = pid;
        close(p[1]);
        /* The daemon prints its address once it listens; EOF means it died. */
        n = read(p[0], line, sizeof(line) - 1);
        close(p[0]);
        if (n <= 0)
                return -ECHILD;
        line[n] = '\0';
        line[strcspn(line, "\n")] = '\0';
        if (setenv("DBUS_SYSTEM_BUS_ADDRESS", line, 1) < 0)
                return -errno;
        r = sd_bus_open_system(ret_bus);
        if (r < 0)
                return r;
        r = sd_bus_error_add_map(bus_error_map);
        return r < 0 ? r : 0;
}

int bus_harness_wait_for_name(sd_bus *bus, const char *name, pid_t owner) {
        for (unsigned i = 0; i < WAIT_ROUNDS; i++) {
                sd_bus_message *reply = NULL;
                int has = 0, r;

                r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "NameHasOwner", NULL, &reply, "s",
                                       name);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "b", &has);
                sd_bus_message_unref(reply);
                if (r < 0)
                        return r;
                if (has)
                        return 0;
                if (owner > 0 && !bus_harness_alive(owner))
                        return -ECHILD;
                (void)sd_bus_wait(bus, 50000);
                while (sd_bus_process(bus, NULL) > 0)
                        ;
        }
        return -ETIMEDOUT;
}
