/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef IOMMUD_IOMMUD_H
#define IOMMUD_IOMMUD_H

/*
 * libiommud: the C client of iommud's org.iommud.Broker Varlink interface.
 *
 * Conventions:
 *  - Every function that can fail returns a negative errno, 0 (or a count) on
 *    success.  A Varlink error from iommud returns -EPROTO, except for the
 *    errors that have an obvious errno (see iommud_error_get_errno()); the
 *    IommudError passed as the last argument (may be NULL) says what failed.
 *  - ret_ out-parameters are written only on success.
 *  - Objects are opaque; _free()/_unref() accept NULL and return NULL.
 *  - Structs the library hands out (IommudDevice, IommudFault, ...) are
 *    allocated by the library; new members may be appended in later
 *    versions, so never allocate or copy them by value.
 *
 * Threads: an IommudClient is one connection and serves one call at a time.
 * Use one client per thread (or serialize calls yourself); distinct clients
 * are independent.  Clients joined to one session (iommud_join_session())
 * may live in different threads.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOMMUD_BROKER_INTERFACE "org.iommud.Broker"
#define IOMMUD_MANAGER_INTERFACE "org.iommud.Manager"
/* Where iommud listens unless $IOMMUD_SOCKET says otherwise. */
#define IOMMUD_DEFAULT_SOCKET "/run/iommud/org.iommud.Broker"

typedef struct IommudClient IommudClient;
typedef struct IommudError IommudError;
typedef struct IommudTopology IommudTopology;
typedef struct IommudExplanation IommudExplanation;
typedef struct IommudSession IommudSession;
typedef struct IommudFaultStream IommudFaultStream;
typedef struct IommudEventStream IommudEventStream;

/* ------------------------------------------------------------------ errors */

/**
 * iommud_error_new() - allocate an empty error object.
 * @ret: the new object.
 *
 * Pass it as the last argument of any call; each call clears it first.
 *
 * Return: 0, or -ENOMEM.
 */
int iommud_error_new(IommudError **ret);

/**
 * iommud_error_free() - free an error object.
 * @e: the object, or NULL.
 *
 * Return: NULL.
 */
IommudError *iommud_error_free(IommudError *e);

/**
 * iommud_error_clear() - reset an error object to "no error".
 * @e: the object, or NULL.
 */
void iommud_error_clear(IommudError *e);

/**
 * iommud_error_get_errno() - the negative errno of the last failure.
 * @e: the error object.
 *
 * For Varlink errors this is the errno the call returned: -EPERM for
 * PolicyDenied, -EBUSY for DeviceBusy, -EDQUOT for QuotaExceeded, -ENOENT for
 * NoSuchObject, -ERANGE for InvalidRange, -EEXIST for IOVAInUse, -EBADF for
 * InvalidFd, -EOPNOTSUPP for NotSupported and method/interface not found,
 * -EALREADY for FaultNotPending, -EACCES for FaultNotOwned and
 * PermissionDenied, -EPROTO for everything else.
 *
 * Return: the negative errno, or 0 when no error is recorded.
 */
int iommud_error_get_errno(const IommudError *e);

/**
 * iommud_error_get_name() - the Varlink error name.
 * @e: the error object.
 *
 * Return: the full name ("org.iommud.Broker.PolicyDenied"), or NULL when the
 * failure was not a Varlink error (e.g. the connection broke).
 */
const char *iommud_error_get_name(const IommudError *e);

/**
 * iommud_error_has_name() - whether the error is a given Varlink error.
 * @e: the error object.
 * @name: a full name, or the short name of an org.iommud.Broker error
 *        ("PolicyDenied").
 *
 * Return: true when it is.
 */
bool iommud_error_has_name(const IommudError *e, const char *name);

/**
 * iommud_error_get_message() - a sentence that says what failed and why.
 * @e: the error object.
 *
 * Return: the message ("" when no error is recorded); owned by @e.
 */
const char *iommud_error_get_message(const IommudError *e);

/**
 * iommud_error_get_parameters() - the Varlink error's parameters as JSON text.
 * @e: the error object.
 *
 * Return: a JSON object as text ("{}" when there are none); owned by @e.
 */
const char *iommud_error_get_parameters(const IommudError *e);

/**
 * iommud_error_get_string() - a string parameter of the Varlink error.
 * @e: the error object.
 * @key: the parameter name, e.g. "device", "step", "reason", "heldBy".
 *
 * Return: the value owned by @e, or NULL when absent or not a string.
 */
const char *iommud_error_get_string(const IommudError *e, const char *key);

/**
 * iommud_error_get_uint() - an unsigned integer parameter of the Varlink error.
 * @e: the error object.
 * @key: the parameter name, e.g. "limit", "used", "start", "errno".
 * @ret: the value.
 *
 * Return: 0, -ENOENT when absent, -EINVAL when not an unsigned integer.
 */
int iommud_error_get_uint(const IommudError *e, const char *key, uint64_t *ret);

