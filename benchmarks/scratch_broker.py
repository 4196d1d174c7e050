"""A scratch RabbitMQ virtual host for Celery, for tests and benchmarks.

Both run real Celery workers against the machine's RabbitMQ, each on a virtual host of its own
(so no other run's queues mix with theirs), removed afterwards. Kept free of pytest so the
benchmarks can use it too; tests turn `BrokerUnavailable` into a skip (or a failure on CI).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


class BrokerUnavailable(RuntimeError):
    """RabbitMQ is not installed, or refused a virtual host, or does not answer."""


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(  # noqa: S603 - a fixed argument list
        [shutil.which("rabbitmqctl") or "rabbitmqctl", *args],
        check=True,
        capture_output=True,
        timeout=60,
    )


@contextmanager
def fresh_vhost(prefix: str) -> Iterator[str]:
    """A new virtual host the `guest` user may use, deleted on exit; yields its broker URL."""
    from batch_platform import execution

    if shutil.which("rabbitmqctl") is None:
        raise BrokerUnavailable("RabbitMQ (rabbitmqctl) is not installed here")
    vhost = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        _rabbitmqctl("add_vhost", vhost)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        raise BrokerUnavailable(
            f"RabbitMQ: rabbitmqctl could not add a virtual host ({error})"
        ) from None
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        url = f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}"
        try:
            execution.check_broker(url)
        except execution.BrokerUnreachableError as error:
            raise BrokerUnavailable(str(error)) from None
        yield url
    finally:
        _rabbitmqctl("delete_vhost", vhost)
