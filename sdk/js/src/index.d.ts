// Declarations of @corbel/sdk. The WIT types come from generated/ (written from wit/ by
// `node sdk/js/build.mjs --types`, which every build runs), never from a copy.
/// <reference path="../generated/corbel.d.ts" />

import type { AdmissionRequest, GroupVersionKind, GroupVersionResource } from 'corbel:plugin/admission@0.1.0';

export const WIT_VERSION: '0.1.0';

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
/** A Kubernetes object as JSON. */
export type KubeObject = { [key: string]: any };

export class Request {
  constructor(wit: AdmissionRequest);
  uid: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  subResource?: string;
  requestKind?: GroupVersionKind;
  requestResource?: GroupVersionResource;
  requestSubResource?: string;
  operation: Operation;
  namespace?: string;
  name?: string;
  /** The new object; absent on DELETE. */
  object?: KubeObject;
  /** The existing object, on UPDATE and DELETE. */
  oldObject?: KubeObject;
  userInfo: { username: string; uid: string; groups: string[]; extra: Record<string, string[]> };
  dryRun: boolean;
  options?: KubeObject;
  /** The new object, or on DELETE the old one. */
  subject(): KubeObject | undefined;
  labels(): Record<string, string>;
  annotations(): Record<string, string>;
}

export class Verdict {
  allowed: boolean;
  message?: string;
  code?: number;
  warnings: string[];
  mutatedObject?: KubeObject;
  withWarning(warning: string): this;
  withCode(code: number): this;
}
export function allow(): Verdict;
export function deny(message: string): Verdict;
export function warn(warning: string): Verdict;
export function mutate(changed: KubeObject): Verdict;

/** How to read one settings value. */
export interface Schema<T> {
  expected: string;
  parse(value: unknown): T;
  optional?: boolean;
}
export class SettingsError extends Error {}
export function string(): Schema<string>;
export function boolean(): Schema<boolean>;
export function integer(): Schema<number>;
export function list<T>(item: Schema<T>): Schema<T[]>;
export function map<T>(value: Schema<T>): Schema<Record<string, T>>;
export function optional<T>(type: Schema<T>, fallback?: T): Schema<T | undefined>;
export function object<F extends Record<string, Schema<any>>>(fields: F): Schema<{ [K in keyof F]: F[K] extends Schema<infer T> ? T : never }>;
export function parseSettings<T>(schema: Schema<T> | undefined, text: string): T;

export function labels(object: KubeObject | undefined): Record<string, string>;
export function annotations(object: KubeObject | undefined): Record<string, string>;
export function setLabel<O extends KubeObject>(object: O, key: string, value: string): O;
export function setAnnotation<O extends KubeObject>(object: O, key: string, value: string): O;
export function podSpec(kind: string, object: KubeObject | undefined): KubeObject | undefined;
export function containers(spec: KubeObject | undefined): { kind: 'init' | 'regular' | 'ephemeral'; container: KubeObject }[];

type Fields = Record<string, string | number | boolean>;
/** Records a named check and its result for "why denied" traces; returns `passed`. */
export function check(name: string, passed: boolean, detail?: string): boolean;
export const log: Record<'trace' | 'debug' | 'info' | 'warn' | 'error', (message: string, fields?: Fields) => void>;

export interface Policy<S> {
  /** A schema for the settings; without one, the settings are the raw JSON value. */
  settings?: Schema<S>;
  /** Throw (an Error or a string) to refuse the settings; called once when a binding loads. */
  validateSettings?(settings: S): void;
  validate(request: Request, settings: S): Verdict;
  /** Return a Verdict, or the changed object itself, or nothing to admit unchanged. */
  mutate?(request: Request, settings: S): Verdict | KubeObject | undefined | void;
}

/** The `admission` export of the component: `export const admission = definePolicy({...})`. */
export function definePolicy<S>(policy: Policy<S>): typeof import('corbel:plugin/admission@0.1.0');
