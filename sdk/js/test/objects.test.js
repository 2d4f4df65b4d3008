import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labels, setLabel, podSpec, containers } from '../src/objects.js';

test('labels of an object without metadata are empty', () => {
  assert.deepEqual(labels({ kind: 'ConfigMap' }), {});
  assert.deepEqual(labels({ metadata: { labels: null } }), {});
  assert.deepEqual(labels(undefined), {});
});

test('setLabel creates metadata and labels where missing', () => {
  assert.deepEqual(setLabel({ kind: 'ConfigMap' }, 'team', 'a'), { kind: 'ConfigMap', metadata: { labels: { team: 'a' } } });
});

test('finds the pod spec of a CronJob and lists containers in order', () => {
  const cron = { spec: { jobTemplate: { spec: { template: { spec: { containers: [{ name: 'app' }], initContainers: [{ name: 'init' }] } } } } } };
  assert.deepEqual(containers(podSpec('CronJob', cron)).map((c) => [c.kind, c.container.name]), [['init', 'init'], ['regular', 'app']]);
  assert.equal(podSpec('ConfigMap', cron), undefined);
});
