// Helpers for Kubernetes objects held as plain JSON values.

function stringMap(object, field) {
  const map = object?.metadata?.[field];
  if (map === null || typeof map !== 'object' || Array.isArray(map)) return {};
  // Only string values count, as in the Rust SDK: Kubernetes labels are always strings.
  return Object.fromEntries(Object.entries(map).filter(([, v]) => typeof v === 'string'));
}

/** `metadata.labels` of an object (`{}` when it has none). */
export function labels(object) {
  return stringMap(object, 'labels');
}

/** `metadata.annotations` of an object (`{}` when it has none). */
export function annotations(object) {
  return stringMap(object, 'annotations');
}

function setIn(object, field, key, value) {
  if (object === null || typeof object !== 'object') return object;
  if (object.metadata === null || typeof object.metadata !== 'object') object.metadata = {};
  const map = object.metadata[field];
  if (map === null || typeof map !== 'object') object.metadata[field] = {};
  object.metadata[field][key] = value;
  return object;
}

/** Sets `metadata.labels[key] = value` in place, creating what is missing; returns the object. */
export function setLabel(object, key, value) {
  return setIn(object, 'labels', key, value);
}

/** Sets `metadata.annotations[key] = value` in place, creating what is missing; returns the object. */
export function setAnnotation(object, key, value) {
  return setIn(object, 'annotations', key, value);
}

const POD_SPEC_PATHS = {
  Pod: ['spec'],
  Deployment: ['spec', 'template', 'spec'],
  ReplicaSet: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  ReplicationController: ['spec', 'template', 'spec'],
  PodTemplate: ['template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
};

/** The pod spec inside an object of `kind` (a Pod or a workload's pod template), or undefined. */
export function podSpec(kind, object) {
  const path = POD_SPEC_PATHS[kind];
  return path ? path.reduce((o, k) => o?.[k], object) : undefined;
}

/** Every container of a pod spec, init then regular then ephemeral: `[{kind, container}]`. */
export function containers(spec) {
  const out = [];
  for (const [kind, field] of [['init', 'initContainers'], ['regular', 'containers'], ['ephemeral', 'ephemeralContainers']]) {
    for (const container of spec?.[field] ?? []) out.push({ kind, container });
  }
  return out;
}
