/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Which method a call names: an open-addressing index of the full names
 * ("org.iommud.Broker.Map") of every interface's methods, rebuilt when an
 * interface is added.  A call costs one hash of its name's tail and, nearly
 * always, one comparison, where walking the tables cost a strcmp() per method
 * before the one named.
 */

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "assert-util.h"
#include "varlink-server-internal.h"

struct MethodSlot {
        uint32_t hash;
        uint32_t iface_len, name_len; /* 0 name_len: an empty slot */
        const VarlinkInterface *iface;
        const VarlinkMethod *method;
};

/*
 * A hash of a name's length and its last eight bytes: the methods of one interface share
 * their start and differ at their end ("...Broker.Map", "...Broker.Unmap"), and a slot's
 * name is compared whole anyway, so a few instructions a call do where hashing every byte
 * cost a hundred.
 */
static uint32_t tail_hash(uint64_t tail, size_t len) {
        return (uint32_t)(((tail ^ len) * UINT64_C(0x9e3779b97f4a7c15)) >> 32);
}

static uint32_t name_hash(const char *p, size_t len) {
        uint64_t tail = 0;

        if (len >= sizeof(tail)) {
                memcpy(&tail, p + len - sizeof(tail), sizeof(tail));
                tail = le64toh(tail); /* the bytes in the order full_hash() puts them */
        } else
                for (size_t i = 0; i < len; i++)
                        tail |= (uint64_t)(uint8_t)p[i] << (8 * i);
        return tail_hash(tail, len);
}

/* The hash of INTERFACE.METHOD, without writing the full name anywhere. */
static uint32_t full_hash(const char *iface, size_t iface_len, const char *method,
                          size_t method_len) {
        size_t len = iface_len + 1 + method_len, from = len > 8 ? len - 8 : 0;
        uint64_t tail = 0;

        for (size_t i = from; i < len; i++) {
                char c = i < iface_len ? iface[i] : i == iface_len ? '.' : method[i - iface_len - 1];

                tail |= (uint64_t)(uint8_t)c << (8 * (i - from));
        }
        return tail_hash(tail, len);
}

static bool slot_is(const MethodSlot *m, uint32_t hash, const char *name, size_t len) {
        return m->hash == hash && (size_t)m->iface_len + 1 + m->name_len == len &&
               memcmp(m->iface->name, name, m->iface_len) == 0 && name[m->iface_len] == '.' &&
               memcmp(m->method->name, name + m->iface_len + 1, m->name_len) == 0;
}

int server_index_methods(VarlinkServer *s) {
        size_t n = 0, size = 8;
        MethodSlot *slots;

        assert_return(s, -EINVAL);
        s->last.method = NULL;

        for (size_t i = 0; i < s->n_interfaces; i++)
                for (const VarlinkMethod *m = s->interfaces[i]->methods; m && m->name; m++)
                        n++;
        while (size < 2 * n)
                size *= 2;
        slots = calloc(size, sizeof(*slots));
        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_interfaces; i++) {
                const VarlinkInterface *iface = s->interfaces[i];
                size_t il = strlen(iface->name);

                for (const VarlinkMethod *m = iface->methods; m && m->name; m++) {
                        size_t ml = strlen(m->name);
                        uint32_t h = full_hash(iface->name, il, m->name, ml);
                        size_t k = h & (size - 1);

                        assert_return(ml > 0, -EINVAL);
                        while (slots[k].name_len > 0)
                                k = (k + 1) & (size - 1);
                        slots[k] = (MethodSlot){ .hash = h, .iface_len = (uint32_t)il,
                                                 .name_len = (uint32_t)ml, .iface = iface,
                                                 .method = m };
                }
        }
        free(s->methods);
        s->methods = slots;
        s->methods_mask = size - 1;
        return 0;
}

const VarlinkMethod *server_find_method(VarlinkServer *s, const char *name, size_t len,
                                        const VarlinkInterface **ret_iface) {
        uint32_t h;

        if (!s->methods)
                return NULL;
        h = name_hash(name, len);
        for (size_t k = h & s->methods_mask; s->methods[k].name_len > 0;
             k = (k + 1) & s->methods_mask)
                if (slot_is(&s->methods[k], h, name, len)) {
                        *ret_iface = s->methods[k].iface;
                        return s->methods[k].method;
                }
        return NULL;
}
