"""A worker process for chaos tests: the real Worker with the scripted engine, model ``m``.

``python -m tests.workers.worker_proc URL CONSUMER [options]``; on exit it prints one JSON
line with the engine's started, aborted and finished request ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from queueing.settings import QueueSettings, Settings, WorkerSettings
from tests.workers.support import SPEC
from workers.engines.scripted import ScriptedEngine
from workers.loop import run_worker


def main() -> None:
    """Parse arguments, run the worker, report what the engine saw."""
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("consumer")
    parser.add_argument("--lease-ms", type=int, default=800)
    parser.add_argument("--max-deliveries", type=int, default=3)
    parser.add_argument("--token-delay", type=float, default=0.1)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    settings = Settings(
        queue=QueueSettings(
            lease_ms=args.lease_ms,
            max_deliveries=args.max_deliveries,
            partitions=args.partitions,
        ),
        worker=WorkerSettings(unit_budget=1.0, renew_every_ms=200, flush_ms=20, flush_tokens=4),
    )
    engine = ScriptedEngine(token_delay_s=args.token_delay)
    asyncio.run(
        run_worker(args.url, SPEC, engine, settings, grace_s=args.grace, consumer=args.consumer)
    )
    seen = {"started": engine.started, "aborted": engine.aborted, "finished": engine.finished}
    print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    main()
