/* The helper layer of corbel.h: an in-place JSON reader, settings checks with serde's words,
 * and verdict building. */
#include "corbel.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting deeper than this is refused rather than risking the small Wasm stack. */
#define MAX_DEPTH 128

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static const char *skip_string(const char *p, const char *end) {
    if (p >= end || *p != '"') return NULL;
    for (p++; p < end; p++) {
        if (*p == '\\') {
            if (++p >= end) return NULL;
        } else if (*p == '"') {
            return p + 1;
        } else if ((unsigned char)*p < 0x20) {
            return NULL;
        }
    }
    return NULL;
}

static const char *skip_literal(const char *p, const char *end, const char *word) {
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

static const char *skip_number(const char *p, const char *end) {
    const char *start = p;
    if (p < end && *p == '-') p++;
    while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-')) p++;
    return p > start ? p : NULL;
}

/* Returns the end of the value starting at p (no leading whitespace), or NULL if malformed. */
static const char *skip_value(const char *p, const char *end, int depth) {
    if (p >= end || depth > MAX_DEPTH) return NULL;
    switch (*p) {
    case '"': return skip_string(p, end);
    case 't': return skip_literal(p, end, "true");
    case 'f': return skip_literal(p, end, "false");
    case 'n': return skip_literal(p, end, "null");
    case '[':
    case '{': {
        char close = *p == '[' ? ']' : '}';
        bool object = *p == '{';
        p = skip_ws(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (object) {
                p = skip_string(p, end);
                if (!p) return NULL;
                p = skip_ws(p, end);
                if (p >= end || *p != ':') return NULL;
                p = skip_ws(p + 1, end);
            }
            p = skip_value(p, end, depth + 1);
            if (!p) return NULL;
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                continue;
            }
            return p < end && *p == close ? p + 1 : NULL;
        }
    }
    default: return skip_number(p, end);
    }
}

