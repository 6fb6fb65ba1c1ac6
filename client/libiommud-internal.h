/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared between the files of libiommud; nothing here is exported. */

#include <json-c/json.h>

#include "iommud/iommud.h"
#include "macros.h"

/* Records errno r and a sentence in e (if non-NULL); returns r. */
int iommud_error_setf(IommudError *e, int r, const char *fmt, ...) _printf_(3, 4);
/* Records a Varlink error; returns the errno that stands for it (-EPROTO by default). */
int iommud_error_set_varlink(IommudError *e, const char *name, json_object *parameters);