/**
 * iommud_error_get_device() - the "device" parameter (PolicyDenied, DeviceBusy).
 * @e: the error object.
 *
 * Return: the device name, or NULL.
 */
const char *iommud_error_get_device(const IommudError *e);

/**
 * iommud_error_get_step() - the policy step that failed (PolicyDenied).
 * @e: the error object.
 *
 * Return: "match", "driver", "group", "regions", "principal", "exclusive",
 * "quota", or NULL.
 */
const char *iommud_error_get_step(const IommudError *e);

/**
 * iommud_error_get_reason() - the "reason" parameter (PolicyDenied, InvalidRange, ...).
 * @e: the error object.
 *
 * Return: the sentence, or NULL.
 */
const char *iommud_error_get_reason(const IommudError *e);

/* ------------------------------------------------------------- connection */

/**
 * iommud_client_new() - connect to iommud; the connection is a new session.
 * @ret: the client.
 * @path: the socket; NULL means $IOMMUD_SOCKET, else IOMMUD_DEFAULT_SOCKET.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0, -ENOENT/-ECONNREFUSED when iommud is not listening, -EACCES,
 * -ENAMETOOLONG for a path that does not fit a socket address, -ENOMEM.
 */
int iommud_client_new(IommudClient **ret, const char *path, IommudError *err);

/* Flags of iommud_client_new_flags(). */
typedef enum IommudConnectFlags {
        /* A dropped connection stays dropped: no reclaim after a restart of iommud. */
        IOMMUD_CONNECT_NO_RECLAIM = 1u << 0,
} IommudConnectFlags;

/* How long a client waits for iommud to come back by default: the policy's default grace. */
#define IOMMUD_RECLAIM_TIMEOUT_MS_DEFAULT 30000u

/**
 * iommud_client_new_flags() - connect to iommud, with IommudConnectFlags.
 * @ret: the client.
 * @path: the socket; NULL means $IOMMUD_SOCKET, else IOMMUD_DEFAULT_SOCKET.
 * @flags: 0 or IOMMUD_CONNECT_NO_RECLAIM.
 * @err: filled on failure; may be NULL.
 *
 * Without IOMMUD_CONNECT_NO_RECLAIM (and so with iommud_client_new()), the
 * client keeps its session's token and, when a call finds the connection
 * dropped (iommud restarted), connects to @path again and reclaims the
 * session with JoinSession, retrying with a growing pause for up to the
 * reclaim timeout.  The call is then made again if iommud cannot have acted
 * on it or if it only reads (GetTopology, ExplainDevice, GetIOVARanges,
 * GetSession); any other call returns -ESTALE: the session is back, but
 * whether that call took effect is unknown.  See libiommud(3).
 *
 * Return: as iommud_client_new(), or -EINVAL for unknown flags.
 */
int iommud_client_new_flags(IommudClient **ret, const char *path, unsigned flags,
                            IommudError *err);

/* How long a call waits for its reply unless iommud_client_set_call_timeout() says otherwise. */
#define IOMMUD_CALL_TIMEOUT_MS_DEFAULT 25000u

/**
 * iommud_client_set_call_timeout() - how long a call waits for iommud's reply.
 * @c: the client.
 * @timeout_ms: the longest wait for one reply (default IOMMUD_CALL_TIMEOUT_MS_DEFAULT);
 *              0 waits as long as it takes.
 *
 * A call that times out returns -ETIMEDOUT and closes the connection (a late reply would
 * be taken for the next call's): later calls return -ENOTCONN.  A socket whose answer is
 * not Varlink (not iommud) gives -EPROTO the same way.
 *
 * Return: 0, or -EINVAL without a client.
 */
int iommud_client_set_call_timeout(IommudClient *c, uint64_t timeout_ms);

/**
 * iommud_client_set_reclaim_timeout() - how long to wait for iommud to come back.
 * @c: the client.
 * @timeout_ms: the longest time a call spends reconnecting; 0 tries once.
 *
 * Return: 0, or -EINVAL without a client.
 */
int iommud_client_set_reclaim_timeout(IommudClient *c, uint64_t timeout_ms);

/**
 * iommud_client_get_n_reclaims() - how often the client reclaimed its session.
 * @c: the client.
 *
 * Streams (fault and event streams) end when iommud restarts; a caller that
 * sees this count grow opens them again.
 *
 * Return: the count, 0 without a client.
 */
unsigned iommud_client_get_n_reclaims(const IommudClient *c);

/**
 * iommud_client_new_from_fd() - wrap a socket already connected to iommud.
 * @ret: the client.
 * @fd: a connected SOCK_STREAM Unix socket; taken by the client, also on failure.
 *
 * Return: 0, -EBADF, -ENOMEM.
 */
int iommud_client_new_from_fd(IommudClient **ret, int fd);

/**
 * iommud_client_ref() - take another reference.
 * @c: the client, or NULL.
 *
 * Return: @c.
 */
IommudClient *iommud_client_ref(IommudClient *c);

