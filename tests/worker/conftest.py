"""Real peers for the Celery worker tests: brokers, moto's S3, aiosmtpd, and ``celery
worker`` / ``celery beat`` subprocesses (PostgreSQL: ``pg_url`` of ``tests/conftest.py``).

Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672, guest/guest) are the machine's own;
each test gets a Redis database of its own (flushed) or a RabbitMQ vhost of its own
(deleted afterwards), so other users of those servers never see our queues. A service
that is down is started once (``redis-server --daemonize yes``, ``rabbitmq-server
-detached``); if it still cannot be reached the test is skipped, or fails under ``CI``.

The broker-restart test needs brokers it may restart: a private ``redis-server`` on a
free port, and a private RabbitMQ node (its own node name, port and data folder,
restarted with ``rabbitmqctl stop_app``/``start_app``), so the shared servers are never
interrupted.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import REGION, SmtpServer, closed_port

ROOT = Path(__file__).resolve().parents[2]


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI is set: the service is required)")
    pytest.skip(what)


def _reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


def _ensure(port: int, start: list[str], name: str, wait: float) -> None:
    if _reachable(port):
        return
    if shutil.which(start[0]):
        subprocess.run(start, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60, check=False)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _reachable(port):
                return
            time.sleep(0.5)
    _missing(f"{name} is not reachable on 127.0.0.1:{port}")


# ---------------------------------------------------------------------------- brokers

@contextlib.contextmanager
def _leased_redis_db() -> Iterator[int]:
    """A Redis database (10-15) no other test session is using: several pytest runs may
    share the machine's Redis, and a flush of a database in use would lose their queues.
    The lease is a key in database 0, taken with SET NX and given back afterwards (it
    expires by itself if this session dies)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=0)
    owner = f"{os.getpid()}-{secrets.token_hex(4)}"
    deadline = time.monotonic() + 600
    while True:
        for db in range(10, 16):
            if client.set(f"invoicer-test:db-lease:{db}", owner, nx=True, ex=3600):
                try:
                    yield db
                finally:
                    if client.get(f"invoicer-test:db-lease:{db}") == owner.encode():
                        client.delete(f"invoicer-test:db-lease:{db}")
                    client.close()
                return
        assert time.monotonic() < deadline, "no free Redis test database for 10 minutes"
        time.sleep(1)


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest) -> Iterator[str]:
    """A broker URL of this test's own: a flushed Redis database or a new vhost."""
    if request.param == "redis":
        _ensure(6379, ["redis-server", "--daemonize", "yes"], "Redis", 15)
        with _leased_redis_db() as db:
            url = f"redis://127.0.0.1:6379/{db}"
            subprocess.run(["redis-cli", "-n", str(db), "flushdb"], check=True,
                           capture_output=True, timeout=30)
            yield url
            subprocess.run(["redis-cli", "-n", str(db), "flushdb"], capture_output=True,
                           timeout=30)
        return
    _ensure(5672, ["rabbitmq-server", "-detached"], "RabbitMQ", 90)
    vhost = f"invoicer-test-{secrets.token_hex(4)}"
    ctl = ["rabbitmqctl", "-q"]
    subprocess.run([*ctl, "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    subprocess.run([*ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True, timeout=60)
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run([*ctl, "delete_vhost", vhost], capture_output=True, timeout=60)


class PrivateRedis:
    """A redis-server of our own on a free port, without persistence: a restart loses
    every queued message, the harshest broker restart there is."""

    def __init__(self, workdir: Path) -> None:
        self.port = closed_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        while not _reachable(self.port):
            assert time.monotonic() < deadline, "private redis-server did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def restart(self, down: float = 1.0) -> None:
        self.stop()
        time.sleep(down)
        self.start()


class PrivateRabbit:
    """A RabbitMQ node of our own (node name, port, data folder): restarting it with
    ``stop_app``/``start_app`` interrupts nobody else. Durable queues and persistent
    messages (Celery's defaults) survive the restart, as they would in production."""

    def __init__(self, workdir: Path) -> None:
        self.port = closed_port()
        self.node = f"invoicer{os.getpid()}@localhost"
        self.workdir = workdir
        workdir.chmod(0o777)  # the node runs as the rabbitmq user when started as root
        (workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n", encoding="utf-8")
        self.env = {**os.environ, "RABBITMQ_NODENAME": self.node,
                    "RABBITMQ_NODE_PORT": str(self.port),
                    "RABBITMQ_DIST_PORT": str(closed_port()),
                    "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq"),
                    "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
                    "RABBITMQ_LOG_BASE": str(workdir / "log"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "plugins"),
                    "RABBITMQ_PID_FILE": str(workdir / "pid")}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(["rabbitmqctl", "-q", "-n", self.node, *args], env=self.env,
                       check=True, capture_output=True, timeout=timeout)

    def start(self) -> None:
        self.proc = subprocess.Popen(["rabbitmq-server"], env=self.env, cwd=self.workdir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 90
        while not _reachable(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                _missing("a private RabbitMQ node could not be started")
            time.sleep(0.3)

    def restart(self, down: float = 1.0) -> None:
        self.ctl("stop_app")
        time.sleep(down)
        self.ctl("start_app")

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.ctl("shutdown", timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def private_broker(request: pytest.FixtureRequest) -> Iterator:
    """A broker this test may restart, of the kind ``request.param`` names."""
    import tempfile

    # Not under pytest's tmp folder: that is private to root (0700), and RabbitMQ's
    # scripts run the node as the rabbitmq user.
    workdir = Path(tempfile.mkdtemp(prefix="invoicer-broker-"))
    if not shutil.which("redis-server" if request.param == "redis" else "rabbitmq-server"):
        _missing(f"no {request.param} server installed")
    server = PrivateRedis(workdir) if request.param == "redis" else PrivateRabbit(workdir)
    try:
        server.start()  # inside: a node that starts too slowly is still stopped
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------- processes


class Celery:
    """``celery -A invoicer.worker worker`` (and ``beat``) subprocesses with one environment.

    Every process gets a session of its own; :meth:`close` SIGKILLs each group, so a
    pool child orphaned by a killed main process goes too.
    """

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.workers: dict[str, subprocess.Popen] = {}
        self.others: list[subprocess.Popen] = []
        self.groups: set[int] = set()

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        out = open(self.workdir / log, "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "invoicer.worker", *args],
                                env=self.env, cwd=self.workdir, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.groups.add(proc.pid)
        return proc

    def worker(self, name: str, concurrency: int = 1) -> subprocess.Popen:
        proc = self._spawn(["worker", "-n", f"{name}@%h", "-c", str(concurrency),
                            "--without-gossip", "--without-mingle", "--loglevel=INFO"],
                           f"{name}.log")
        self.workers[name] = proc
        return proc

    def beat(self) -> subprocess.Popen:
        proc = self._spawn(["beat", "-s", str(self.workdir / "beat-schedule"),
                            "--loglevel=INFO"], "beat.log")
        self.others.append(proc)
        return proc

    def children(self, name: str) -> list[int]:
        """The pool processes of a worker (its main process's children)."""
        found = subprocess.run(["pgrep", "-P", str(self.workers[name].pid)],
                               capture_output=True, text=True).stdout.split()
        return [int(p) for p in found]

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        for proc in [*self.workers.values(), *self.others]:
            with contextlib.suppress(Exception):
                proc.wait(10)


@pytest.fixture
def smtp_server_fresh() -> SmtpServer:
    """An SMTP server of this test's own: the worker tests count what reaches it."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def harness(tmp_path, broker, pg_url, smtp_server_fresh, moto_endpoint, bucket):
    """A worker test's world (see :class:`tests.worker.harness.Harness`)."""
    from tests.worker.harness import Harness  # it builds on Celery, above

    archive = (f"s3://{bucket}/archive?endpoint={moto_endpoint}&region={REGION}")
    h = Harness(tmp_path, broker, pg_url, smtp_server_fresh, archive)
    h.bucket, h.endpoint = bucket, moto_endpoint
    yield h
    h.celery.close()
    h.ledger.close()
