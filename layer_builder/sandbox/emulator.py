"""An embedded emulation of AWS for ``--sandbox``: moto's server on loopback.

Inside ``with sandbox_aws() as info:`` every boto3 session created in the block talks to a
moto server on 127.0.0.1 (through ``AWS_ENDPOINT_URL``) with fake credentials, on a machine
with no AWS account and no ``~/.aws``. The user's own AWS settings are hidden for the
duration - profiles, config and credential files, SSO/web-identity/container credentials,
service-specific endpoints - so no real credentials can leak into a sandbox run, and
everything is restored afterwards.

Sessions created before the block keep what they resolved; create them inside it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from layer_builder.errors import ArgumentError

log = logging.getLogger(__name__)

SANDBOX_ACCOUNT = "123456789012"  # moto's default account
SANDBOX_REGION = "us-east-1"

# Anything that could point boto3 at real credentials or a real endpoint.
_HIDDEN_PREFIXES = ("AWS_ENDPOINT_URL_",)
_HIDDEN = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_STS_REGIONAL_ENDPOINTS",
)


@dataclass(frozen=True)
class SandboxInfo:
    """Where the sandbox listens and who it pretends you are."""

    endpoint: str
    account: str = SANDBOX_ACCOUNT
    region: str = SANDBOX_REGION
    partition: str = "aws"


@contextmanager
def patched_env(
    values: dict[str, str],
    hide: tuple[str, ...] = (),
    hide_prefixes: tuple[str, ...] = (),
    env: MutableMapping[str, str] | None = None,
) -> Iterator[None]:
    """Set ``values`` and remove ``hide``/``hide_prefixes`` in ``env``; restore on exit."""
    env = os.environ if env is None else env
    names = set(values) | set(hide) | {k for k in env if k.startswith(hide_prefixes)}
    saved = {k: env.get(k) for k in names}
    try:
        for k in names - set(values):
            env.pop(k, None)
        env.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v


@contextmanager
def sandbox_aws(
    region: str = SANDBOX_REGION, env: MutableMapping[str, str] | None = None
) -> Iterator[SandboxInfo]:
    """Run moto's server on 127.0.0.1 (ephemeral port) with fake credentials for the block.

    Needs ``moto[server]`` (imported here, so a normal install does not load it).
    """
    try:
        from moto.server import ThreadedMotoServer  # the sandbox's only use of moto
    except ImportError:
        raise ArgumentError(
            "--sandbox needs moto's server: install layer-builder with the sandbox extra "
            "(pip install -e '.[sandbox]')"
        ) from None

    # werkzeug logs one line per request to stderr unless its logger is told otherwise.
    wz = logging.getLogger("werkzeug")
    wz_level = wz.level
    wz.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        with tempfile.TemporaryDirectory(prefix="layer-builder-sandbox-") as tmp:
            missing = str(Path(tmp) / "none")  # config files that do not exist
            values = {
                "AWS_ACCESS_KEY_ID": "AKIASANDBOXTESTING00",
                "AWS_SECRET_ACCESS_KEY": "sandbox-fake-secret-not-a-real-key",
                "AWS_DEFAULT_REGION": region,
                "AWS_REGION": region,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_CONFIG_FILE": missing,
                "AWS_SHARED_CREDENTIALS_FILE": missing,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
            with patched_env(values, _HIDDEN, _HIDDEN_PREFIXES, env):
                log.info("sandbox AWS (moto) listening on %s", endpoint)
                yield SandboxInfo(endpoint=endpoint, region=region)
    finally:
        server.stop()
        wz.setLevel(wz_level)
