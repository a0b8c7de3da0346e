"""The native kernel's cache is trusted only when nobody else could have written the library:
an unsafe cached library is not loaded, the kernel is built privately instead, with a warning."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from xpm_train.models import native

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler to build the kernel"
)

# In a fresh process: the kernel is registered once per process.
KERNEL = """
import warnings
from xpm_train.models import native
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    kernel = native.kernel()
print("AVAILABLE", kernel.available)
print("DETAIL", kernel.detail)
print("DESCRIBE", kernel.describe())
print("WARNINGS", [str(w.message) for w in caught])
"""


def _kernel(cache: Path) -> dict[str, str]:
    env = {**os.environ, native.CACHE_VAR: str(cache)}
    env.pop(native.ENV_VAR, None)
    done = subprocess.run(
        [sys.executable, "-c", KERNEL], env=env, capture_output=True, text=True, check=True
    )
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kernel, built once for the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(native.CACHE_VAR, str(tmp_path_factory.mktemp("kernels") / "cache"))
        return native.build()


@pytest.fixture
def cached(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the module's kernel in a fresh cache folder, as build() leaves it: the
    library's path."""
    monkeypatch.setenv(native.CACHE_VAR, str(tmp_path / "kernels"))
    path = native.library_path()
    assert path.name == built.name
    path.parent.mkdir(mode=0o700)
    shutil.copyfile(built, path)
    path.chmod(0o755)
    return path


@needs_compiler
def test_a_cache_built_here_is_private_and_loaded(built: Path):
    # build() made the folder (mode 700) and the library (not writable by others), whatever
    # the umask.
    assert stat.S_IMODE(built.parent.stat().st_mode) == 0o700
    assert not built.stat().st_mode & 0o022
    assert native.untrusted_reason(built) is None
    status = _kernel(built.parent)
    assert status["AVAILABLE"] == "True" and status["DETAIL"] == str(built)
    assert status["DESCRIBE"] == "native attention kernel" and status["WARNINGS"] == "[]"


def _check_not_loaded(cached: Path, reason: str) -> None:
    assert reason in (native.untrusted_reason(cached) or "")
    before = cached.read_bytes()
    status = _kernel(cached.parent)
    # The kernel works, but from a private copy, not from the unsafe file.
    assert status["AVAILABLE"] == "True", status
    assert status["DETAIL"] != str(cached)
    private = Path(status["DETAIL"]).parent
    assert private.name.startswith("xpm-train-kernel-") and not private.exists()  # removed
    assert "built privately" in status["DESCRIBE"] and reason in status["DESCRIBE"]
    assert "not used" in status["WARNINGS"] and "chmod go-w" in status["WARNINGS"]
    assert cached.read_bytes() == before  # the unsafe file is left alone


@needs_compiler
def test_a_group_writable_library_is_not_loaded(cached: Path):
    cached.chmod(0o775)
    _check_not_loaded(cached, "writable by group or others (mode 775)")


@needs_compiler
@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_library_of_another_user_is_not_loaded(cached: Path):
    os.chown(cached, 65534, 65534)
    cached.chmod(0o755)
    _check_not_loaded(cached, "is owned by uid 65534")


@needs_compiler
def test_a_folder_others_can_write_is_not_trusted(cached: Path):
    cached.parent.chmod(0o777)  # anyone could replace the library: it is not loaded
    _check_not_loaded(cached, "is writable by group or others (mode 777)")
    cached.parent.chmod(0o1777)  # sticky (like /tmp): only the owner can replace it
    assert native.untrusted_reason(cached) is None


def test_a_symlink_is_not_loaded(tmp_path: Path):
    target = tmp_path / "elsewhere.so"
    target.write_bytes(b"")
    link = tmp_path / "attention-0.so"
    link.symlink_to(target)
    assert "not a regular file" in (native.untrusted_reason(link) or "")


def test_a_missing_cache_is_fine(tmp_path: Path):
    assert native.untrusted_reason(tmp_path / "kernels" / "attention-0.so") is None
    assert native.untrusted_reason(tmp_path / "attention-0.so") is None


def test_without_a_compiler_an_unsafe_cache_leaves_the_jax_code(tmp_path: Path, monkeypatch):
    """Nothing to build the private copy with: the unsafe file is still not loaded (it is not a
    library: loading it would fail with another error), the JAX implementation runs."""
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setenv(native.CACHE_VAR, str(tmp_path))
    unsafe = native.library_path()
    unsafe.write_bytes(b"not a library")
    unsafe.chmod(0o666)
    status = _kernel(tmp_path)
    assert status["AVAILABLE"] == "False"
    assert "no C++ compiler 'no-such-compiler'" in status["DETAIL"]
    assert "not used" in status["WARNINGS"] and "Install a C++ compiler" in status["WARNINGS"]
    assert [p.name for p in tmp_path.iterdir()] == [unsafe.name]
