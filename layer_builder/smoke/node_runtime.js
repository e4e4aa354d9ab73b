// The Node.js runtime loop of `layer-builder smoke` (layer_builder/smoke/runtimes.py starts
// it with `node`). Lambda's own client, aws-lambda-ric, builds native code with node-gyp,
// which a release machine may not be able to do; this loop speaks the same Runtime API and
// loads the handler the way Lambda's Node runtime does: _HANDLER is read after the
// NODE_OPTIONS preloads ran (the Sentry preload may point it at its own wrapper), the module
// path is resolved against LAMBDA_TASK_ROOT, trying .js, .mjs and .cjs, and ES modules are
// imported while CommonJS modules are required.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const API = process.env.AWS_LAMBDA_RUNTIME_API;
const PREFIX = '/2018-06-01/runtime';

function call(method, urlPath, body, headers) {
  const [host, port] = API.split(':');
  const allHeaders = { ...(headers || {}) };
  // A sized body, not a chunked one: the Runtime API reads Content-Length.
  if (body !== undefined) allHeaders['Content-Length'] = Buffer.byteLength(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port: Number(port), method, path: PREFIX + urlPath, headers: allHeaders },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function errorBody(err, type) {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    errorType: type || e.name || 'Error',
    errorMessage: e.message,
    trace: String(e.stack || '').split('\n'),
  };
}

async function postError(urlPath, err, type) {
  const body = errorBody(err, type);
  await call('POST', urlPath, JSON.stringify(body), {
    'Content-Type': 'application/json',
    'Lambda-Runtime-Function-Error-Type': body.errorType,
  });
}

class LoadError extends Error {
  constructor(type, message) {
    super(message);
    this.name = type;
  }
}

function isEsm(file) {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs')) return false;
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(file), 'package.json'), 'utf8'));
    return pkg.type === 'module';
  } catch {
    return false;
  }
}

async function loadHandler(taskRoot, spec) {
  // "dir/module.fn.nested": the module is the base name up to its first dot.
  const base = path.basename(spec);
  const dot = base.indexOf('.');
  if (dot <= 0 || dot === base.length - 1) {
    throw new LoadError('Runtime.MalformedHandlerName', `Bad handler '${spec}'`);
  }
  const moduleBase = path.resolve(taskRoot, spec.slice(0, spec.length - base.length), base.slice(0, dot));
  const file = ['', '.js', '.mjs', '.cjs']
    .map((ext) => moduleBase + ext)
    .find((f) => fs.existsSync(f) && fs.statSync(f).isFile());
  if (!file) {
    throw new LoadError('Runtime.ImportModuleError', `Cannot find module '${moduleBase}' for handler '${spec}'`);
  }
  let mod;
  try {
    mod = isEsm(file) ? await import(pathToFileURL(file).href) : require(file);
  } catch (err) {
    if (err instanceof SyntaxError) throw new LoadError('Runtime.UserCodeSyntaxError', String(err));
    throw new LoadError('Runtime.ImportModuleError', `Error loading '${file}': ${err && err.stack}`);
  }
  let fn = mod;
  for (const part of base.slice(dot + 1).split('.')) fn = fn == null ? undefined : fn[part];
  if (typeof fn !== 'function') {
    throw new LoadError('Runtime.HandlerNotFound', `${spec} is undefined or not exported`);
  }
  return fn;
}

function makeContext(headers) {
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  const env = process.env;
  return {
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
  };
}

function runHandler(handler, event, context) {
  return new Promise((resolve, reject) => {
    const callback = (err, result) => (err ? reject(err) : resolve(result));
    context.done = callback;
    context.succeed = (result) => resolve(result);
    context.fail = (err) => reject(err);
    try {
      const out = handler(event, context, callback);
      if (out && typeof out.then === 'function') out.then(resolve, reject);
      else if (handler.length < 3) resolve(out);
    } catch (err) {
      reject(err);
    }
  });
}

async function main() {
  let handler;
  try {
    handler = await loadHandler(process.env.LAMBDA_TASK_ROOT || process.cwd(), process.env._HANDLER || '');
  } catch (err) {
    console.error(err && err.stack);
    await postError('/init/error', err, err instanceof LoadError ? err.name : undefined);
    process.exit(1);
  }
  for (;;) {
    const next = await call('GET', '/invocation/next');
    if (next.status !== 200) throw new Error(`invocation/next answered ${next.status}`);
    const id = next.headers['lambda-runtime-aws-request-id'];
    const event = JSON.parse(next.body.toString('utf8') || 'null');
    try {
      const result = await runHandler(handler, event, makeContext(next.headers));
      await call('POST', `/invocation/${id}/response`, JSON.stringify(result === undefined ? null : result), {
        'Content-Type': 'application/json',
      });
    } catch (err) {
      console.error(err && err.stack);
      await postError(`/invocation/${id}/error`, err);
    }
  }
}

main().catch((err) => {
  console.error(err && err.stack);
  process.exit(2);
});
