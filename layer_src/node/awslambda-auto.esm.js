// layer-builder: the Sentry Node layer's preload for `NODE_OPTIONS=--import
// @sentry/aws-serverless/awslambda-auto` (in the layer as build/npm/esm/awslambda-auto.js of
// @sentry/aws-serverless, in place of the SDK's own). It does what the SDK's does, initialise
// the SDK for Lambda before the handler loads, and points it at the layer's extension where
// that runs (../cjs/sentry-layer-dsn.js).
import { init, getDefaultIntegrations } from './init.js';
import layerDsn from '../cjs/sentry-layer-dsn.js';

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
const dsn = layerDsn.sdkDsn(process.env.SENTRY_DSN);
if (dsn) options.dsn = dsn;
init(options);
