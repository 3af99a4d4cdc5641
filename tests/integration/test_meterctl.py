"""The key and rate-card command-line tool, against moto."""

from __future__ import annotations

import json
from datetime import datetime

from meter.api.auth import authenticate
from meter.dal.tenants import rate_card
from tools.meterctl import run


def test_create_list_revoke(aws, capsys):
    assert run(["create-key", "--tenant", "acme", "--scopes", "read", "--name", "dash"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    principal = authenticate(f"Bearer {token}")
    assert principal.tenant == "acme" and principal.scopes == {"read"}

    assert run(["list-keys", "--tenant", "acme"]) == 0
    listing = capsys.readouterr().out
    assert principal.key_id in listing and "active" in listing and token.split(":")[1] not in listing

    assert run(["revoke-key", principal.key_id]) == 0
    assert run(["list-keys"]) == 0
    assert "revoked" in capsys.readouterr().out


def test_errors_exit_non_zero_with_a_message(aws, capsys):
    assert run(["create-key", "--tenant", "acme", "--scopes", "superuser"]) == 1
    assert "superuser" in capsys.readouterr().err
    assert run(["revoke-key", "pk_nope"]) == 1
    assert run(["set-rate-card", "--tenant", "ghost", "message=1"]) == 1


def test_rate_cards(aws, capsys):
    run(["create-tenant", "acme"])
    assert run(["set-rate-card", "--tenant", "acme", "tokens.input=0.002", "message=1"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"tokens.input": "0.002", "message": "1"}
    assert {k: str(v) for k, v in rate_card("acme").items()} == {"tokens.input": "0.002", "message": "1"}
    assert run(["set-rate-card", "--tenant", "acme", "message=-1"]) == 1


def test_cloudevents_mappings_are_checked_and_kept(aws, capsys, tmp_path):
    from meter.dal.tenants import cloudevent_mappings

    run(["create-tenant", "acme"])
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps({"llm_call": {"counts": {"tokens.input": "data.usage.in"}, "fields": {"model": "data.m"}}})
    )
    assert run(["set-cloudevents-mapping", "--tenant", "acme", "--file", str(good)]) == 0
    assert cloudevent_mappings("acme")["llm_call"]["counts"] == {"tokens.input": "data.usage.in"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"llm_call": {"counts": {"tokens.input": "usage.in"}}}))
    assert run(["set-cloudevents-mapping", "--tenant", "acme", "--file", str(bad)]) == 1
    assert "llm_call.counts.tokens.input" in capsys.readouterr().err


def test_a_kept_zone_cuts_day_items_at_its_local_midnights(aws, capsys):
    from meter.dal.tenants import day_cuts

    run(["create-tenant", "acme"])
    assert run(["keep-zone", "--tenant", "acme", "America/New_York"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["dayCuts"] == ["04:00Z", "05:00Z"]
    assert day_cuts("acme") == {16, 20}
    assert run(["keep-zone", "--tenant", "acme", "Mars/Olympus"]) == 1
    assert "zone" in capsys.readouterr().err
    assert run(["keep-zone", "--tenant", "ghost", "Asia/Kolkata"]) == 1
    assert run(["show-tenant", "acme"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["dayCuts"] == ["04:00Z", "05:00Z"] and shown["rosterShardedFrom"] is None


def test_show_tenant_says_from_when_its_roster_and_records_are_sharded(aws, capsys):
    from meter.dal import store

    run(["create-tenant", "acme"])
    capsys.readouterr()
    assert run(["show-tenant", "acme"]) == 0
    assert json.loads(capsys.readouterr().out)["recordsShardedFrom"] is None  # a new tenant: one partition
    assert store.tenants().shard_roster("acme", 1_796_000_400_000)
    assert store.tenants().shard_records("acme", 1_796_000_460_000)
    capsys.readouterr()
    assert run(["show-tenant", "acme"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["rosterShardedFrom"] == "2026-11-30T01:00:00Z"
    assert shown["recordsShardedFrom"] == "2026-11-30T01:01:00Z"


def test_spread_records_before_a_burst(aws, capsys):
    from meter.core.timerange import now_ms
    from meter.dal.tenants import layout

    run(["create-tenant", "acme"])
    capsys.readouterr()
    before = now_ms()
    assert run(["spread-records", "--tenant", "acme"]) == 0
    start = layout("acme").records_sharded_from
    assert start is not None and before + 120_000 <= start <= now_ms() + 120_000
    shown = datetime.fromisoformat(json.loads(capsys.readouterr().out)["recordsShardedFrom"])
    assert int(shown.timestamp()) == start // 1000
    assert run(["spread-records", "--tenant", "ghost"]) == 1


def test_billing_anchor_moves_the_snapshot_period(aws, capsys):
    from meter.dal.tenants import get_tenant

    run(["create-tenant", "acme"])
    assert run(["set-billing-anchor", "--tenant", "acme", "15"]) == 0
    assert get_tenant("acme").billing_anchor_day == 15
    assert run(["set-billing-anchor", "--tenant", "acme", "31"]) == 1
