/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * iommuctl exec: runs a VMM (or any program that drives the IOMMU API itself) with devices
 * iommud hands over.  It takes the devices with OpenDevices, places the fresh iommufd at fd 3
 * and each device's VFIO cdev at 4, 5, ... (in --device order) without O_CLOEXEC, replaces
 * "{iommufd}" and "{device:BDF}" in the command's arguments with those numbers, and runs the
 * command as its child.  It stays the parent for as long as the command runs, holding the
 * session that holds the claim, forwards the signals sent to it, reclaims the session when
 * iommud restarts, and exits with the command's status.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iommud/iommud-handoff.h"
#include "iommuctl.h"

#define EXEC_FIRST_FD 3
#define EXEC_DEVICES_MAX 32
/* Where the fds wait while the fixed numbers are cleared: above anything inherited. */
#define EXEC_PARKING_FD 128

typedef struct ExecArgs {
        const char *devices[EXEC_DEVICES_MAX];
        size_t n_devices;
        uint64_t memlock;
        bool verbose;
} ExecArgs;

DEFINE_TRIVIAL_CLEANUP_FUNC(IommudHandoff *, iommud_handoff_free);

static int opt_exec(Ctl *ctl, int c, const char *arg, void *userdata) {
        ExecArgs *a = userdata;

        switch (c) {
        case 'd':
                if (a->n_devices >= EXEC_DEVICES_MAX) {
                        ctl_usage("exec ", "At most %d devices", EXEC_DEVICES_MAX);
                        return -EINVAL;
                }
                for (size_t i = 0; i < a->n_devices; i++)
                        if (streq(a->devices[i], arg)) {
                                ctl_usage("exec ", "--device %s is given twice", arg);
                                return -EINVAL;
                        }
                a->devices[a->n_devices++] = arg;
                return 0;
        case 'm':
                if (ctl_parse_size(arg, &a->memlock) < 0) {
                        ctl_usage("exec ", "--memlock takes a positive number of bytes such as "
                                           "256M or 4G, not '%s'", arg);
                        return -EINVAL;
                }
                return 0;
        case 'v':
                a->verbose = true;
                return 0;
        default:
                return -EINVAL;
        }
}

/* The fd a placeholder at s stands for, and its length; -1 when s starts none. */
static int placeholder_at(const char *s, const ExecArgs *a, size_t *ret_len, const char **bad) {
        const char *end;

        if (strneq(s, "{iommufd}", 9)) {
                *ret_len = 9;
                return EXEC_FIRST_FD;
        }
        if (!strneq(s, "{device:", 8) || !(end = strchr(s + 8, '}')))
                return -1;
        for (size_t i = 0; i < a->n_devices; i++)
                if ((size_t)(end - s - 8) == strlen(a->devices[i]) &&
                    strneq(s + 8, a->devices[i], strlen(a->devices[i]))) {
                        *ret_len = (size_t)(end - s) + 1;
                        return EXEC_FIRST_FD + 1 + (int)i;
                }
        *bad = s;
        return -1;
}

/* arg with every placeholder replaced; NULL with *bad set for a device not asked for. */
static char *substitute(const char *arg, const ExecArgs *a, const char **bad) {
        char *out = NULL;
        size_t size = 0, len;
        FILE *f = open_memstream(&out, &size);
        int fd;

        if (!f)
                return NULL;
        while (*arg && !*bad) {
                fd = placeholder_at(arg, a, &len, bad);
                if (fd >= 0) {
                        fprintf(f, "%d", fd);
                        arg += len;
                } else
                        fputc(*arg++, f);
        }
        if (fclose(f) != 0 || *bad) {
                free(out);
                return NULL;
        }
        return out;
}

static int substitute_all(char **argv, const ExecArgs *a) {
        for (char **p = argv; *p; p++) {
                const char *bad = NULL;
                char *s = substitute(*p, a, &bad);

                if (bad)
                        return ctl_usage("exec ", "%.*s names no device given with --device",
                                         (int)strcspn(bad, "}") + 1, bad);
                if (!s) {
                        fputs("Out of memory.\n", stderr);
                        return CTL_EXIT_FAILURE;
                }
                *p = s; /* argv's strings are the process's; the copies live until exec */
        }
        return CTL_EXIT_OK;
}

