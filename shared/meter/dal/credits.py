"""The credits repository: accounts, grants and reservations (the Credits table).

An account is one item per subject, so one strongly consistent read sees all a decision needs
(grants, consumption per burn segment, holds) and one conditional write on its version ``v``
(moved by every write, the aggregator's included) makes a decision atomic:

- ``g``: the grants' terms (JSON), ``v``: the version;
- ``c:<segment start ms>``: credits consumed in that burn segment (the aggregator adds them);
- ``h:<reservation id>``: an open hold (``[credits, expires at]``), ``s:<reservation
  id>``: what counted events carrying that reservation consumed of it (the aggregator adds it). A
  release drops both (the reservation item keeps what it consumed); an expired hold is dropped by
  the next hold written an hour after it ended.
"""

from __future__ import annotations

import json
from typing import Any

from meter.core.config import get_settings
from meter.dal import keys
from meter.dal.expressions import Update, attr
from meter.dal.models import TENANT_SUBJECT, CreditAccount, CreditSlice, Grant, GrantTerms, Hold, Reservation, Subject
from meter.dal.store import ItemKey, Table

VERSION = "v"
_GRANTS, _CONSUMED, _HOLD, _SETTLED = "g", "c:", "h:", "s:"
_QUOTA, _UNTIL, _RESERVED, _BUCKET_SETTLED = "q", "u", "r:", "x:"  # a slice's (meter.credits.slices)
RESERVATION_SETTLED = "settled"  # on a reservation holding on a slice: what its counted events consumed


def account_key(tenant: str, subject: Subject) -> tuple[str, str]:
    """(pk, sk) of a subject's account (what the aggregator adds to)."""
    return keys.account_pk(tenant, subject.kind, subject.value), keys.ACCOUNT_SK


def consumed_counter(segment_start: int) -> str:
    """The account counter of the credits consumed in the burn segment starting then."""
    return f"{_CONSUMED}{segment_start}"


def settled_counter(reservation_id: str) -> str:
    """The account counter of the credits consumed under one reservation."""
    return f"{_SETTLED}{reservation_id}"


def slice_key(tenant: str, index: int) -> tuple[str, str]:
    """(pk, sk) of one slice of a tenant's budget."""
    return keys.slice_pk(tenant, index), keys.ACCOUNT_SK


def slice_settled_counter(bucket: int) -> str:
    """A slice's counter of what holds expiring at ``bucket`` had consumed."""
    return f"{_BUCKET_SETTLED}{bucket}"


def reservation_key(tenant: str, reservation_id: str) -> tuple[str, str]:
    """(pk, sk) of a reservation (the aggregator adds to a sliced hold's ``settled`` there)."""
    return keys.reservation_pk(tenant, reservation_id), keys.RESERVATION_SK


def _key(pk: str, sk: str) -> ItemKey:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _terms_row(terms: GrantTerms) -> list[Any]:
    t = terms
    return [t.id, t.amount, t.priority, t.effective_at, t.expires_at, t.voided_at, t.period, t.time_zone]


def _grants_json(grants: tuple[GrantTerms, ...]) -> str:
    return json.dumps([_terms_row(g) for g in grants], separators=(",", ":"), ensure_ascii=False)


def _account(item: dict[str, Any]) -> CreditAccount:
    consumed, holds, settled = {}, {}, {}
    for name, value in item.items():
        prefix, rest = name[:2], name[2:]
        if prefix == _CONSUMED:
            consumed[int(rest)] = int(value)
        elif prefix == _HOLD:
            holds[rest] = value
        elif prefix == _SETTLED:
            settled[rest] = int(value)
    return CreditAccount(
        tenant=item["tenant"],
        subject=Subject(item["kind"], item.get("value", "")),
        version=int(item.get(VERSION, 0)),
        grants=tuple(GrantTerms(*row) for row in json.loads(item.get(_GRANTS) or "[]")),
        consumed=consumed,
        holds={
            **{rid: Hold(0, 0, credits) for rid, credits in settled.items()},  # counted after its hold ended
            **{rid: Hold(int(h[0]), int(h[1]), settled.get(rid, 0)) for rid, h in holds.items()},
        },
    )


def _slice(item: dict[str, Any]) -> CreditSlice:
    reserved, settled = {}, {}
    for name, value in item.items():
        if name.startswith(_RESERVED):
            reserved[int(name[2:])] = int(value)
        elif name.startswith(_BUCKET_SETTLED):
            settled[int(name[2:])] = int(value)
    return CreditSlice(
        index=int(item["value"]),
        quota=int(item.get(_QUOTA, 0)),
        until=int(item.get(_UNTIL, 0)),
        reserved=reserved,
        settled=settled,
        version=int(item.get(VERSION, 0)),
    )


