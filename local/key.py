"""``make key`` and ``make redrive``: meterctl against the running ``make run`` stack."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from local.run import FAKE_ENV, STATE_DIR


def running_stack() -> dict | None:
    """Ports of the running ``make run`` stack, or None if it is not running."""
    state_dir = os.environ.get("LOCAL_STATE_DIR", str(STATE_DIR))
    try:
        with open(os.path.join(state_dir, "run.json")) as lock:
            running = json.load(lock)
        os.kill(running["pid"], 0)
    except (OSError, ValueError, KeyError):
        return None
    return running


def main(argv: list[str] | None = None) -> int:
    """``make key``: create the tenant if needed and a key for it (the token is the last line).

    ``make redrive WHICH=aggregation|ingest|alerts`` runs ``meterctl redrive`` instead,
    ``make reconcile`` runs ``meterctl reconcile``, and ``make events`` prints the EventBridge
    events the stack has put on the (recorded) bus.
    """
    parser = argparse.ArgumentParser(prog="make key")
    parser.add_argument("--tenant")
    parser.add_argument("--scopes", default="ingest,read")
    parser.add_argument("--rate-limit", help="requests per second for this key (0 = unlimited)")
    parser.add_argument("--redrive", choices=["aggregation", "ingest", "alerts"])
    parser.add_argument("--reconcile", action="store_true")
    parser.add_argument("--events", action="store_true")
    args = parser.parse_args(argv)
    running = running_stack()
    if running is None:
        print("This needs the local stack: start `make run` in another terminal first.", file=sys.stderr)
        return 1
    if args.events:
        from local.eventbridge import EventRecorder

        state_dir = os.environ.get("LOCAL_STATE_DIR", str(STATE_DIR))
        for event in EventRecorder(Path(state_dir) / "eventbridge.jsonl").recorded():
            print(json.dumps(event))
        return 0
    os.environ.update(FAKE_ENV)
    from tools.meterctl import run

    endpoint = ["--endpoint-url", f"http://127.0.0.1:{running['dynamodb_port']}"]
    if args.reconcile:
        return run([*endpoint, "reconcile"])
    if args.redrive:
        sqs = f"http://127.0.0.1:{running['sqs_port']}"
        return run([*endpoint, "redrive", args.redrive, "--sqs-endpoint-url", sqs])
    if not args.tenant:
        parser.error("--tenant is required")
    limit = ["--rate-limit", args.rate_limit] if args.rate_limit else []
    return run([*endpoint, "create-key", "--tenant", args.tenant, "--scopes", args.scopes, *limit])


if __name__ == "__main__":
    sys.exit(main())
