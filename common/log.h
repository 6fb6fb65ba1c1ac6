/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Logging.  Only the daemon and the CLI log above debug; lower layers
 * (common/, policy/, backends, libiommud) use log_debug() at most and report
 * failures to their callers instead.  Every log_*() that takes an error
 * returns it as a negative errno, so "return log_error_errno(r, ...)" works;
 * "%m" in the format prints that error.
 */

#include <stdbool.h>
#include <syslog.h>

#include "macros.h"

typedef enum LogTarget {
        LOG_TARGET_STDERR,  /* "iommud: message" */
        LOG_TARGET_JOURNAL, /* "<N>message" on stderr, for systemd's stream */
} LogTarget;

void log_set_max_level(int level);
int log_get_max_level(void);
void log_set_target(LogTarget target);
LogTarget log_get_target(void);
void log_set_ident(const char *ident);
/* Parses "debug", "info", "notice", "warning", "err"/"error", "crit" or a number 0-7. */
int log_level_from_string(const char *s);

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...)
        _printf_(5, 6);

#define log_full_errno(level, error, ...)                                                          \
        ({                                                                                         \
                int _level = (level), _e = (error);                                                \
                _e = _e < 0 ? -_e : _e;                                                            \
                (log_get_max_level() >= _level)                                                    \
                        ? log_internal(_level, _e, __FILE__, __LINE__, __VA_ARGS__)                \
                        : -(_e == 0 ? 0 : _e);                                                     \
        })
#define log_full(level, ...) ((void)log_full_errno(level, 0, __VA_ARGS__))

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_notice_errno(error, ...) log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