/*
 * RLIMIT_MEMLOCK up to want, where the caller may: anyone may raise the soft limit up to the
 * hard one; beyond it only with CAP_SYS_RESOURCE, which setrlimit() itself checks.
 */
static int raise_memlock(uint64_t want) {
        struct rlimit rl;

        if (want == 0 || getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur >= want)
                return CTL_EXIT_OK;
        rl.rlim_cur = want;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
                rl.rlim_max = want;
        if (setrlimit(RLIMIT_MEMLOCK, &rl) == 0)
                return CTL_EXIT_OK;
        (void)getrlimit(RLIMIT_MEMLOCK, &rl);
        fprintf(stderr, "Cannot raise RLIMIT_MEMLOCK to %" PRIu64 " bytes: the hard limit is %llu "
                        "bytes, and raising it needs CAP_SYS_RESOURCE (%m). Ask for a larger "
                        "limit (e.g. LimitMEMLOCK= of the unit) or a smaller --memlock.\n",
                want, (unsigned long long)rl.rlim_max);
        return CTL_EXIT_FAILURE;
}

/* Moves fds[] to EXEC_FIRST_FD, +1, ... without O_CLOEXEC, whatever numbers they had. */
static int place_fds(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++) {
                int parked = fcntl(fds[i], F_DUPFD_CLOEXEC, EXEC_PARKING_FD);

                if (parked < 0)
                        return -errno;
                close(fds[i]);
                fds[i] = parked;
        }
        for (size_t i = 0; i < n; i++) {
                /* dup2() leaves the new fd without O_CLOEXEC: the command inherits it. */
                if (dup2(fds[i], EXEC_FIRST_FD + (int)i) < 0)
                        return -errno;
                close(fds[i]);
        }
        return 0;
}

/* In the child: the fds at their numbers, the signals as they were, then the command. */
static _Noreturn void child_exec(IommudHandoff *h, char **argv, const sigset_t *mask) {
        int fds[1 + EXEC_DEVICES_MAX];
        size_t n = 0;
        int r;

        fds[n++] = iommud_handoff_take_iommufd(h);
        for (size_t i = 0; i < iommud_handoff_get_n_devices(h); i++)
                fds[n++] = iommud_handoff_take_device_fd(h, i);
        r = place_fds(fds, n);
        if (r < 0) {
                fprintf(stderr, "Placing the fds failed: %s.\n", strerror(-r));
                _exit(CTL_EXIT_FAILURE);
        }
        (void)sigprocmask(SIG_SETMASK, mask, NULL);
        execvp(argv[0], argv);
        r = errno;
        fprintf(stderr, "Cannot run %s: %s.\n", argv[0], strerror(r));
        _exit(r == ENOENT ? 127 : 126);
}

static void say_placed(IommudHandoff *h, char **argv, pid_t pid) {
        fprintf(stderr, "iommuctl: %s (pid %d) runs with the iommufd at fd %d", argv[0], (int)pid,
                EXEC_FIRST_FD);
        for (size_t i = 0; i < iommud_handoff_get_n_devices(h); i++) {
                const IommudHandedDevice *d = iommud_handoff_get_device(h, i);

                fprintf(stderr, ", %s (%s) at fd %zu", d->name, d->cdev ?: "no cdev",
                        EXEC_FIRST_FD + 1 + i);
        }
        fputs(".\n", stderr);
}

/* iommud went away: reclaim the session (libiommud does it on the next call), or say why not. */
static bool reclaim(Ctl *ctl, IommudClient *c) {
        IommudSession *s = NULL;
        int r;

        r = iommud_get_session(c, &s, ctl->error);
        iommud_session_free(s);
        if (r >= 0)
                return true;
        fprintf(stderr, "iommuctl: the connection to iommud is lost and with it the claim on "
                        "the devices (%s); the command keeps its fds.\n",
                iommud_error_get_message(ctl->error));
        return false;
}

