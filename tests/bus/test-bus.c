/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.iommud1 end to end: a private dbus-daemon with a system-bus style
 * configuration (tests/bus/system-bus.conf.in, which includes the shipped
 * org.iommud1 policy), the real polkitd on it, and the real iommud on a
 * simulated host.  Clients are sd-bus connections of this process and of
 * children that drop to the nobody user.
 *
 * polkitd reads its rules from /etc/polkit-1/rules.d and
 * /usr/share/polkit-1/rules.d and its actions from /usr/share/polkit-1/actions,
 * with no option to look elsewhere.  It is therefore started in a private
 * mount namespace where the test's own directories are bind-mounted over
 * those three, so the host's polkit configuration is neither read nor
 * touched.  That needs root (CAP_SYS_ADMIN); without it the suite is skipped.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "bus-errors.h"
#include "bus-harness.h"
#include "bus.h"
#include "file-util.h"
#include "itest.h"
#include "session.h"

#define NOBODY 65534
#define WAIT_ROUNDS 600 /* of 50 ms: a hang fails the test after 30 s */

typedef struct Signal {
        char member[64];
        char path[128];   /* first object path argument, or the message's path */
        uint64_t number;  /* first t argument */
        char changed[64]; /* PropertiesChanged: first changed property */
} Signal;

static struct {
        char dir[128];
        pid_t dbus_pid;
        pid_t polkit_pid;
        ItestDaemon daemon;
        sd_bus *bus;
        Signal signals[256];
        size_t n_signals;
} env;

/* ---- processes ----------------------------------------------------------------------------- */

static int copy_file(const char *from, const char *to) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = file_util_read_at(AT_FDCWD, from, 1024 * 1024, &text, NULL);
        if (r < 0)
                return r;
        return itest_write_file(to, text);
}

static int wait_for_name(const char *name, pid_t owner) {
        return bus_harness_wait_for_name(env.bus, name, owner);
}

/* polkitd with exactly one rules file, in a mount namespace of its own. */
static int start_polkit(const char *rules) {
        char path[300], rules_dir[200], empty[200], actions[200], log[200];
        int r;

        snprintf(rules_dir, sizeof(rules_dir), "%s/rules", env.dir);
        snprintf(empty, sizeof(empty), "%s/empty", env.dir);
        snprintf(actions, sizeof(actions), "%s/actions", env.dir);
        snprintf(log, sizeof(log), "%s/polkitd.log", env.dir);
        snprintf(path, sizeof(path), "%s/50-iommud-test.rules", rules_dir);
        r = itest_write_file(path, rules);
        if (r < 0)
                return r;

        env.polkit_pid = itest_fork();
        if (env.polkit_pid < 0) {
                r = env.polkit_pid;
                env.polkit_pid = 0;
                return r;
        }
        if (env.polkit_pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                if (unshare(CLONE_NEWNS) < 0 ||
                    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                    mount(rules_dir, "/etc/polkit-1/rules.d", NULL, MS_BIND, NULL) < 0 ||
                    mount(empty, "/usr/share/polkit-1/rules.d", NULL, MS_BIND, NULL) < 0 ||
                    mount(actions, "/usr/share/polkit-1/actions", NULL, MS_BIND, NULL) < 0) {
                        fprintf(stderr, "polkitd namespace: %m\n");
                        _exit(126);
                }
                execl(getenv("IOMMUD_POLKITD") ?: "/usr/lib/polkit-1/polkitd", "polkitd",
                      "--no-debug", NULL);
                _exit(127);
        }
        r = wait_for_name("org.freedesktop.PolicyKit1", env.polkit_pid);
        if (r < 0)
                env.polkit_pid = 0;
        return r;
}

static int restart_polkit(const char *rules) {
        bus_harness_reap(&env.polkit_pid);
        return start_polkit(rules);
}

/* ---- signals ------------------------------------------------------------------------------- */

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        bool have_number = false;
        const char *contents;
        Signal *s;
        char type;

        if (env.n_signals >= ELEMENTSOF(env.signals))
                return 0;
        s = &env.signals[env.n_signals++];
        memset(s, 0, sizeof(*s));
        snprintf(s->member, sizeof(s->member), "%s", sd_bus_message_get_member(m));
        snprintf(s->path, sizeof(s->path), "%s", sd_bus_message_get_path(m));
        if (streq(s->member, "PropertiesChanged")) {
                const char *iface, *name;

                if (sd_bus_message_read(m, "s", &iface) >= 0 &&
                    sd_bus_message_enter_container(m, 'a', "{sv}") > 0 &&
                    sd_bus_message_enter_container(m, 'e', "sv") > 0 &&
                    sd_bus_message_read(m, "s", &name) >= 0)
                        snprintf(s->changed, sizeof(s->changed), "%s", name);
                return 0;
        }
        while (sd_bus_message_peek_type(m, &type, &contents) > 0) {
                if (type == 'o') {
                        const char *o;

                        if (sd_bus_message_read(m, "o", &o) < 0)
                                break;
                        snprintf(s->path, sizeof(s->path), "%s", o);
                } else if (type == 't' && !have_number) {
                        if (sd_bus_message_read(m, "t", &s->number) < 0)
                                break;
                        have_number = true;
                } else if (sd_bus_message_skip(m, NULL) < 0)
                        break;
        }
        return 0;
}

static void pump(void) {
        while (sd_bus_process(env.bus, NULL) > 0)
                ;
}

/* Index of the first signal member (with path, if given) at or after from; a hang fails. */
static size_t wait_signal(size_t from, const char *member, const char *path) {
        for (unsigned i = 0; i < WAIT_ROUNDS; i++) {
                pump();
                for (size_t k = from; k < env.n_signals; k++)
                        if (streq(env.signals[k].member, member) &&
                            (!path || streq(env.signals[k].path, path)))
                                return k;
                (void)sd_bus_wait(env.bus, 50000);
        }
        fail_msg("no %s signal%s%s", member, path ? " for " : "", path ?: "");
        return 0;
}

static size_t wait_property_change(size_t from, const char *property) {
        for (unsigned i = 0; i < WAIT_ROUNDS; i++) {
                pump();
                for (size_t k = from; k < env.n_signals; k++)
                        if (streq(env.signals[k].member, "PropertiesChanged") &&
                            streq(env.signals[k].changed, property))
                                return k;
                (void)sd_bus_wait(env.bus, 50000);
        }
        fail_msg("no PropertiesChanged for %s", property);
        return 0;
}

/* ---- setup --------------------------------------------------------------------------------- */

static const char *restrictive_rules =
        "polkit.addRule(function(action, subject) {\n"
        "        if (action.id.indexOf(\"org.iommud1.\") == 0 && action.id != "
        "\"org.iommud1.open-session\")\n"
        "                return polkit.Result.NO;\n"
        "});\n";

static const char *permissive_rules =
        "polkit.addRule(function(action, subject) {\n"
        "        if (action.id == \"org.iommud1.reload\" && subject.user == \"nobody\")\n"
        "                return polkit.Result.YES;\n"
        "});\n";

static const char *challenge_rules =
        "polkit.addRule(function(action, subject) {\n"
        "        if (action.id == \"org.iommud1.reload\")\n"
        "                return polkit.Result.AUTH_ADMIN;\n"
        "});\n";

static const char *grant_extras =
        "\"quotas\": { \"pinned-memory\": \"1M\", \"address-spaces\": 4, \"mappings\": 64,"
        " \"devices\": 4, \"pasids\": 4, \"fault-queue-depth\": 4 },\n"
        "      \"pasids\": { \"min\": 16, \"max\": 31 },\n"
        "      \"delegation\": true, \"open-on-behalf\": true";

#define DEV_PASID "0000:01:00.0"

