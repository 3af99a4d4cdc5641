"""Measure how DynamoDB Local's write speed degrades as stream records pile up (persistent mode),
and what shedding the stream (what `make run` does at start-up past a threshold) gives back.

    .venv/bin/python bench/stream_growth.py [--records 12000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "shared")]

from local import services  # noqa: E402
from local.run import configure_environment  # noqa: E402
from local.template import Stack  # noqa: E402


def noop_handler(event, context):
    """Stands in for the aggregator: the cost measured here is DynamoDB Local's, not ours."""
    return {"state": {}, "batchItemFailures": []}


def timed_puts(client, table: str, prefix: str, count: int) -> float:
    def put(i: int) -> None:
        client.put_item(TableName=table, Item={"pk": {"S": f"{prefix}{i}"}, "ts": {"N": str(i)}})

    started = time.perf_counter()
    with ThreadPoolExecutor(1) as pool:
        list(pool.map(put, range(count)))
    return time.perf_counter() - started


def start_poller(stack: Stack, table: str) -> threading.Event:
    """Run the stream mapping as make run does, with a no-op function."""
    from local.streams import StreamMapping
    from local.template import Function

    source = stack.stream_source_of("AggregateStreamFunction")
    function = Function("Noop", Path(__file__).parent, "stream_growth.noop_handler", {}, {})
    stop = threading.Event()
    mapping = StreamMapping(source, function, table, lambda _: None)
    threading.Thread(target=mapping.run, args=(stop,), daemon=True).start()
    return stop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=12_000)
    args = parser.parse_args()
    port = services.free_port()
    configure_environment(Stack(), port, services.free_port())
    import boto3

    from local.run import ensure_tables

    with tempfile.TemporaryDirectory() as data:
        process = services.start_dynamodb_local(port, Path(data), Path(data) / "log")
        try:
            stack = Stack()
            ensure_tables(stack)
            client, table = boto3.client("dynamodb"), stack.physical_name("RecordsTable")
            timed_puts(client, table, "warm", 1000)  # JIT warm-up, not reported
            print(f"1,000 puts, fresh, no stream reader:        {timed_puts(client, table, 'a', 1000):6.2f} s")
            poller = start_poller(stack, table)
            print(f"1,000 puts, fresh, stream reader running:   {timed_puts(client, table, 'b', 1000):6.2f} s")
            timed_puts(client, table, "fill", args.records)
            label = f"after {args.records:,} more records"
            print(f"1,000 puts, {label}, reader running: {timed_puts(client, table, 'c', 1000):6.2f} s")
            poller.set()
            print(f"1,000 puts, {label}, no reader:      {timed_puts(client, table, 'd', 1000):6.2f} s")
            view = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
            client.update_table(TableName=table, StreamSpecification={"StreamEnabled": False})
            client.update_table(TableName=table, StreamSpecification=view)
            print(f"1,000 puts after turning the stream off and on: {timed_puts(client, table, 'e', 1000):6.2f} s")
        finally:
            services.stop(process)


if __name__ == "__main__":
    main()
