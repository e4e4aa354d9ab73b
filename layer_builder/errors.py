"""The user-error hierarchy.

Every exception derived from :class:`UserError` is something the person running the tool
can fix; the CLI prints ``error: <message>`` and exits 2 without a traceback.
:class:`PublishIncomplete` is the one "partial success" outcome and exits 3. Anything
else is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

from collections.abc import Sequence


class LayerBuilderError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class UserError(LayerBuilderError):
    """The user's input is wrong: bad config, argument, artifact, checksum or credentials."""

    exit_code = 2


class ConfigError(UserError):
    """A config file is invalid. The message names the file and the key path."""

    def __init__(self, path: str, key: str | None, message: str) -> None:
        self.path = path
        self.key = key
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {message}")


class ArgumentError(UserError):
    """A command-line argument is invalid."""


class ArtifactError(UserError):
    """A built or supplied artifact (zip, binary, manifest) is wrong."""


class ChecksumError(ArtifactError):
    """A downloaded or supplied file does not match its pinned sha256."""


class SmokeTestFailed(ArtifactError):
    """A layer failed ``smoke``: run in an emulated Lambda environment, it did not work."""


class DownloadError(UserError):
    """A download was refused or failed after retries."""


class ArchitectureError(ArtifactError):
    """A binary is not an ELF executable for the layer's architecture."""


class SizeLimitError(ArtifactError):
    """A layer exceeds an AWS size limit."""


class CredentialsError(UserError):
    """No usable AWS credentials were found."""


class RegistryError(UserError):
    """The registry is missing, malformed, or lacks what was asked for."""


class InstallError(UserError):
    """pip or npm failed to install the SDK."""


class FunctionError(UserError):
    """A Lambda function cannot be inspected or instrumented as asked."""


class PublishIncomplete(LayerBuilderError):
    """At least one region failed; what succeeded is kept and a re-run finishes the job."""

    exit_code = 3

    def __init__(self, failed: Sequence[str], message: str | None = None) -> None:
        self.failed = list(failed)
        super().__init__(
            message
            or f"publishing incomplete: {len(self.failed)} failed: {', '.join(self.failed)}; "
            "run the same command again to finish"
        )


class Interrupted(PublishIncomplete):
    """SIGINT/SIGTERM stopped publishing; what is done is kept and a re-run finishes the job."""

    exit_code = 130
