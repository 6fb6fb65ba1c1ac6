/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The calls of streamed methods, read without a json-c tree: first in one pass with a
 * JsonCursor that decodes the parameters straight into the method's struct, else with the
 * tape of common/json-stream.h; what neither takes goes back to json-c, whose verdict stands.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fdlist.h"
#include "json-stream.h"
#include "varlink-server-internal.h"

enum {
        ENVELOPE_METHOD = 1 << 0,
        ENVELOPE_PARAMETERS = 1 << 1, /* then oneway, more, upgrade */
};

/* Which of Varlink's members name (len bytes) is: its bit in an envelope's mask, 0 for none. */
static unsigned envelope_member(const char *name, size_t len) {
        static const struct {
                const char *name;
                size_t length;
        } members[] = { { "method", 6 }, { "parameters", 10 }, { "oneway", 6 }, { "more", 4 },
                        { "upgrade", 7 } };

        for (size_t i = 0; i < ELEMENTSOF(members); i++)
                if (len == members[i].length && memcmp(name, members[i].name, len) == 0)
                        return 1u << i;
        return 0;
}

/*
 * The envelope of the message on the streaming reader's tape, in one walk over its members;
 * false when it is not plain (json-c reads such a message again, and its verdict stands).
 */
static bool stream_envelope(const JsonStream *st, Envelope *ret, size_t *ret_method_len,
                            const JsonStreamToken **ret_params) {
        const JsonStreamToken *tape = st->tape, *method = NULL;
        bool *flags[] = { &ret->oneway, &ret->more, &ret->upgrade };

        *ret = (Envelope){};
        *ret_params = NULL;
        for (size_t k = 1; k < tape[0].next; k = tape[k + 1].next) {
                const JsonStreamToken *v = &tape[k + 1];
                unsigned bit = envelope_member(tape[k].text, tape[k].length);

                if (bit == ENVELOPE_METHOD)
                        method = v;
                else if (bit == ENVELOPE_PARAMETERS)
                        *ret_params = v;
                else if (bit > 2) {
                        if (v->kind != JSON_DISPATCH_KIND_BOOLEAN)
                                return false;
                        *flags[__builtin_ctz(bit) - 2] = v->boolean;
                }
        }
        if (!method || method->kind != JSON_DISPATCH_KIND_STRING ||
            memchr(method->text, '\0', method->length) || method->length >= STREAM_METHOD_MAX)
                return false;
        ret->method = method->text;
        *ret_method_len = method->length;
        if (*ret_params && (*ret_params)->kind != JSON_DISPATCH_KIND_OBJECT)
                return false;
        return !(ret->oneway && ret->more) && !ret->upgrade;
}

/*
 * The streamed method named at the cursor, its name in e->method (NUL-terminated): compared
 * in place with the last call's first, else read and looked up.  NULL for a name that is
 * not plain or not a streamed method's.
 */
static const VarlinkMethod *envelope_method(VarlinkServer *s, JsonCursor *cur, Envelope *e,
                                            size_t *ret_len, const VarlinkInterface **ret_iface,
                                            const JsonCursorPlan **ret_plan) {
        const VarlinkMethod *m;

        if (s->last.method && json_cursor_string_is(cur, s->last.name, s->last.len)) {
                e->method = s->last.name;
                *ret_len = s->last.len;
                *ret_iface = s->last.iface;
                *ret_plan = s->last.plan;
                return s->last.method;
        }
        if (json_cursor_string(cur, &e->method, ret_len) < 0 || *ret_len >= STREAM_METHOD_MAX)
                return NULL;
        m = server_find_method(s, e->method, *ret_len, ret_iface, ret_plan);
        if (!m || !m->streamed || !*ret_plan || m->parameters_size == 0 ||
            m->parameters_size > sizeof(s->decoded))
                return NULL;
        s->last.method = m;
        s->last.iface = *ret_iface;
        s->last.plan = *ret_plan;
        s->last.len = *ret_len;
        memcpy(s->last.name, e->method, *ret_len + 1);
        return m;
}

/*
 * The envelope read with a cursor, and the parameters decoded straight into the server's
 * struct for the method as they are read: one pass over the bytes, nothing recorded.  Only
 * for a call that names its method before its parameters and is plain and right throughout;
 * false for any other, which the tape reads again from the start.
 */
