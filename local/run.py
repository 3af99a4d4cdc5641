"""``make run``: the whole stack on this machine, driven by template.yaml, no Docker.

DynamoDB Local (persistent under .local/ unless --in-memory), an in-memory SQS endpoint, the
HTTP API on 127.0.0.1:PORT, the stream aggregator and the queue consumer, all in one process
tree that Ctrl-C stops.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from local.template import ROOT, Stack

STATE_DIR = ROOT / ".local"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local", description="Serve template.yaml locally.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--dynamodb-port", type=int, default=int(os.environ.get("DYNAMODB_PORT", "8000")))
    parser.add_argument("--sqs-port", type=int, default=int(os.environ.get("SQS_PORT", "9324")))
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("LOCAL_STATE_DIR", STATE_DIR)))
    parser.add_argument("--in-memory", action="store_true", help="keep no data across restarts")
    parser.add_argument("--no-demo", action="store_true", help="do not create the demo tenant and key")
    parser.add_argument("--queue-visibility", type=int, default=5, help="local visibility timeout (s) for retries")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter, as sam deploy --parameter-overrides does (repeatable)",
    )
    return parser


def _lock(state_dir: Path, ports: dict[str, int]) -> Path:
    """Refuse to start twice; the lock file also tells `make key` where DynamoDB Local is."""
    from local.services import port_in_use

    lock = state_dir / "run.json"
    if lock.exists():
        previous = json.loads(lock.read_text())
        try:
            os.kill(previous["pid"], 0)
            running = True
        except (OSError, KeyError):
            running = False
        if running:
            raise SystemExit(
                f"make run is already running (pid {previous['pid']}) on http://127.0.0.1:{previous['port']}; "
                "stop it with Ctrl-C in its terminal, or use PORT=... and LOCAL_STATE_DIR=... for a second stack."
            )
    busy = [f"{name} port {port}" for name, port in ports.items() if port_in_use(port)]
    if busy:
        raise SystemExit(f"Cannot start: {', '.join(busy)} already in use. Set PORT / DYNAMODB_PORT / SQS_PORT.")
    state_dir.mkdir(parents=True, exist_ok=True)
    lock.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "port": ports["API"],
                "dynamodb_port": ports["DynamoDB Local"],
                "sqs_port": ports.get("SQS"),
            }
        )
    )
    return lock


def configure_environment(stack: Stack, dynamodb_port: int, sqs_port: int, api_port: int | None = None) -> None:
    """Point boto3 and the functions' settings at the local services (EventBridge at the API's recorder)."""
    os.environ.update(FAKE_ENV)
    os.environ["ALERT_WEBHOOKS_TO_LOCALHOST"] = "true"
    if api_port is not None:
        from local.eventbridge import PATH

        os.environ["AWS_ENDPOINT_URL_EVENTBRIDGE"] = f"http://127.0.0.1:{api_port}{PATH}"
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{dynamodb_port}"
    os.environ["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = f"http://127.0.0.1:{dynamodb_port}"
    os.environ["AWS_ENDPOINT_URL_SQS"] = f"http://127.0.0.1:{sqs_port}"
    for key, value in stack.environment().items():
        os.environ.setdefault(key, value)


def ensure_tables(stack: Stack) -> list[str]:
    """Create the template's tables that do not exist yet; returns those created."""
    from meter.dal import dynamo

    existing = set(dynamo.client().list_tables().get("TableNames", []))
    created = []
    for spec in stack.tables().values():
        if spec["TableName"] not in existing:
            dynamo.client().create_table(**spec)
            created.append(spec["TableName"])
    return created


def _demo_token(state_dir: Path) -> str:
    from meter.dal.tenants import get_tenant
    from tools.admin import create_key

    token_file = state_dir / "demo-token"
    if get_tenant("demo") is None or not token_file.exists():
        token_file.write_text(create_key("demo", ["ingest", "read", "admin"], "demo key from make run") + "\n")
        token_file.chmod(0o600)
    return token_file.read_text().strip()


def _banner(port: int, token: str | None, dynamodb_port: int, sqs_port: int, window: str) -> str:
    base = f"http://127.0.0.1:{port}"
    lines = [
        f"Usage meter is up on {base}  (DynamoDB Local :{dynamodb_port}, SQS :{sqs_port}). Ctrl-C stops everything.",
        f"Totals follow events within the aggregation window, {window} s (parameter AggregationWindowSeconds).",
    ]
    if token:
        lines += [
            "",
            f"Demo token (tenant 'demo'): {token}",
            "",
            f"Dashboard, signed in: {base}/#key={token}",
            "",
            "Try it:",
            f'  export TOKEN="{token}"',
            f'  curl -s -X POST {base}/v1/events -H "Authorization: Bearer $TOKEN" '
            "-H 'Content-Type: application/json' \\",
            '    -d \'{"id": "evt-1", "type": "tokens.input", "count": 1200, "credits": 3, '
            '"identifier": "user@example.com", "agentId": "support-bot"}\'',
            f"  curl -s {base}/api/v1/consumption/identifier/user%40example.com/dates "
            '-H "Authorization: Bearer $TOKEN"',
            "",
            "More keys: make key TENANT=acme SCOPES=ingest,read",
        ]
    return "\n".join(lines)