/**
 * iommud_client_unref() - drop a reference; the last one closes the connection.
 * @c: the client, or NULL.
 *
 * Closing the last connection of a session releases everything it holds.
 *
 * Return: NULL.
 */
IommudClient *iommud_client_unref(IommudClient *c);

/**
 * iommud_client_get_fd() - the connection's socket, e.g. to poll for a hangup.
 * @c: the client.
 *
 * Return: the fd, owned by @c.
 */
int iommud_client_get_fd(const IommudClient *c);

/**
 * iommud_client_get_path() - the socket path the client connected to.
 * @c: the client.
 *
 * Return: the path, or NULL for a client made from an fd.
 */
const char *iommud_client_get_path(const IommudClient *c);

/**
 * iommud_client_call() - call any method, with parameters and reply as JSON text.
 * @c: the client.
 * @method: the full method name, e.g. "org.iommud.Manager.GetStatus".
 * @parameters: a JSON object as text, or NULL for {}.
 * @fds: fds to send with the call (duplicated; the caller keeps its own), or NULL.
 * @n_fds: how many.
 * @ret_reply: the reply parameters as JSON text (free() it), or NULL to drop them.
 * @err: filled on failure; may be NULL.
 *
 * For interfaces the typed calls do not cover, e.g. org.iommud.Manager.
 *
 * Return: 0, -EINVAL for parameters that are not a JSON object, -EPROTO (or
 * the errno of a known error) for a Varlink error, or a negative errno when
 * the connection failed.
 */
int iommud_client_call(IommudClient *c, const char *method, const char *parameters, const int *fds,
                       size_t n_fds, char **ret_reply, IommudError *err);

/* --------------------------------------------------------------- topology */

typedef struct IommudReservedRegion {
        uint64_t start;
        uint64_t last;           /* inclusive */
        const char *type;        /* "direct", "direct-relaxable", "reserved", "msi", "unknown" */
} IommudReservedRegion;

typedef struct IommudGroup {
        uint32_t id;
        const char *type;        /* "DMA", "identity", ...; NULL if unknown */
        bool viable;
        const char *const *devices;
        size_t n_devices;
        const IommudReservedRegion *reserved_regions;
        size_t n_reserved_regions;
        const char *iommu;       /* "dmar0"; NULL if unknown */
} IommudGroup;

typedef struct IommudDevice {
        const char *name;        /* "0000:65:00.0" */
        uint32_t vendor;
        uint32_t device;
        uint32_t class_code;
        const char *driver;      /* NULL when unbound */
        bool has_group;
        uint32_t group;
        const char *cdev;        /* "vfio3"; NULL without a VFIO cdev */
        bool has_numa_node;
        uint32_t numa_node;
        bool eligible;           /* the caller may attach it now */
        const char *held_by;     /* NULL when free */
} IommudDevice;

/**
 * iommud_get_topology() - the host's IOMMU groups and devices (GetTopology).
 * @c: the client.
 * @ret: the topology; free with iommud_topology_free().
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno.
 */
int iommud_get_topology(IommudClient *c, IommudTopology **ret, IommudError *err);

/**
 * iommud_topology_free() - free a topology and everything it points to.
 * @t: the topology, or NULL.
 *
 * Return: NULL.
 */
IommudTopology *iommud_topology_free(IommudTopology *t);

/**
 * iommud_topology_get_n_groups() - the number of IOMMU groups.
 * @t: the topology.
 *
 * Return: the count.
 */
size_t iommud_topology_get_n_groups(const IommudTopology *t);

/**
 * iommud_topology_get_group() - one IOMMU group, in the order iommud sent them.
 * @t: the topology.
 * @i: the index, below iommud_topology_get_n_groups().
 *
 * Return: the group owned by @t, or NULL when @i is out of range.
 */
const IommudGroup *iommud_topology_get_group(const IommudTopology *t, size_t i);

/**
 * iommud_topology_get_n_devices() - the number of devices.
 * @t: the topology.
 *
 * Return: the count.
 */
size_t iommud_topology_get_n_devices(const IommudTopology *t);

/**
 * iommud_topology_get_device() - one device, in the order iommud sent them.
 * @t: the topology.
 * @i: the index, below iommud_topology_get_n_devices().
 *
 * Return: the device owned by @t, or NULL when @i is out of range.
 */
const IommudDevice *iommud_topology_get_device(const IommudTopology *t, size_t i);

/**
 * iommud_topology_find_device() - a device by name.
 * @t: the topology.
 * @name: the device name, e.g. "0000:65:00.0".
 *
 * Return: the device owned by @t, or NULL.
 */
const IommudDevice *iommud_topology_find_device(const IommudTopology *t, const char *name);

/**
 * iommud_topology_find_group() - a group by id.
 * @t: the topology.
 * @id: the IOMMU group number.
 *
 * Return: the group owned by @t, or NULL.
 */
const IommudGroup *iommud_topology_find_group(const IommudTopology *t, uint32_t id);