static bool envelope_decode(VarlinkServer *s, size_t len, Envelope *e, size_t *ret_method_len,
                            const VarlinkMethod **ret_method, const VarlinkInterface **ret_iface) {
        bool *flags[] = { &e->oneway, &e->more, &e->upgrade };
        const VarlinkMethod *m = NULL;
        const JsonCursorPlan *plan = NULL;
        unsigned given = 0;
        bool decoding = false;
        JsonCursor cur;
        const char *name;
        size_t n;
        int k;

        *e = (Envelope){};
        json_cursor_init(&cur, s->scratch, len, VARLINK_JSON_MAX_DEPTH);
        k = json_cursor_enter_object(&cur);
        while (k >= 0) {
                unsigned bit;

                /* Calls mostly name their method first, then its parameters. */
                if (given == 0 && json_cursor_member_is(&cur, "method", STRLEN("method")))
                        bit = ENVELOPE_METHOD;
                else if (given == ENVELOPE_METHOD &&
                         json_cursor_member_is(&cur, "parameters", STRLEN("parameters")))
                        bit = ENVELOPE_PARAMETERS;
                else if ((k = json_cursor_next_member(&cur, &name, &n)) > 0)
                        bit = envelope_member(name, n);
                else
                        break;
                if (bit == 0 || (given & bit))
                        k = -EAGAIN;
                else if (bit == ENVELOPE_METHOD) {
                        m = envelope_method(s, &cur, e, ret_method_len, ret_iface, &plan);
                        k = m ? 0 : -EAGAIN;
                } else if (bit == ENVELOPE_PARAMETERS) {
                        if (!m)
                                k = -EAGAIN;
                        else {
                                memset(&s->decoded, 0, m->parameters_size);
                                decoding = true;
                                k = json_cursor_decode_planned(&cur, plan, &s->decoded);
                        }
                } else
                        k = json_cursor_bool(&cur, flags[__builtin_ctz(bit) - 2]);
                given |= bit;
                if (k < 0)
                        break;
        }
        if (k >= 0)
                k = json_cursor_end(&cur);
        if (k >= 0 && (!(given & ENVELOPE_PARAMETERS) || (e->oneway && e->more) || e->upgrade))
                k = -EAGAIN;
        if (k < 0) {
                if (decoding)
                        json_dispatch_clear(m->parameters, &s->decoded);
                return false;
        }
        *ret_method = m;
        return true;
}

/*
 * Runs the handler of a streamed call: its parameters are on the tape at params, or (params
 * NULL) already decoded in the server's struct, which the handler takes or this clears.
 */
static int stream_serve(VarlinkConnection *c, const Envelope *e, const VarlinkInterface *iface,
                        const VarlinkMethod *m, const JsonStreamToken *params, FdList **fds) {
        VarlinkServer *s = c->server;
        _cleanup_(varlink_call_unrefp) VarlinkCall *call = NULL;
        int r;

        r = server_call_new(c, NULL, TAKE_PTR(*fds), e, &call);
        if (r < 0) {
                if (!params)
                        json_dispatch_clear(m->parameters, &s->decoded);
                return r;
        }
        /* The name the envelope points at (in the scratch copy, or the last method's) does
         * not last: varlink_call_get_method() writes it down from the entry when asked. */
        call->method = NULL;
        call->iface = iface;
        call->entry = m;
        call->stream_params = params;
        call->decoded = params ? NULL : &s->decoded;
        r = m->handler(call, s->empty, call->flags, iface->userdata ?: s->userdata);
        call->stream_params = NULL;
        if (call->decoded) /* a handler that returned before it decoded */
                json_dispatch_clear(m->parameters, TAKE_PTR(call->decoded));
        r = server_call_finish(c, call, r);
        return r < 0 ? r : 1;
}

/* The message in the server's scratch buffer, NUL-terminated, to be decoded in place. */
static bool scratch_copy(VarlinkServer *s, const char *text, size_t len) {
        if (len >= s->scratch_size) {
                char *p = realloc(s->scratch, len + 1);

                if (!p)
                        return false;
                s->scratch = p;
                s->scratch_size = len + 1;
        }
        memcpy(s->scratch, text, len);
        s->scratch[len] = '\0';
        return true;
}

/*
 * Serves a call of a streamed method without a json-c tree: 1 when it did, 0 when the
 * message is not one for this path (json-c reads it then, and its verdict stands), or a
 * negative errno.  Takes *fds only when it serves the call.
 */
int connection_dispatch_stream(VarlinkConnection *c, const char *text, size_t len,
                               FdList **fds) {
        VarlinkServer *s = c->server;
        const JsonStreamToken *params = NULL;
        const VarlinkInterface *iface = NULL;
        const VarlinkMethod *m;
        size_t method_len;
        Envelope e;

        if (!scratch_copy(s, text, len))
                return 0;
        if (envelope_decode(s, len, &e, &method_len, &m, &iface))
                return stream_serve(c, &e, iface, m, NULL, fds);
        /* The cursor decoded strings in place: the tape starts from a fresh copy. */
        memcpy(s->scratch, text, len);
        if (json_stream_parse(&s->stream, s->scratch, len, VARLINK_JSON_MAX_DEPTH, NULL) < 0 ||
            !stream_envelope(&s->stream, &e, &method_len, &params))
                return 0;
        m = server_find_method(s, e.method, method_len, &iface, NULL);
        if (!m || !m->streamed || !params)
                return 0;
        return stream_serve(c, &e, iface, m, params, fds);
}
