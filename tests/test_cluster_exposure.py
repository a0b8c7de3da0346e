"""The local SLURM cluster of ``scripts/slurm/start.sh`` opens nothing: its daemons listen on
one address (loopback unless ``BIND_ADDR`` says otherwise), never on all interfaces; its folder
is root's; its database password is its own; and the script's temporary ``policy-rc.d`` goes
away however the script ends. See docs/security.md.

The first tests need a running cluster (the ``slurm_cluster`` fixture of test_slurm.py); the
others run ``start.sh`` up to its first step only, as root.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_slurm import SCRIPTS
from .test_slurm import slurm_cluster as slurm_cluster

pytestmark = pytest.mark.slurm

START = SCRIPTS / "start.sh"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="start.sh runs as root")
WILDCARDS = {"0.0.0.0", "*", "::", "[::]"}
#: Whether this machine has a policy-rc.d of its own (start.sh must leave it alone).
HAD_POLICY = Path("/usr/sbin/policy-rc.d").exists()


def _conf(path: Path) -> list[dict[str, str]]:
    """The lines of a slurm.conf-like file, each as its KEY=VALUE pairs."""
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(dict(pair.split("=", 1) for pair in line.split() if "=" in pair))
    return lines


def _value(lines: list[dict[str, str]], key: str) -> str:
    return next(line[key] for line in lines if key in line)


def _listening() -> dict[int, set[str]]:
    """Port -> the local addresses listening on it (TCP), from ``ss -ltnH``."""
    if shutil.which("ss") is None:
        pytest.skip("no ss (iproute2)")
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    ports: dict[int, set[str]] = {}
    for line in out.splitlines():
        address, _, port = line.split()[3].rpartition(":")
        address = re.sub(r"%.*$", "", address)  # 127.0.0.1%lo -> 127.0.0.1
        ports.setdefault(int(port), set()).add(address)
    return ports


@pytest.fixture
def cluster_folder(slurm_cluster) -> Path:
    return Path(os.environ["SLURM_CONF"]).parent.parent


def _expected_listeners(folder: Path) -> list[tuple[str, str, int]]:
    """(daemon, address, port) of each daemon of the cluster, from its configuration."""
    conf = _conf(folder / "etc" / "slurm.conf")
    ctld_addr = re.fullmatch(r"[^(]+\(([^)]+)\)", _value(conf, "SlurmctldHost"))
    assert ctld_addr, _value(conf, "SlurmctldHost")
    expected = [
        ("slurmctld", ctld_addr.group(1), int(_value(conf, "SlurmctldPort"))),
        (
            "slurmdbd",
            _value(conf, "AccountingStorageHost"),
            int(_value(conf, "AccountingStoragePort")),
        ),
    ]
    for node in (line for line in conf if "NodeName" in line):
        port = node.get("Port") or _value(conf, "SlurmdPort")
        expected.append((f"slurmd of {node['NodeName']}", node["NodeAddr"], int(port)))
    dbd = folder / "etc" / "slurmdbd.conf"
    if os.access(dbd, os.R_OK):
        dbd_conf = _conf(dbd)
        expected.append(("mariadbd", "127.0.0.1", int(_value(dbd_conf, "StoragePort"))))
    return expected


def test_each_daemon_listens_on_its_one_address_only(cluster_folder: Path):
    listening = _listening()
    bind = os.environ.get("BIND_ADDR", "127.0.0.1")
    report = []
    for daemon, address, port in _expected_listeners(cluster_folder):
        actual = listening.get(port, set())
        report.append(f"{daemon} :{port} configured {address}, listening on {sorted(actual)}")
        assert actual, f"nothing listens on port {port} ({daemon})"
        assert not actual & WILDCARDS, f"{daemon} listens on all interfaces: {report[-1]}"
        assert actual == {address}, report[-1]
        assert address.startswith("127.") or address == bind, report[-1]
    print("\n".join(report))


@needs_root
def test_the_folder_and_the_database_password_are_roots_only(cluster_folder: Path):
    info = cluster_folder.stat()
    assert info.st_uid == 0 and not info.st_mode & 0o022, oct(info.st_mode)
    password_file = cluster_folder / "etc" / "slurmdb.password"
    dbd = cluster_folder / "etc" / "slurmdbd.conf"
    for path in (password_file, dbd):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    password = password_file.read_text().strip()
    assert re.fullmatch(r"[A-Za-z0-9]{16,}", password)
    assert password not in ("slurm-local", "slurmpw")  # the fixed ones of older scripts
    assert _value(_conf(dbd), "StoragePass") == password


# ---------------------------------------------------------------- start.sh before any daemon


@pytest.fixture
def root_folder() -> Iterator[Path]:
    """A folder start.sh accepts to work in: root's, mode 755, right under /tmp (pytest's own
    folders are 700, and munged needs o+x on every folder above its socket)."""
    folder = Path(tempfile.mkdtemp(dir="/tmp", prefix="xpm-train-start-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _run_start(folder: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(START), str(folder)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _open_subfolder(folder: Path) -> None:
    (folder / "run").mkdir()
    (folder / "run").chmod(0o777)


@needs_root
@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: os.chown(d, 65534, -1), "owned by uid 65534, not root"),
        (lambda d: d.chmod(0o775), "writable by group or others (mode 775"),
        (lambda d: d.chmod(0o757), "writable by group or others (mode 757"),
        (_open_subfolder, "/run is not root's only"),
    ],
    ids=["other-owner", "group-writable", "world-writable", "open-subfolder"],
)
def test_start_refuses_a_folder_others_could_write(root_folder: Path, setup, message):
    cluster = root_folder / "cluster"
    cluster.mkdir()
    cluster.chmod(0o755)
    setup(cluster)
    before = sorted(p.name for p in cluster.iterdir())
    done = _run_start(cluster)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "refusing" in errors[0] and message in errors[0], done.stderr
    assert sorted(p.name for p in cluster.iterdir()) == before  # nothing written or started


@needs_root
def test_start_creates_nothing_under_a_folder_others_could_write(root_folder: Path):
    (root_folder / "open").mkdir()
    (root_folder / "open").chmod(0o777)
    done = _run_start(root_folder / "open" / "cluster")
    assert done.returncode == 1
    assert "the folder above it" in done.stderr and "(mode 777" in done.stderr, done.stderr
    assert not list((root_folder / "open").iterdir())


def _can_hide_usr_sbin() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--mount", "--propagation", "private", "mount", "--bind", "/tmp", "/mnt"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_hide_usr_sbin(), reason="needs root and mount namespaces")
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGHUP", "apt-get fails"])
def test_the_temporary_policy_rc_d_is_removed_however_start_ends(root_folder: Path, how: str):
    """start.sh in a mount namespace where /usr/sbin is an empty folder (so that it writes its
    own policy-rc.d there) and apt-get is a fake one that waits: interrupted (as by Ctrl-C, a
    timeout or a closed terminal: the signal goes to the process group) or failing, the script
    exits without leaving its policy-rc.d behind."""
    sbin, fake = root_folder / "sbin", root_folder / "bin"
    sbin.mkdir()
    fake.mkdir()
    started = root_folder / "apt-get-started"
    apt = f"#!/bin/sh\ntouch {started}\n" + ("exit 1\n" if how == "apt-get fails" else "sleep 60\n")
    for name, text in (("apt-get", apt), ("dpkg-query", "#!/bin/sh\nexit 1\n")):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    policy = sbin / "policy-rc.d"
    process = subprocess.Popen(
        [
            # as in a terminal: a test run started in the background (nohup, `cmd &` in a
            # script) ignores SIGINT and SIGHUP, and what is ignored stays ignored across exec
            *("env", "--default-signal=INT,HUP"),
            *("unshare", "--mount", "--propagation", "private"),
            *("sh", "-c", 'mount --bind "$0" /usr/sbin && exec "$@"', str(sbin)),
            *(str(START), str(root_folder / "cluster")),
        ],
        env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        end = time.monotonic() + 30
        while not started.exists() and process.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert started.exists(), process.communicate(timeout=10)[0]
        if how.startswith("SIG"):
            assert policy.read_text() == "#!/bin/sh\nexit 101\n"  # there while apt-get runs
            os.killpg(process.pid, getattr(signal, how))
        output = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode != 0, output
    assert not policy.exists(), output
    assert Path("/usr/sbin/policy-rc.d").exists() == HAD_POLICY  # the machine's is untouched
