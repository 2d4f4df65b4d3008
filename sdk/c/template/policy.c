/* {{name}}: denies CREATE and UPDATE of objects that miss the label named in the settings. */
#include <ctype.h>

#include "corbel.h"

static const char *const FIELDS[] = {"label"};

/* The label key from the settings, or NULL with *refusal set. */
static char *label_of(corbel_json settings, char **refusal) {
    *refusal = corbel_settings_fields(settings, FIELDS, 1);
    if (*refusal) return NULL;
    corbel_json label = corbel_json_get(settings, "label");
    if (!label.p) {
        *refusal = corbel_format("invalid settings: missing field `label`");
        return NULL;
    }
    char *text = corbel_json_string(label);
    if (!text) *refusal = corbel_format("invalid settings: invalid type: %s, expected a string", corbel_json_describe(label));
    return text;
}

char *policy_validate_settings(corbel_json settings) {
    char *refusal;
    const char *label = label_of(settings, &refusal);
    if (!label) return refusal;
    for (const char *c = label; *c; c++)
        if (!isspace((unsigned char)*c)) return NULL;
    return corbel_format("`label` is blank: name a label key, e.g. {\"label\": \"team\"}");
}

char *policy_validate(const corbel_request *request, corbel_json settings, corbel_verdict *verdict) {
    char *refusal;
    const char *label = label_of(settings, &refusal);
    if (!label) return refusal;
    if (request->operation != CORBEL_CREATE && request->operation != CORBEL_UPDATE) return NULL;
    if (!corbel_label(corbel_subject(request), label)) corbel_deny(verdict, "missing required label: %s", label);
    return NULL;
}
