"""meterctl: manage tenants, API keys and rate cards, against AWS or a local endpoint.

    python tools/meterctl.py [--endpoint-url URL | --stack NAME] COMMAND ...

Commands: create-key, list-keys, revoke-key, create-tenant, set-rate-card, set-cloudevents-mapping,
set-billing-anchor, keep-zone, spread-records, show-tenant, redrive, reconcile. ``create-key`` prints
the new token ``pk_…:sk_…`` as the last line of its output.
``redrive aggregation`` counts the stream batches the aggregator gave up on; ``redrive ingest``
moves the ingest dead letters and parked messages back to the ingest queue; ``redrive alerts`` gives
firings whose delivery was given up on a fresh day of retries. All are safe to
repeat. ``reconcile`` runs one reconciliation now (what the hourly schedule runs), or with
``--tenant`` and ``--day`` recounts that one day at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# the layer, and the repository so that tools/ is a package when this runs as a script
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "shared"))

from meter.core.errors import MeterError


def _configure(args: argparse.Namespace) -> None:
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = args.endpoint_url
        # DynamoDB Local (-sharedDb) accepts any credentials; give boto3 some if none are configured.
        for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local"}.items():
            os.environ.setdefault(name, value)
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        os.environ["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = args.endpoint_url
    if getattr(args, "sqs_endpoint_url", None):
        os.environ["AWS_ENDPOINT_URL_SQS"] = args.sqs_endpoint_url
    if args.stack:
        import boto3

        stack = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        os.environ["TENANTS_TABLE"] = outputs["TenantsTableName"]
        os.environ["RECORDS_TABLE"] = outputs["RecordsTableName"]
        os.environ["AGGREGATES_TABLE"] = outputs["AggregatesTableName"]
        os.environ["CONTROL_TABLE"] = outputs["ControlTableName"]
        os.environ["ALERTS_TABLE"] = outputs["AlertsTableName"]
        os.environ["CREDITS_TABLE"] = outputs["CreditsTableName"]
        for logical_id in QUEUES:
            os.environ[f"QUEUE_URL_{logical_id}"] = outputs[f"{logical_id}Url"]
    for logical_id, default in {
        "Tenants": "TenantsTable",
        "Records": "RecordsTable",
        "Aggregates": "AggregatesTable",
        "Control": "ControlTable",
        "Alerts": "AlertsTable",
        "Credits": "CreditsTable",
    }.items():
        os.environ.setdefault(f"{logical_id.upper()}_TABLE", default)


QUEUES = ("IngestQueue", "IngestDeadLetterQueue", "AggregationFailuresQueue", "ReconcileFailuresQueue")


def _queue_url(logical_id: str) -> str:
    """A queue's URL: from the stack's outputs, or by its name on a local SQS endpoint."""
    import boto3

    return (
        os.environ.get(f"QUEUE_URL_{logical_id}") or boto3.client("sqs").get_queue_url(QueueName=logical_id)["QueueUrl"]
    )


def _redrive(which: str) -> dict:
    from tools import redrive

    if which == "aggregation":
        report = redrive.redrive_aggregation_failures(_queue_url("AggregationFailuresQueue"))
    elif which == "alerts":
        report = redrive.redrive_alert_deliveries(
            _queue_url("AlertDeliveryDeadLetterQueue"), _queue_url("AlertDeliveryRetryQueue")
        )
    else:
        dead = redrive.redrive_dead_letters(_queue_url("IngestDeadLetterQueue"), _queue_url("IngestQueue"))
        parked = redrive.redrive_parked(_queue_url("IngestQueue"))
        return {**dead.as_dict(), "parked": parked.redriven}
    return report.as_dict()


def key_values(pairs: list[str], form: str) -> dict[str, str]:
    """``NAME=VALUE`` arguments as a dict; exits naming ``form`` on one without ``=``."""
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"expected {form}, got {pair!r}")
        found[name] = value
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meterctl", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--endpoint-url", help="DynamoDB endpoint (e.g. http://127.0.0.1:8000 for make run)")
    where.add_argument("--stack", help="a deployed CloudFormation stack; its outputs name the tables")
    commands = parser.add_subparsers(dest="command", required=True)

    create = commands.add_parser("create-key", help="create an API key (and its tenant if new)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", default="ingest,read", help="comma-separated: ingest, read, admin (manages alerts)")
    create.add_argument("--name", default="", help="a label for the key")
    create.add_argument("--rate-limit", type=int, help="requests per second for this key (0 = unlimited)")

    listing = commands.add_parser("list-keys", help="list keys (never their secrets)")
    listing.add_argument("--tenant")

    revoke = commands.add_parser("revoke-key", help="revoke a key by its public id (pk_…)")
    revoke.add_argument("key_id")

    tenant = commands.add_parser("create-tenant", help="register a tenant")
    tenant.add_argument("tenant")

    card = commands.add_parser("set-rate-card", help="set credits per unit for event types")
    card.add_argument("--tenant", required=True)
    card.add_argument("rates", nargs="+", metavar="TYPE=CREDITS_PER_UNIT")

    mapping = commands.add_parser(
        "set-cloudevents-mapping", help="how CloudEvents types map to usage events (docs/sending.md)"
    )
    mapping.add_argument("--tenant", required=True)
    mapping.add_argument("--file", required=True, type=Path, help='JSON: {"<type>": {"counts": …, "fields": …}}')

    anchor = commands.add_parser("set-billing-anchor", help="day of month (1-28, UTC) a billing period starts")
    anchor.add_argument("--tenant", required=True)
    anchor.add_argument("day", type=int)

    zone = commands.add_parser("keep-zone", help="cut day items at a zone's local midnights (before a backfill)")
    zone.add_argument("--tenant", required=True)
    zone.add_argument("zone", help="an IANA time zone, e.g. Asia/Kolkata")

    spread = commands.add_parser(
        "spread-records", help="spread a tenant's records over the ByTenant shards (before a burst of traffic)"
    )
    spread.add_argument("--tenant", required=True)

    show = commands.add_parser("show-tenant", help="show a tenant and its rate card")
    show.add_argument("tenant")

    redrive = commands.add_parser("redrive", help="count dead-lettered stream batches, or requeue ingest dead letters")
    redrive.add_argument("which", choices=["aggregation", "ingest", "alerts"])
    redrive.add_argument("--sqs-endpoint-url", help="SQS endpoint of a local stack (make redrive sets it)")

    reconcile = commands.add_parser("reconcile", help="reconcile what is due now, or one tenant's day")
    reconcile.add_argument("--tenant")
    reconcile.add_argument("--day", help="YYYY-MM-DD (UTC), with --tenant")
    return parser


def _reconcile(tenant: str | None, day: str | None) -> dict:
    from meter.core.timerange import DAY_MS, now_ms
    from meter.counting.reconcile import ReconcileReport, reconcile_due, reconcile_window
    from meter.dal import keys

    if bool(tenant) != bool(day):
        raise MeterError("--tenant and --day go together")
    if tenant:
        start = keys.day_start(day)
        report = reconcile_window(tenant, start, start + DAY_MS, now_ms())
    else:
        report = reconcile_due(now_ms())
    return {name: getattr(report, name) for name in ReconcileReport.COUNTS} | {"drift": report.drift}


def run(argv: list[str]) -> int:
    """Run one command; returns the exit status."""
    args = _parser().parse_args(argv)
    _configure(args)
    from meter.core.timerange import iso
    from meter.dal import tenants
    from tools import admin

    try:
        if args.command == "create-key":
            scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
            token = admin.create_key(args.tenant, scopes, args.name, args.rate_limit)
            print(f"Created key {token.split(':')[0]} for tenant {args.tenant} (scopes {args.scopes}).")
            print("The secret is shown once; store it now. Token:")
            print(token)
        elif args.command == "list-keys":
            for key in admin.list_keys(args.tenant):
                state = "revoked" if key.get("revokedAt") else "active"
                print(f"{key['keyId']}\t{key['tenant']}\t{','.join(key['scopes'])}\t{state}\t{key.get('name', '')}")
        elif args.command == "revoke-key":
            admin.revoke_key(args.key_id)
            print(f"Revoked {args.key_id}; containers forget their cached verdict within AuthCacheSeconds.")
        elif args.command == "create-tenant":
            created = tenants.ensure_tenant(args.tenant)
            print(f"Tenant {args.tenant} {'created' if created else 'already exists'}.")
        elif args.command == "set-rate-card":
            card = admin.set_rate_card(args.tenant, key_values(args.rates, "TYPE=CREDITS_PER_UNIT"))
            print(json.dumps({k: str(v) for k, v in card.items()}))
        elif args.command == "set-cloudevents-mapping":
            try:
                mappings = json.loads(args.file.read_text())
            except (OSError, ValueError) as unreadable:
                raise MeterError(f"Cannot read {args.file}: {unreadable}") from None
            if not isinstance(mappings, dict):
                raise MeterError('The mapping file must hold {"<CloudEvents type>": {"counts": …, "fields": …}}')
            print(json.dumps(admin.set_cloudevent_mappings(args.tenant, mappings)))
        elif args.command == "set-billing-anchor":
            admin.set_billing_anchor(args.tenant, args.day)
            print(f"Billing periods of {args.tenant} start on day {args.day} of each month (UTC).")
        elif args.command == "keep-zone":
            cuts = admin.keep_zone(args.tenant, args.zone)
            print(json.dumps({"tenant": args.tenant, "dayCuts": cuts}))
        elif args.command == "spread-records":
            print(json.dumps({"tenant": args.tenant, "recordsShardedFrom": iso(admin.spread_records(args.tenant))}))
        elif args.command == "show-tenant":
            found = tenants.get_tenant(tenants.validate_tenant_name(args.tenant))
            if not found:
                raise MeterError(f"Unknown tenant '{args.tenant}'")
            sharded, spread = found.roster_sharded_from, found.records_sharded_from
            shown = {"tenant": found.name, "createdAt": found.created_at, "rateCard": found.rate_card,
                     "billingAnchorDay": found.billing_anchor_day,
                     "cloudEventMappings": found.cloudevent_mappings,
                     "dayCuts": admin.cut_times(found.day_cuts),
                     "rosterShardedFrom": iso(sharded) if sharded is not None else None,
                     "recordsShardedFrom": iso(spread) if spread is not None else None}  # fmt: skip
            print(json.dumps(shown, default=str, indent=2))
        elif args.command == "redrive":
            report = _redrive(args.which)
            print(json.dumps(report, indent=2))
            return 0 if not report["kept"] else 3
        elif args.command == "reconcile":
            report = _reconcile(args.tenant, args.day)
            print(json.dumps(report, indent=2, default=str))
            return 0 if not (report["failed"] or report["deferred"]) else 3
    except MeterError as error:
        print(f"meterctl: {error.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
