"""Prometheus metrics for the gateway and the platform, exported at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter(
    "hearth_gateway_requests",
    "Gateway requests by alias, deployment and outcome status",
    ["alias", "deployment", "status"],
)
LATENCY = Histogram(
    "hearth_gateway_request_seconds",
    "End-to-end latency of gateway requests",
    ["alias", "deployment"],
    buckets=_LATENCY_BUCKETS,
)
TTFT = Histogram(
    "hearth_gateway_time_to_first_token_seconds",
    "Time to the first streamed token",
    ["alias", "deployment"],
    buckets=_LATENCY_BUCKETS,
)
TOKENS = Counter("hearth_gateway_tokens", "Tokens processed", ["alias", "deployment", "direction"])
QUEUE_DEPTH = Gauge("hearth_gateway_queue_depth", "Requests waiting for a deployment slot", ["deployment"])
IN_FLIGHT = Gauge("hearth_gateway_in_flight", "Requests running on a deployment", ["deployment"])
ATTEMPTS = Counter(
    "hearth_gateway_deployment_attempts",
    "Attempts on a deployment by result (ok, retry, error)",
    ["deployment", "result"],
)
COOLDOWNS = Counter("hearth_gateway_cooldowns", "Times a deployment was put in cooldown", ["deployment"])
RATE_LIMITED = Counter("hearth_rate_limited", "Requests refused by per-key rate limits", ["limit"])
