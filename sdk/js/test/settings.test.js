// The settings schema refuses bad settings with the Rust SDK's (serde's) words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSettings, object, list, string, optional, map } from '../src/settings.js';

const labels = object({ labels: list(string()) });
function message(schema, text) {
  try { parseSettings(schema, text); } catch (e) { return e.message; }
  return undefined;
}

test('reads settings that fit the schema', () => {
  assert.deepEqual(parseSettings(labels, '{"labels": ["team"]}'), { labels: ['team'] });
});

test('names a missing field', () => {
  assert.equal(message(labels, '{}'), 'invalid settings: missing field `labels`');
});

test('names an unknown field and the expected ones', () => {
  assert.equal(message(labels, '{"labels": [], "label": []}'), 'invalid settings: unknown field `label`, expected `labels`');
  assert.equal(message(object({ a: string(), b: string() }), '{"c": 1}'), 'invalid settings: unknown field `c`, expected one of `a`, `b`');
});

test('names the type it got and the one it expected', () => {
  assert.equal(message(labels, '{"labels": "team"}'), 'invalid settings: invalid type: string "team", expected a sequence');
  assert.equal(message(labels, '{"labels": [1]}'), 'invalid settings: invalid type: integer `1`, expected a string');
  assert.equal(message(map(string()), '[]'), 'invalid settings: invalid type: sequence, expected a map');
});

test('gives optional fields their fallback', () => {
  assert.deepEqual(parseSettings(object({ mode: optional(string(), 'warn') }), '{}'), { mode: 'warn' });
});

