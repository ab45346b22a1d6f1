"""The planner's architecture check of upstream wheels: a wheel whose binaries lie is not "available".

`wheelfarm plan --check-upstream` passes `upstream_wheel_problem` as the planner's wheel-check hook.
"""

from __future__ import annotations

from builder.common.upstream import DistFile, IndexClient

from .core import check_wheel


def upstream_wheel_problem(wheel: DistFile, target: str) -> str | None:
    """None when the upstream wheel passes the checker, else the first error finding as a reason.

    The wheel is downloaded once (sha256-verified) into the cache and reused by later plans.
    """
    with IndexClient() as client:
        local = client.download(wheel)
    errors = [f for f in check_wheel(local).findings if f.severity == "error"]
    if not errors:
        return None
    first = errors[0]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"upstream wheel fails the architecture check: {first.rule} {first.path}{more}"