/* One VT-d unit with fault queues, two PASID-capable devices and one without. */
static const char topology[] =
        "{\n"
        "  \"name\": \"bus\",\n"
        "  \"description\": \"one VT-d unit, two PASID-capable devices and one without\",\n"
        "  \"cdev_major\": 511,\n"
        "  \"iommus\": [ { \"name\": \"dmar0\", \"kind\": \"intel\", \"aperture_start\": \"0x0\",\n"
        "      \"aperture_last\": \"0x7fffffffff\", \"page_sizes\": [\"4K\", \"2M\"],\n"
        "      \"pasid_bits\": 20, \"capabilities\": [\"pasid-exec\", \"pasid-priv\"],\n"
        "      \"nesting\": true, \"dirty_tracking\": false, \"fault_queue\": true } ],\n"
        "  \"groups\": [\n"
        "    { \"id\": 1, \"type\": \"DMA\", \"iommu\": \"dmar0\",\n"
        "      \"reserved_regions\": [ { \"start\": \"0xfee00000\", \"last\": \"0xfeefffff\",\n"
        "                              \"type\": \"msi\" } ],\n"
        "      \"devices\": [ { \"name\": \"" DEV_PASID "\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\",\n"
        "        \"pasid_bits\": 20 } ] },\n"
        "    { \"id\": 2, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"0000:02:00.0\", \"vendor\": \"0x10ee\",\n"
        "        \"device\": \"0x505c\", \"class\": \"0x120000\", \"driver\": \"vfio-pci\",\n"
        "        \"pasid_bits\": 20 } ] },\n"
        "    { \"id\": 3, \"type\": \"DMA\", \"iommu\": \"dmar0\", \"reserved_regions\": [],\n"
        "      \"devices\": [ { \"name\": \"0000:03:00.0\", \"vendor\": \"0x8086\",\n"
        "        \"device\": \"0x1528\", \"class\": \"0x020000\", \"driver\": \"i40e\" } ] }\n"
        "  ]\n"
        "}\n";

static int group_setup(void **state) {
        char path[300];
        const char *policy_file = getenv("IOMMUD_POLKIT_POLICY");
        char *policy;
        int r;

        snprintf(env.dir, sizeof(env.dir), "/tmp/iommud-bus-XXXXXX");
        assert_non_null(mkdtemp(env.dir));
        assert_int_equal(chmod(env.dir, 0755), 0);
        for (const char *const *d = (const char *const[]){ "rules", "empty", "actions", NULL }; *d;
             d++) {
                snprintf(path, sizeof(path), "%s/%s", env.dir, *d);
                assert_int_equal(mkdir(path, 0755), 0);
        }
        /* The shipped actions file, as installed. */
        assert_non_null(policy_file);
        snprintf(path, sizeof(path), "%s/actions/org.iommud1.policy", env.dir);
        assert_int_equal(copy_file(policy_file, path), 0);

        /* As root with both installed (main() checked), each must come up: else a failure. */
        r = bus_harness_start_dbus(env.dir, &env.dbus_pid, &env.bus);
        if (r < 0) {
                print_message("Bail out! dbus-daemon did not come up: %s\n", strerror(-r));
                return -1;
        }
        assert_true(sd_bus_match_signal(env.bus, NULL, BUS_NAME, NULL, NULL, NULL, on_signal,
                                        NULL) >= 0);

        r = start_polkit(restrictive_rules);
        if (r < 0) {
                print_message("Bail out! polkitd did not come up on the private bus (%s); see "
                              "%s/polkitd.log\n", strerror(-r), env.dir);
                return -1;
        }

        policy = itest_policy_for_self(grant_extras);
        assert_non_null(policy);
        snprintf(path, sizeof(path), "%s/topology.json", env.dir);
        assert_int_equal(itest_write_file(path, topology), 0);
        assert_int_equal(itest_daemon_start(&env.daemon, path, policy), 0);
        free(policy);
        assert_int_equal(wait_for_name(BUS_NAME, env.daemon.pid), 0);
        *state = NULL;
        return 0;
}

static int group_teardown(void **state) {
        if (env.daemon.pid > 0)
                assert_int_equal(itest_daemon_stop(&env.daemon), 0);
        env.bus = sd_bus_flush_close_unref(env.bus);
        bus_harness_reap(&env.polkit_pid);
        bus_harness_reap(&env.dbus_pid);
        bus_harness_remove_dir(env.dir);
        return 0;
}

/* ---- call helpers -------------------------------------------------------------------------- */

static sd_bus_message *call_ok(sd_bus *bus, const char *path, const char *iface,
                               const char *member, const char *types, ...) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, iface, member);
        assert_int_equal(r, 0);
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                assert_true(r >= 0);
        }
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                fail_msg("%s.%s on %s: %s: %s", iface, member, path, error.name, error.message);
        sd_bus_message_unref(m);
        sd_bus_error_free(&error);
        return reply;
}

/* Calls and expects an error; returns its errno and stores its name. */
static int call_error(sd_bus *bus, const char *path, const char *iface, const char *member,
                      char *name, size_t name_size, const char *types, ...) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        va_list ap;
        int r;

        assert_int_equal(sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, iface, member), 0);
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                assert_true(r >= 0);
        }
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r >= 0)
                fail_msg("%s.%s on %s succeeded, an error was expected", iface, member, path);
        snprintf(name, name_size, "%s", error.name ?: "");
        r = sd_bus_error_get_errno(&error);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return r;
}

#define MANAGER(bus, member, ...)                                                                  \
        call_ok((bus), BUS_PATH, BUS_MANAGER_INTERFACE, member, __VA_ARGS__)
#define SESSION(bus, path, member, ...)                                                            \
        call_ok((bus), (path), BUS_SESSION_INTERFACE, member, __VA_ARGS__)

static uint32_t get_u32_property(sd_bus *bus, const char *path, const char *iface,
                                 const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint32_t v = 0;

        if (sd_bus_get_property_trivial(bus, BUS_NAME, path, iface, name, &error, 'u', &v) < 0)
                fail_msg("property %s: %s", name, error.message);
        return v;
}

static char *get_string_property(sd_bus *bus, const char *path, const char *iface,
                                 const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *v = NULL;

        if (sd_bus_get_property_string(bus, BUS_NAME, path, iface, name, &error, &v) < 0)
                fail_msg("property %s: %s", name, error.message);
        return v;
}

static char *create_session(sd_bus *bus) {
        sd_bus_message *reply = MANAGER(bus, "CreateSession", NULL);
        const char *path;
        char *ret;

        assert_true(sd_bus_message_read(reply, "o", &path) >= 0);
        ret = strdup(path);
        sd_bus_message_unref(reply);
        return ret;
}

typedef struct EligibleDevice {
        char name[64];
        char cdev[64];
        char path[256];
} EligibleDevice;

/* The first device eligible for anyone that has a VFIO cdev. */
static void find_eligible(EligibleDevice *ret) {
        sd_bus_message *reply = MANAGER(env.bus, "ListDevices", NULL);
        const char *name, *driver, *path;
        uint16_t vendor, device;
        uint32_t group;
        int eligible;

        memset(ret, 0, sizeof(*ret));
        assert_true(sd_bus_message_enter_container(reply, 'a', "(sqqsubo)") > 0);
        while (sd_bus_message_read(reply, "(sqqsubo)", &name, &vendor, &device, &driver, &group,
                                   &eligible, &path) > 0) {
                char *cdev;

                if (!eligible)
                        continue;
                cdev = get_string_property(env.bus, path, BUS_DEVICE_INTERFACE, "Cdev");
                if (cdev[0]) {
                        snprintf(ret->name, sizeof(ret->name), "%s", name);
                        snprintf(ret->cdev, sizeof(ret->cdev), "%s", cdev);
                        snprintf(ret->path, sizeof(ret->path), "%s", path);
                        free(cdev);
                        break;
                }
                free(cdev);
        }
        sd_bus_message_unref(reply);
        assert_true(ret->name[0]);
}

static int open_device(const EligibleDevice *d) {
        char path[512];
        int fd;

        snprintf(path, sizeof(path), "%s/vfio/devices/%s", env.daemon.dev_root, d->cdev);
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                fail_msg("cannot open %s: %s", path, strerror(errno));
        return fd;
}

