// A policy's answer. Build one with allow(), deny(), warn() or mutate().

export class Verdict {
  constructor(allowed, message) {
    this.allowed = allowed;
    this.message = message;
    this.code = undefined;
    this.warnings = [];
    this.mutatedObject = undefined;
  }

  /** Adds a warning, shown to the user whether or not the request is admitted. */
  withWarning(warning) {
    this.warnings.push(String(warning));
    return this;
  }

  /** Sets the HTTP status code of a denial (403 when not set). */
  withCode(code) {
    this.code = code;
    return this;
  }
}

/** Admit the request unchanged. */
export function allow() {
  return new Verdict(true, undefined);
}

/** Refuse the request; `message` is what kubectl shows the user. */
export function deny(message) {
  return new Verdict(false, String(message));
}

/** Admit the request with a warning. */
export function warn(warning) {
  return allow().withWarning(warning);
}

/**
 * Admit the request with `object` in place of the submitted one; the host computes the JSON Patch.
 * A `mutate` handler may also return the changed object itself.
 */
export function mutate(object) {
  const verdict = allow();
  verdict.mutatedObject = object;
  return verdict;
}