/* The command's status as a shell reports it. */
static int exit_code(int status) {
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return CTL_EXIT_FAILURE;
}

/* Waits for the command; forwards signals sent to us, keeps the session while it runs. */
static int supervise(Ctl *ctl, IommudClient *c, int sfd, pid_t pid) {
        struct pollfd p[2] = { { .fd = sfd, .events = POLLIN },
                               { .fd = iommud_client_get_fd(c), .events = POLLIN } };
        nfds_t n = 2;
        int status;

        for (;;) {
                struct signalfd_siginfo si;

                if (poll(p, n, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return CTL_EXIT_FAILURE;
                }
                /* iommud says nothing unasked: readable means the connection ended. */
                if (n == 2 && p[1].revents) {
                        n = reclaim(ctl, c) ? 2 : 1;
                        p[1].fd = iommud_client_get_fd(c);
                }
                if (!(p[0].revents & POLLIN) || read(sfd, &si, sizeof(si)) != sizeof(si))
                        continue;
                if (si.ssi_signo == SIGCHLD) {
                        if (waitpid(pid, &status, WNOHANG) == pid)
                                return exit_code(status);
                        continue;
                }
                /* A terminal's signals reach the whole process group, the command too. */
                if (si.ssi_code != SI_KERNEL)
                        (void)kill(pid, (int)si.ssi_signo);
        }
}

/* Takes the devices, starts the command with them and waits for it. */
static int run(Ctl *ctl, const ExecArgs *a, char **argv) {
        static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                         SIGWINCH, SIGCHLD };
        _cleanup_(iommud_handoff_freep) IommudHandoff *h = NULL;
        _cleanup_close_ int sfd = -EBADF;
        sigset_t mask, old;
        IommudClient *c;
        pid_t pid;
        int r;

        r = raise_memlock(a->memlock);
        if (r != CTL_EXIT_OK)
                return r;
        r = ctl_connect(ctl, &c);
        if (r < 0)
                return -r;
        r = iommud_open_devices(c, a->devices, a->n_devices, &h, ctl->error);
        if (r < 0)
                return ctl_fail(ctl, r, NULL);

        sigemptyset(&mask);
        FOREACH_ARRAY(s, forwarded, ELEMENTSOF(forwarded))
                sigaddset(&mask, *s);
        if (sigprocmask(SIG_BLOCK, &mask, &old) < 0 ||
            (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
                fprintf(stderr, "Cannot watch signals: %m.\n");
                return CTL_EXIT_FAILURE;
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                fprintf(stderr, "Cannot fork: %m.\n");
                return CTL_EXIT_FAILURE;
        }
        if (pid == 0)
                child_exec(h, argv, &old);
        if (a->verbose)
                say_placed(h, argv, pid);
        /* Only the command holds the files now: when it ends, nothing of them is left here. */
        h = iommud_handoff_free(h);
        return supervise(ctl, c, sfd, pid);
}

int verb_exec(Ctl *ctl, int argc, char **argv) {
        static const struct option options[] = {
                { "device", required_argument, NULL, 'd' },
                { "memlock", required_argument, NULL, 'm' },
                { "verbose", no_argument, NULL, 'v' },
                {},
        };
        ExecArgs args = {};
        int n_opts, r;

        /* Everything after "--" is the command's, however much it looks like our options. */
        for (n_opts = 0; n_opts < argc && !streq(argv[n_opts], "--"); n_opts++)
                ;
        r = ctl_parse(ctl, n_opts, argv, options, "d:m:v", opt_exec, &args);
        if (r < 0)
                return -r;
        if (r < n_opts)
                return ctl_usage("exec ", "Unexpected '%s': the command follows '--'", argv[r]);
        if (n_opts + 1 >= argc)
                return ctl_usage("exec ", "exec needs a command after '--'");
        if (args.n_devices == 0)
                return ctl_usage("exec ", "exec needs at least one --device");
        r = substitute_all(argv + n_opts + 1, &args);
        if (r != CTL_EXIT_OK)
                return r;
        return run(ctl, &args, argv + n_opts + 1);
}
