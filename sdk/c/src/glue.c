/* The component's exports, on top of corbel.h. `policy.h` is generated from wit/ by
 * `wit-bindgen c` at every build (build.sh); nothing here copies the WIT. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corbel.h"
#include "policy.h"

/* WIT strings are not NUL-terminated; the SDK hands C strings to policies. */
static const char *cstr(const policy_string_t *s) {
    char *out = malloc(s->len + 1);
    memcpy(out, s->ptr, s->len);
    out[s->len] = '\0';
    return out;
}

static const char *opt_cstr(const policy_option_string_t *s) {
    return s->is_some ? cstr(&s->val) : NULL;
}

static corbel_json opt_json(const exports_corbel_plugin_admission_option_json_t *j) {
    corbel_json none = {NULL, 0};
    return j->is_some ? corbel_json_from((const char *)j->val.ptr, j->val.len) : none;
}

/* The WIT error: a string the canonical ABI's post-return frees, so malloc'd like every answer. */
static void set_err(policy_string_t *err, char *message) {
    err->ptr = (uint8_t *)message;
    err->len = strlen(message);
}

static bool settings_of(const policy_string_t *text, corbel_json *out, policy_string_t *err) {
    *out = corbel_json_from((const char *)text->ptr, text->len);
    if (!corbel_json_valid(*out)) {
        set_err(err, corbel_format("invalid settings: not JSON"));
        return false;
    }
    return true;
}

bool exports_corbel_plugin_admission_validate_settings(exports_corbel_plugin_admission_json_t *settings,
                                                       policy_string_t *err) {
    corbel_json parsed;
    if (!settings_of(settings, &parsed, err)) return false;
    char *refusal = policy_validate_settings(parsed);
    if (refusal) {
        set_err(err, refusal);
        return false;
    }
    return true;
}

static corbel_request request_of(const exports_corbel_plugin_admission_admission_request_t *r) {
    corbel_request out;
    memset(&out, 0, sizeof out);
    out.uid = cstr(&r->uid);
    out.kind.group = cstr(&r->kind.group);
    out.kind.version = cstr(&r->kind.version);
    out.kind.kind = cstr(&r->kind.kind);
    out.resource = cstr(&r->resource.resource);
    out.sub_resource = opt_cstr(&r->sub_resource);
    out.operation = (corbel_operation)r->operation;
    out.namespace_ = opt_cstr(&r->namespace_);
    out.name = opt_cstr(&r->name);
    out.object = opt_json(&r->object);
    out.old_object = opt_json(&r->old_object);
    out.username = cstr(&r->user_info.username);
    out.groups.len = r->user_info.groups.len;
    out.groups.items = malloc(sizeof(char *) * (out.groups.len + 1));
    for (size_t i = 0; i < out.groups.len; i++) out.groups.items[i] = (char *)cstr(&r->user_info.groups.ptr[i]);
    out.dry_run = r->dry_run;
    out.options = opt_json(&r->options);
    return out;
}

typedef char *(*handler)(const corbel_request *, corbel_json, corbel_verdict *);

static bool call(handler h, bool mutating, exports_corbel_plugin_admission_admission_request_t *request,
                 exports_corbel_plugin_admission_json_t *settings,
                 exports_corbel_plugin_admission_admission_response_t *ret, policy_string_t *err) {
    corbel_json parsed;
    if (!settings_of(settings, &parsed, err)) return false;
    corbel_request req = request_of(request);
    corbel_verdict verdict;
    memset(&verdict, 0, sizeof verdict);
    verdict.allowed = true;
    char *failure = h(&req, parsed, &verdict);
    if (failure) {
        set_err(err, failure);
        return false;
    }
    memset(ret, 0, sizeof *ret);
    ret->allowed = verdict.allowed;
    if (verdict.message) {
        ret->message.is_some = true;
        set_err(&ret->message.val, verdict.message);
    }
    if (verdict.code) {
        ret->code.is_some = true;
        ret->code.val = verdict.code;
    }
    ret->warnings.len = verdict.warnings.len;
    ret->warnings.ptr = malloc(sizeof(policy_string_t) * (verdict.warnings.len + 1));
    for (size_t i = 0; i < verdict.warnings.len; i++) set_err(&ret->warnings.ptr[i], verdict.warnings.items[i]);
    if (mutating && verdict.mutated_object) {
        ret->mutated_object.is_some = true;
        set_err(&ret->mutated_object.val, verdict.mutated_object);
    }
    return true;
}

bool exports_corbel_plugin_admission_validate(exports_corbel_plugin_admission_admission_request_t *request,
                                              exports_corbel_plugin_admission_json_t *settings,
                                              exports_corbel_plugin_admission_admission_response_t *ret,
                                              policy_string_t *err) {
    return call(policy_validate, false, request, settings, ret, err);
}

bool exports_corbel_plugin_admission_mutate(exports_corbel_plugin_admission_admission_request_t *request,
                                            exports_corbel_plugin_admission_json_t *settings,
                                            exports_corbel_plugin_admission_admission_response_t *ret,
                                            policy_string_t *err) {
    if (!policy_mutate) {
        set_err(err, corbel_format("this policy does not mutate: bind it in validate mode"));
        return false;
    }
    return call(policy_mutate, true, request, settings, ret, err);
}

void corbel_log(corbel_level level, const char *fmt, ...) {
    va_list ap, copy;
    va_start(ap, fmt);
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *text = malloc((size_t)n + 1);
    vsnprintf(text, (size_t)n + 1, fmt, copy);
    va_end(copy);
    policy_string_t message = {(uint8_t *)text, (size_t)n};
    corbel_plugin_log_list_field_t fields = {NULL, 0};
    corbel_plugin_log_log((corbel_plugin_log_level_t)level, &message, &fields);
    free(text);
}

bool corbel_check(const char *name, bool passed, const char *detail) {
    char *value = detail && *detail ? corbel_format("%s: %s", passed ? "pass" : "fail", detail)
                                     : corbel_format("%s", passed ? "pass" : "fail");
    corbel_plugin_types_field_t field = {
        .key = {(uint8_t *)name, strlen(name)},
        .value = {(uint8_t *)value, strlen(value)},
    };
    corbel_plugin_log_list_field_t fields = {&field, 1};
    policy_string_t message = {(uint8_t *)"corbel.check", strlen("corbel.check")};
    corbel_plugin_log_log(CORBEL_PLUGIN_LOG_LEVEL_DEBUG, &message, &fields);
    free(value);
    return passed;
}
