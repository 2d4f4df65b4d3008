/* require-labels, in C: denies CREATE and UPDATE of any object that misses one of the listed
 * labels, naming every missing label. Same settings and messages as plugins/require-labels. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corbel.h"

static const char *const FIELDS[] = {"labels"};

/* Reads the settings; returns NULL, or the message to refuse them with. */
static char *read_settings(corbel_json settings, corbel_strings *labels) {
    char *refusal = corbel_settings_fields(settings, FIELDS, 1);
    return refusal ? refusal : corbel_settings_string_list(settings, "labels", labels);
}

static bool blank(const char *s) {
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return false;
    return true;
}

char *policy_validate_settings(corbel_json settings) {
    corbel_strings labels;
    char *refusal = read_settings(settings, &labels);
    if (refusal) return refusal;
    if (labels.len == 0) {
        return corbel_format("`labels` is empty: list at least one label key, e.g. {\"labels\": [\"team\"]}");
    }
    for (size_t i = 0; i < labels.len; i++) {
        if (blank(labels.items[i])) return corbel_format("`labels[%zu]` is blank: every entry must be a label key", i);
    }
    return NULL;
}

char *policy_validate(const corbel_request *request, corbel_json settings, corbel_verdict *verdict) {
    corbel_strings labels;
    char *refusal = read_settings(settings, &labels);
    if (refusal) return refusal;
    if (request->operation != CORBEL_CREATE && request->operation != CORBEL_UPDATE) return NULL;

    corbel_json subject = corbel_subject(request);
    size_t size = 1, used = 0;
    for (size_t i = 0; i < labels.len; i++) size += strlen(labels.items[i]) + 2;
    char *missing = malloc(size);
    missing[0] = '\0';
    for (size_t i = 0; i < labels.len; i++) {
        if (corbel_label(subject, labels.items[i])) continue;
        used += (size_t)sprintf(missing + used, "%s%s", used ? ", " : "", labels.items[i]);
    }
    if (used) corbel_deny(verdict, "missing required labels: %s", missing);
    return NULL;
}
