// {{name}}: denies CREATE and UPDATE of objects that miss the label named in the settings.

import { definePolicy, allow, deny, object, string } from '@corbel/sdk';

export const admission = definePolicy({
  settings: object({ label: string() }),

  validateSettings({ label }) {
    if (label.trim() === '') throw '`label` is blank: name a label key, e.g. {"label": "team"}';
  },

  validate(request, { label }) {
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return allow();
    return Object.hasOwn(request.labels(), label) ? allow() : deny(`missing required label: ${label}`);
  },
});