corbel_json corbel_json_from(const char *text, size_t len) {
    corbel_json v = {NULL, 0};
    if (!text) return v;
    const char *end = text + len;
    const char *p = skip_ws(text, end);
    while (end > p && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\t' || end[-1] == '\r')) end--;
    v.p = p;
    v.n = (size_t)(end - p);
    return v;
}

bool corbel_json_valid(corbel_json v) {
    if (!v.p) return false;
    const char *end = skip_value(v.p, v.p + v.n, 0);
    return end == v.p + v.n;
}

corbel_json_type corbel_json_type_of(corbel_json v) {
    if (!v.p) return CORBEL_JSON_ABSENT;
    if (v.n == 0) return CORBEL_JSON_INVALID;
    switch (v.p[0]) {
    case 'n': return CORBEL_JSON_NULL;
    case 't':
    case 'f': return CORBEL_JSON_BOOL;
    case '"': return CORBEL_JSON_STRING;
    case '[': return CORBEL_JSON_ARRAY;
    case '{': return CORBEL_JSON_OBJECT;
    default: return CORBEL_JSON_NUMBER;
    }
}

bool corbel_json_iter_start(corbel_json c, corbel_json_iter *it) {
    corbel_json_type t = corbel_json_type_of(c);
    if (t != CORBEL_JSON_ARRAY && t != CORBEL_JSON_OBJECT) return false;
    it->p = skip_ws(c.p + 1, c.p + c.n);
    it->end = c.p + c.n - 1; /* the closing bracket */
    return true;
}

static bool next_value(corbel_json_iter *it, corbel_json *out) {
    if (it->p >= it->end) return false;
    const char *end = skip_value(it->p, it->end, 1);
    if (!end) {
        it->p = it->end;
        return false;
    }
    out->p = it->p;
    out->n = (size_t)(end - it->p);
    it->p = skip_ws(end, it->end);
    if (it->p < it->end && *it->p == ',') it->p = skip_ws(it->p + 1, it->end);
    return true;
}

bool corbel_json_next_element(corbel_json_iter *it, corbel_json *element) {
    return next_value(it, element);
}

bool corbel_json_next_member(corbel_json_iter *it, corbel_json *key, corbel_json *value) {
    if (it->p >= it->end) return false;
    const char *k_end = skip_string(it->p, it->end);
    if (!k_end) return false;
    key->p = it->p;
    key->n = (size_t)(k_end - it->p);
    it->p = skip_ws(k_end, it->end);
    if (it->p >= it->end || *it->p != ':') return false;
    it->p = skip_ws(it->p + 1, it->end);
    return next_value(it, value);
}

static void put_utf8(char **o, unsigned long c) {
    if (c < 0x80) {
        *(*o)++ = (char)c;
    } else if (c < 0x800) {
        *(*o)++ = (char)(0xC0 | (c >> 6));
        *(*o)++ = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        *(*o)++ = (char)(0xE0 | (c >> 12));
        *(*o)++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *(*o)++ = (char)(0x80 | (c & 0x3F));
    } else {
        *(*o)++ = (char)(0xF0 | (c >> 18));
        *(*o)++ = (char)(0x80 | ((c >> 12) & 0x3F));
        *(*o)++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *(*o)++ = (char)(0x80 | (c & 0x3F));
    }
}

static unsigned long hex4(const char *p) {
    unsigned long c = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        c = c * 16 + (unsigned long)(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
    }
    return c;
}

char *corbel_json_string(corbel_json v) {
    if (corbel_json_type_of(v) != CORBEL_JSON_STRING || v.n < 2) return NULL;
    char *out = malloc(v.n), *o = out; /* unescaping never grows the text */
    const char *p = v.p + 1, *end = v.p + v.n - 1;
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        p++;
        switch (*p) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            if (end - p < 5) break;
            unsigned long c = hex4(p + 1);
            p += 4;
            if (c >= 0xD800 && c < 0xDC00 && end - p >= 7 && p[1] == '\\' && p[2] == 'u') {
                c = 0x10000 + ((c - 0xD800) << 10) + (hex4(p + 3) - 0xDC00);
                p += 6;
            }
            put_utf8(&o, c);
            break;
        }
        default: *o++ = *p; /* \" \\ \/ */
        }
        p++;
    }
    *o = '\0';
    return out;
}

char *corbel_json_quote(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n * 6 + 3), *o = out;
    *o++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

static bool key_is(corbel_json key, const char *name) {
    /* Fast path: keys without escapes compare as they are. */
    size_t n = strlen(name);
    if (key.n == n + 2 && memcmp(key.p + 1, name, n) == 0) return true;
    if (!memchr(key.p, '\\', key.n)) return false;
    char *text = corbel_json_string(key);
    bool same = text && strcmp(text, name) == 0;
    free(text);
    return same;
}

corbel_json corbel_json_get(corbel_json v, const char *key) {
    corbel_json none = {NULL, 0}, k, value;
    corbel_json_iter it;
    if (corbel_json_type_of(v) != CORBEL_JSON_OBJECT || !corbel_json_iter_start(v, &it)) return none;
    while (corbel_json_next_member(&it, &k, &value)) {
        if (key_is(k, key)) return value;
    }
    return none;
}

corbel_json corbel_json_path(corbel_json v, ...) {
    va_list ap;
    va_start(ap, v);
    for (const char *key; (key = va_arg(ap, const char *)) != NULL;) v = corbel_json_get(v, key);
    va_end(ap);
    return v;
}

char *corbel_format(const char *fmt, ...) {
    va_list ap, copy;
    va_start(ap, fmt);
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *out = malloc((size_t)n + 1);
    vsnprintf(out, (size_t)n + 1, fmt, copy);
    va_end(copy);
    return out;
}