/* ---------------------------------------------------------------- explain */

typedef struct IommudDecisionStep {
        const char *step;        /* "match", "driver", "group", "regions", "principal", ... */
        const char *verdict;     /* "pass", "fail", "skip" */
        const char *reason;
} IommudDecisionStep;

/**
 * iommud_explain_device() - why a device is or is not usable by the caller (ExplainDevice).
 * @c: the client.
 * @device: the device name.
 * @ret: the explanation; free with iommud_explanation_free().
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno (-ENOENT: no such device).
 */
int iommud_explain_device(IommudClient *c, const char *device, IommudExplanation **ret,
                          IommudError *err);

/**
 * iommud_explanation_free() - free an explanation.
 * @x: the explanation, or NULL.
 *
 * Return: NULL.
 */
IommudExplanation *iommud_explanation_free(IommudExplanation *x);

/**
 * iommud_explanation_is_allowed() - whether every policy step passed.
 * @x: the explanation.
 *
 * Return: true when the caller may use the device.
 */
bool iommud_explanation_is_allowed(const IommudExplanation *x);

/**
 * iommud_explanation_get_n_steps() - the number of policy steps.
 * @x: the explanation.
 *
 * Return: the count.
 */
size_t iommud_explanation_get_n_steps(const IommudExplanation *x);

/**
 * iommud_explanation_get_step() - one policy step, in evaluation order.
 * @x: the explanation.
 * @i: the index.
 *
 * Return: the step owned by @x, or NULL when @i is out of range.
 */
const IommudDecisionStep *iommud_explanation_get_step(const IommudExplanation *x, size_t i);

/* ---------------------------------------------------------------- devices */

typedef struct IommudAttachment {
        uint32_t device_id;
        const char *bdf;
        uint32_t group;
        uint32_t pasid_bits;
        const char *const *capabilities;
        size_t n_capabilities;
} IommudAttachment;

/**
 * iommud_attach_device_fd() - attach a VFIO device by the cdev fd the caller opened.
 * @c: the client.
 * @fd: an open /dev/vfio/devices/vfioN; duplicated, the caller keeps it.
 * @ret: the attachment; free with iommud_attachment_free().
 * @err: filled on failure; may be NULL.
 *
 * Return: 0, -EPERM (PolicyDenied), -EBUSY (DeviceBusy), -EBADF (InvalidFd),
 * -EDQUOT (QuotaExceeded), or another negative errno.
 */
int iommud_attach_device_fd(IommudClient *c, int fd, IommudAttachment **ret, IommudError *err);

/**
 * iommud_attach_device_name() - attach a VFIO device that iommud opens for the caller.
 * @c: the client.
 * @device: the device name; policy must allow opening it on the caller's behalf.
 * @ret: the attachment; free with iommud_attachment_free().
 * @err: filled on failure; may be NULL.
 *
 * Return: as iommud_attach_device_fd().
 */
int iommud_attach_device_name(IommudClient *c, const char *device, IommudAttachment **ret,
                              IommudError *err);

/**
 * iommud_attachment_free() - free an attachment description (the device stays attached).
 * @a: the attachment, or NULL.
 *
 * Return: NULL.
 */
IommudAttachment *iommud_attachment_free(IommudAttachment *a);

/**
 * iommud_detach_device() - detach a device from the session (DetachDevice).
 * @c: the client.
 * @device_id: from the attachment.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno (-ENOENT: no such device in the session).
 */
int iommud_detach_device(IommudClient *c, uint32_t device_id, IommudError *err);

/* --------------------------------------------------------- address spaces */

typedef struct IommudIOVARange {
        uint64_t start;
        uint64_t last;           /* inclusive */
} IommudIOVARange;

/**
 * iommud_create_address_space() - create an I/O address space (CreateAddressSpace).
 * @c: the client.
 * @ret_ioas_id: its id.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno (-EDQUOT over the addressSpaces quota).
 */
int iommud_create_address_space(IommudClient *c, uint32_t *ret_ioas_id, IommudError *err);

/**
 * iommud_destroy_address_space() - destroy an address space (DestroyAddressSpace).
 * @c: the client.
 * @ioas_id: the address space.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno (-EPROTO with ObjectInUse while devices are attached).
 */
int iommud_destroy_address_space(IommudClient *c, uint32_t ioas_id, IommudError *err);

/**
 * iommud_attach_to_address_space() - attach a device to an address space.
 * @c: the client.
 * @device_id: the device.
 * @ioas_id: the address space.
 * @ret_hwpt_id: the page table the device got; may be NULL.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno.
 */
int iommud_attach_to_address_space(IommudClient *c, uint32_t device_id, uint32_t ioas_id,
                                   uint32_t *ret_hwpt_id, IommudError *err);

/**
 * iommud_get_iova_ranges() - the IOVA ranges usable in an address space (GetIOVARanges).
 * @c: the client.
 * @ioas_id: the address space.
 * @ret_ranges: the ranges, an array to free() (NULL when there are none).
 * @ret_n_ranges: how many.
 * @ret_alignment: the required alignment of IOVAs and lengths; may be NULL.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno.
 */
