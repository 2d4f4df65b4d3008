#!/usr/bin/env node
// Builds a JavaScript policy into a Corbel component:
//   node sdk/js/build.mjs PLUGIN_DIR OUT.wasm
//
// 1. Generates the TypeScript declarations of the WIT world from wit/ (sdk/js/generated/), so the
//    types the SDK and policies use are never copied by hand.
// 2. Bundles PLUGIN_DIR's entry (package.json `main`, else index.js) with the SDK (rolldown), keeping
//    the WIT imports (`corbel:plugin/...`) for the componentizer.
// 3. Componentizes the bundle with SpiderMonkey (componentize-js), every WASI feature turned off:
//    the host gives policies no clocks, random, stdio or HTTP, and a component importing
//    wasi:http would not link.
// Run `npm install --no-save` in sdk/js first (`cargo xtask plugins` does).

import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const sdk = dirname(fileURLToPath(import.meta.url));
const root = resolve(sdk, '../..');
export const WIT_DIR = join(root, 'wit/v0.1.0');
const WORLD = 'policy';

/** The WIT package as one source text: the package line first, then every file's items. */
async function witSource(dir) {
  let pkg = '';
  let body = '';
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.wit')).sort()) {
    for (const line of (await readFile(join(dir, file), 'utf8')).split('\n')) {
      if (/^package\s/.test(line)) pkg = line;
      else body += `${line}\n`;
    }
  }
  if (!pkg) throw new Error(`${dir} has no \`package\` line: is it a WIT package?`);
  return `${pkg}\n${body}`;
}

/** Writes the guest declarations of the world into sdk/js/generated/. */
export async function generateTypes() {
  // jco's path-based API cannot read the file system here ("failed to read path for WIT"), so
  // the bindgen component gets the WIT as source text.
  const bindgen = await import('@bytecodealliance/jco-transpile/vendor/js-component-bindgen-component.js')
    .catch(() => import(join(sdk, 'node_modules/@bytecodealliance/jco-transpile/vendor/js-component-bindgen-component.js')));
  await bindgen.$init;
  const files = bindgen.generateTypes('corbel', {
    wit: { tag: 'source', val: await witSource(WIT_DIR) },
    world: WORLD,
    guest: true,
  });
  const out = join(sdk, 'generated');
  for (const [name, bytes] of files) {
    const path = join(out, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, `// Generated from wit/v0.1.0 by sdk/js/build.mjs: do not edit.\n${new TextDecoder().decode(bytes)}`);
  }
  return out;
}

async function entryOf(pluginDir) {
  const manifest = join(pluginDir, 'package.json');
  if (existsSync(manifest)) {
    const main = JSON.parse(await readFile(manifest, 'utf8')).main;
    if (main) return join(pluginDir, main);
  }
  for (const candidate of ['index.js', 'src/index.js']) {
    if (existsSync(join(pluginDir, candidate))) return join(pluginDir, candidate);
  }
  throw new Error(`${pluginDir} has no entry: add index.js, or name it with "main" in package.json`);
}

export async function build(pluginDir, outFile) {
  await generateTypes();
  const entry = await entryOf(pluginDir);
  const work = join(root, 'target/js-build', basename(resolve(pluginDir)));
  await mkdir(work, { recursive: true });

  const { rolldown } = await import('rolldown');
  const bundle = await rolldown({
    input: entry,
    external: [/^corbel:/],
    resolve: { alias: { '@corbel/sdk': join(sdk, 'src/index.js') } },
    logLevel: 'warn',
  });
  const bundled = join(work, 'policy.js');
  await bundle.write({ file: bundled, format: 'esm' });
  await bundle.close();

  const { componentize } = await import('@bytecodealliance/componentize-js');
  const { component } = await componentize({
    sourcePath: bundled,
    witPath: WIT_DIR,
    worldName: WORLD,
    disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
  });
  await mkdir(dirname(resolve(outFile)), { recursive: true });
  await writeFile(outFile, component);
  return component.length;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [pluginDir, outFile] = process.argv.slice(2);
  if (!pluginDir || !outFile) {
    console.error('usage: node sdk/js/build.mjs PLUGIN_DIR OUT.wasm   (or --types to only generate the declarations)');
    process.exit(2);
  }
  try {
    if (pluginDir === '--types') {
      console.log(await generateTypes());
    } else {
      const started = Date.now();
      const size = await build(pluginDir, outFile);
      console.log(`built ${outFile} (${size} bytes) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  } catch (e) {
    console.error(`error: failed to build ${pluginDir}: ${e?.stack ?? e}`);
    process.exit(1);
  }
}