def _http_handler(gateway: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "usage-meter-local"

        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            response = gateway.handle(self.command, path, query, dict(self.headers.items()), body)
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def __getattr__(self, name: str) -> Any:
            # Any method (TRACE, QUERY, …) reaches the gateway, which answers 404/405 as API Gateway does.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:
            # The request line only: never headers (they carry API keys).
            sys.stderr.write(f"{self.address_string()} {args[0] if args else ''} {args[1] if len(args) > 1 else ''}\n")

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Start everything, serve until interrupted, stop everything."""
    args = _parser().parse_args(argv)
    # Ctrl-C must stop us even when started from a shell that ignores SIGINT in background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    state_dir: Path = args.state_dir.resolve()
    from tools.meterctl import key_values

    stack = Stack(parameters=key_values(args.parameter, "--parameter NAME=VALUE"))
    ports = {"API": args.port, "DynamoDB Local": args.dynamodb_port, "SQS": args.sqs_port}
    lock = _lock(state_dir, ports)
    configure_environment(stack, args.dynamodb_port, args.sqs_port, args.port)

    from local import services

    children: list[Any] = []
    stop, server, threads = threading.Event(), None, []
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        data_dir = None if args.in_memory else state_dir / "dynamodb"
        children.append(services.start_dynamodb_local(args.dynamodb_port, data_dir, state_dir / "dynamodb.log"))
        children.append(services.start_sqs(args.sqs_port, state_dir / "sqs.log"))
        server, threads = _start_stack(stack, args, state_dir, stop)
        token = None if args.no_demo else _demo_token(state_dir)
        window = stack.parameters["AggregationWindowSeconds"]
        print(_banner(args.port, token, args.dynamodb_port, args.sqs_port, window), flush=True)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, at any point of start-up or serving
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abort the cleanup
        print("\nStopping…", flush=True)
    finally:
        stop.set()
        if server is not None:
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)
        for child in reversed(children):
            services.stop(child)
        lock.unlink(missing_ok=True)
    return 0


class _Server(ThreadingHTTPServer):
    """The HTTP server, with a listen backlog for bursts of clients (the default 5 resets some)."""

    request_queue_size = 128


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _start_stack(stack: Stack, args: argparse.Namespace, state_dir: Path, stop: threading.Event) -> tuple[Any, list]:
    import boto3

    from local.gateway import Gateway
    from local.queues import QueueMapping, create_queues
    from local.schedules import Schedule
    from local.streams import StreamMapping

    ensure_tables(stack)
    sqs = boto3.client("sqs")
    urls = create_queues(stack, sqs, visibility_timeout=args.queue_visibility)

    def dead_letter_to(queue: str) -> Any:
        return lambda failure: sqs.send_message(QueueUrl=urls[queue], MessageBody=json.dumps(failure))

    workers: list[Any] = []
    for source in stack.stream_sources():
        table = stack.physical_name(source.table)
        checkpoint = None if args.in_memory else state_dir / f"stream-{table}.json"
        sink = dead_letter_to(source.on_failure) if source.on_failure else (lambda _: None)
        mapping = StreamMapping(source, stack.functions()[source.function], table, sink, checkpoint)
        mapping.drain(timeout=600)  # catch up on what a previous run left, before anything writes
        workers.append(mapping)
    for source in stack.queue_sources():
        workers.append(QueueMapping(source, stack.functions()[source.function], sqs, urls[source.queue]))
    workers += [Schedule(stack.functions()[name], expression) for name, expression in stack.schedules()]

    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    from local.eventbridge import EventRecorder

    return http_server(Gateway(stack, EventRecorder(state_dir / "eventbridge.jsonl")), args.port), threads


def http_server(gateway: Any, port: int) -> ThreadingHTTPServer:
    """The gateway served over HTTP on 127.0.0.1:``port`` (0: a free port); call ``serve_forever``."""
    server = _Server(("127.0.0.1", port), _http_handler(gateway))
    server.daemon_threads = True
    return server


if __name__ == "__main__":
    sys.exit(main())