static uint32_t attach_fd(sd_bus *bus, const char *session, int fd) {
        sd_bus_message *reply = SESSION(bus, session, "AttachDevice", "h", fd);
        const char *bdf;
        uint32_t id, group;
        uint8_t bits;

        assert_true(sd_bus_message_read(reply, "usuy", &id, &bdf, &group, &bits) >= 0);
        assert_true(bdf[0]);
        sd_bus_message_unref(reply);
        return id;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_registers(void **state) {
        sd_bus_creds *creds = NULL;
        uid_t uid;
        char *s;

        assert_true(sd_bus_get_name_creds(env.bus, BUS_NAME, SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID,
                                          &creds) >= 0);
        assert_true(sd_bus_creds_get_euid(creds, &uid) >= 0);
        assert_int_equal(uid, 0);
        sd_bus_creds_unref(creds);

        s = get_string_property(env.bus, BUS_PATH, BUS_MANAGER_INTERFACE, "Version");
        assert_string_equal(s, PACKAGE_VERSION);
        free(s);
        s = get_string_property(env.bus, BUS_PATH, BUS_MANAGER_INTERFACE, "Backend");
        assert_string_equal(s, "sim");
        free(s);
}

/*
 * The documented API, member by member: kind, name and signature (in, then
 * out after a '>').  Introspection must show exactly these for the
 * org.iommud1 interfaces, and org.iommud1(5) must describe each one.
 */
typedef struct ApiMember {
        const char *interface;
        const char *kind; /* method, signal, property */
        const char *name;
        const char *signature;
} ApiMember;

static const ApiMember api[] = {
        { BUS_MANAGER_INTERFACE, "property", "Version", "s" },
        { BUS_MANAGER_INTERFACE, "property", "Backend", "s" },
        { BUS_MANAGER_INTERFACE, "property", "Features", "as" },
        { BUS_MANAGER_INTERFACE, "property", "SessionCount", "u" },
        { BUS_MANAGER_INTERFACE, "property", "DeviceCount", "u" },
        { BUS_MANAGER_INTERFACE, "property", "PolicyGeneration", "t" },
        { BUS_MANAGER_INTERFACE, "method", "ListDevices", ">a(sqqsubo)" },
        { BUS_MANAGER_INTERFACE, "method", "ListGroups", ">a(usbasa(tts))" },
        { BUS_MANAGER_INTERFACE, "method", "ExplainDevice", "su>ba(sss)" },
        { BUS_MANAGER_INTERFACE, "method", "ListSessions", ">a(ossuusuu)" },
        { BUS_MANAGER_INTERFACE, "method", "ReloadPolicy", ">t" },
        { BUS_MANAGER_INTERFACE, "method", "CreateSession", ">o" },
        { BUS_MANAGER_INTERFACE, "method", "OpenSession", ">h" },
        { BUS_MANAGER_INTERFACE, "method", "PrepareClaim", "sasuus>ssb" },
        { BUS_MANAGER_INTERFACE, "method", "UnprepareClaim", "s>b" },
        { BUS_MANAGER_INTERFACE, "method", "ListClaims", ">a(suusassss)" },
        { BUS_MANAGER_INTERFACE, "signal", "DeviceAdded", "so" },
        { BUS_MANAGER_INTERFACE, "signal", "DeviceRemoved", "so" },
        { BUS_MANAGER_INTERFACE, "signal", "DeviceReleaseRequested", "sot" },
        { BUS_MANAGER_INTERFACE, "signal", "PolicyReloaded", "t" },
        { BUS_MANAGER_INTERFACE, "signal", "SessionOpened", "ous" },
        { BUS_MANAGER_INTERFACE, "signal", "SessionClosed", "ous" },
        { BUS_SESSION_INTERFACE, "property", "Owner", "s" },
        { BUS_SESSION_INTERFACE, "property", "UserId", "u" },
        { BUS_SESSION_INTERFACE, "property", "GroupId", "u" },
        { BUS_SESSION_INTERFACE, "property", "ProcessId", "u" },
        { BUS_SESSION_INTERFACE, "property", "Unit", "s" },
        { BUS_SESSION_INTERFACE, "property", "Devices", "u" },
        { BUS_SESSION_INTERFACE, "property", "AddressSpaces", "u" },
        { BUS_SESSION_INTERFACE, "property", "Usage", "a(stt)" },
        { BUS_SESSION_INTERFACE, "property", "PrincipalUsage", "a(stt)" },
        { BUS_SESSION_INTERFACE, "method", "AttachDevice", "h>usuyas" },
        { BUS_SESSION_INTERFACE, "method", "AttachDeviceByName", "s>usuyas" },
        { BUS_SESSION_INTERFACE, "method", "DetachDevice", "u>" },
        { BUS_SESSION_INTERFACE, "method", "GetDeviceFd", "u>h" },
        { BUS_SESSION_INTERFACE, "method", "CreateAddressSpace", ">u" },
        { BUS_SESSION_INTERFACE, "method", "DestroyAddressSpace", "u>" },
        { BUS_SESSION_INTERFACE, "method", "AttachToAddressSpace", "uu>u" },
        { BUS_SESSION_INTERFACE, "method", "GetIOVARanges", "u>a(tt)t" },
        { BUS_SESSION_INTERFACE, "method", "AllowIOVAs", "ua(tt)>" },
        { BUS_SESSION_INTERFACE, "method", "Map", "uhtttu>t" },
        { BUS_SESSION_INTERFACE, "method", "Unmap", "utt>t" },
        { BUS_SESSION_INTERFACE, "method", "MapBatch", "uaha(utttu)>at" },
        { BUS_SESSION_INTERFACE, "method", "UnmapBatch", "ua(tt)>t" },
        { BUS_SESSION_INTERFACE, "method", "CreateDirtyTrackingAddressSpace", ">u" },
        { BUS_SESSION_INTERFACE, "method", "SetDirtyTracking", "ub>" },
        { BUS_SESSION_INTERFACE, "method", "ReadDirtyBitmap", "utttbh>" },
        { BUS_SESSION_INTERFACE, "method", "UnmapDirty", "uttth>t" },
        { BUS_SESSION_INTERFACE, "method", "GetFeatures", "u>sasasa(sbb)" },
        { BUS_SESSION_INTERFACE, "method", "Copy", "ututtu>t" },
        { BUS_SESSION_INTERFACE, "method", "BindPASID", "uuuusay>uu" },
        { BUS_SESSION_INTERFACE, "method", "UnbindPASID", "uu>" },
        { BUS_SESSION_INTERFACE, "method", "WatchFaults", "u>" },
        { BUS_SESSION_INTERFACE, "method", "RespondFault", "tu>" },
        { BUS_SESSION_INTERFACE, "method", "Delegate", ">h" },
        { BUS_SESSION_INTERFACE, "method", "OpenDevices", "as>ha(shsu)" },
        { BUS_SESSION_INTERFACE, "method", "ReleaseDevices", "as>" },
        { BUS_SESSION_INTERFACE, "method", "Close", ">" },
        { BUS_SESSION_INTERFACE, "signal", "Fault", "tuuuutub" },
        { BUS_DEVICE_INTERFACE, "property", "Name", "s" },
        { BUS_DEVICE_INTERFACE, "property", "VendorId", "q" },
        { BUS_DEVICE_INTERFACE, "property", "DeviceId", "q" },
        { BUS_DEVICE_INTERFACE, "property", "Class", "u" },
        { BUS_DEVICE_INTERFACE, "property", "Driver", "s" },
        { BUS_DEVICE_INTERFACE, "property", "Cdev", "s" },
        { BUS_DEVICE_INTERFACE, "property", "Group", "u" },
        { BUS_DEVICE_INTERFACE, "property", "IOMMU", "s" },
        { BUS_DEVICE_INTERFACE, "property", "ReservedRegions", "a(tts)" },
        { BUS_DEVICE_INTERFACE, "property", "Eligible", "b" },
        { BUS_DEVICE_INTERFACE, "property", "IneligibleReason", "s" },
        { BUS_DEVICE_INTERFACE, "property", "Holder", "s" },
};

static char *introspect(const char *path) {
        sd_bus_message *reply = call_ok(env.bus, path, "org.freedesktop.DBus.Introspectable",
                                        "Introspect", NULL);
        const char *xml;
        char *ret;

        assert_true(sd_bus_message_read(reply, "s", &xml) >= 0);
        ret = strdup(xml);
        sd_bus_message_unref(reply);
        return ret;
}

/* The signature of one member in the XML of its interface, in the api[] notation. */
static bool member_signature(const char *xml, const char *kind, const char *name, char *sig,
                             size_t size) {
        char open[128], *start, *end, *p;
        size_t n = 0;
        bool out_seen = false;

        if (streq(kind, "property")) {
                snprintf(open, sizeof(open), "<property name=\"%s\" type=\"", name);
                start = strstr(xml, open);
                if (!start)
                        return false;
                start += strlen(open);
                snprintf(sig, size, "%.*s", (int)strcspn(start, "\""), start);
                return true;
        }
        snprintf(open, sizeof(open), "<%s name=\"%s\">", kind, name);
        start = strstr(xml, open);
        if (!start)
                return false;
        end = strstr(start, streq(kind, "method") ? "</method>" : "</signal>");
        if (!end)
                return false;
        sig[0] = '\0';
        for (p = strstr(start, "<arg "); p && p < end; p = strstr(p + 1, "<arg ")) {
                char *type = strstr(p, "type=\""), *tail = strchr(p, '>');
                bool out = strstr(p, "direction=\"out\"") && strstr(p, "direction=\"out\"") < tail;

                if (!type || type > tail)
                        continue;
                type += strlen("type=\"");
                if (out && !out_seen && streq(kind, "method")) {
                        n += (size_t)snprintf(sig + n, size - n, ">");
                        out_seen = true;
                }
                n += (size_t)snprintf(sig + n, size - n, "%.*s", (int)strcspn(type, "\""), type);
        }
        if (streq(kind, "method") && !out_seen)
                snprintf(sig + n, size - n, ">");
        return true;
}

static char *interface_xml(char *xml, const char *iface) {
        char open[128], *start, *end;

        snprintf(open, sizeof(open), "<interface name=\"%s\">", iface);
        start = strstr(xml, open);
        if (!start)
                return NULL;
        end = strstr(start, "</interface>");
        return end ? strndup(start, (size_t)(end - start)) : NULL;
}

static size_t count(const char *hay, const char *needle) {
        size_t n = 0;

        for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
                n++;
        return n;
}

static void test_introspection_matches_docs(void **state) {
        _cleanup_free_ char *manager_xml = NULL, *session_xml = NULL, *device_xml = NULL,
                            *man = NULL;
        EligibleDevice dev;
        char *session;
        FILE *f;
        long len;

        session = create_session(env.bus);
        find_eligible(&dev);
        manager_xml = introspect(BUS_PATH);
        session_xml = introspect(session);
        device_xml = introspect(dev.path);

        f = fopen(getenv("IOMMUD_BUS_MANPAGE"), "re");
        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        len = ftell(f);
        rewind(f);
        man = calloc((size_t)len + 1, 1);
        assert_int_equal(fread(man, 1, (size_t)len, f), (size_t)len);
        fclose(f);

        /* The ObjectManager lives on the root. */
        assert_non_null(strstr(manager_xml, "org.freedesktop.DBus.ObjectManager"));

        for (const char *const *iface = (const char *const[]){ BUS_MANAGER_INTERFACE,
                                                                BUS_SESSION_INTERFACE,
                                                                BUS_DEVICE_INTERFACE, NULL };
             *iface; iface++) {
                char *src = streq(*iface, BUS_MANAGER_INTERFACE)   ? manager_xml
                            : streq(*iface, BUS_SESSION_INTERFACE) ? session_xml
                                                                   : device_xml;
                _cleanup_free_ char *xml = interface_xml(src, *iface);
                size_t documented = 0;

                assert_non_null(xml);
                for (size_t i = 0; i < ELEMENTSOF(api); i++) {
                        char sig[256], needle[128];

                        if (!streq(api[i].interface, *iface))
                                continue;
                        documented++;
                        if (!member_signature(xml, api[i].kind, api[i].name, sig, sizeof(sig)))
                                fail_msg("%s %s.%s is not exported", api[i].kind, *iface,
                                         api[i].name);
                        if (!streq(sig, api[i].signature))
                                fail_msg("%s.%s has signature '%s', documented '%s'", *iface,
                                         api[i].name, sig, api[i].signature);
                        /* The manual has a definition list entry per member. */
                        snprintf(needle, sizeof(needle), "*%s*", api[i].name);
                        if (!strstr(man, needle))
                                fail_msg("org.iommud1(5) does not document %s.%s", *iface,
                                         api[i].name);
                }
                /* Nothing exported that is not documented. */
                assert_int_equal(count(xml, "<method ") + count(xml, "<signal ") +
                                         count(xml, "<property "),
                                 documented);
        }
        sd_bus_message_unref(SESSION(env.bus, session, "Close", NULL));
        free(session);
}

static void test_manager_methods(void **state) {
        sd_bus_message *reply;
        EligibleDevice dev;
        const char *name, *driver, *path, *type, *step, *verdict, *reason;
        uint16_t vendor, device;
        uint32_t group, n = 0, n_groups = 0;
        int eligible, viable, allowed;
        char err[128];
        uint64_t gen;

        reply = MANAGER(env.bus, "ListDevices", NULL);
        assert_true(sd_bus_message_enter_container(reply, 'a', "(sqqsubo)") > 0);
        while (sd_bus_message_read(reply, "(sqqsubo)", &name, &vendor, &device, &driver, &group,
                                   &eligible, &path) > 0) {
                _cleanup_free_ char *dev_name =
                        get_string_property(env.bus, path, BUS_DEVICE_INTERFACE, "Name");

                /* Every listed device is an object with the same name. */
                assert_string_equal(dev_name, name);
                n++;
        }
        sd_bus_message_unref(reply);
        assert_true(n > 0);
        assert_int_equal(get_u32_property(env.bus, BUS_PATH, BUS_MANAGER_INTERFACE, "DeviceCount"),
                         n);

        reply = MANAGER(env.bus, "ListGroups", NULL);
        assert_true(sd_bus_message_enter_container(reply, 'a', "(usbasa(tts))") > 0);
        while (sd_bus_message_enter_container(reply, 'r', "usbasa(tts)") > 0) {
                assert_true(sd_bus_message_read(reply, "usb", &group, &type, &viable) >= 0);
                assert_true(sd_bus_message_skip(reply, "asa(tts)") >= 0);
                assert_true(sd_bus_message_exit_container(reply) >= 0);
                n_groups++;
        }
        sd_bus_message_unref(reply);
        assert_true(n_groups > 0);

        /* Device-only eligibility, and the caller's own decision. */
        find_eligible(&dev);
        for (uint32_t uid = 0; uid != 2; uid++) {
                reply = MANAGER(env.bus, "ExplainDevice", "su", dev.name,
                                uid == 0 ? UINT32_MAX : (uint32_t)getuid());
                assert_true(sd_bus_message_read(reply, "b", &allowed) >= 0);
                assert_true(allowed);
                assert_true(sd_bus_message_enter_container(reply, 'a', "(sss)") > 0);
                n = 0;
                while (sd_bus_message_read(reply, "(sss)", &step, &verdict, &reason) > 0) {
                        assert_true(streq(verdict, "pass") || streq(verdict, "skip"));
                        n++;
                }
                assert_true(n > 0);
                sd_bus_message_unref(reply);
        }
        /* nobody has no grant: refused at the principal step. */
        reply = MANAGER(env.bus, "ExplainDevice", "su", dev.name, (uint32_t)NOBODY);
        assert_true(sd_bus_message_read(reply, "b", &allowed) >= 0);
        assert_false(allowed);
        sd_bus_message_unref(reply);

        /* Errors keep their name and errno across the bus. */
        assert_int_equal(call_error(env.bus, BUS_PATH, BUS_MANAGER_INTERFACE, "ExplainDevice", err,
                                    sizeof(err), "su", "0000:ff:1f.7", UINT32_MAX),
                         ENOENT);
        assert_string_equal(err, BROKER_ERROR_NO_SUCH_OBJECT);

        reply = MANAGER(env.bus, "ListSessions", NULL);
        sd_bus_message_unref(reply);

        /* Root reloads without polkit (whose rules refuse everyone right now). */
        reply = MANAGER(env.bus, "ReloadPolicy", NULL);
        assert_true(sd_bus_message_read(reply, "t", &gen) >= 0);
        sd_bus_message_unref(reply);
        assert_true(gen >= 2);
}

/* AllowIOVAs with n ranges of one page each, a page apart, from start: 0 or the errno. */
static int allow_iovas(const char *session, uint32_t ioas, uint64_t start, size_t n) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        int r;

        assert_int_equal(sd_bus_message_new_method_call(env.bus, &m, BUS_NAME, session,
                                                        BUS_SESSION_INTERFACE, "AllowIOVAs"),
                         0);
        assert_true(sd_bus_message_append(m, "u", ioas) >= 0);
        assert_true(sd_bus_message_open_container(m, 'a', "(tt)") >= 0);
        for (size_t i = 0; i < n; i++)
                assert_true(sd_bus_message_append(m, "(tt)", start + i * 0x2000,
                                                  start + i * 0x2000 + 0xfff) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
        r = sd_bus_call(env.bus, m, 0, &error, &reply);
        if (r < 0)
                r = sd_bus_error_has_name(&error, SD_BUS_ERROR_INVALID_ARGS) ? -EINVAL : r;
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return r < 0 ? r : 0;
}

static void test_session_methods(void **state) {
        sd_bus_message *reply;
        EligibleDevice dev;
        char *session, err[128];
        uint32_t dev_id, ioas, ioas2, hwpt, dev2;
        uint64_t start, last, alignment, iova, iova2, unmapped, used = 0, limit;
        size_t mark = env.n_signals;
        const char *resource;
        int fd, memfd;

        session = create_session(env.bus);
        wait_signal(mark, "SessionOpened", session);
        find_eligible(&dev);

        fd = open_device(&dev);
        dev_id = attach_fd(env.bus, session, fd);
        close(fd);
        assert_int_equal(get_u32_property(env.bus, session, BUS_SESSION_INTERFACE, "Devices"), 1);
        {
                _cleanup_free_ char *holder =
                        get_string_property(env.bus, dev.path, BUS_DEVICE_INTERFACE, "Holder");

                assert_non_null(strstr(holder, "uid 0"));
        }

        /* What the host offers, and a dirty-tracking address space turned on. */
        {
                const char *backend;

                reply = SESSION(env.bus, session, "GetFeatures", "u", dev_id);
                assert_true(sd_bus_message_read(reply, "s", &backend) >= 0);
                assert_string_equal(backend, "sim");
                sd_bus_message_unref(reply);
                reply = SESSION(env.bus, session, "CreateDirtyTrackingAddressSpace", NULL);
                assert_true(sd_bus_message_read(reply, "u", &ioas2) >= 0);
                sd_bus_message_unref(reply);
                sd_bus_message_unref(SESSION(env.bus, session, "SetDirtyTracking", "ub", ioas2, 1));
                sd_bus_message_unref(SESSION(env.bus, session, "DestroyAddressSpace", "u", ioas2));
        }

        reply = SESSION(env.bus, session, "CreateAddressSpace", NULL);
        assert_true(sd_bus_message_read(reply, "u", &ioas) >= 0);
        sd_bus_message_unref(reply);
        reply = SESSION(env.bus, session, "AttachToAddressSpace", "uu", dev_id, ioas);
        assert_true(sd_bus_message_read(reply, "u", &hwpt) >= 0);
        sd_bus_message_unref(reply);

        reply = SESSION(env.bus, session, "GetIOVARanges", "u", ioas);
        assert_true(sd_bus_message_enter_container(reply, 'a', "(tt)") > 0);
        assert_true(sd_bus_message_read(reply, "(tt)", &start, &last) > 0);
        while (sd_bus_message_read(reply, "(tt)", &iova, &iova2) > 0)
                ;
        assert_true(sd_bus_message_exit_container(reply) >= 0);
        assert_true(sd_bus_message_read(reply, "t", &alignment) >= 0);
        sd_bus_message_unref(reply);
        assert_true(alignment >= 1);
        if (start == 0)
                start = alignment > 4096 ? alignment : 4096;
        /* As many ranges as AllowIOVAs takes, and one more. */
        assert_int_equal(allow_iovas(session, ioas, start, SESSION_ALLOW_IOVAS_MAX), 0);
        assert_int_equal(allow_iovas(session, ioas, start, SESSION_ALLOW_IOVAS_MAX + 1), -EINVAL);
        /* Allow one window; automatic IOVAs then land inside it. */
        sd_bus_message_unref(SESSION(env.bus, session, "AllowIOVAs", "ua(tt)", ioas, 1,
                                     start, start + 0x1000000 - 1));

        memfd = itest_memfd(65536);
        assert_true(memfd >= 0);
        reply = SESSION(env.bus, session, "Map", "uhtttu", ioas, memfd, (uint64_t)0,
                        (uint64_t)65536, (uint64_t)0, BUS_MAP_READABLE | BUS_MAP_WRITEABLE);
        assert_true(sd_bus_message_read(reply, "t", &iova) >= 0);
        sd_bus_message_unref(reply);
        assert_true(iova >= start && iova + 65536 - 1 <= start + 0x1000000 - 1);

        /* The map is real: it is charged and overlaps are refused by the core. */
        reply = call_ok(env.bus, session, "org.freedesktop.DBus.Properties", "Get", "ss",
                        BUS_SESSION_INTERFACE, "Usage");
        assert_true(sd_bus_message_enter_container(reply, 'v', "a(stt)") > 0);
        assert_true(sd_bus_message_enter_container(reply, 'a', "(stt)") > 0);
        while (sd_bus_message_read(reply, "(stt)", &resource, &used, &limit) > 0)
                if (streq(resource, BROKER_RESOURCE_PINNED_BYTES))
                        break;
        sd_bus_message_unref(reply);
        assert_int_equal(used, 65536);
        assert_int_equal(limit, 1024 * 1024);
        assert_int_equal(call_error(env.bus, session, BUS_SESSION_INTERFACE, "Map", err,
                                    sizeof(err), "uhtttu", ioas, memfd, (uint64_t)0,
                                    (uint64_t)65536, iova,
                                    BUS_MAP_FIXED_IOVA | BUS_MAP_READABLE),
                         EEXIST);
        assert_string_equal(err, BROKER_ERROR_IOVA_IN_USE);
        /* Unknown flags and a descriptor that is no memory are refused with their names. */
        assert_int_equal(call_error(env.bus, session, BUS_SESSION_INTERFACE, "Map", err,
                                    sizeof(err), "uhtttu", ioas, memfd, (uint64_t)0,
                                    (uint64_t)4096, (uint64_t)0, UINT32_C(0x80)),
                         EINVAL);
        assert_string_equal(err, SD_BUS_ERROR_INVALID_ARGS);
        {
                int p[2];

                assert_int_equal(pipe2(p, O_CLOEXEC), 0);
                assert_int_equal(call_error(env.bus, session, BUS_SESSION_INTERFACE, "Map", err,
                                            sizeof(err), "uhtttu", ioas, p[0], (uint64_t)0,
                                            (uint64_t)4096, (uint64_t)0, BUS_MAP_READABLE),
                                 EBADF);
                assert_string_equal(err, BROKER_ERROR_INVALID_FD);
                close(p[0]);
                close(p[1]);
        }

        /* Copy into a second address space, then unmap everything there. */
        reply = SESSION(env.bus, session, "CreateAddressSpace", NULL);
        assert_true(sd_bus_message_read(reply, "u", &ioas2) >= 0);
        sd_bus_message_unref(reply);
        reply = SESSION(env.bus, session, "Copy", "ututtu", ioas, iova, ioas2, (uint64_t)0,
                        (uint64_t)65536, UINT32_C(0));
        assert_true(sd_bus_message_read(reply, "t", &iova2) >= 0);
        sd_bus_message_unref(reply);
        reply = SESSION(env.bus, session, "Unmap", "utt", ioas2, (uint64_t)0, UINT64_MAX);
        assert_true(sd_bus_message_read(reply, "t", &unmapped) >= 0);
        sd_bus_message_unref(reply);
        assert_int_equal(unmapped, 65536);
        sd_bus_message_unref(SESSION(env.bus, session, "DestroyAddressSpace", "u", ioas2));

        /* Unmap and map again at the same, now fixed, IOVA. */
        reply = SESSION(env.bus, session, "Unmap", "utt", ioas, iova, (uint64_t)65536);
        assert_true(sd_bus_message_read(reply, "t", &unmapped) >= 0);
        sd_bus_message_unref(reply);
        assert_int_equal(unmapped, 65536);
        reply = SESSION(env.bus, session, "Map", "uhtttu", ioas, memfd, (uint64_t)0,
                        (uint64_t)65536, iova, BUS_MAP_FIXED_IOVA | BUS_MAP_READABLE);
        assert_true(sd_bus_message_read(reply, "t", &iova2) >= 0);
        sd_bus_message_unref(reply);
        assert_int_equal(iova2, iova);
        close(memfd);

        /*
         * Delegation is granted by the policy, but only to a session that holds nothing: this
         * one holds an address space, which is a typed ObjectInUse, as on the socket.
         */
        assert_int_equal(call_error(env.bus, session, BUS_SESSION_INTERFACE, "Delegate", err,
                                    sizeof(err), NULL),
                         EBUSY);
        assert_string_equal(err, BROKER_ERROR_OBJECT_IN_USE);

        /* Unknown ids are NoSuchObject, as on the socket. */
        assert_int_equal(call_error(env.bus, session, BUS_SESSION_INTERFACE, "DetachDevice", err,
                                    sizeof(err), "u", UINT32_C(999)),
                         ENOENT);
        assert_string_equal(err, BROKER_ERROR_NO_SUCH_OBJECT);

        sd_bus_message_unref(SESSION(env.bus, session, "DetachDevice", "u", dev_id));
        sd_bus_message_unref(SESSION(env.bus, session, "DestroyAddressSpace", "u", ioas));
        assert_int_equal(get_u32_property(env.bus, session, BUS_SESSION_INTERFACE, "Devices"), 0);

        /* Opened on the caller's behalf, by name. */
        reply = SESSION(env.bus, session, "AttachDeviceByName", "s", dev.name);
        assert_true(sd_bus_message_read(reply, "u", &dev2) >= 0);
        sd_bus_message_unref(reply);

        mark = env.n_signals;
        sd_bus_message_unref(SESSION(env.bus, session, "Close", NULL));
        wait_signal(mark, "SessionClosed", session);
        assert_int_equal(call_error(env.bus, session, BUS_SESSION_INTERFACE, "CreateAddressSpace",
                                    err, sizeof(err), NULL),
                         EBADR);
        assert_string_equal(err, SD_BUS_ERROR_UNKNOWN_OBJECT);
        {
                _cleanup_free_ char *holder =
                        get_string_property(env.bus, dev.path, BUS_DEVICE_INTERFACE, "Holder");

                assert_string_equal(holder, "");
        }
        free(session);
}

static void test_other_connection_denied(void **state) {
        sd_bus *other = NULL;
        char *session, err[128];

        session = create_session(env.bus);
        assert_int_equal(sd_bus_open_system(&other), 0);
        assert_int_equal(call_error(other, session, BUS_SESSION_INTERFACE, "CreateAddressSpace",
                                    err, sizeof(err), NULL),
                         EACCES);
        assert_string_equal(err, SD_BUS_ERROR_ACCESS_DENIED);
        assert_int_equal(call_error(other, session, BUS_SESSION_INTERFACE, "Close", err,
                                    sizeof(err), NULL),
                         EACCES);
        sd_bus_flush_close_unref(other);
        /* Still there for its owner. */
        assert_int_equal(get_u32_property(env.bus, session, BUS_SESSION_INTERFACE,
                                          "AddressSpaces"),
                         0);
        sd_bus_message_unref(SESSION(env.bus, session, "Close", NULL));
        free(session);
}

static void test_owner_disconnect(void **state) {
        sd_bus *owner = NULL;
        EligibleDevice dev;
        char *session, *s2;
        size_t mark = env.n_signals;
        uint32_t before;
        int fd;

        find_eligible(&dev);
        before = get_u32_property(env.bus, BUS_PATH, BUS_MANAGER_INTERFACE, "SessionCount");
        assert_int_equal(sd_bus_open_system(&owner), 0);
        session = create_session(owner);
        fd = open_device(&dev);
        (void)attach_fd(owner, session, fd);
        close(fd);
        assert_int_equal(get_u32_property(env.bus, BUS_PATH, BUS_MANAGER_INTERFACE,
                                          "SessionCount"),
                         before + 1);

        /* The owner goes away without a word. */
        owner = sd_bus_flush_close_unref(owner);
        wait_signal(mark, "SessionClosed", session);
        assert_int_equal(get_u32_property(env.bus, BUS_PATH, BUS_MANAGER_INTERFACE,
                                          "SessionCount"),
                         before);

        /* Its device is free for the next session at once. */
        s2 = create_session(env.bus);
        fd = open_device(&dev);
        (void)attach_fd(env.bus, s2, fd);
        close(fd);
        sd_bus_message_unref(SESSION(env.bus, s2, "Close", NULL));
        free(s2);
        free(session);
}

/* Runs fn as nobody in a child with its own bus connection; returns its exit status. */
static int as_nobody(int (*fn)(sd_bus *bus, void *userdata), void *userdata) {
        pid_t pid;
        int status;

        fflush(NULL);
        pid = itest_fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                sd_bus *bus = NULL;
                int r;

                if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
                        _exit(90);
                itest_die_with_parent();
                if (sd_bus_open_system(&bus) < 0)
                        _exit(91);
                (void)sd_bus_error_add_map(bus_error_map);
                r = fn(bus, userdata);
                sd_bus_flush_close_unref(bus);
                _exit(r);
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

enum {
        CHILD_OK = 0,
        CHILD_ACCESS_DENIED = 10,
        CHILD_INTERACTIVE_REQUIRED = 11,
        CHILD_OTHER_ERROR = 12,
        CHILD_WRONG = 13,
};

static int child_reload(sd_bus *bus, void *userdata) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r;

        if (userdata)
                (void)sd_bus_set_allow_interactive_authorization(bus, true);
        r = sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_MANAGER_INTERFACE, "ReloadPolicy",
                               &error, &reply, NULL);
        sd_bus_message_unref(reply);
        if (r >= 0)
                return CHILD_OK;
        fprintf(stderr, "ReloadPolicy as nobody: %s: %s\n", error.name, error.message);
        if (sd_bus_error_has_name(&error, SD_BUS_ERROR_ACCESS_DENIED))
                return CHILD_ACCESS_DENIED;
        if (sd_bus_error_has_name(&error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                return CHILD_INTERACTIVE_REQUIRED;
        return CHILD_OTHER_ERROR;
}

/* ListSessions and explaining for another user need polkit; explaining for oneself does not. */
static int child_manage(sd_bus *bus, void *userdata) {
        const char *device = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int allowed = -1;

        if (sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_MANAGER_INTERFACE, "ExplainDevice",
                               &error, &reply, "su", device, (uint32_t)NOBODY) < 0 ||
            sd_bus_message_read(reply, "b", &allowed) < 0 || allowed != 0) {
                fprintf(stderr, "ExplainDevice for oneself: %s (allowed %d)\n", error.message,
                        allowed);
                return CHILD_WRONG;
        }
        reply = sd_bus_message_unref(reply);
        if (sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_MANAGER_INTERFACE, "ExplainDevice",
                               &error, &reply, "su", device, (uint32_t)0) >= 0 ||
            !sd_bus_error_has_name(&error, SD_BUS_ERROR_ACCESS_DENIED))
                return CHILD_WRONG;
        sd_bus_error_free(&error);
        if (sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_MANAGER_INTERFACE, "ListSessions",
                               &error, &reply, NULL) >= 0 ||
            !sd_bus_error_has_name(&error, SD_BUS_ERROR_ACCESS_DENIED))
                return CHILD_WRONG;
        sd_bus_error_free(&error);
        return CHILD_OK;
}

