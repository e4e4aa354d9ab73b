// layer-builder: how the Sentry Node layer's preloads set up the SDK, and where it sends
// (shipped in the layer as build/npm/cjs/sentry-layer-dsn.js of @sentry/aws-serverless).
//
// The layer's extension is Relay in proxy mode. Its launcher (/opt/extensions/
// sentry-lambda-extension) says in its first line which machines it has a binary for and
// where Relay listens: `# sentry-layer-extension: machines=x86_64,aarch64 proxy=127.0.0.1:3000`.
// On a listed machine (`uname -m`, what the launcher asks) the SDK sends to that address with
// the user's key and project, and Relay forwards upstream; elsewhere the launcher stands
// aside and the SDK sends to the DSN directly. SENTRY_LAYER_EXTENSION=false sends directly,
// as does an http_proxy that does not exempt localhost (the SDK's own rule for its
// extension); SENTRY_LAYER_EXTENSION_PORT moves the port (the launcher honours it too).
//
// The SDK's own `useLayerExtension` is left off: it tunnels to http://localhost:9000/envelope,
// the address of Sentry's JavaScript extension, which this layer does not carry.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const NAME = 'sentry-lambda-extension';
const MARKER = '# sentry-layer-extension:';

function launcher() {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'extensions', NAME);
    try {
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

function machine() {
  return os.machine(); // what `uname -m` prints, without a process on every cold start
}

function proxyCatchesLocalTraffic() {
  const { http_proxy: proxy, no_proxy: exempt } = process.env;
  if (!proxy) return false;
  const names = (exempt || '').split(',').map((n) => n.trim().toLowerCase());
  return !names.some((n) => ['*', 'localhost', '127.0.0.1', '::1'].includes(n));
}

function extensionAddress() {
  const file = launcher();
  if (!file) return undefined;
  let head;
  try {
    head = fs.readFileSync(file, 'utf8').split('\n').slice(0, 20);
  } catch {
    return undefined;
  }
  const line = head.find((l) => l.startsWith(MARKER));
  if (!line) return undefined;
  const fields = Object.fromEntries(
    line.slice(MARKER.length).trim().split(/\s+/).filter((w) => w.includes('=')).map((w) => {
      const at = w.indexOf('=');
      return [w.slice(0, at), w.slice(at + 1)];
    }),
  );
  if (!(fields.machines || '').split(',').includes(machine())) return undefined;
  const at = (fields.proxy || '').lastIndexOf(':');
  if (at <= 0) return undefined;
  const port = (process.env.SENTRY_LAYER_EXTENSION_PORT || '').trim() || fields.proxy.slice(at + 1);
  return /^\d+$/.test(port) ? `${fields.proxy.slice(0, at)}:${port}` : undefined;
}

/** The DSN the SDK gets: the user's, pointed at the extension where it runs. */
function sdkDsn(dsn) {
  if (!dsn) return dsn;
  const off = ['0', 'false', 'no', 'off'];
  if (off.includes((process.env.SENTRY_LAYER_EXTENSION || '').trim().toLowerCase())) return dsn;
  if (proxyCatchesLocalTraffic()) return dsn;
  const address = extensionAddress();
  if (!address) return dsn;
  try {
    const url = new URL(dsn);
    if (!url.username) return dsn;
    url.protocol = 'http:';
    url.host = address;
    return url.toString();
  } catch {
    return dsn; // not a DSN the SDK would accept either: let it say so
  }
}

/**
 * The options both preloads pass to the SDK's `init`, after the checks the SDK's own
 * awslambda-auto makes: Lambda's variables, the traces sample rate, the DSN above.
 */
function sdkOptions(getDefaultIntegrations) {
  if (!process.env.LAMBDA_TASK_ROOT) {
    throw Error('LAMBDA_TASK_ROOT environment variable is not set');
  }
  if (!process.env._HANDLER) {
    throw Error(`LAMBDA_TASK_ROOT is non-empty(${process.env.LAMBDA_TASK_ROOT}) but _HANDLER is not set`);
  }
  const rate = process.env.SENTRY_TRACES_SAMPLE_RATE;
  const options = {
    integrations: getDefaultIntegrations(rate ? { tracesSampleRate: parseFloat(rate) } : {}),
  };
  const dsn = sdkDsn(process.env.SENTRY_DSN);
  if (dsn) options.dsn = dsn;
  return options;
}

module.exports = { sdkDsn, sdkOptions };
