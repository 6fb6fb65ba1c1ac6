/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared between the files of libiommud; nothing here is exported (only what
 * libiommud.sym lists is).  libiommud.c holds the connection and the calls
 * every other file makes through it; libiommud-topology.c, -device.c,
 * -ioas.c, -stream.c and -session.c one group of Broker methods each;
 * libiommud-error.c the IommudError.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "error.h"
#include "iommud/iommud.h"
#include "macros.h"
#include "varlink-client.h"

static inline void json_object_putp(json_object **o) {
        json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

DEFINE_TRIVIAL_CLEANUP_FUNC(IommudSession *, iommud_session_free);

/* Records errno r and a sentence in e (if non-NULL); returns r. */
int iommud_error_setf(IommudError *e, int r, const char *fmt, ...) _printf_(3, 4);
/* Records a Varlink error; returns the errno that stands for it (-EPROTO by default). */
int iommud_error_set_varlink(IommudError *e, const char *name, json_object *parameters);
/* Records -ENOMEM; returns it. */
int iommud_nomem(IommudError *err);

/* libiommud.c: the connection. */
VarlinkClient *iommud_client_varlink(IommudClient *c);
/*
 * Calls org.iommud.Broker.METHOD; on success *ret holds a normal reply that the
 * caller clears.  A Varlink error becomes err and a negative errno.
 */
int iommud_call(IommudClient *c, const char *method, json_object *params, VarlinkReply *ret,
                IommudError *err);
/* Same, sending fds with the call. */
int iommud_call_fds(IommudClient *c, const char *method, json_object *params, const int *fds,
                    size_t n_fds, VarlinkReply *ret, IommudError *err);
/* A call whose reply carries nothing the caller needs. */
int iommud_call_void(IommudClient *c, const char *method, json_object *params, IommudError *err);
/* Records that the reply to method did not decode (e says why); returns -EBADMSG. */
int iommud_bad_reply(IommudError *err, const char *method, const Error *e);

/* Parameters and replies. */
json_object *iommud_params_new(void);
int iommud_add_u64(json_object *p, const char *key, uint64_t v);
int iommud_add_str(json_object *p, const char *key, const char *v);
/* Adds ranges as an array of IOVARange under key; -ENOMEM. */
int iommud_add_ranges(json_object *p, const char *key, const IommudIOVARange *ranges, size_t n);
/* The strings of a JSON array of strings, borrowed from it; NULL for an empty one. */
int iommud_string_array(json_object *a, const char ***ret, size_t *ret_n, const char *what,
                        Error *e);
/* Whether obj has key with a value other than null. */
bool iommud_present(json_object *obj, const char *key);
/* Element i of the array a, which must be an object. */
int iommud_object_at(json_object *a, size_t i, const char *what, json_object **ret, Error *e);