static uint64_t policy_generation_now(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t gen = 0;

        assert_true(sd_bus_get_property_trivial(env.bus, BUS_NAME, BUS_PATH,
                                                BUS_MANAGER_INTERFACE, "PolicyGeneration", &error,
                                                't', &gen) >= 0);
        return gen;
}

static void test_polkit_reload(void **state) {
        EligibleDevice dev;
        uint64_t before;
        size_t mark, k;

        find_eligible(&dev);
        assert_int_equal(as_nobody(child_manage, dev.name), CHILD_OK);

        /* Restrictive rules: refused, and nothing is reloaded. */
        before = policy_generation_now();
        assert_int_equal(as_nobody(child_reload, NULL), CHILD_ACCESS_DENIED);
        assert_int_equal(policy_generation_now(), before);

        /* A rule that wants an administrator: without interactive authorization allowed. */
        assert_int_equal(restart_polkit(challenge_rules), 0);
        assert_int_equal(as_nobody(child_reload, NULL), CHILD_INTERACTIVE_REQUIRED);
        /* With it allowed polkit is asked to authenticate; with no agent it refuses. */
        assert_int_equal(as_nobody(child_reload, (void *)1), CHILD_ACCESS_DENIED);
        assert_int_equal(policy_generation_now(), before);

        /* Permissive rules: allowed, and everyone hears about it. */
        assert_int_equal(restart_polkit(permissive_rules), 0);
        mark = env.n_signals;
        assert_int_equal(as_nobody(child_reload, NULL), CHILD_OK);
        k = wait_signal(mark, "PolicyReloaded", NULL);
        assert_int_equal(env.signals[k].number, before + 1);
        wait_property_change(mark, "PolicyGeneration");
        assert_int_equal(policy_generation_now(), before + 1);

        assert_int_equal(restart_polkit(restrictive_rules), 0);
}

