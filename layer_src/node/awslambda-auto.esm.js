// layer-builder: the Sentry Node layer's preload for `NODE_OPTIONS=--import
// @sentry/aws-serverless/awslambda-auto` (in the layer as build/npm/esm/awslambda-auto.js of
// @sentry/aws-serverless, in place of the SDK's own). It does what the SDK's does, initialise
// the SDK for Lambda before the handler loads, and points it at the layer's extension where
// that runs (../cjs/sentry-layer-dsn.js).
import { init, getDefaultIntegrations } from './init.js';
import layer from '../cjs/sentry-layer-dsn.js';

init(layer.sdkOptions(getDefaultIntegrations));
