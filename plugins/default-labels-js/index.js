// default-labels, in JavaScript: a mutating policy that adds the listed labels on CREATE and
// UPDATE where the object lacks them, never overwriting one it has. Same settings and messages as
// plugins/default-labels; the host computes the JSON Patch from the object `mutate` returns.

import { definePolicy, allow, labels, setLabel, object, map, string } from '@corbel/sdk';

const bytes = (s) => new TextEncoder().encode(s).length;
const alnum = (c) => /^[A-Za-z0-9]$/.test(c);

/** A label name: 1 to `max` bytes of [A-Za-z0-9._-], starting and ending alphanumeric. */
function checkName(name, max) {
  if (name.length === 0 || bytes(name) > max) return `must be 1 to ${max} characters`;
  if (!alnum(name[0]) || !alnum(name[name.length - 1]) || !/^[A-Za-z0-9._-]*$/.test(name)) {
    return "must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric";
  }
  return undefined;
}

/** A label key: an optional DNS-subdomain prefix and `/`, then a name (Kubernetes' rules). */
function checkKey(key) {
  const slash = key.indexOf('/');
  if (slash < 0) return checkName(key, 63);
  const prefix = key.slice(0, slash);
  const ok = prefix.length > 0 && bytes(prefix) <= 253 && prefix.split('.').every(
    (part) => /^[a-z0-9-]+$/.test(part) && !part.startsWith('-') && !part.endsWith('-'),
  );
  if (!ok) return `prefix ${JSON.stringify(prefix)} must be a lowercase DNS subdomain`;
  return checkName(key.slice(slash + 1), 63);
}

// Keys in byte order, as the Rust policy's BTreeMap holds them: the first invalid key reported is the same.
const sorted = (settings) => Object.entries(settings.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

export const admission = definePolicy({
  settings: object({ labels: map(string()) }),

  validateSettings(settings) {
    const entries = sorted(settings);
    if (entries.length === 0) {
      throw '`labels` is empty: give at least one label, e.g. {"labels": {"team": "platform"}}';
    }
    for (const [key, value] of entries) {
      const badKey = checkKey(key);
      if (badKey) throw `label key ${JSON.stringify(key)} is not valid: ${badKey}`;
      const badValue = value === '' ? undefined : checkName(value, 63);
      if (badValue) throw `value ${JSON.stringify(value)} of label ${JSON.stringify(key)} is not valid: ${badValue}`;
    }
  },

  // Bound in validate mode it has nothing to check: every request is admitted.
  validate: () => allow(),

  mutate(request, settings) {
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return allow();
    if (request.object === undefined) return allow();
    const present = labels(request.object);
    const missing = sorted(settings).filter(([key]) => !Object.hasOwn(present, key));
    if (missing.length === 0) return allow();
    const changed = structuredClone(request.object);
    for (const [key, value] of missing) setLabel(changed, key, value);
    return changed;
  },
});
