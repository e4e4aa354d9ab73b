// The default function of `layer-builder smoke`: odd invocations raise, even ones return.
// The first (cold) invocation raises, as a function that fails on every cold start does: each
// raised error must reach Sentry through the layer's SDK, one event per invocation. The answer
// carries the request id, which shows the runtime passed Lambda's context through the wrapper.
'use strict';

class SmokeTestError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SmokeTestError';
  }
}

let count = 0;

exports.handler = async (event, context) => {
  count += 1;
  if (count % 2 === 1) {
    throw new SmokeTestError(`layer-builder smoke: deliberate error on invocation ${count}`);
  }
  return { ok: true, invocation: count, requestId: context.awsRequestId, event };
};