int iommud_get_iova_ranges(IommudClient *c, uint32_t ioas_id, IommudIOVARange **ret_ranges,
                           size_t *ret_n_ranges, uint64_t *ret_alignment, IommudError *err);

/**
 * iommud_allow_iovas() - restrict where iommud places mappings without an IOVA (AllowIOVAs).
 * @c: the client.
 * @ioas_id: the address space.
 * @ranges: the allowed ranges.
 * @n_ranges: how many.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno.
 */
int iommud_allow_iovas(IommudClient *c, uint32_t ioas_id, const IommudIOVARange *ranges,
                       size_t n_ranges, IommudError *err);

enum {
        IOMMUD_MAP_READABLE = 1 << 0,
        IOMMUD_MAP_WRITEABLE = 1 << 1,
        /* iommud_map_batch(): the area goes at its iova; without it iommud chooses. */
        IOMMUD_MAP_FIXED_IOVA = 1 << 2,
};

/**
 * iommud_map() - map memory from an fd into an address space (Map).
 * @c: the client.
 * @ioas_id: the address space.
 * @memory_fd: a memfd or hugetlbfs file; duplicated, the caller keeps it.
 * @offset: where in the file the mapping starts.
 * @length: its length in bytes.
 * @iova: where to map it, or NULL to let iommud choose.
 * @flags: IOMMUD_MAP_READABLE | IOMMUD_MAP_WRITEABLE.
 * @ret_iova: where it was mapped; may be NULL.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0, -ERANGE (InvalidRange), -EEXIST (IOVAInUse), -EDQUOT
 * (QuotaExceeded), -EBADF (InvalidFd), or another negative errno.
 */
int iommud_map(IommudClient *c, uint32_t ioas_id, int memory_fd, uint64_t offset, uint64_t length,
               const uint64_t *iova, unsigned flags, uint64_t *ret_iova, IommudError *err);

/**
 * iommud_unmap() - unmap every mapping fully inside [iova, iova + length) (Unmap).
 * @c: the client.
 * @ioas_id: the address space.
 * @iova: the start of the range.
 * @length: its length.
 * @ret_unmapped: the bytes unmapped; may be NULL.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno.
 */
int iommud_unmap(IommudClient *c, uint32_t ioas_id, uint64_t iova, uint64_t length,
                 uint64_t *ret_unmapped, IommudError *err);

/* One area of iommud_map_batch(). */
typedef struct IommudMapArea {
        int memory_fd;          /* duplicated; areas naming one fd send it once */
        uint64_t offset;
        uint64_t length;
        uint64_t iova;          /* with IOMMUD_MAP_FIXED_IOVA */
        unsigned flags;         /* IOMMUD_MAP_READABLE, _WRITEABLE, _FIXED_IOVA */
} IommudMapArea;

/* The most areas or ranges one batch takes. */
#define IOMMUD_BATCH_MAX 4096

/**
 * iommud_map_batch() - map up to IOMMUD_BATCH_MAX areas, all or none (MapBatch).
 * @c: the client.
 * @ioas_id: the address space.
 * @areas: what to map; at most 16 distinct memory fds (the socket's default limit).
 * @n_areas: how many.
 * @ret_iovas: n_areas IOVAs, where each area was mapped; may be NULL.
 * @err: filled on failure; may be NULL.  iommud_error_get_uint(err, "area") is the index
 *        of the area at fault, when one is.
 *
 * The quota is checked once for the total; an area that fails undoes the ones before it.
 *
 * Return: 0, or the negative errno of iommud_map() for the failing area (-EDQUOT for the
 * total), -E2BIG for more than IOMMUD_BATCH_MAX areas or too many distinct fds.
 */
int iommud_map_batch(IommudClient *c, uint32_t ioas_id, const IommudMapArea *areas,
                     size_t n_areas, uint64_t *ret_iovas, IommudError *err);

/**
 * iommud_unmap_batch() - unmap up to IOMMUD_BATCH_MAX ranges, all or none (UnmapBatch).
 * @c: the client.
 * @ioas_id: the address space.
 * @ranges: each must remove whole mappings, at least one; no two may overlap.
 * @n_ranges: how many.
 * @ret_unmapped: the bytes unmapped in all; may be NULL.
 * @err: filled on failure; may be NULL ("area": the index of the range at fault).
 *
 * Return: 0 or a negative errno (-ERANGE: InvalidRange).
 */
int iommud_unmap_batch(IommudClient *c, uint32_t ioas_id, const IommudIOVARange *ranges,
                       size_t n_ranges, uint64_t *ret_unmapped, IommudError *err);

/* ------------------------------------------------------- features, dirty tracking */

typedef struct IommudFeatures IommudFeatures;

