"""AWS list prices the project estimates costs with: one source for `bench/async_cost.py` and GetTaskMetrics.

us-east-1 list prices, without free tiers, not re-read online from this offline machine: an estimate to
compare tasks and policies by, not a bill.
"""

from __future__ import annotations

#: AWS Step Functions, Standard workflows: per state transition.
PRICE_PER_TRANSITION = 0.025 / 1000
PRICE_SOURCE = (
    "$0.025 per 1,000 state transitions: AWS Step Functions pricing, Standard workflows, us-east-1 "
    "(https://aws.amazon.com/step-functions/pricing/), the list price quoted in issue 7 (2026); not "
    "re-read online from this offline machine; the 4,000 free transitions a month are left out"
)
#: AWS Lambda, x86_64 (the architecture every function is deployed with): per GB-second of billed duration.
PRICE_PER_LAMBDA_GB_SECOND = 0.0000166667
#: AWS Lambda: per request.
PRICE_PER_LAMBDA_REQUEST = 0.20 / 1_000_000
LAMBDA_PRICE_SOURCE = (
    "$0.0000166667 per GB-second and $0.20 per 1M requests: AWS Lambda pricing, x86_64, us-east-1 "
    "(https://aws.amazon.com/lambda/pricing/), first tier; the free tier is left out"
)


def estimated_cost(state_transitions: int, lambda_gb_seconds: float, lambda_requests: int) -> float:
    """Dollars for a task's state transitions and its functions' invocations, at the prices above."""
    return (
        state_transitions * PRICE_PER_TRANSITION
        + lambda_gb_seconds * PRICE_PER_LAMBDA_GB_SECOND
        + lambda_requests * PRICE_PER_LAMBDA_REQUEST
    )
