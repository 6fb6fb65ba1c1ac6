/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The broker's protocol errors, independent of the transport: the error names
 * of org.iommud.Broker (daemon/varlink/org.iommud.Broker.varlink is their source of
 * truth) and a BrokerError that carries, next to the errno and the sentence,
 * the typed parameters each error has in the IDL ({device, heldBy},
 * {resource, limit, used}, {kind, id}, ...).  The session core fills one at
 * the point of detection; the Varlink and D-Bus front ends encode it.
 */

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#ifndef BROKER_INTERFACE
#define BROKER_INTERFACE "org.iommud.Broker"
#endif

#define BROKER_ERROR_POLICY_DENIED BROKER_INTERFACE ".PolicyDenied"       /* device, step, reason */
#define BROKER_ERROR_QUOTA_EXCEEDED BROKER_INTERFACE ".QuotaExceeded"     /* resource, limit, used */
#define BROKER_ERROR_NO_SUCH_OBJECT BROKER_INTERFACE ".NoSuchObject"      /* kind, id (string) */
#define BROKER_ERROR_INVALID_RANGE BROKER_INTERFACE ".InvalidRange"       /* start, length, reason */
#define BROKER_ERROR_IOVA_IN_USE BROKER_INTERFACE ".IOVAInUse"            /* start, length */
#define BROKER_ERROR_DEVICE_BUSY BROKER_INTERFACE ".DeviceBusy"           /* device, heldBy */
#define BROKER_ERROR_OBJECT_IN_USE BROKER_INTERFACE ".ObjectInUse"        /* kind, id, reason */
#define BROKER_ERROR_INVALID_FD BROKER_INTERFACE ".InvalidFd"             /* index?, reason */
#define BROKER_ERROR_NOT_SUPPORTED BROKER_INTERFACE ".NotSupported"       /* feature */
#define BROKER_ERROR_BACKEND_ERROR BROKER_INTERFACE ".BackendError"       /* errno, message */
#define BROKER_ERROR_SYSTEM_ERROR BROKER_INTERFACE ".SystemError"         /* errno, message */
#define BROKER_ERROR_DEVICE_GONE BROKER_INTERFACE ".DeviceGone"           /* device, deviceId, reason */
#define BROKER_ERROR_FAULT_NOT_PENDING BROKER_INTERFACE ".FaultNotPending" /* cookie, reason */
#define BROKER_ERROR_FAULT_NOT_OWNED BROKER_INTERFACE ".FaultNotOwned"     /* cookie */
/* Malformed parameters use the standard org.varlink.service.InvalidParameter {parameter}. */
#define BROKER_ERROR_INVALID_PARAMETER "org.varlink.service.InvalidParameter"

/* Resource names of QuotaExceeded. */
#define BROKER_RESOURCE_PINNED_BYTES "pinnedBytes"
#define BROKER_RESOURCE_ADDRESS_SPACES "addressSpaces"
#define BROKER_RESOURCE_MAPPINGS "mappings"
#define BROKER_RESOURCE_DEVICES "devices"
#define BROKER_RESOURCE_PASIDS "pasids"
#define BROKER_RESOURCE_FAULT_QUEUE_DEPTH "faultQueueDepth"
#define BROKER_RESOURCE_CONNECTIONS "connections"

/* Object kinds of NoSuchObject. */
#define BROKER_KIND_DEVICE "device"
#define BROKER_KIND_ADDRESS_SPACE "ioas"
#define BROKER_KIND_HWPT "hwpt"
#define BROKER_KIND_SESSION "session"
#define BROKER_KIND_PASID "pasid"
#define BROKER_KIND_FAULT "fault"
/* Only from management calls about a uid: a uid without a user account. */
#define BROKER_KIND_USER "user"

#define BROKER_ERROR_PARAMS_MAX 6
/* As long as a sentence: a reason is never cut (policy reasons summarise long lists). */
#define BROKER_ERROR_STRING_MAX ERROR_MESSAGE_MAX

