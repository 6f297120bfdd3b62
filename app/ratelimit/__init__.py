"""Rate limits for every request under /api/v1 (issue 25; API.md "Rate limits (v1.2)").

limiter.py holds the decisions (which key, which policy, the verdict, failing open);
redis_windows.py counts in Redis, and coalescing.py lets a worker's concurrent checks share a
round trip; middleware.py applies them to requests before any route runs, and adds the
draft-11 fields.
docs/adr/0301-rate-limits.md and 0302 say why it is built this way.
"""
