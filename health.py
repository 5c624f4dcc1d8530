"""Health: is the process up (``/healthz``), can it do its work (``/readyz``).

Liveness says only that the process answers: a load balancer or Kubernetes restarts a
process that stops answering it, and nothing outside the process may fail it (a
database outage must not restart every API process at once). Readiness asks each
collaborator the process needs whether it is reachable now (the ledger, the archive,
the broker when the process sends tasks), each under a time limit, all at once;
a probe that fails takes the process out of the load balancer until it passes again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from invoicer.logs import mask

__all__ = ["Check", "Readiness", "check_all"]

Check = Callable[[], object]
"""A probe: returns if its collaborator is reachable, raises if not."""


@dataclass(frozen=True)
class Readiness:
    """Every probe's answer: ``"ok"``, or why not (masked: no personal data)."""

    checks: Mapping[str, str]

    @property
    def ready(self) -> bool:
        return all(v == "ok" for v in self.checks.values())


def check_all(checks: Mapping[str, Check], timeout: float = 3.0) -> Readiness:
    """Run every probe at once, each given ``timeout`` seconds."""
    if not checks:
        return Readiness({})
    # Not a `with` block: its exit would wait for a probe stuck past the timeout.
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="readyz")
    futures = {name: pool.submit(check) for name, check in checks.items()}
    results = {}
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            results[name] = "ok"
        except FutureTimeout:
            results[name] = f"no answer within {timeout:g} s"
        except Exception as exc:  # any failure of a probe is the answer, not an error
            results[name] = mask(f"{type(exc).__name__}: {exc}")[:300]
    pool.shutdown(wait=False, cancel_futures=True)
    return Readiness(results)
