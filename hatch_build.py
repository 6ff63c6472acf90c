"""Hatchling build hook: compiles the optional C accelerators next to their sources.

Each ``src/cachemigrate/**/_name.c`` in ``EXTENSIONS`` becomes ``_name<EXT_SUFFIX>`` in the same
directory, so an editable install (which puts ``src`` on ``sys.path``) imports it directly, and a
wheel gets it through ``force_include`` (the ``.so`` is git-ignored, so hatchling would skip it).

The compiler comes from ``sysconfig`` (``CC``, ``LDSHARED``; the ``CC`` env var overrides). Every
module has a pure-Python fallback, so a failed compile (no compiler, no ``Python.h``, a C error) is
one warning and a pure-Python build. ``CACHEMIGRATE_NO_EXT=1`` skips compiling and removes the
in-place ``.so`` files, so the fallback is what gets imported.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# Paths relative to the project root. Add new accelerators here.
EXTENSIONS = ["src/cachemigrate/formats/rdb/_walk.c", "src/cachemigrate/protocol/_frames.c"]

CFLAGS = ["-O3", "-fno-strict-aliasing", "-fPIC", "-DNDEBUG", "-Wall"]


def _ext_path(source: Path) -> Path:
    return source.with_name(source.stem + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))


def _compiler(var: str, fallback_flags: list[str]) -> list[str]:
    """``CC``/``LDSHARED`` from the env or sysconfig; plain ``cc``/``gcc`` if that one is missing."""
    cmd = shlex.split(os.environ.get(var) or sysconfig.get_config_var(var) or "")
    if cmd and shutil.which(cmd[0]):
        return cmd
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return [name, *fallback_flags]
    raise RuntimeError("no C compiler found (cc, gcc or clang)")


def _build(source: Path, target: Path) -> None:
    """Compile and link ``source`` into ``target`` (atomically replaced: a running process may
    still have the old one loaded)."""
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        raise RuntimeError(f"Python.h not found in {include} (install the python3-dev package)")
    cc = _compiler("CC", [])
    ldshared = _compiler("LDSHARED", ["-shared"])
    with tempfile.TemporaryDirectory(prefix="cachemigrate-ext-") as tmp:
        obj = Path(tmp) / (source.stem + ".o")
        out = Path(tmp) / target.name
        for cmd in (
            [*cc, *CFLAGS, f"-I{include}", "-c", str(source), "-o", str(obj)],
            [*ldshared, str(obj), "-o", str(out)],
        ):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                output = (proc.stderr or proc.stdout).strip()
                raise RuntimeError(f"`{shlex.join(cmd)}` failed:\n{output}")
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(out, partial)
        os.replace(partial, target)


class CustomBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        skip = os.environ.get("CACHEMIGRATE_NO_EXT", "") not in ("", "0")
        built: list[Path] = []
        for rel in EXTENSIONS:
            source = root / rel
            target = _ext_path(source)
            if skip or not source.is_file():
                # A stale in-place build would shadow the pure-Python fallback.
                target.unlink(missing_ok=True)
                continue
            try:
                _build(source, target)
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                target.unlink(missing_ok=True)
                self.app.display_warning(
                    f"cachemigrate: WARNING: could not compile {rel}; using the pure-Python "
                    f"fallback (slower). Reason: {exc}"
                )
                continue
            built.append(target)
        if skip:
            self.app.display_info("cachemigrate: CACHEMIGRATE_NO_EXT set, C extensions not built")
        if not built or version == "editable":
            # Editable installs import the .so from src/; nothing to put in the wheel.
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        for target in built:
            build_data["force_include"][str(target)] = target.relative_to(root / "src").as_posix()

    def clean(self, versions: list[str]) -> None:
        for rel in EXTENSIONS:
            _ext_path(Path(self.root) / rel).unlink(missing_ok=True)
