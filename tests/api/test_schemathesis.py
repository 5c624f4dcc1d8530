"""schemathesis against the served OpenAPI document, over the real server: no 5xx.

Bounded: a few examples per operation, no stateful phase, a minute at most. A billing
key rides along so that the billing operations get past authentication; subscriber
operations get a live session token.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.api.subscriber_client import session  # noqa: E402


@schemathesis.serializer("application/x-ndjson")
def _json_lines(ctx, value) -> bytes:
    # The bill-run upload: whatever was generated, as bytes (mostly not records at all).
    return value if isinstance(value, bytes) else str(value).encode()


def test_no_operation_answers_5xx(sub):
    schema = schemathesis.openapi.from_url(f"{sub.url}/openapi.json")
    token = session(sub)
    failures, calls = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        path = operation.path
        headers = ({"Authorization": f"Bearer {sub.tokens['billing']}"}
                   if path.startswith("/v1/billing") else
                   {"Authorization": f"Bearer {token}"} if path.startswith("/v1/subscriber")
                   else {})

        @settings(max_examples=8, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            # Called at once, in this iteration: the loop variable is the one meant.
            response = case.call(base_url=sub.url, headers=headers, timeout=30)  # noqa: B023
            calls.append(response.status_code)
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, response.status_code,
                                 response.text[:200]))

        run()
    assert failures == []
    assert len(calls) > 40 and any(c < 300 for c in calls), calls
