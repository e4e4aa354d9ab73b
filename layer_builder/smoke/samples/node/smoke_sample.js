// The default function of `layer-builder smoke`: odd invocations return, even ones raise.
// The raised error is what must reach Sentry through the layer's SDK; the answer carries the
// request id, which shows the runtime passed Lambda's context through the wrapper.
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
  if (count % 2 === 0) {
    throw new SmokeTestError(`layer-builder smoke: deliberate error on invocation ${count}`);
  }
  return { ok: true, invocation: count, requestId: context.awsRequestId, event };
};
