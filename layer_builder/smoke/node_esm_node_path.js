// Lambda's ES module resolution for `layer-builder smoke`, registered first in NODE_OPTIONS.
//
// Lambda's Node.js runtimes (18 and later) resolve an ES module's bare specifier as Node does
// (node_modules folders up from the importer) and then, when that finds nothing, in each
// folder of NODE_PATH: that is how `--import @sentry/aws-serverless/awslambda-auto` finds the
// layer's /opt/nodejs/node_modules although an --import is resolved from /var/task. Plain
// Node ignores NODE_PATH for ES modules, so this file registers a resolve hook that adds the
// same fallback, nothing more.
'use strict';

const { register } = require('node:module');

// The machine this run plays (qemu-user runs the extensions; Node itself is the host's): what
// `os.machine()` answers on that machine, as the PATH shim does for `uname -m`.
if (process.env.LAYER_BUILDER_SMOKE_MACHINE) {
  const played = process.env.LAYER_BUILDER_SMOKE_MACHINE;
  require('node:os').machine = () => played;
}

const hook = `
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const folders = (process.env.NODE_PATH || '').split(':').filter(Boolean);
const relativeOrUrl = /^(\\.{0,2}\\/|[a-zA-Z][a-zA-Z0-9+.-]*:)/;

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND' || relativeOrUrl.test(specifier)) throw err;
    const parts = specifier.split('/');
    const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
    for (const folder of folders) {
      if (!existsSync(path.join(folder, name))) continue;
      // The package is in this folder: its answer, or its error, is the one. Resolving from
      // a file beside the folder looks in the folder itself first.
      const parentURL = pathToFileURL(path.join(folder, '..', 'lambda-node-path.mjs')).href;
      return nextResolve(specifier, { ...context, parentURL });
    }
    throw err;
  }
}
`;

register(`data:text/javascript,${encodeURIComponent(hook)}`);