/**
 * iommud_get_features() - what the host offers this client (GetFeatures).
 * @c: the client.
 * @device_id: an attached device whose IOMMU to describe too; may be NULL.
 * @ret: the answer, freed with iommud_features_free().
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno (-ENOENT: NoSuchObject for device_id).
 */
int iommud_get_features(IommudClient *c, const uint32_t *device_id, IommudFeatures **ret,
                        IommudError *err);
IommudFeatures *iommud_features_free(IommudFeatures *f);
/* "kernel", "vfio" or "sim". */
const char *iommud_features_get_backend(const IommudFeatures *f);
/* A feature the kernel was probed to offer at start: "map-file", "dirty-tracking", ... */
bool iommud_features_kernel_has(const IommudFeatures *f, const char *feature);
/* A capability of the asked device's IOMMU: "dirty-tracking", "pci-pasid-exec", ... */
bool iommud_features_device_has(const IommudFeatures *f, const char *capability);
/* Whether "dirty-tracking" or "delegation" is offered and granted; -ENOENT for another name. */
int iommud_features_get_policy(const IommudFeatures *f, const char *feature, bool *ret_offered,
                               bool *ret_granted);

/**
 * iommud_create_dirty_address_space() - an address space with dirty tracking
 * (CreateAddressSpace with dirtyTracking).
 * @c: the client.
 * @ret_ioas_id: its id.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno (-EOPNOTSUPP where the kernel has no dirty tracking, -EPERM
 * where the policy refuses it).
 */
int iommud_create_dirty_address_space(IommudClient *c, uint32_t *ret_ioas_id, IommudError *err);

/* Turns dirty tracking of such an address space on (from a clean bitmap) or off. */
int iommud_set_dirty_tracking(IommudClient *c, uint32_t ioas_id, bool enabled, IommudError *err);

/**
 * iommud_read_dirty_bitmap() - the pages devices wrote (ReadDirtyBitmap).
 * @c: the client.
 * @ioas_id: an address space with dirty tracking on.
 * @iova: the first IOVA, a multiple of page_size.
 * @length: bytes of IOVA, a multiple of page_size.
 * @page_size: the bytes one bit stands for, a power of two.
 * @clear: clear the bits read.
 * @bitmap_fd: a writable memfd of at least ceil(length / page_size / 64) * 8 bytes: bit i of
 *             little-endian 64-bit word i / 64 is written for iova + i * page_size.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno (-EBADF: InvalidFd).
 */
int iommud_read_dirty_bitmap(IommudClient *c, uint32_t ioas_id, uint64_t iova, uint64_t length,
                             uint64_t page_size, bool clear, int bitmap_fd, IommudError *err);

/* iommud_unmap() that first writes the dirty bits of the range into bitmap_fd, as above. */
int iommud_unmap_dirty(IommudClient *c, uint32_t ioas_id, uint64_t iova, uint64_t length,
                       uint64_t page_size, int bitmap_fd, uint64_t *ret_unmapped,
                       IommudError *err);

/**
 * iommud_copy() - map pages already mapped in one address space into another (Copy).
 * @c: the client.
 * @src_ioas_id: the source address space.
 * @src_iova: where the pages are mapped there.
 * @dst_ioas_id: the destination address space.
 * @dst_iova: where to map them, or NULL to let iommud choose.
 * @length: the length in bytes.
 * @ret_iova: where they were mapped; may be NULL.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno.
 */
int iommud_copy(IommudClient *c, uint32_t src_ioas_id, uint64_t src_iova, uint32_t dst_ioas_id,
                const uint64_t *dst_iova, uint64_t length, uint64_t *ret_iova, IommudError *err);

/* ----------------------------------------------------------------- PASIDs */

enum {
        /* Deliver the PASID's I/O page faults to the session's fault streams. */
        IOMMUD_BIND_FAULTS = 1 << 0,
};

/* A user stage-1 page table for nested translation (vSVA). */
typedef struct IommudStage1 {
        const char *type;        /* "vtd" or "arm_smmuv3" */
        const void *data;        /* struct iommu_hwpt_vtd_s1 or struct iommu_hwpt_arm_smmuv3 */
        size_t size;
} IommudStage1;

/**
 * iommud_bind_pasid() - attach a PASID of a device to an address space (BindPASID).
 * @c: the client.
 * @device_id: the device.
 * @ioas_id: the address space.
 * @pasid: the PASID, or NULL to let iommud allocate the lowest free one.
 * @flags: IOMMUD_BIND_FAULTS, or 0.
 * @stage1: a stage-1 table to nest over the address space, or NULL.
 * @ret_pasid: the PASID bound; may be NULL.
 * @ret_hwpt_id: the page table; may be NULL.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0, -EOPNOTSUPP without PASID, fault queue or nesting support (the
 * error's "feature" parameter says which), or another negative errno.
 */
int iommud_bind_pasid(IommudClient *c, uint32_t device_id, uint32_t ioas_id,
                      const uint32_t *pasid, unsigned flags, const IommudStage1 *stage1,
                      uint32_t *ret_pasid, uint32_t *ret_hwpt_id, IommudError *err);

