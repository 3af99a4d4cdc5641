"""``make key``: create an API key in the running ``make run`` stack; the token is the last line."""

from __future__ import annotations

import argparse
import json
import os
import sys

from local.run import FAKE_ENV, STATE_DIR


def main(argv: list[str] | None = None) -> int:
    """Create the tenant if needed and a key for it, against the running local stack."""
    parser = argparse.ArgumentParser(prog="make key")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--scopes", default="ingest,read")
    args = parser.parse_args(argv)
    state_dir = os.environ.get("LOCAL_STATE_DIR", str(STATE_DIR))
    try:
        with open(os.path.join(state_dir, "run.json")) as lock:
            running = json.load(lock)
        os.kill(running["pid"], 0)
    except (OSError, ValueError, KeyError):
        print("make key needs the local stack: start `make run` in another terminal first.", file=sys.stderr)
        return 1
    os.environ.update(FAKE_ENV)
    from tools.meterctl import run

    endpoint = f"http://127.0.0.1:{running['dynamodb_port']}"
    return run(["--endpoint-url", endpoint, "create-key", "--tenant", args.tenant, "--scopes", args.scopes])


if __name__ == "__main__":
    sys.exit(main())
