"""A throwaway MariaDB server in a temporary folder (TOOLCHAIN.md §2: ready in a fraction of a
second), for the test suite and the benchmarks, so neither touches a shared database."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymysql
from sqlalchemy.engine import make_url

DATABASE = "vidgen_test"


class MariaDBUnavailable(RuntimeError):
    """No MariaDB could be started or reached; the message says what to install or set."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise MariaDBUnavailable(
        f"{name} not found: install MariaDB (apt-get install mariadb-server) "
        "or set VIDGEN_TEST_DATABASE_URL to a MariaDB the tests may use"
    )


def _start(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    data = root / "data"
    root.mkdir(parents=True, exist_ok=True)
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(root, "mysql", "mysql")
    user = ["--user=mysql"] if as_root else []
    subprocess.run(
        [
            _binary("mariadb-install-db"),
            "--no-defaults",
            *user,
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            _binary("mariadbd"),
            "--no-defaults",
            *user,
            f"--datadir={data}",
            f"--socket={root / 's.sock'}",
            f"--pid-file={root / 'm.pid'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--innodb-flush-log-at-trx-commit=2",
            "--skip-log-bin",
            "--max-connections=500",
            f"--log-error={root / 'err.log'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server, port


def _wait_until_up(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise MariaDBUnavailable(f"the throwaway MariaDB exited: {tail}")
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="root", password="").close()
            return
        except pymysql.err.OperationalError:
            time.sleep(0.05)
    raise MariaDBUnavailable("the throwaway MariaDB did not answer within 30 s")


def own_database(url: str, suffix: str) -> str:
    """A database of its own (``<name>_<suffix>``) on a given server, created if missing."""
    parsed = make_url(url)
    name = f"{parsed.database or DATABASE}_{suffix}"
    connection = pymysql.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE DATABASE IF NOT EXISTS `{name}` "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    connection.close()
    return parsed.set(database=name).render_as_string(hide_password=False)


@contextmanager
def throwaway_mariadb() -> Iterator[str]:
    """Start a private MariaDB; yield its SQLAlchemy URL; stop it and delete its files."""
    # Not below /tmp/pytest-of-root, which is 0700: the mysql user could not reach its datadir.
    root = Path(f"/tmp/vidgen-mariadb-{os.getpid()}-{free_port()}")
    server, port = _start(root)
    try:
        _wait_until_up(port, server, root / "err.log")
        connection = pymysql.connect(host="127.0.0.1", port=port, user="root", password="")
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        connection.close()
        yield f"mysql+pymysql://root:@127.0.0.1:{port}/{DATABASE}?charset=utf8mb4"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(root, ignore_errors=True)
