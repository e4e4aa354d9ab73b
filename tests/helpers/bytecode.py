"""Compiling a tree to bytecode and zipping it in a fresh process, for the byte-identity
tests of precompiled layers (hash seed, umask, TZ and interpreter settings of that process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def compile_and_zip(workdir: Path, compile_call: str, umask: int, env: dict[str, str]) -> bytes:
    """Run ``compile_call`` (``compile_tree(root, ...)``) on ``workdir`` and zip it, from a
    fresh process with that umask and environment (hash seed, TZ, interpreter settings); the
    zip's bytes."""
    script = textwrap.dedent(f"""\
        import os
        from pathlib import Path
        from layer_builder.build.bytecode import compile_tree
        from layer_builder.build.zipper import write_zip
        os.umask({umask})
        root = Path({str(workdir)!r})
        {compile_call}
        write_zip(root, root.parent / (root.name + ".zip"), source_date_epoch=315532800)
        """)
    subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, check=True)
    return workdir.with_name(workdir.name + ".zip").read_bytes()
