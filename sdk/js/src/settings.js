// Settings parsing with the same words as the Rust SDK (serde), so one policy written in several
// languages refuses bad settings with the same message: `invalid settings: missing field `labels``.

/** Thrown for settings that do not fit their schema; the message is what the operator sees. */
export class SettingsError extends Error {}

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'sequence';
  switch (typeof value) {
    case 'string': return `string ${JSON.stringify(value)}`;
    case 'boolean': return `boolean \`${value}\``;
    case 'number': return Number.isInteger(value) ? `integer \`${value}\`` : `floating point \`${value}\``;
    default: return 'map';
  }
}

function invalidType(value, expected) {
  return new SettingsError(`invalid type: ${describe(value)}, expected ${expected}`);
}

/** A string. */
export function string() {
  return { expected: 'a string', parse: (v) => { if (typeof v !== 'string') throw invalidType(v, 'a string'); return v; } };
}

/** A boolean. */
export function boolean() {
  return { expected: 'a boolean', parse: (v) => { if (typeof v !== 'boolean') throw invalidType(v, 'a boolean'); return v; } };
}

/** An integer. */
export function integer() {
  return { expected: 'an integer', parse: (v) => { if (!Number.isInteger(v)) throw invalidType(v, 'an integer'); return v; } };
}

/** A list of `item`. */
export function list(item) {
  return {
    expected: 'a sequence',
    parse: (v) => { if (!Array.isArray(v)) throw invalidType(v, 'a sequence'); return v.map((x) => item.parse(x)); },
  };
}

/** A map from strings to `value`. */
export function map(value) {
  return {
    expected: 'a map',
    parse: (v) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalidType(v, 'a map');
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, value.parse(x)]));
    },
  };
}

/** A field that may be absent; absent (or null) gives `fallback`. */
export function optional(type, fallback = undefined) {
  return { ...type, optional: true, fallback };
}

/**
 * An object with exactly these fields: a missing required field and an unknown field are refused,
 * as `#[serde(deny_unknown_fields)]` does in Rust.
 */
export function object(fields) {
  const names = Object.keys(fields);
  const expected = names.length === 0 ? 'there are no fields'
    : names.length === 1 ? `expected \`${names[0]}\``
    : `expected one of ${names.map((n) => `\`${n}\``).join(', ')}`;
  return {
    expected: 'a map',
    parse: (v) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalidType(v, `struct with ${names.length} fields`);
      const out = {};
      for (const key of Object.keys(v)) {
        if (!(key in fields)) throw new SettingsError(`unknown field \`${key}\`, ${expected}`);
      }
      for (const [name, type] of Object.entries(fields)) {
        if (v[name] === undefined || (type.optional && v[name] === null)) {
          if (!type.optional) throw new SettingsError(`missing field \`${name}\``);
          out[name] = type.fallback;
        } else {
          out[name] = type.parse(v[name]);
        }
      }
      return out;
    },
  };
}

/** Parses settings JSON text with a schema made of the functions above. */
export function parseSettings(schema, text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new SettingsError(`invalid settings: ${e.message}`);
  }
  try {
    return schema ? schema.parse(value) : value;
  } catch (e) {
    throw new SettingsError(`invalid settings: ${e.message}`);
  }
}