/* OpenSession as nobody: the broker session carries nobody's credentials, not the daemon's. */
static int child_open_session(sd_bus *bus, void *userdata) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        ItestClient *c;
        json_object *r, *principal;
        int fd, ret = CHILD_OK;

        if (sd_bus_call_method(bus, BUS_NAME, BUS_PATH, BUS_MANAGER_INTERFACE, "OpenSession",
                               &error, &reply, NULL) < 0) {
                fprintf(stderr, "OpenSession: %s: %s\n", error.name, error.message);
                return CHILD_OTHER_ERROR;
        }
        if (sd_bus_message_read(reply, "h", &fd) < 0)
                return CHILD_WRONG;
        c = calloc(1, sizeof(*c));
        if (!c)
                return CHILD_WRONG;
        c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        sd_bus_message_unref(reply);

        r = itest_call(c, "org.iommud.Broker.GetSession", NULL, NULL, 0);
        if (!r || itest_reply_error(r) ||
            !json_object_object_get_ex(itest_reply_params(r), "principal", &principal)) {
                fprintf(stderr, "GetSession failed\n");
                ret = CHILD_WRONG;
        } else if (itest_get_u64(principal, "uid") != NOBODY ||
                   itest_get_u64(principal, "gid") != NOBODY ||
                   itest_get_u64(principal, "pid") != (uint64_t)getpid()) {
                fprintf(stderr, "principal is %s\n", json_object_to_json_string(principal));
                ret = CHILD_WRONG;
        }
        json_object_put(r);
        /*
         * The connection itself is nobody's, not the daemon's (its socket
         * peer): administration is refused, as on a connection nobody made.
         */
        r = itest_call(c, "org.iommud.Manager.GetStatus", NULL, NULL, 0);
        if (ret == CHILD_OK && (!r || !itest_reply_error(r) ||
                                !streq(itest_reply_error(r), "org.iommud.Manager.NotAuthorized"))) {
                fprintf(stderr, "GetStatus on nobody's OpenSession connection: %s\n",
                        r ? json_object_to_json_string(r) : "no reply");
                ret = CHILD_WRONG;
        }
        json_object_put(r);
        itest_client_free(c);
        return ret;
}