char *corbel_json_describe(corbel_json v) {
    switch (corbel_json_type_of(v)) {
    case CORBEL_JSON_NULL: return corbel_format("null");
    case CORBEL_JSON_BOOL: return corbel_format("boolean `%.*s`", (int)v.n, v.p);
    case CORBEL_JSON_NUMBER:
        return memchr(v.p, '.', v.n) || memchr(v.p, 'e', v.n) || memchr(v.p, 'E', v.n)
                   ? corbel_format("floating point `%.*s`", (int)v.n, v.p)
                   : corbel_format("integer `%.*s`", (int)v.n, v.p);
    case CORBEL_JSON_STRING: return corbel_format("string %.*s", (int)v.n, v.p);
    case CORBEL_JSON_ARRAY: return corbel_format("sequence");
    case CORBEL_JSON_OBJECT: return corbel_format("map");
    default: return corbel_format("nothing");
    }
}

char *corbel_settings_fields(corbel_json settings, const char *const *fields, size_t count) {
    if (corbel_json_type_of(settings) != CORBEL_JSON_OBJECT) {
        return corbel_format("invalid settings: invalid type: %s, expected struct with %zu fields",
                             corbel_json_describe(settings), count);
    }
    corbel_json_iter it;
    corbel_json key, value;
    corbel_json_iter_start(settings, &it);
    while (corbel_json_next_member(&it, &key, &value)) {
        bool known = false;
        for (size_t i = 0; i < count && !known; i++) known = key_is(key, fields[i]);
        if (known) continue;
        /* serde: "expected `a`" for one field, "expected one of `a`, `b`" for more. */
        size_t size = 64;
        for (size_t i = 0; i < count; i++) size += strlen(fields[i]) + 4;
        char *expected = malloc(size), *e = expected;
        e += sprintf(e, count == 0 ? "there are no fields" : count == 1 ? "expected " : "expected one of ");
        for (size_t i = 0; i < count; i++) e += sprintf(e, "%s`%s`", i ? ", " : "", fields[i]);
        char *name = corbel_json_string(key);
        return corbel_format("invalid settings: unknown field `%s`, %s", name, expected);
    }
    return NULL;
}

char *corbel_settings_string_list(corbel_json settings, const char *field, corbel_strings *out) {
    out->items = NULL;
    out->len = 0;
    corbel_json list = corbel_json_get(settings, field);
    if (!list.p) return corbel_format("invalid settings: missing field `%s`", field);
    if (corbel_json_type_of(list) != CORBEL_JSON_ARRAY) {
        return corbel_format("invalid settings: invalid type: %s, expected a sequence", corbel_json_describe(list));
    }
    corbel_json_iter it;
    corbel_json item;
    corbel_json_iter_start(list, &it);
    out->items = malloc(sizeof(char *) * (list.n / 2 + 1)); /* each item takes two bytes at least */
    while (corbel_json_next_element(&it, &item)) {
        if (corbel_json_type_of(item) != CORBEL_JSON_STRING) {
            return corbel_format("invalid settings: invalid type: %s, expected a string", corbel_json_describe(item));
        }
        out->items[out->len++] = corbel_json_string(item);
    }
    return NULL;
}

corbel_json corbel_subject(const corbel_request *request) {
    return request->object.p ? request->object : request->old_object;
}

char *corbel_label(corbel_json object, const char *key) {
    return corbel_json_string(corbel_json_path(object, "metadata", "labels", key, NULL));
}

char *corbel_annotation(corbel_json object, const char *key) {
    return corbel_json_string(corbel_json_path(object, "metadata", "annotations", key, NULL));
}

static char *vformat(const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    char *out = malloc((size_t)n + 1);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    return out;
}

void corbel_deny(corbel_verdict *verdict, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verdict->allowed = false;
    verdict->message = vformat(fmt, ap);
    va_end(ap);
}

void corbel_warn(corbel_verdict *verdict, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verdict->warnings.items = realloc(verdict->warnings.items, sizeof(char *) * (verdict->warnings.len + 1));
    verdict->warnings.items[verdict->warnings.len++] = vformat(fmt, ap);
    va_end(ap);
}

void corbel_mutate(corbel_verdict *verdict, char *changed_object_json) {
    verdict->mutated_object = changed_object_json;
}