typedef enum BrokerParamType {
        BROKER_PARAM_STRING,
        BROKER_PARAM_U64,
        BROKER_PARAM_I64,
        BROKER_PARAM_BOOL,
} BrokerParamType;

typedef struct BrokerErrorParam {
        const char *key; /* static string, the IDL's field name */
        BrokerParamType type;
        uint64_t u64;
        int64_t i64;
        bool b;
        char str[BROKER_ERROR_STRING_MAX];
} BrokerErrorParam;

typedef struct BrokerError {
        Error error; /* errno, protocol name (error.name) and the sentence */
        BrokerErrorParam params[BROKER_ERROR_PARAMS_MAX];
        size_t n_params;
} BrokerError;

#define BROKER_ERROR_INIT ((BrokerError){ .error = ERROR_INIT })

/* As error_init(): the hot paths' cheap BROKER_ERROR_INIT (it zero-fills some 7 KiB). */
static inline void broker_error_init(BrokerError *e) {
        error_init(&e->error);
        e->n_params = 0;
}

/*
 * Sets errno, protocol name and sentence; drops parameters set before.
 * Accepts e == NULL.  Returns r.
 */
int broker_error_set(BrokerError *e, int r, const char *name, const char *fmt, ...) _printf_(4, 5);
/* Adds a parameter; ignored when e is NULL or full. */
void broker_error_add_string(BrokerError *e, const char *key, const char *value);
void broker_error_add_u64(BrokerError *e, const char *key, uint64_t value);
void broker_error_add_i64(BrokerError *e, const char *key, int64_t value);
void broker_error_add_bool(BrokerError *e, const char *key, bool value);
const BrokerErrorParam *broker_error_get(const BrokerError *e, const char *key);
void broker_error_clear(BrokerError *e);

/* The common ones, each in one statement at the point of detection. */
int broker_error_no_such_object(BrokerError *e, const char *kind, uint32_t id);
/* NoSuchObject {kind: "device", id: name} for a device name the topology does not have. */
int broker_error_no_such_device(BrokerError *e, const char *name);
/* SystemError {errno, message}: a failure inside iommud (out of memory). */
int broker_error_system(BrokerError *e, int r, const char *what);
/* QuotaExceeded {resource, limit, used}; whose names the principal ("uid 1000 (2 sessions)"). */
int broker_error_quota(BrokerError *e, const char *resource, const char *whose, uint64_t limit,
                       uint64_t used, uint64_t requested);
int broker_error_not_supported(BrokerError *e, const char *feature, const char *fmt, ...)
        _printf_(3, 4);
int broker_error_invalid_fd(BrokerError *e, int r, const char *fmt, ...) _printf_(3, 4);
int broker_error_invalid_range(BrokerError *e, uint64_t start, uint64_t length, const char *fmt,
                               ...) _printf_(4, 5);

/*
 * Turns a backend failure (errno + the backend's sentence in be) of operation op ("bind",
 * "attach", "allocate an address space", ...) on an object, not on a range, into the protocol
 * error with the parameters its IDL declares: out of memory is SystemError {errno, message}, an
 * operation the kernel lacks NotSupported {feature: op}, anything else BackendError {errno,
 * message} (the kernel refused what the policy allowed).  Returns the errno.
 */
int broker_error_from_backend(BrokerError *e, const char *op, const Error *be);
/*
 * The same for an operation on the IOVA range [start, start + length) ("map", "unmap",
 * "copy"): an overlap (EEXIST, EADDRINUSE) is IOVAInUse {start, length}, a range the kernel
 * refuses (EINVAL, ENOENT, ENOSPC, ERANGE, EOVERFLOW) InvalidRange {start, length, reason}.
 */
int broker_error_from_backend_range(BrokerError *e, const char *op, const Error *be,
                                    uint64_t start, uint64_t length);
