/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * iommuctl: shared state of one invocation and the helpers every verb uses.
 * Each verb lives in a command table entry (iommuctl.c) and returns an exit
 * code from the set below.
 */

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "iommud/iommud.h"
#include "macros.h"

enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_FAILURE = 1,
        CTL_EXIT_USAGE = 2,
        CTL_EXIT_DENIED = 3,      /* the policy refused (or a device is not usable) */
        CTL_EXIT_UNREACHABLE = 4, /* iommud is not listening or refused the connection */
};

typedef struct Ctl {
        const char *socket;       /* NULL: $IOMMUD_SOCKET or the default */
        bool json;
        bool color;
        unsigned width;           /* terminal columns */
        uint64_t timeout_ms;      /* for each call's reply; 0: no limit */
        IommudClient *client;     /* connected on first use */
        IommudError *error;
} Ctl;

typedef struct CtlCommand {
        const char *name;         /* "devices", "cdi generate" */
        const char *args;         /* usage after the name */
        const char *summary;
        int (*run)(Ctl *ctl, int argc, char **argv);
} CtlCommand;

/* Connects on first use; on failure prints why and returns the exit code (as a negative). */
int ctl_connect(Ctl *ctl, IommudClient **ret);
/* Prints the failure of a library call as a sentence with advice; returns the exit code. */
int ctl_fail(Ctl *ctl, int r, const char *what);
/* Prints a usage error for the verb; returns CTL_EXIT_USAGE. */
int ctl_usage(const char *verb, const char *fmt, ...) _printf_(2, 3);
#define CTL_DEVICE_MAX 256
/*
 * The device named by arg, as iommud names it: lspci's "01:00.0" is "0000:01:00.0".  A name
 * that cannot be a device ("1:0.0", spaces) is a usage error: returns -CTL_EXIT_USAGE.
 */
int ctl_device_arg(const char *verb, const char *arg, char ret[static CTL_DEVICE_MAX]);

/*
 * Parses the options of a verb (argv[0] is the verb), with the global ones
 * (--json, --socket, --help) accepted too.  on_option handles the verb's own;
 * it returns < 0 for a usage error.  Returns optind, or -CTL_EXIT_USAGE, or
 * -1000 after printing help (exit 0).
 */
#define CTL_HELP_SHOWN (-1000)
int ctl_parse(Ctl *ctl, int argc, char **argv, const struct option *options, const char *shortopts,
              int (*on_option)(Ctl *ctl, int c, const char *arg, void *userdata), void *userdata);

/* A Manager call: method without the interface; reply parameters in *ret. */
int ctl_manager_call(Ctl *ctl, const char *method, json_object *params, json_object **ret);

/* "65536", "64K", "2M", "1G": a positive number of bytes, with binary suffixes. */
int ctl_parse_size(const char *s, uint64_t *ret);

/* Prints a JSON object followed by a newline (pretty, stable key order as built). */
int ctl_print_json(json_object *o);

/* Colour escapes, "" when colour is off. */
const char *ctl_color(const Ctl *ctl, const char *which); /* "bold", "green", "red", "yellow", "dim", "reset" */

/* ---------------------------------------------------------------- tables */

typedef struct Table Table;

/* Columns named by headers (NULL-terminated); flex: the column that is shortened to fit. */
int table_new(Table **ret, const char *const *headers, int flex);
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);
/* Adds a row: one string per column (NULL prints "-"); colors: NULL or a ctl_color() name per cell. */
int table_add_row(Table *t, const char *const *cells, const char *const *colors);
int table_print(Table *t, const Ctl *ctl, FILE *f);

/* ---------------------------------------------------------------- verbs */

int verb_devices(Ctl *ctl, int argc, char **argv);
int verb_groups(Ctl *ctl, int argc, char **argv);
int verb_explain(Ctl *ctl, int argc, char **argv);
int verb_status(Ctl *ctl, int argc, char **argv);
int verb_sessions(Ctl *ctl, int argc, char **argv);
int verb_monitor(Ctl *ctl, int argc, char **argv);
int verb_reload(Ctl *ctl, int argc, char **argv);
int verb_check_config(Ctl *ctl, int argc, char **argv);
int verb_cdi(Ctl *ctl, int argc, char **argv);
int verb_attach(Ctl *ctl, int argc, char **argv);
int verb_map(Ctl *ctl, int argc, char **argv);
int verb_exec(Ctl *ctl, int argc, char **argv);
int verb_features(Ctl *ctl, int argc, char **argv);
int verb_claim(Ctl *ctl, int argc, char **argv);
