"""`smoke` treats the zip as hostile: checked before anything is unpacked, unpacked without
following links, and the layer's processes run unprivileged with only a private /tmp writable.

Every case goes through ``layer-builder smoke`` and asserts the exit code, one ``error:`` line
naming the zip, and that nothing outside the test's unpack directory changed (a directory the
links aim at, the working directory).
"""

from __future__ import annotations

import json
import os
import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from layer_builder.aws.facts import MAX_UNZIPPED_BYTES
from layer_builder.cli import main
from layer_builder.smoke import environment
from tests.helpers.smoke_layers import extension, make_layer


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path)] = (st.st_mode, path.read_bytes() if stat.S_ISREG(st.st_mode) else b"")
    return out


def _entry(zf: zipfile.ZipFile, name: str, data: bytes | str, mode: int) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    zf.writestr(info, data)


def _hostile(path: Path, entries: list[tuple[str, bytes | str, int]]) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")  # a duplicate name is the point of one case
        _entry(zf, "python/ok.py", "", 0o100644)
        for name, data, mode in entries:
            _entry(zf, name, data, mode)
    return path


LINK = stat.S_IFLNK | 0o777
FILE = stat.S_IFREG | 0o644

#: name -> (entries given the outside directory's path, what the error line says)
CASES = {
    "symlink out, then a member through it": (
        lambda out: [("python/zlink", str(out), LINK), ("python/zlink/pwned.txt", "x", FILE)],
        "symlinks leaving the layer",
    ),
    "relative symlink out": (
        lambda out: [("python/up", "../../../../../../../../" + str(out)[1:], LINK)],
        "symlinks leaving the layer",
    ),
    "symlink then a file of the same name": (
        lambda out: [("python/t", str(out / "target.txt"), LINK), ("python/t", "over", FILE)],
        "duplicate member names",
    ),
    "dot-dot name": (
        lambda out: [(f"python/../../../../../../../..{out}/zs.txt", "x", FILE)],
        "unsafe member names",
    ),
    "absolute name": (lambda out: [(f"{out}/abs.txt", "x", FILE)], "unsafe member names"),
    "link through a link": (
        lambda out: [("python/a", "..", LINK), ("python/b", "a/../..", LINK)],
        "through a symlink",
    ),
    "member under an inside link": (
        lambda out: [("python/d", "sub", LINK), ("python/d/x.py", "x", FILE)],
        "under a symlink",
    ),
    "device node": (lambda out: [("python/dev", "", stat.S_IFCHR | 0o666)], "devices"),
    "fifo": (lambda out: [("python/fifo", "", stat.S_IFIFO | 0o644)], "pipes"),
    "setuid file": (lambda out: [("python/su", "#!/bin/sh\n", stat.S_IFREG | 0o4755)], "set-id"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_zip_is_refused_before_anything_is_unpacked(
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("keep me\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    entries, says = CASES[case]
    z = _hostile(tmp_path / "hostile.zip", entries(outside))
    before = _snapshot(outside), _snapshot(cwd)
    code = main(["smoke", str(z), "--no-baseline"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {z}: refused before unpacking")
    assert says in err
    assert (_snapshot(outside), _snapshot(cwd)) == before


def test_an_encrypted_member_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z = make_layer(tmp_path / "enc.zip")
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        infos = zf.infolist()
    # The encryption bit (0x1) in the first member's local and central headers.
    data[infos[0].header_offset + 6] |= 1
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 1
    z.write_bytes(bytes(data))
    for command in (["smoke", str(z), "--no-baseline"], ["verify", str(z)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {z}: encrypted member(s)")


def test_an_oversize_layer_fails_smoke_on_lambdas_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z = tmp_path / "big.zip"
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("python/zeros.bin")
        info.external_attr = FILE << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as out:
            for _ in range(MAX_UNZIPPED_BYTES // len(chunk) + 1):
                out.write(chunk)
    assert main(["smoke", str(z), "--no-baseline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {z}: refused before unpacking" in err
    assert "bytes unzipped; Lambda allows 262,144,000" in err


def test_a_link_inside_the_layer_is_kept(tmp_path: Path) -> None:
    z = make_layer(tmp_path / "l.zip", files={"python/helper.py": "X = 1\n"})
    with zipfile.ZipFile(z, "a") as zf:
        _entry(zf, "python/alias.py", "helper.py", LINK)
    dest = tmp_path / "unpacked"
    environment.unpack_layer(z, dest)
    assert os.readlink(dest / "python/alias.py") == "helper.py"
    assert (dest / "python/alias.py").read_text() == "X = 1\n"


def _outer_uid(uid_line: str, uid_map: str) -> int:
    """The host's uid of a process that saw ``uid_line`` in its own namespace."""
    inner = int(uid_line.split()[1])
    for row in uid_map.strip().splitlines():
        start, outer, count = (int(x) for x in row.split())
        if start <= inner < start + count:
            return outer + inner - start
    raise AssertionError(f"uid {inner} is not mapped: {uid_map!r}")


def test_the_layers_processes_are_unprivileged_and_write_only_tmp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o777)  # even a directory anyone may write to stays untouched
    home = Path.home() / f".layer-builder-smoke-test-{os.getpid()}"
    secret = tmp_path / "secret.txt"  # under the host's temporary directory, readable by all
    secret.write_text("s3cr3t\n")
    secret.chmod(0o644)
    probe = (
        "#!/bin/sh\n"
        'echo "uid: $(grep ^Uid: /proc/self/status | cut -f2)"\n'
        "echo \"map: $(cat /proc/self/uid_map | tr -s ' ' | tr '\\n' ';')\"\n"
        f"echo pwned > {outside}/pwned 2>/dev/null && echo wrote-outside\n"
        f"echo pwned > {home} 2>/dev/null && echo wrote-home\n"
        "echo pwned > /opt/pwned 2>/dev/null && echo wrote-opt\n"
        "echo ok > /tmp/ok && echo wrote-tmp\n"
        f"cat {secret} 2>/dev/null\n"
        "ls /opt/extensions/ | sed 's/^/opt-has: /'\n"
        "exec /opt/relay/ext\n"
    )
    z = make_layer(
        tmp_path / "probe.zip",
        extensions={"sentry-lambda-extension": probe},
        files={"relay/ext": extension(name="sentry-lambda-extension")},
    )
    code = main(["smoke", str(z), "--no-baseline", "--json", "-v", "--invocations", "2"])
    out = capsys.readouterr().out
    (layer,) = json.loads(out)["layers"]
    assert code == 0, layer
    if "mounted at /opt" not in layer["mount"]:
        pytest.skip(f"no private mount here: {layer['mount']}")
    log = next(text for name, text in layer["logs"].items() if "sentry-lambda-extension" in name)
    uid_line = next(line for line in log.splitlines() if line.startswith("uid: "))
    map_line = next(line for line in log.splitlines() if line.startswith("map: "))
    uid_map = map_line[5:].replace(";", "\n")
    assert _outer_uid(uid_line, uid_map) != 0, log
    assert "wrote-tmp" in log
    assert "wrote-outside" not in log and "wrote-home" not in log and "wrote-opt" not in log
    assert list(outside.iterdir()) == [] and not home.exists()
    assert "s3cr3t" not in log  # the host's /tmp is not what the layer sees
    assert "opt-has: sentry-lambda-extension" in log  # /opt is the layer
    assert not Path("/tmp/ok").exists() or Path("/tmp/ok").read_text() != "ok\n"


def test_a_dropped_connection_is_logged_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    # A layer's process that drops its connection mid-request (killed at shutdown, or
    # hostile) made the stdlib server print a 19-line traceback before the run's error line.
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from layer_builder.smoke.api import LoopbackServer

    for cls, printed in ((ThreadingHTTPServer, True), (LoopbackServer, False)):
        server = cls(("127.0.0.1", 0), BaseHTTPRequestHandler)
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            server.handle_error(None, ("127.0.0.1", 1))
        finally:
            server.server_close()
        err = capsys.readouterr().err
        assert ("Traceback" in err) is printed, (cls, err)
