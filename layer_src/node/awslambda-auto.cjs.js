// layer-builder: the Sentry Node layer's preload for `NODE_OPTIONS=-r
// @sentry/aws-serverless/awslambda-auto` (in the layer as build/npm/cjs/awslambda-auto.js of
// @sentry/aws-serverless, in place of the SDK's own). It does what the SDK's does, initialise
// the SDK for Lambda before the handler loads, and points it at the layer's extension where
// that runs (sentry-layer-dsn.js).
'use strict';

const init = require('./init.js');
const { sdkOptions } = require('./sentry-layer-dsn.js');

init.init(sdkOptions(init.getDefaultIntegrations));
