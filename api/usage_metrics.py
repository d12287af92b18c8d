"""Usage per tenant and model as Prometheus counters, read from Redis at scrape time.

The counts are the queue's all-time totals (``keys.usage_total``), the same from every API
process: aggregate them with ``max``, not ``sum``, across API processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from queueing.usage import OUTCOMES, UsageRow


class UsageCollector(Collector):
    """Counters of the rows last read: units, tokens, requests by outcome."""

    def __init__(self) -> None:
        self.rows: Sequence[UsageRow] = ()

    def collect(self) -> Iterator[Metric]:
        """The counter families of ``rows``."""
        labels = ["tenant", "model"]
        units = CounterMetricFamily("inferq_tenant_units", "Model units used", labels=labels)
        tokens = CounterMetricFamily(
            "inferq_tenant_tokens", "Tokens the engine read and wrote", labels=[*labels, "kind"]
        )
        requests = CounterMetricFamily(
            "inferq_tenant_requests", "Finished requests by outcome", labels=[*labels, "outcome"]
        )
        for row in self.rows:
            units.add_metric([row.tenant, row.model], row.units)
            tokens.add_metric([row.tenant, row.model, "prompt"], row.prompt_tokens)
            tokens.add_metric([row.tenant, row.model, "completion"], row.completion_tokens)
            for outcome in OUTCOMES:
                requests.add_metric([row.tenant, row.model, outcome], row.requests[outcome])
        yield from (units, tokens, requests)
