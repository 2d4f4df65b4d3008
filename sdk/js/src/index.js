// @corbel/sdk: Corbel admission policies in JavaScript.
//
// A policy module exports `admission = definePolicy({...})`; the build (sdk/js/build.mjs) bundles
// it with this SDK and turns it into a component exporting `corbel:plugin/admission`.

import { log as witLog } from 'corbel:plugin/log@0.1.0';
import { Request } from './request.js';
import { Verdict, allow } from './verdict.js';
import { parseSettings } from './settings.js';

export { Request } from './request.js';
export { Verdict, allow, deny, warn, mutate } from './verdict.js';
export { SettingsError, parseSettings, object, list, map, string, boolean, integer, optional } from './settings.js';
export { labels, annotations, setLabel, setAnnotation, podSpec, containers } from './objects.js';

/** The WIT version this SDK implements. */
export const WIT_VERSION = '0.1.0';

function fields(map) {
  return Object.entries(map ?? {}).map(([key, value]) => ({ key, value: String(value) }));
}

/** Structured logging into the host's log. */
export const log = {
  trace: (message, f) => witLog('trace', message, fields(f)),
  debug: (message, f) => witLog('debug', message, fields(f)),
  info: (message, f) => witLog('info', message, fields(f)),
  warn: (message, f) => witLog('warn', message, fields(f)),
  error: (message, f) => witLog('error', message, fields(f)),
};

/**
 * Records a named check and its result, and returns `passed`: when the host traces the request
 * (`corbel eval --trace`, a binding with `trace: true`), a denial names the checks that failed
 * ("why denied", docs/trace.md). Sent as a debug log record of the reserved message `corbel.check`.
 */
export function check(name, passed, detail) {
  const value = (passed ? 'pass' : 'fail') + (detail ? `: ${detail}` : '');
  witLog('debug', 'corbel.check', [{ key: String(name), value }]);
  return passed;
}

// The WIT `result` error of a call is the thrown value: always hand over a string.
function message(e) {
  return e instanceof Error ? e.message : String(e);
}

function response(verdict, mutating, request) {
  if (verdict === undefined || verdict === null) verdict = allow();
  if (!(verdict instanceof Verdict)) {
    if (!mutating) throw new Error('validate must return a Verdict (allow(), deny(message), warn(message))');
    // A mutate handler may return the changed object itself.
    const changed = verdict;
    verdict = allow();
    verdict.mutatedObject = changed;
  }
  return {
    allowed: verdict.allowed,
    message: verdict.message,
    code: verdict.code,
    warnings: verdict.warnings,
    mutatedObject: mutating && verdict.mutatedObject !== undefined ? JSON.stringify(verdict.mutatedObject) : undefined,
  };
}

/**
 * Turns a policy into the `admission` export. Every call runs in a fresh sandbox: keep no state.
 *
 * @param {object} policy
 * @param {object} [policy.settings] a schema made with object()/list()/string()..., or omit for raw JSON
 * @param {(settings) => void} [policy.validateSettings] throw (an Error or a string) to refuse the settings
 * @param {(request: Request, settings) => Verdict} policy.validate
 * @param {(request: Request, settings) => Verdict|object|undefined} [policy.mutate]
 */
export function definePolicy(policy) {
  const settingsOf = (text) => parseSettings(policy.settings, text);
  const call = (handler, mutating) => (witRequest, settingsText) => {
    try {
      const settings = settingsOf(settingsText);
      const request = new Request(witRequest);
      return response(handler(request, settings), mutating, request);
    } catch (e) {
      throw message(e);
    }
  };
  return {
    validateSettings(text) {
      try {
        const settings = settingsOf(text);
        policy.validateSettings?.(settings);
      } catch (e) {
        throw message(e);
      }
    },
    validate: call(policy.validate, false),
    mutate: call(
      policy.mutate ?? (() => { throw new Error('this policy does not mutate: bind it in validate mode'); }),
      true,
    ),
  };
}
