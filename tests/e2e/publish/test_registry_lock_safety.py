"""The registry lock cannot be turned against the machine: it lives in a directory only its
user can create entries in, that directory is checked (a real directory, the user's own,
writable by nobody else), and the lock file is opened without following a symlink. Where
the tests run as root, another user really plants the directory and the symlink."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from layer_builder.errors import RegistryError
from layer_builder.registry.files import lock_dir, lock_path, registry_lock
from tests.helpers.faultproxy import FaultProxy
from tests.helpers.histories import NEW, Env, build, run_publish

NOBODY = 65534


@pytest.mark.parametrize(
    ("xdg", "home", "expected"),
    [
        ("/run/user/1000", "/home/me", "/run/user/1000/layer-builder"),
        ("", "/home/me", "/home/me/.cache/layer-builder/locks"),
        ("relative/run", "/home/me", "/home/me/.cache/layer-builder/locks"),
        ("", "", f"{tempfile.gettempdir()}/layer-builder-locks-{os.geteuid()}"),
    ],
)
def test_the_lock_directory_is_the_users_own(
    monkeypatch: pytest.MonkeyPatch, xdg: str, home: str, expected: str
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", xdg)
    monkeypatch.setenv("HOME", home)
    assert lock_dir() == Path(expected)


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    return tmp_path / "run" / "layer-builder"


def _take(root: Path) -> None:
    with registry_lock(root, wait=0):
        pass


def test_a_symlinked_lock_directory_is_refused(tmp_path: Path, run_dir: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    run_dir.symlink_to(elsewhere)
    with pytest.raises(RegistryError, match=r"lock directory .* is not a directory \(a symbolic"):
        _take(tmp_path / "registry")
    assert list(elsewhere.iterdir()) == []


def test_a_lock_directory_others_can_write_is_refused(tmp_path: Path, run_dir: Path) -> None:
    run_dir.mkdir()
    run_dir.chmod(0o777)
    with pytest.raises(RegistryError, match=r"is writable by other users \(mode 777\)"):
        _take(tmp_path / "registry")


def test_a_symlink_planted_as_the_lock_file_is_not_followed(tmp_path: Path, run_dir: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    root = tmp_path / "registry"
    run_dir.mkdir(mode=0o700)
    lock_path(root).symlink_to(victim)
    with pytest.raises(RegistryError, match="cannot open the registry lock"):
        _take(root)
    assert victim.read_text() == "precious\n"


def test_a_lock_file_that_is_no_regular_file_is_refused(tmp_path: Path, run_dir: Path) -> None:
    root = tmp_path / "registry"
    run_dir.mkdir(mode=0o700)
    os.mkfifo(lock_path(root))
    with pytest.raises(RegistryError, match="is not a regular file of this user's"):
        _take(root)


def test_the_lock_directory_and_file_are_private(tmp_path: Path, run_dir: Path) -> None:
    root = tmp_path / "registry"
    _take(root)
    assert (run_dir.stat().st_mode & 0o777, lock_path(root).stat().st_mode & 0o777) == (
        0o700,
        0o600,
    )


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory everyone may create entries in, like /tmp (tmp_path is private)."""
    path = Path(tempfile.mkdtemp(prefix="lb-shared-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_nobody(*argv: str) -> None:
    subprocess.run(argv, user=NOBODY, group=NOBODY, check=True, cwd="/", capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_users_planted_lock_cannot_make_a_root_publish_truncate_a_file(
    env: Env,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    shared_tmp: Path,
) -> None:
    cfg, dist, registry, endpoint = env
    build(cfg, dist, NEW)
    victim = shared_tmp / "victim"
    victim.write_text("root's precious file\n")
    victim.chmod(0o644)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared_tmp))
    planted = lock_path(registry)
    # Another (unprivileged) user creates the lock directory and plants the lock's name.
    _as_nobody("mkdir", "-m", "777", str(planted.parent))
    _as_nobody("ln", "-s", str(victim), str(planted))
    with FaultProxy(endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, _, err = run_publish(capsys, cfg, NEW, dist, registry)
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {registry}: the registry lock directory {planted.parent}")
    assert f"belongs to uid {NOBODY}" in last and "Traceback" not in err
    assert victim.read_text() == "root's precious file\n"
    assert proxy.count() == 0  # refused before any AWS call
    assert not registry.exists()
