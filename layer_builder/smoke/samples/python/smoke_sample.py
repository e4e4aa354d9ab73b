"""The default function of ``layer-builder smoke``: odd invocations raise, even ones return.

The first (cold) invocation raises, as a function that fails on every cold start does: each
raised error must reach Sentry through the layer's SDK, one event per invocation. The answer
carries the request id, which shows the runtime passed Lambda's context through the wrapper.
"""

_count = 0


class SmokeTestError(Exception):
    """Raised on purpose by the smoke function."""


def handler(event, context):  # type: ignore[no-untyped-def]
    global _count
    _count += 1
    if _count % 2 == 1:
        raise SmokeTestError(f"layer-builder smoke: deliberate error on invocation {_count}")
    return {"ok": True, "invocation": _count, "requestId": context.aws_request_id, "event": event}