/**
 * iommud_unbind_pasid() - detach a PASID (UnbindPASID).
 * @c: the client.
 * @device_id: the device.
 * @pasid: the PASID.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno.
 */
int iommud_unbind_pasid(IommudClient *c, uint32_t device_id, uint32_t pasid, IommudError *err);

/* ----------------------------------------------------------------- faults */

typedef struct IommudFault {
        uint64_t cookie;         /* answer with iommud_respond_fault() */
        uint32_t device_id;
        bool has_pasid;
        uint32_t pasid;
        uint64_t address;
        uint64_t length;
        bool read;
        bool write;
        bool exec;
        bool privileged;
        bool last_page;          /* respond once the last fault of a group is seen */
        uint32_t group_id;       /* the page request group (PRG index) */
} IommudFault;

typedef enum IommudFaultCode {
        IOMMUD_FAULT_SUCCESS,
        IOMMUD_FAULT_INVALID,
} IommudFaultCode;

/**
 * iommud_fault_stream_new() - start watching the I/O page faults of a session.
 * @ret: the stream.
 * @c: a client of the session; the stream gets its own connection, joined to
 *     the same session, so @c stays free for calls (and for answering faults).
 * @device_id: the device to watch, or NULL for every device of the session.
 * @err: filled on failure; may be NULL.
 *
 * The stream does not keep @c alive; it ends when its session does.
 *
 * Return: 0 or a negative errno (-EINVAL when @c was made from an fd and the
 * socket path is unknown).
 */
int iommud_fault_stream_new(IommudFaultStream **ret, IommudClient *c, const uint32_t *device_id,
                            IommudError *err);

/**
 * iommud_fault_stream_free() - stop watching; faults not answered become "invalid".
 * @s: the stream, or NULL.
 *
 * Return: NULL.
 */
IommudFaultStream *iommud_fault_stream_free(IommudFaultStream *s);

/**
 * iommud_fault_stream_get_fd() - the fd to poll for POLLIN.
 * @s: the stream.
 *
 * Return: the fd, owned by @s.
 */
int iommud_fault_stream_get_fd(const IommudFaultStream *s);

/**
 * iommud_fault_stream_next() - the next fault, without blocking.
 * @s: the stream.
 * @ret: the fault; free with iommud_fault_free().
 * @err: filled on failure; may be NULL.
 *
 * Call it when the fd is readable, until it returns 0.
 *
 * Return: 1 with a fault, 0 when none is ready, -ENODATA when iommud ended
 * the stream, -ECONNRESET when the connection closed, or another negative errno.
 */
int iommud_fault_stream_next(IommudFaultStream *s, IommudFault **ret, IommudError *err);

/**
 * iommud_fault_free() - free a fault.
 * @f: the fault, or NULL.
 *
 * Return: NULL.
 */
IommudFault *iommud_fault_free(IommudFault *f);

/**
 * iommud_respond_fault() - answer a page request group delivered by a fault stream (RespondFault).
 * @c: a client of the session (not the stream's own connection).
 * @cookie: the fault's cookie; every fault of a group shares it, answer once.
 * @code: IOMMUD_FAULT_SUCCESS or IOMMUD_FAULT_INVALID.
 * @err: filled on failure; may be NULL.
 *
 * Return: 0, -EALREADY when the group was answered already (FaultNotPending:
 * by the client, or by iommud on timeout, overflow, disconnect or unbind),
 * -EACCES when the cookie is another session's (FaultNotOwned), or another
 * negative errno.
 */
int iommud_respond_fault(IommudClient *c, uint64_t cookie, IommudFaultCode code,
                         IommudError *err);

/* ----------------------------------------------------------------- events */

typedef struct IommudEvent {
        /*
         * "removed", "rebound", "revoked" or "released": the device was taken;
         * "release_requested": the host wants it back by deadline.
         */
        const char *kind;
        const char *device;      /* the device name */
        bool has_device_id;
        uint32_t device_id;      /* the session's id of it */
        const char *reason;      /* a sentence; may be NULL */
        uint64_t deadline;       /* release_requested: µs since the epoch (CLOCK_REALTIME); else 0 */
} IommudEvent;

/**
 * iommud_watch_events() - start watching the session's events (WatchEvents).
 * @ret: the stream.
 * @c: a client of the session; the stream gets its own connection, joined to
 *     the same session, so @c stays free for calls.
 * @err: filled on failure; may be NULL.
 *
 * Events tell that a device was taken from the session (hot-unplug, rebind
 * to a host driver, policy reload).  The stream ends when its session does,
 * and with iommud (open it again after a reclaim).
 *
 * Return: 0 or a negative errno (-EINVAL when @c was made from an fd).
 */
int iommud_watch_events(IommudEventStream **ret, IommudClient *c, IommudError *err);

/**
 * iommud_event_stream_free() - stop watching.
 * @s: the stream, or NULL.
 *
 * Return: NULL.
 */
