"""Tenants' weights and reservations as a claim passes them to ``iq_pick``.

Fair sharing itself runs inside the pick (the Lua library): one virtual token counter per
partition, model and class. A Lua call may only touch its own slot, so the weights and
reservations that the ``tenants`` registry keeps under :data:`keys.TENANT_SHARES` (another
slot) ride in the pick's arguments; a worker re-reads them every ``shares_refresh_s``.
"""

from __future__ import annotations

import json
import logging
import time

from pydantic import ValidationError

from queueing import keys
from queueing.connection import Client
from queueing.errors import translated
from queueing.tenancy import TenantShare

log = logging.getLogger(__name__)


class SharesArgs:
    """The pick's ``weights`` and ``reserved`` arguments for one model, kept fresh."""

    def __init__(
        self, client: Client, model: str, partitions: int, refresh_s: float, burst_s: float
    ) -> None:
        self.client = client
        self.model = model
        self.partitions = partitions
        self.refresh_s = refresh_s
        self.burst_s = burst_s
        self.weights = "{}"
        self.reserved = "{}"
        self._read_at = float("-inf")

    async def refresh(self, *, force: bool = False) -> bool:
        """Re-read the registry when ``refresh_s`` has passed since the last read; True when
        the reservations changed."""
        now = time.monotonic()
        if not force and now - self._read_at < self.refresh_s:
            return False
        self._read_at = now
        with translated("cannot read the tenants' shares"):
            raw: dict[str, str] = await self.client.hgetall(keys.TENANT_SHARES)
        before = self.reserved
        self.set({tenant: _parsed(tenant, text) for tenant, text in raw.items()})
        return self.reserved != before

    @property
    def any_reserved(self) -> bool:
        """True when some tenant reserved throughput of this model."""
        return self.reserved != "{}"

    def set(self, shares: dict[str, TenantShare | None]) -> None:
        """The arguments for these shares (``None``: an unreadable entry, the defaults)."""
        weights: dict[str, float] = {}
        reserved: dict[str, list[float]] = {}
        for tenant, share in shares.items():
            if share is None:
                continue
            if share.weight != 1.0:
                weights[tenant] = share.weight
            rate = share.reserved.get(self.model)
            if rate:
                per_partition = rate / self.partitions
                reserved[tenant] = [per_partition, per_partition * self.burst_s]
        self.weights = json.dumps(weights, separators=(",", ":"))
        self.reserved = json.dumps(reserved, separators=(",", ":"))


def _parsed(tenant: str, text: str) -> TenantShare | None:
    try:
        return TenantShare.model_validate_json(text)
    except ValidationError as exc:
        log.warning("tenant %s: unreadable share %r (%s); using weight 1", tenant, text, exc)
        return None
