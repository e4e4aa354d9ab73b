"""A failed pip/npm/python -m build ends in one line carrying the tool's own first cause.

The transcripts are what the tools print (npm 10, pip 24, build 1.2); the subprocess test
runs a real child process that writes npm's output and exits 1, as npm does.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from layer_builder.build import sdk
from layer_builder.errors import InstallError
from layer_builder.proc import first_error_line, run
from tests.helpers.paths import REPO

NPM_NOTARGET = """\
npm error code ETARGET
npm error notarget No matching version found for @sentry/aws-serverless@10.2.3.
npm error notarget In most cases you or one of your dependencies are requesting
npm error notarget a package version that doesn't exist.
npm error A complete log of this run can be found in: /root/.npm/_logs/2026-11-23-debug-0.log
"""
NPM_NETWORK = """\
npm error code ENOTFOUND
npm error syscall getaddrinfo
npm error errno ENOTFOUND
npm error network request to https://registry.npmjs.org/@sentry%2faws-serverless failed, reason: getaddrinfo ENOTFOUND registry.npmjs.org
npm error network This is a problem related to network connectivity.
npm error A complete log of this run can be found in: /root/.npm/_logs/x.log
"""  # noqa: E501
PIP_NO_VERSION = """\
ERROR: Could not find a version that satisfies the requirement sentry-sdk==9.9.9 (from versions: 0.1.0, 0.1.1, 0.1.2, 2.74.0, 2.75.0)
ERROR: No matching distribution found for sentry-sdk==9.9.9
"""  # noqa: E501
BUILD_NOT_A_PROJECT = """\
* Creating isolated environment: venv+pip...
ERROR Source /src/sdk does not appear to be a Python project: no pyproject.toml or setup.py
"""


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (
            NPM_NOTARGET,
            "npm error notarget No matching version found for @sentry/aws-serverless@10.2.3.",
        ),  # fmt: skip
        (
            NPM_NETWORK,
            "npm error network request to https://registry.npmjs.org/"
            "@sentry%2faws-serverless failed, reason: getaddrinfo ENOTFOUND "
            "registry.npmjs.org",
        ),  # fmt: skip
        (
            PIP_NO_VERSION,
            "ERROR: Could not find a version that satisfies the requirement "
            "sentry-sdk==9.9.9 (from versions: 0.1.0, ..., 2.74.0, 2.75.0)",
        ),  # fmt: skip
        (
            BUILD_NOT_A_PROJECT,
            "ERROR Source /src/sdk does not appear to be a Python project: "
            "no pyproject.toml or setup.py",
        ),  # fmt: skip
        ("/usr/bin/python3: No module named build\n", "/usr/bin/python3: No module named build"),
        ("", "no output"),
    ],
    ids=["npm-notarget", "npm-network", "pip-no-version", "build-not-a-project", "plain", "none"],
)
def test_the_first_cause_not_a_log_path(output: str, line: str) -> None:
    assert first_error_line(output.splitlines()) == line


def test_a_failing_tool_is_one_line_naming_the_cause() -> None:
    script = textwrap.dedent(f"""\
        import sys
        sys.stdout.write({NPM_NOTARGET!r})
        sys.exit(1)
    """)
    with pytest.raises(InstallError, match="npm error notarget") as exc:
        run([sys.executable, "-c", script], what="npm install of @sentry/aws-serverless@10.2.3")
    message = str(exc.value)
    assert message == (
        "npm install of @sentry/aws-serverless@10.2.3 failed: npm error notarget No matching "
        "version found for @sentry/aws-serverless@10.2.3. (details with -v)"
    )
    assert "\n" not in message and "_logs" not in message


def test_a_local_checkout_without_build_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    # `build` is a run-time dependency; an install made with --no-deps lacks it.
    real = sdk.importlib.util.find_spec
    monkeypatch.setattr(
        sdk.importlib.util, "find_spec", lambda name, *a: None if name == "build" else real(name)
    )
    with pytest.raises(
        InstallError, match=r"needs the `build` package .* pip install 'build>=1.2'"
    ):
        sdk._require_build_frontend(tmp_path)  # type: ignore[arg-type]


def test_build_is_a_runtime_dependency() -> None:

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert any(d.startswith("build") for d in project["project"]["dependencies"])