IommudEventStream *iommud_event_stream_free(IommudEventStream *s);

/**
 * iommud_event_stream_get_fd() - the fd to poll for POLLIN.
 * @s: the stream.
 *
 * Return: the fd, owned by @s.
 */
int iommud_event_stream_get_fd(const IommudEventStream *s);

/**
 * iommud_event_stream_next() - the next event, without blocking.
 * @s: the stream.
 * @ret: the event; free with iommud_event_free().
 * @err: filled on failure; may be NULL.
 *
 * Call it when the fd is readable, until it returns 0.
 *
 * Return: 1 with an event, 0 when none is ready, -ENODATA when iommud ended
 * the stream, -ECONNRESET when the connection closed, or another negative errno.
 */
int iommud_event_stream_next(IommudEventStream *s, IommudEvent **ret, IommudError *err);

/**
 * iommud_event_free() - free an event.
 * @ev: the event, or NULL.
 *
 * Return: NULL.
 */
IommudEvent *iommud_event_free(IommudEvent *ev);

/* ---------------------------------------------------------------- session */

/**
 * iommud_delegate() - receive an iommufd of the client's own (Delegate).
 * @c: the client.
 * @ret_fd: the iommufd, O_CLOEXEC, owned by the caller: a fresh one in per-process accounting,
 *          whose pins are charged to the process that maps against its RLIMIT_MEMLOCK.
 * @err: filled on failure; may be NULL.
 *
 * Afterwards iommud mediates nothing for the session: its methods that act on an iommufd fail
 * with -EOPNOTSUPP (NotSupported "mediation").
 *
 * Return: 0, -EPERM when policy does not allow delegation, -EBUSY when the session holds
 * devices, address spaces or PASIDs or delegated before, or another negative errno.
 */
int iommud_delegate(IommudClient *c, int *ret_fd, IommudError *err);

typedef struct IommudFaultCounters {
        uint64_t delivered;      /* page request groups streamed */
        uint64_t answered;       /* answered by the client */
        uint64_t timed_out;      /* answered "invalid" by iommud after the timeout */
        uint64_t dropped;        /* answered "invalid" on overflow, disconnect or unbind */
        uint64_t pending;        /* waiting for an answer now */
} IommudFaultCounters;

typedef struct IommudUsage {
        const char *resource;    /* "pinnedBytes", "addressSpaces", "mappings", ... */
        uint64_t used;           /* this session's */
        bool has_limit;
        uint64_t limit;          /* on principal_used: quotas are the uid's, on every transport */
        /* What every session of the uid holds together; false for faultQueueDepth (per session). */
        bool has_principal_used;
        uint64_t principal_used;
} IommudUsage;

/**
 * iommud_get_session() - who the session belongs to and what it uses (GetSession).
 * @c: the client.
 * @ret: the session description; free with iommud_session_free().
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno.
 */
int iommud_get_session(IommudClient *c, IommudSession **ret, IommudError *err);

/**
 * iommud_session_free() - free a session description.
 * @s: the description, or NULL.
 *
 * Return: NULL.
 */
IommudSession *iommud_session_free(IommudSession *s);

/**
 * iommud_session_get_principal() - the session's credentials.
 * @s: the description.
 * @ret_uid: the uid; may be NULL.
 * @ret_gid: the gid; may be NULL.
 * @ret_pid: the pid; may be NULL.
 *
 * Return: the systemd unit, or NULL when there is none.
 */
const char *iommud_session_get_principal(const IommudSession *s, uint32_t *ret_uid,
                                         uint32_t *ret_gid, uint32_t *ret_pid);

/**
 * iommud_session_get_token() - the token that lets another connection join.
 * @s: the description.
 *
 * Return: the token, owned by @s.
 */
const char *iommud_session_get_token(const IommudSession *s);

/**
 * iommud_session_get_n_usage() - the number of resources reported.
 * @s: the description.
 *
 * Return: the count.
 */
size_t iommud_session_get_n_usage(const IommudSession *s);

/**
 * iommud_session_get_usage() - the use of one resource against its quota.
 * @s: the description.
 * @i: the index.
 *
 * Return: the usage owned by @s, or NULL when @i is out of range.
 */
const IommudUsage *iommud_session_get_usage(const IommudSession *s, size_t i);

/**
 * iommud_session_get_fault_counters() - what the fault router did with the session's faults.
 * @s: the description.
 *
 * Return: the counters owned by @s (all zero when iommud does not report them).
 */
const IommudFaultCounters *iommud_session_get_fault_counters(const IommudSession *s);

/**
 * iommud_join_session() - join this connection to another's session (JoinSession).
 * @c: a fresh client (its own session must hold nothing).
 * @token: from iommud_session_get_token().
 * @err: filled on failure; may be NULL.
 *
 * Return: 0 or a negative errno (-ENOENT: no such session).
 */
int iommud_join_session(IommudClient *c, const char *token, IommudError *err);

#ifdef __cplusplus
}
#endif

#endif
