// The admission request a policy sees: the WIT record with its JSON fields parsed.

import { labels, annotations } from './objects.js';

function parse(what, text) {
  if (text === undefined || text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`the request's ${what} is not JSON: ${e.message}`);
  }
}

export class Request {
  /** @param {import('corbel:plugin/admission@0.1.0').AdmissionRequest} wit */
  constructor(wit) {
    this.uid = wit.uid;
    this.kind = wit.kind;
    this.resource = wit.resource;
    this.subResource = wit.subResource;
    this.requestKind = wit.requestKind;
    this.requestResource = wit.requestResource;
    this.requestSubResource = wit.requestSubResource;
    // Spelled as Kubernetes spells it, so policies read like the AdmissionReview they know.
    this.operation = wit.operation.toUpperCase();
    this.namespace = wit.namespace;
    this.name = wit.name;
    this.object = parse('object', wit.object);
    this.oldObject = parse('oldObject', wit.oldObject);
    this.userInfo = {
      username: wit.userInfo.username,
      uid: wit.userInfo.uid,
      groups: wit.userInfo.groups,
      extra: Object.fromEntries(wit.userInfo.extra.map((e) => [e.key, e.values])),
    };
    this.dryRun = wit.dryRun;
    this.options = parse('options', wit.options);
  }

  /** The object the request is about: the new object, or on DELETE the old one. */
  subject() {
    return this.object ?? this.oldObject;
  }

  /** Labels of subject() (`{}` when it has none). */
  labels() {
    return labels(this.subject());
  }

  /** Annotations of subject() (`{}` when it has none). */
  annotations() {
    return annotations(this.subject());
  }
}