def _unmoved(account: CreditAccount | None):
    """The version condition of a decision made on ``account`` (None: it did not exist)."""
    return attr("pk").absent() if account is None else attr(VERSION).eq(account.version)


class Credits(Table):
    """Credits: accounts, grants, reservations, and the marks of tenants that grant credits."""

    # -- what the aggregator reads and adds ------------------------------------------------
    def granting(self, tenants: list[str]) -> set[str]:
        """Which of these tenants ever made a grant (strongly consistent)."""
        found = self.get_many([_key(keys.account_pk(t, "tenant"), keys.GRANTING_SK) for t in tenants], True)
        return {item["tenant"] for item in found}

    def _granting(self, tenant: str) -> dict[str, Any]:
        item = {"pk": keys.account_pk(tenant, "tenant"), "sk": keys.GRANTING_SK, "tenant": tenant}
        return self.put_action(item)

    # -- accounts --------------------------------------------------------------------------
    def account(self, tenant: str, subject: Subject, consistent: bool = False) -> CreditAccount | None:
        """One subject's account, or None (no grant was ever made to it)."""
        item = self.get(_key(*account_key(tenant, subject)), consistent)
        return None if item is None else _account(item)

    def accounts(self, tenant: str, subjects: list[Subject]) -> dict[Subject, CreditAccount]:
        """The accounts of many subjects of one tenant (those that exist), strongly consistent."""
        return self.accounts_and_slice(tenant, subjects, None)[0]

    def accounts_of(self, wanted: list[tuple[str, Subject]]) -> dict[tuple[str, Subject], CreditAccount]:
        """The accounts of many (tenant, subject) pairs, strongly consistent (the aggregator's view)."""
        found = self.get_many([_key(*account_key(t, s)) for t, s in wanted], consistent=True)
        return {(a.tenant, a.subject): a for a in map(_account, found)}

    def _account_change(self, tenant: str, subject: Subject, account: CreditAccount | None, change: Update):
        change.add(VERSION, 1).set_if_absent("tenant", tenant).set_if_absent("kind", subject.kind)
        if subject.value:
            change.set_if_absent("value", subject.value)
        return self.action(_key(*account_key(tenant, subject)), change, _unmoved(account))

    # -- slices of a tenant's budget --------------------------------------------------------
    def slices(self, tenant: str, indexes: list[int], consistent: bool = True) -> dict[int, CreditSlice]:
        """Some slices of a tenant's budget (those that exist)."""
        found = self.get_many([_key(*slice_key(tenant, i)) for i in indexes], consistent)
        return {s.index: s for s in map(_slice, found)}

    def snapshot(self, tenant: str, count: int) -> tuple[CreditAccount | None, dict[int, CreditSlice]]:
        """The tenant's ``count`` slices, then its account, strongly consistent (slices first: a
        settlement between the reads then shows in the account only, which errs toward less)."""
        slices = self.slices(tenant, list(range(count)))
        return self.account(tenant, TENANT_SUBJECT, consistent=True), slices

    def _slice_change(self, tenant: str, index: int, change: Update) -> Update:
        change.add(VERSION, 1).set_if_absent("tenant", tenant).set_if_absent("kind", "slice")
        return change.set_if_absent("value", f"{index:02d}")

    def rebalance_actions(
        self,
        tenant: str,
        account: CreditAccount,
        slices: dict[int, CreditSlice],
        changes: dict[int, int],
        taken_from: frozenset[int],
        until: int,
    ) -> list[dict[str, Any]]:
        """Transaction actions: add ``changes`` to the slices' quotas, lent until ``until``, if the
        account is as it was read (its version moves, so no other rebalance also applies) and so
        are the slices in ``taken_from``."""
        head = self.action(_key(*account_key(tenant, TENANT_SUBJECT)), Update().add(VERSION, 1), _unmoved(account))
        actions = [head]
        for i, n in sorted(changes.items()):
            change = self._slice_change(tenant, i, Update().add(_QUOTA, n).set(_UNTIL, until))
            found = slices.get(i)
            unmoved = None
            if i in taken_from:
                unmoved = attr(VERSION).eq(found.version) if found is not None else attr("pk").absent()
            actions.append(self.action(_key(*slice_key(tenant, i)), change, unmoved))
        return actions

    def slice_hold(self, tenant: str, held: CreditSlice, bucket: int, credits: int, now: int) -> dict[str, Any]:
        """Transaction action: a hold on a slice as it was read, its expired buckets folded in."""
        change = Update().add(f"{_RESERVED}{bucket}", credits)
        expired = held.expired(now)
        if expired:
            folded = sum(held.settled.get(b, 0) for b in expired)
            change.add(_QUOTA, -folded).remove(*[f"{p}{b}" for b in expired for p in (_RESERVED, _BUCKET_SETTLED)])
        change = self._slice_change(tenant, held.index, change)
        return self.action(_key(*slice_key(tenant, held.index)), change, attr(VERSION).eq(held.version))

    def release_on_slice(self, reservation: Reservation) -> None:
        """Take a released hold (as it was when released) off its slice; what it consumed leaves the
        quota. A write of its own, after the release: if it never lands, the hold ends at its
        expiry as every hold does (its credits come back later, never twice)."""
        settled, bucket = reservation.settled, reservation.bucket
        change = Update().add(f"{_RESERVED}{bucket}", -reservation.credits).add(_QUOTA, -settled)
        change.add(slice_settled_counter(bucket), -settled)
        change = self._slice_change(reservation.tenant, reservation.slice, change)
        self.update(_key(*slice_key(reservation.tenant, reservation.slice)), change)

    def accounts_and_slice(
        self, tenant: str, subjects: list[Subject], index: int | None
    ) -> tuple[dict[Subject, CreditAccount], CreditSlice | None]:
        """Some subjects' accounts and one slice of the tenant's budget, in one strongly consistent read."""
        wanted = [_key(*account_key(tenant, s)) for s in subjects]
        if index is not None:
            wanted.append(_key(*slice_key(tenant, index)))
        found = self.get_many(wanted, consistent=True) if wanted else []
        accounts = {a.subject: a for a in (_account(i) for i in found if i.get("kind") != "slice")}
        held = next((_slice(i) for i in found if i.get("kind") == "slice"), None)
        return accounts, held

    # -- grants ----------------------------------------------------------------------------
    @staticmethod
    def _grant_item(grant: Grant) -> dict[str, Any]:
        t = grant.terms
        return {
            "pk": keys.grant_pk(grant.tenant, t.id),
            "sk": keys.GRANT_SK,
            "tenant": grant.tenant,
            "kind": grant.subject.kind,
            "value": grant.subject.value or None,
            "terms": json.dumps(_terms_row(t), separators=(",", ":"), ensure_ascii=False),
            "meta": json.dumps(grant.meta, separators=(",", ":"), ensure_ascii=False) if grant.meta else None,
            "createdAt": grant.created_at,
            "fp": grant.fingerprint,
        }

    @staticmethod
    def _grant(item: dict[str, Any]) -> Grant:
        return Grant(
            tenant=item["tenant"],
            subject=Subject(item["kind"], item.get("value", "")),
            terms=GrantTerms(*json.loads(item["terms"])),
            created_at=int(item["createdAt"]),
            fingerprint=item["fp"],
            meta=json.loads(item["meta"]) if item.get("meta") else None,
        )

    def grant(self, tenant: str, grant_id: str, consistent: bool = False) -> Grant | None:
        """One grant by id, or None."""
        item = self.get(_key(keys.grant_pk(tenant, grant_id), keys.GRANT_SK), consistent)
        return None if item is None else self._grant(item)

    def grants(self, tenant: str, grant_ids: list[str]) -> dict[str, Grant]:
        """Many grants by id (those that exist)."""
        found = self.get_many([_key(keys.grant_pk(tenant, g), keys.GRANT_SK) for g in grant_ids])
        return {grant.terms.id: grant for grant in map(self._grant, found)}

    def add_grant_actions(self, grant: Grant, account: CreditAccount | None) -> list[dict[str, Any]]:
        """Transaction actions: store a new grant, add its terms to the account as it was read, and
        mark the tenant as granting (the aggregator books the credits of those only)."""
        grants = (account.grants if account else ()) + (grant.terms,)
        change = Update().set(_GRANTS, _grants_json(grants))
        return [
            self.put_action(self._grant_item(grant), attr("pk").absent()),
            self._account_change(grant.tenant, grant.subject, account, change),
            self._granting(grant.tenant),
        ]

    def void_grant_actions(self, grant: Grant, account: CreditAccount, at: int) -> list[dict[str, Any]]:
        """Transaction actions: the grant voided from ``at``, in its item and in the account."""
        voided = GrantTerms(*[*_terms_row(grant.terms)[:5], at, *_terms_row(grant.terms)[6:]])
        grants = tuple(voided if g.id == grant.terms.id else g for g in account.grants)
        item = self._grant_item(Grant(**{**grant.__dict__, "terms": voided}))
        return [
            self.put_action(item, attr("fp").eq(grant.fingerprint) & attr("pk").exists()),
            self._account_change(grant.tenant, grant.subject, account, Update().set(_GRANTS, _grants_json(grants))),
        ]

    # -- reservations ----------------------------------------------------------------------
    @staticmethod
    def _reservation_item(reservation: Reservation) -> dict[str, Any]:
        r = reservation
        return {
            "pk": keys.reservation_pk(r.tenant, r.id),
            "sk": keys.RESERVATION_SK,
            "tenant": r.tenant,
            "subjects": json.dumps([[s.kind, s.value] for s in r.subjects], ensure_ascii=False),
            "credits": r.credits,
            "createdAt": r.created_at,
            "expiresAt": r.expires_at,
            "fp": r.fingerprint,
            "answer": json.dumps(r.answer, separators=(",", ":"), ensure_ascii=False),
            "releasedAt": r.released_at,
            "slice": r.slice,
            "bucket": r.bucket,
        }

    def reservation(self, tenant: str, reservation_id: str, consistent: bool = False) -> Reservation | None:
        """One reservation by id, or None."""
        item = self.get(_key(keys.reservation_pk(tenant, reservation_id), keys.RESERVATION_SK), consistent)
        return None if item is None else self._reservation(item, reservation_id)

    @staticmethod
    def _reservation(item: dict[str, Any], reservation_id: str) -> Reservation:
        return Reservation(
            tenant=item["tenant"],
            id=reservation_id,
            subjects=tuple(Subject(kind, value) for kind, value in json.loads(item["subjects"])),
            credits=int(item["credits"]),
            created_at=int(item["createdAt"]),
            expires_at=int(item["expiresAt"]),
            fingerprint=item["fp"],
            answer=json.loads(item["answer"]),
            released_at=int(item["releasedAt"]) if item.get("releasedAt") is not None else None,
            consumed_at_release=int(item.get("consumed", 0)),
            slice=int(item["slice"]) if item.get("slice") is not None else None,
            bucket=int(item["bucket"]) if item.get("bucket") is not None else None,
            settled=int(item.get(RESERVATION_SETTLED, 0)),
        )

    def reservations_of(self, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], Reservation]:
        """Many reservations by (tenant, id), strongly consistent (those that exist)."""
        found = self.get_many([_key(*reservation_key(t, r)) for t, r in wanted], consistent=True)
        out = {}
        for item in found:
            rid = item["pk"].split(f"#{keys.RESERVATION_CODE}#", 1)[1]
            out[(item["tenant"], rid)] = self._reservation(item, rid)
        return out

    def hold_actions(
        self, reservation: Reservation, accounts: list[CreditAccount], forget: dict[Subject, list[str]]
    ) -> list[dict[str, Any]]:
        """Transaction actions: the reservation stored (if new) and its hold put on every account as
        it was read; ``forget`` names each account's ended holds to drop at the same time."""
        actions = [self.put_action(self._reservation_item(reservation), attr("pk").absent())]
        for account in accounts:
            change = Update().set(_HOLD + reservation.id, [reservation.credits, reservation.expires_at])
            dropped = forget.get(account.subject, [])
            if dropped:
                change.remove(*[name for rid in dropped for name in (_HOLD + rid, _SETTLED + rid)])
            actions.append(self._account_change(reservation.tenant, account.subject, account, change))
        return actions

    def release_actions(
        self, reservation: Reservation, accounts: list[CreditAccount], at: int, consumed: int
    ) -> list[dict]:
        """Transaction actions: the reservation released at ``at`` (if it was not, and its sliced
        hold settled no more since it was read) keeping what it ``consumed``, and its hold dropped
        from every account (``release_on_slice`` takes it off its slice after)."""
        item_key = _key(*reservation_key(reservation.tenant, reservation.id))
        change = Update().set("releasedAt", at).set("consumed", consumed)
        unchanged = attr("releasedAt").absent()
        if reservation.slice is not None:
            settled = reservation.settled
            same = attr(RESERVATION_SETTLED).eq(settled) if settled else attr(RESERVATION_SETTLED).absent()
            unchanged &= same
        actions = [self.action(item_key, change, unchanged)]
        for account in accounts:
            dropped = Update().remove(_HOLD + reservation.id, _SETTLED + reservation.id)
            actions.append(self._account_change(reservation.tenant, account.subject, account, dropped))
        return actions


def credits() -> Credits:
    """The Credits table of this deployment."""
    return Credits(get_settings().credits_table)
