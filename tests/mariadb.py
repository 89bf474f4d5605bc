"""A throwaway MariaDB server in a temporary folder (docs/testing.md#mariadb: ready in a fraction of
a second), for the test suite and the benchmarks, so neither touches a shared database."""

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


class ThrowawayMariaDB:
    """A private server in ``root`` on a free port; ``stop``/``start`` keep its data and port,
    so a test can restart the database under a running vidgen."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        self._server: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            shutil.chown(root, "mysql", "mysql")
        command = [
            _binary("mariadb-install-db"),
            "--no-defaults",
            *self._user,
            f"--datadir={root / 'data'}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
        for attempt in range(3):  # it has failed once under heavy load; say why if it persists
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode == 0:
                break
            shutil.rmtree(root / "data", ignore_errors=True)
            time.sleep(0.5 * (attempt + 1))
        else:
            raise MariaDBUnavailable(
                f"mariadb-install-db failed ({done.returncode}): {done.stderr[-1500:]}"
            )

    @property
    def _user(self) -> list[str]:
        return ["--user=mysql"] if self._as_root else []

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root:@127.0.0.1:{self.port}/{DATABASE}?charset=utf8mb4"

    def start(self) -> None:
        self._server = subprocess.Popen(
            [
                _binary("mariadbd"),
                "--no-defaults",
                *self._user,
                f"--datadir={self.root / 'data'}",
                f"--socket={self.root / 's.sock'}",
                f"--pid-file={self.root / 'm.pid'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                "--innodb-flush-log-at-trx-commit=2",
                "--skip-log-bin",
                "--max-connections=500",
                f"--log-error={self.root / 'err.log'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_until_up()
        connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="")
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE IF NOT EXISTS {DATABASE} "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        connection.close()

    def _wait_until_up(self) -> None:
        assert self._server is not None
        log = self.root / "err.log"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise MariaDBUnavailable(f"the throwaway MariaDB exited: {tail}")
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="").close()
                return
            except pymysql.err.OperationalError:
                time.sleep(0.05)
        raise MariaDBUnavailable("the throwaway MariaDB did not answer within 30 s")

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.terminate()
        try:
            self._server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait(timeout=10)
        self._server = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


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
    server = ThrowawayMariaDB(scratch_folder())
    try:
        server.start()
        yield server.url
    finally:
        server.remove()


def scratch_folder() -> Path:
    # Not below /tmp/pytest-of-root, which is 0700: the mysql user could not reach its datadir.
    return Path(f"/tmp/vidgen-mariadb-{os.getpid()}-{free_port()}")
