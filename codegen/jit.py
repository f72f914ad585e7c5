"""Derived systems and compiled kernels, cached on disk and loaded without SymPy when warm.

Two kinds of cache entry, both written through :func:`.cache.load_artifact` (an exclusive lock that
names its owner, atomic writes, a ``.ready`` marker holding the artifact's sha256; rebuilt when it does
not match, or when the entry does not load):

* a **system record**: the JSON of :meth:`System.to_dict` (expressions as whitelisted trees, loaded
  without executing code), keyed by the sha256 of the derive package's sources and the derivation's
  arguments, so any change to the derivation is a new key;
* a **kernel**: the generated NumPy module or the compiled C library of a system, keyed by the
  system's fingerprint, :data:`CODEGEN_VERSION`, the sha256 of the codegen package's sources (printers
  and runtime templates), the backend and, for C, the compiler (path, size, mtime), its flags and the
  platform (the interpreter's SOABI).

A warm call reads the record (JSON), checks both markers and loads the kernel; SymPy is imported only
to derive, to generate or to rebuild. The C backend is used only when the compiler builds a trivial
library (checked once per compiler, cached like a kernel); otherwise, or when a kernel does not build or
load, the NumPy backend is used with one warning line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeVar, cast

from . import cache
from .runtime import CKernel, Kernel, NumpyKernel
from .version import CODEGEN_VERSION

K = TypeVar("K")

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


def compile_shared(source: Path, target: Path, flags: Sequence[str] = C_FLAGS) -> None:
    """``cc flags -o target source -lm`` (without ``-fopenmp`` when that fails); raises RuntimeError with the
    compiler's exit status and output (its first line says what failed)."""
    compiler = find_compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found")
    cmd = [compiler, *flags, "-o", str(target), str(source), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 and "-fopenmp" in cmd:
        cmd.remove("-fopenmp")
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        output = proc.stderr.strip() or proc.stdout.strip()
        raise RuntimeError(
            f"the C compiler {compiler} failed (exit status {proc.returncode})"
            + (f": {output}" if output else "")
            + f"\ncommand: {' '.join(cmd)}"
        )


#: A trivial library: the compiler works when it builds this.
PROBE_SOURCE = "int sr_probe(void) { return 42; }\n"
_COMPILER_PROBLEMS: dict[str, str | None] = {}


def _platform() -> str:
    """What besides the source decides a compiled library: compiler, flags, interpreter ABI."""
    return f"{compiler_identity()}|{' '.join(C_FLAGS)}|{sysconfig.get_config_var('SOABI')}"


def compiler_problem() -> str | None:
    """Why no C kernel can be built here, in one line (None: the compiler works). The check builds
    :data:`PROBE_SOURCE` once per compiler (kept in the cache; a failure is tried again next process)."""
    platform = _platform()
    if platform not in _COMPILER_PROBLEMS:
        problem = None
        if find_compiler() is None:
            problem = "no C compiler found"
        else:
            key = cache.artifact_key(platform, CODEGEN_VERSION, "c-probe")
            try:
                cache.get_artifact(
                    cache.cache_dir(), key, "c", "so", lambda: PROBE_SOURCE, compile_shared, what="a test library"
                )
            except cache.CodegenError as exc:
                problem = str(exc.__cause__ or exc).splitlines()[0]
        _COMPILER_PROBLEMS[platform] = problem
    return _COMPILER_PROBLEMS[platform]


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        cache.warn(message)


def resolve_backend(backend: str) -> str:
    """``auto`` → ``c`` when the C compiler works, else ``numpy``; with one warning line when a compiler
    exists but does not work, or when ``c`` was asked for."""
    from ..derive.errors import UserError

    if backend not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if backend == "numpy":
        return "numpy"
    problem = compiler_problem()
    if problem is None:
        return "c"
    if backend == "c" or find_compiler() is not None:
        _warn_once(f"{problem}; using the NumPy backend")
    return "numpy"


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
    named = json.dumps({"producer": producer, **args}, sort_keys=True)
    key = cache.artifact_key(package_source_hash("sobolev_rf.derive"), named, "system")
    return cache.load_artifact(
        cache.cache_dir(),
        key,
        "json",
        "json",
        lambda: json.dumps(derive().to_dict()),
        _load_record,
        what=f"the derived system {named}",
    )


#: Parsed system records, by the sha256 of their verified file.
_RECORDS: dict[str, dict[str, Any]] = {}


def _load_record(path: Path) -> dict[str, Any]:
    """The system record in ``path``, checked for what a warm call reads (anything else raises)."""
    digest = cache.verified_hash(path)
    if digest not in _RECORDS:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not all(
            isinstance(record[k], str) for k in ("format", "name", "fingerprint")
        ):
            raise ValueError("not a system record")
        names = [record_names(record, part) for part in ("unknowns", "parameters", "outputs")]
        if not all(isinstance(n, str) for part in names for n in part):
            raise ValueError("a system record whose names are not strings")
        _RECORDS[digest] = record
    return _RECORDS[digest]


def record_names(record: Mapping[str, Any], part: str) -> tuple[str, ...]:
    """Names of a record's ``unknowns``, ``parameters`` or ``outputs``."""
    if part == "outputs":
        return tuple(name for name, _ in record["outputs"])
    return tuple(tree[1] for tree in record[part])


def system_from_record(record: Mapping[str, Any]) -> Any:
    """The System of a record (imports SymPy)."""
    from ..derive.system import System

    return System.from_dict(record)


#: Kernels bound in this process, by the content hash of their cache file.
_LOADED: dict[str, Any] = {}


def loaded(path: Path, make: Callable[[Path], K]) -> K:
    """The kernel ``make(path)`` of a verified cache file, bound once per content hash in this process."""
    digest = cache.verified_hash(path)
    if digest not in _LOADED:
        _LOADED[digest] = make(path)
    return cast(K, _LOADED[digest])


def load_kernel(record: Mapping[str, Any], backend: str) -> Kernel:
    """The kernel of a system record for ``backend`` (``numpy`` or ``c``), generated and built if needed
    (a C kernel that does not build or load: the NumPy one, with one warning line)."""
    fingerprint = f"{record['fingerprint']}|{package_source_hash('sobolev_rf.codegen')}"
    names = record_names(record, "unknowns"), record_names(record, "parameters"), record_names(record, "outputs")
    if backend == "c":
        key = cache.artifact_key(fingerprint, CODEGEN_VERSION, f"c|{_platform()}")

        def generate_c() -> str:
            from .c.printer import generate_c_source

            return generate_c_source(system_from_record(record))

        try:
            return cache.load_artifact(
                cache.cache_dir(),
                key,
                "c",
                "so",
                generate_c,
                lambda path: loaded(path, lambda p: CKernel(p, *names)),
                compile_shared,
                f"the C kernel of {record['name']}",
            )
        except cache.CodegenError as exc:
            _warn_once(f"{str(exc).splitlines()[0]}; using the NumPy backend")
    key = cache.artifact_key(fingerprint, CODEGEN_VERSION, "numpy")

    def generate_numpy() -> str:
        from .numpy.printer import generate_numpy_source

        return generate_numpy_source(system_from_record(record))

    def load_numpy(path: Path) -> Kernel:
        return loaded(path, lambda p: NumpyKernel(p.read_text(), f"sobolev_rf_generated_{key[:16]}"))

    return cache.load_artifact(
        cache.cache_dir(), key, "py", "py", generate_numpy, load_numpy, what=f"the NumPy kernel of {record['name']}"
    )
