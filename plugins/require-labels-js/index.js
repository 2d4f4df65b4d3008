// require-labels, in JavaScript: denies CREATE and UPDATE of any object that misses one of the
// listed labels, naming every missing label. Same settings and messages as plugins/require-labels.

import { definePolicy, allow, deny, object, list, string } from '@corbel/sdk';

export const admission = definePolicy({
  settings: object({ labels: list(string()) }),

  validateSettings({ labels }) {
    if (labels.length === 0) {
      throw '`labels` is empty: list at least one label key, e.g. {"labels": ["team"]}';
    }
    const blank = labels.findIndex((l) => l.trim() === '');
    if (blank >= 0) throw `\`labels[${blank}]\` is blank: every entry must be a label key`;
  },

  validate(request, { labels }) {
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return allow();
    const present = request.labels();
    const missing = labels.filter((l) => !Object.hasOwn(present, l));
    return missing.length === 0 ? allow() : deny(`missing required labels: ${missing.join(', ')}`);
  },
});