static void test_open_session(void **state) {
        size_t mark = env.n_signals;

        assert_int_equal(as_nobody(child_open_session, NULL), CHILD_OK);
        /* Sessions of the socket are announced too, with no object of their own. */
        wait_signal(mark, "SessionOpened", "/");
        wait_signal(mark, "SessionClosed", "/");
}

static void test_object_manager(void **state) {
        sd_bus_message *reply;
        const char *path;
        char *session;
        bool seen_session = false, seen_device = false;

        session = create_session(env.bus);
        reply = call_ok(env.bus, BUS_PATH, "org.freedesktop.DBus.ObjectManager",
                        "GetManagedObjects", NULL);
        assert_true(sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}") > 0);
        while (sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}") > 0) {
                assert_true(sd_bus_message_read(reply, "o", &path) >= 0);
                if (streq(path, session))
                        seen_session = true;
                if (strneq(path, BUS_DEVICE_PREFIX "/", strlen(BUS_DEVICE_PREFIX) + 1))
                        seen_device = true;
                assert_true(sd_bus_message_skip(reply, "a{sa{sv}}") >= 0);
                assert_true(sd_bus_message_exit_container(reply) >= 0);
        }
        sd_bus_message_unref(reply);
        assert_true(seen_session);
        assert_true(seen_device);
        sd_bus_message_unref(SESSION(env.bus, session, "Close", NULL));
        free(session);
}

