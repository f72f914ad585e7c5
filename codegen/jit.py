"""Derived systems and compiled kernels, cached on disk and loaded without SymPy when warm.

Two kinds of cache entry, both written through :func:`.cache.get_artifact` (exclusive-create lock,
atomic writes, a ``.ready`` marker holding the artifact's sha256, rebuilt when it does not match):

* a **system record**: the JSON of :meth:`System.to_dict` (expressions as whitelisted trees, loaded
  without executing code), keyed by the sha256 of the derive package's sources and the derivation's
  arguments, so any change to the derivation is a new key;
* a **kernel**: the generated NumPy module or the compiled C library of a system, keyed by the
  system's fingerprint, :data:`CODEGEN_VERSION`, the sha256 of the codegen package's sources (printers
  and runtime templates), the backend and, for C, the compiler (path, size, mtime), its flags and the
  platform (the interpreter's SOABI).

A warm call reads the record (JSON), checks both markers and loads the kernel; SymPy is imported only
to derive, to generate or to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from . import cache
from .runtime import CKernel, Kernel, NumpyKernel
from .version import CODEGEN_VERSION

#: Flags of every C build (``-fopenmp`` is dropped when the compiler refuses it).
C_FLAGS = ("-O2", "-std=c99", "-shared", "-fPIC", "-fopenmp")
BACKENDS = ("auto", "numpy", "c")


def find_compiler() -> str | None:
    """Path of the system C compiler (``$CC``, ``cc``, ``gcc`` or ``clang``), or None."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name:
            path = shutil.which(name)
            if path:
                return path
    return None


def compiler_identity() -> str:
    """The compiler as it is on disk (resolved path, size, mtime): a new compiler is a new key."""
    path = find_compiler()
    if path is None:
        return "none"
    real = os.path.realpath(path)
    st = os.stat(real)
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def compile_shared(source: Path, target: Path) -> None:
    """``cc C_FLAGS -o target source -lm``; raises RuntimeError with the compiler output."""
    compiler = find_compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found")
    cmd = [compiler, *C_FLAGS, "-o", str(target), str(source), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        cmd.remove("-fopenmp")
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr.strip()}")


def resolve_backend(backend: str) -> str:
    """``auto`` → ``c`` when a C compiler exists, else ``numpy`` (``c`` without one warns and uses NumPy)."""
    from ..derive.errors import UserError

    if backend not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if backend == "numpy":
        return "numpy"
    if find_compiler() is None:
        if backend == "c":
            print("sobolev-rf: warning: no C compiler found, using the NumPy backend", file=sys.stderr)
        return "numpy"
    return "c"


_SOURCE_HASH: dict[str, str] = {}


def package_source_hash(package: str) -> str:
    """sha256 over the names and bytes of a package's ``.py`` files and templates (read once per process)."""
    if package not in _SOURCE_HASH:
        spec = find_spec(package)
        folders = list(spec.submodule_search_locations or []) if spec else []
        h = hashlib.sha256()
        for folder in folders:
            files = [*Path(folder).rglob("*.py"), *Path(folder).rglob("*.tmpl")]
            for path in sorted(files):
                h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        _SOURCE_HASH[package] = h.hexdigest()
    return _SOURCE_HASH[package]


def system_record(producer: str, args: Mapping[str, Any], derive: Callable[[], Any]) -> dict[str, Any]:
    """The cached :meth:`System.to_dict` of ``derive()``; ``producer`` and ``args`` name the derivation.

    The key holds the derive package's source hash, so a changed derivation is derived again.
    """
    key = cache.artifact_key(
        package_source_hash("sobolev_rf.derive"), json.dumps({"producer": producer, **args}, sort_keys=True), "system"
    )
    path = cache.get_artifact(cache.cache_dir(), key, "json", "json", lambda: json.dumps(derive().to_dict()))
    digest = cache.verified_hash(path)
    if digest not in _RECORDS:
        _RECORDS[digest] = json.loads(path.read_text())
    return _RECORDS[digest]


#: Parsed system records, by the sha256 of their verified file.
_RECORDS: dict[str, dict[str, Any]] = {}


def record_names(record: Mapping[str, Any], part: str) -> tuple[str, ...]:
    """Names of a record's ``unknowns``, ``parameters`` or ``outputs``."""
    if part == "outputs":
        return tuple(name for name, _ in record["outputs"])
    return tuple(tree[1] for tree in record[part])


def system_from_record(record: Mapping[str, Any]) -> Any:
    """The System of a record (imports SymPy)."""
    from ..derive.system import System

    return System.from_dict(record)


_LOADED: dict[str, Kernel] = {}


def load_kernel(record: Mapping[str, Any], backend: str) -> Kernel:
    """The kernel of a system record for ``backend`` (``numpy`` or ``c``), generated and built if needed."""
    fingerprint = f"{record['fingerprint']}|{package_source_hash('sobolev_rf.codegen')}"
    names = record_names(record, "unknowns"), record_names(record, "parameters"), record_names(record, "outputs")
    if backend == "c":
        platform = f"{compiler_identity()}|{' '.join(C_FLAGS)}|{sysconfig.get_config_var('SOABI')}"
        key = cache.artifact_key(fingerprint, CODEGEN_VERSION, f"c|{platform}")

        def generate_c() -> str:
            from .c.printer import generate_c_source

            return generate_c_source(system_from_record(record))

        path = cache.get_artifact(cache.cache_dir(), key, "c", "so", generate_c, compile_shared)
        digest = cache.verified_hash(path)
        if digest not in _LOADED:
            _LOADED[digest] = CKernel(path, *names)
        return _LOADED[digest]
    key = cache.artifact_key(fingerprint, CODEGEN_VERSION, "numpy")

    def generate_numpy() -> str:
        from .numpy.printer import generate_numpy_source

        return generate_numpy_source(system_from_record(record))

    path = cache.get_artifact(cache.cache_dir(), key, "py", "py", generate_numpy)
    digest = cache.verified_hash(path)
    if digest not in _LOADED:
        _LOADED[digest] = NumpyKernel(path.read_text(), f"sobolev_rf_generated_{key[:16]}")
    return _LOADED[digest]