/* Fault records reach the session's owner, and only it, as signals; answers go back. */
static void test_faults(void **state) {
        _cleanup_free_ char *session = NULL;
        sd_bus_message *reply;
        sd_bus *other = NULL;
        ItestClient *sim = NULL;
        json_object *r;
        uint32_t dev, ioas, pasid, hwpt;
        size_t mark, k, other_seen = 0;
        char err[128];

        session = create_session(env.bus);
        reply = SESSION(env.bus, session, "AttachDeviceByName", "s", DEV_PASID);
        assert_true(sd_bus_message_read(reply, "u", &dev) >= 0);
        sd_bus_message_unref(reply);
        reply = SESSION(env.bus, session, "CreateAddressSpace", NULL);
        assert_true(sd_bus_message_read(reply, "u", &ioas) >= 0);
        sd_bus_message_unref(reply);
        reply = SESSION(env.bus, session, "BindPASID", "uuuusay", dev, ioas, UINT32_C(0),
                        BUS_PASID_FAULTS, "", (size_t)0);
        assert_true(sd_bus_message_read(reply, "uu", &pasid, &hwpt) >= 0);
        sd_bus_message_unref(reply);
        assert_true(pasid >= 16 && pasid <= 31);
        sd_bus_message_unref(SESSION(env.bus, session, "WatchFaults", "u", UINT32_MAX));
        /* Watching twice is refused with the socket's error. */
        assert_int_equal(call_error(env.bus, session, BUS_SESSION_INTERFACE, "WatchFaults", err,
                                    sizeof(err), "u", UINT32_MAX),
                         EBUSY);
        assert_string_equal(err, BROKER_ERROR_OBJECT_IN_USE);

        /* Another connection listens for every Fault signal of iommud. */
        assert_int_equal(sd_bus_open_system(&other), 0);
        assert_true(sd_bus_match_signal(other, NULL, BUS_NAME, NULL, BUS_SESSION_INTERFACE,
                                        "Fault", NULL, NULL) >= 0);

        /* The simulated device raises a fault at that PASID. */
        mark = env.n_signals;
        assert_int_equal(itest_client_connect(&sim, env.daemon.socket), 0);
        r = itest_call(sim, "org.iommud.Simulator.InjectFault",
                       itest_params("device", json_object_new_string(DEV_PASID), "pasid",
                                    json_object_new_int64(pasid), "address",
                                    json_object_new_int64(0x10000), NULL),
                       NULL, 0);
        assert_non_null(r);
        assert_null(itest_reply_error(r));
        json_object_put(r);
        k = wait_signal(mark, "Fault", session);

        /*
         * The bus keeps each connection's messages in order, so after a round
         * trip of other's own any Fault meant for it would have arrived.
         */
        {
                sd_bus_message *id = NULL;

                assert_true(sd_bus_call_method(other, "org.freedesktop.DBus",
                                               "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                               "GetId", NULL, &id, NULL) >= 0);
                sd_bus_message_unref(id);
        }
        for (;;) {
                sd_bus_message *m = NULL;

                if (sd_bus_process(other, &m) <= 0)
                        break;
                if (m && sd_bus_message_is_signal(m, BUS_SESSION_INTERFACE, "Fault"))
                        other_seen++;
                sd_bus_message_unref(m);
        }
        assert_int_equal(other_seen, 0);
        sd_bus_flush_close_unref(other);

        /* Answered once; a second answer is FaultNotPending. */
        sd_bus_message_unref(SESSION(env.bus, session, "RespondFault", "tu",
                                     env.signals[k].number, UINT32_C(0)));
        assert_int_equal(call_error(env.bus, session, BUS_SESSION_INTERFACE, "RespondFault", err,
                                    sizeof(err), "tu", env.signals[k].number, UINT32_C(0)),
                         EALREADY);
        assert_string_equal(err, BROKER_ERROR_FAULT_NOT_PENDING);

        sd_bus_message_unref(SESSION(env.bus, session, "UnbindPASID", "uu", dev, pasid));
        assert_int_equal(call_error(env.bus, session, BUS_SESSION_INTERFACE, "UnbindPASID", err,
                                    sizeof(err), "uu", dev, pasid),
                         ENOENT);
        itest_client_free(sim);
        sd_bus_message_unref(SESSION(env.bus, session, "Close", NULL));
}

static void simulate(const char *method, json_object *params) {
        ItestClient *sim = NULL;
        json_object *r;

        assert_int_equal(itest_client_connect(&sim, env.daemon.socket), 0);
        r = itest_call(sim, method, params, NULL, 0);
        assert_non_null(r);
        assert_null(itest_reply_error(r));
        json_object_put(r);
        itest_client_free(sim);
}

static uint32_t device_count(void) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t n = 0;

        assert_true(sd_bus_get_property_trivial(env.bus, BUS_NAME, BUS_PATH, BUS_MANAGER_INTERFACE,
                                                "DeviceCount", &e, 'u', &n) >= 0);
        return n;
}

/*
 * Hotplug reaches D-Bus: a simulated removal is DeviceRemoved, the device
 * object's InterfacesRemoved and DeviceCount's change, and the object is gone;
 * plugging it back is the reverse.
 */
static void test_hotplug(void **state) {
        _cleanup_free_ char *path = NULL;
        sd_bus_message *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t before;
        size_t mark, k;
        char *driver = NULL;

        assert_true(sd_bus_path_encode(BUS_DEVICE_PREFIX, "0000:03:00.0", &path) >= 0);
        before = device_count();
        /* The object is there before. */
        assert_true(sd_bus_get_property_string(env.bus, BUS_NAME, path, BUS_DEVICE_INTERFACE,
                                               "Driver", &e, &driver) >= 0);
        assert_string_equal(driver, "i40e");
        free(driver);

        mark = env.n_signals;
        simulate("org.iommud.Simulator.RemoveDevice",
                 itest_params("device", json_object_new_string("0000:03:00.0"), NULL));
        k = wait_signal(mark, "DeviceRemoved", path);
        assert_string_equal(env.signals[k].member, "DeviceRemoved");
        k = wait_signal(mark, "InterfacesRemoved", path);
        assert_string_equal(env.signals[k].path, path);
        wait_property_change(mark, "DeviceCount");
        assert_int_equal(device_count(), before - 1);
        /* Nothing was added. */
        for (size_t i = mark; i < env.n_signals; i++)
                assert_string_not_equal(env.signals[i].member, "DeviceAdded");

        assert_true(sd_bus_get_property(env.bus, BUS_NAME, path, BUS_DEVICE_INTERFACE, "Driver",
                                        &e, &reply, "s") < 0);
        sd_bus_error_free(&e);
        sd_bus_message_unref(reply);

        /* Plugged back: DeviceAdded, InterfacesAdded, the count and the object return. */
        mark = env.n_signals;
        simulate("org.iommud.Simulator.AddDevice",
                 itest_params("device", json_object_new_string("0000:03:00.0"), NULL));
        wait_signal(mark, "DeviceAdded", path);
        wait_signal(mark, "InterfacesAdded", path);
        wait_property_change(mark, "DeviceCount");
        assert_int_equal(device_count(), before);
        for (size_t i = mark; i < env.n_signals; i++)
                assert_string_not_equal(env.signals[i].member, "DeviceRemoved");
        assert_true(sd_bus_get_property_string(env.bus, BUS_NAME, path, BUS_DEVICE_INTERFACE,
                                               "Driver", &e, &driver) >= 0);
        assert_string_equal(driver, "i40e");
        free(driver);
}

/*
 * A device a session holds is asked back before the host removes it:
 * DeviceReleaseRequested, then (released at once by this policy) DeviceRemoved.
 */
static void test_hotplug_held(void **state) {
        _cleanup_free_ char *path = NULL, *session = create_session(env.bus);
        sd_bus_message *reply;
        size_t mark, asked, removed;

        assert_true(sd_bus_path_encode(BUS_DEVICE_PREFIX, "0000:02:00.0", &path) >= 0);
        reply = SESSION(env.bus, session, "AttachDeviceByName", "s", "0000:02:00.0");
        sd_bus_message_unref(reply);

        mark = env.n_signals;
        simulate("org.iommud.Simulator.RemoveDevice",
                 itest_params("device", json_object_new_string("0000:02:00.0"), NULL));
        asked = wait_signal(mark, "DeviceReleaseRequested", NULL);
        removed = wait_signal(mark, "DeviceRemoved", path);
        assert_true(asked < removed);

        simulate("org.iommud.Simulator.AddDevice",
                 itest_params("device", json_object_new_string("0000:02:00.0"), NULL));
        wait_signal(mark, "DeviceAdded", path);
        sd_bus_message_unref(SESSION(env.bus, session, "Close", NULL));
}

/*
 * Why this host cannot run the suite, or NULL.  A whole-suite skip is a TAP plan of zero with
 * a SKIP directive (cmocka's skip() prints "not ok # SKIP", a failure to meson).
 */
static const char *cannot_run(void) {
        if (geteuid() != 0)
                return "needs root for polkitd's mount namespace and the nobody client";
        if (access(getenv("IOMMUD_POLKITD") ?: "/usr/lib/polkit-1/polkitd", X_OK) < 0)
                return "no polkitd installed (apt-get install polkitd)";
        if (system("command -v dbus-daemon >/dev/null") != 0)
                return "no dbus-daemon installed (apt-get install dbus-daemon)";
        return NULL;
}

int main(void) {
        const char *why = cannot_run();
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_registers),
                cmocka_unit_test(test_introspection_matches_docs),
                cmocka_unit_test(test_manager_methods),
                cmocka_unit_test(test_session_methods),
                cmocka_unit_test(test_other_connection_denied),
                cmocka_unit_test(test_owner_disconnect),
                cmocka_unit_test(test_object_manager),
                cmocka_unit_test(test_faults),
                cmocka_unit_test(test_open_session),
                cmocka_unit_test(test_polkit_reload),
                cmocka_unit_test(test_hotplug),
                cmocka_unit_test(test_hotplug_held),
        };

        if (why) {
                printf("1..0 # SKIP %s\n", why);
                return 0;
        }
        return cmocka_run_group_tests_name("bus", tests, group_setup, group_teardown);
}
