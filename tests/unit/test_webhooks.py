"""Webhooks reach only the public internet, follow no redirect and end by their deadline, and a
tenant is told what it can act on, never which network error it was."""

from __future__ import annotations

import ipaddress
import socket
import time

import pytest

from local.webhook_receiver import Receiver
from meter.alerts import webhooks
from meter.alerts.webhooks import DeliveryFailed, WebhookRefused

PUBLIC = "93.184.215.14"


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5/",
        "https://172.16.3.4/",
        "https://192.168.1.1/",
        "https://100.64.0.1/",  # CGNAT
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://[fd00::1]/",  # unique-local
        "https://[fe80::1]/",  # link-local
        "https://[::ffff:169.254.169.254]/",  # IPv4-mapped
        "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 of the metadata address
        "https://[2002:a9fe:a9fe::1]/",  # 6to4 of it
        "https://224.0.0.1/",  # multicast
        "https://0.0.0.0/",
        "https://0xa9fea9fe/",  # hex
        "https://2852039166/",  # one decimal number
        "https://0251.0376.0251.0376/",  # octal
        "https://169.254.169.254./",  # a trailing dot
        "https://user:pw@hooks.example.com/",
        "https://no-such-host.invalid/",
        "http://hooks.example.com/",
        "ftp://hooks.example.com/",
        "https:///nohost",
    ],
)
def test_private_disguised_or_credentialed_targets_are_refused(url):
    with pytest.raises(WebhookRefused):
        webhooks.target_of(url, allow_local=True)


def test_a_name_is_refused_if_any_of_its_addresses_is_private(monkeypatch):
    answers = {"mixed.example": [PUBLIC, "10.1.2.3"], "public.example": [PUBLIC]}
    monkeypatch.setattr(webhooks, "_resolve", lambda host, port: [ipaddress.ip_address(a) for a in answers[host]])
    with pytest.raises(WebhookRefused, match="public internet"):
        webhooks.target_of("https://mixed.example/h", allow_local=False)
    target = webhooks.target_of("https://public.example:8443/h?x=1", allow_local=False)
    assert (target.host, target.port, target.path, target.address) == ("public.example", 8443, "/h?x=1", PUBLIC)


def test_local_receivers_only_under_make_run_and_only_plain_loopback():
    assert webhooks.target_of("http://127.0.0.1:9/h", allow_local=True).address == "127.0.0.1"
    for url in ("http://127.0.0.1:9/h", "http://localhost:9/h"):
        with pytest.raises(WebhookRefused):
            webhooks.target_of(url, allow_local=False)
    with pytest.raises(WebhookRefused):
        webhooks.target_of("http://10.0.0.5/h", allow_local=True)


def post(url, deadline=2.0):
    return webhooks.post(url, b"{}", {"Content-Type": "application/json"}, deadline, allow_local=True)


def test_a_redirect_is_never_followed():
    elsewhere = Receiver()
    redirecting = Receiver(status=302, location=elsewhere.url)
    try:
        with pytest.raises(DeliveryFailed, match="HTTP 302; redirects are not followed"):
            post(redirecting.url)
        assert len(redirecting.requests) == 1 and elsewhere.requests == []
    finally:
        redirecting.close()
        elsewhere.close()


def test_a_trickling_receiver_is_cut_off_at_the_deadline():
    trickling = Receiver(trickle=0.5)  # the whole answer would take 19 s
    try:
        started = time.monotonic()
        with pytest.raises(DeliveryFailed, match="within 1 s") as failed:
            post(trickling.url, deadline=1.0)
        assert failed.value.timed_out
        assert time.monotonic() - started < 5  # cut off, not held for the whole answer
    finally:
        trickling.close()


def test_failures_before_an_answer_all_read_the_same():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens: connection refused
    with pytest.raises(DeliveryFailed) as refused:
        post(f"http://127.0.0.1:{port}/h")
    trickling = Receiver(trickle=0.5)
    try:
        with pytest.raises(DeliveryFailed) as slow:
            post(trickling.url, deadline=1.0)
    finally:
        trickling.close()
    assert str(refused.value).replace("2 s", "1 s") == str(slow.value) == "no HTTP answer from the webhook within 1 s"


def test_dns_rebinding_cannot_swap_the_address_after_the_check(monkeypatch):
    receiver = Receiver()
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    monkeypatch.setattr(webhooks, "_resolve", lambda host, port: [ipaddress.ip_address(a) for a in next(answers)])
    try:
        webhooks.check_url("https://rebinding.example/h", allow_local=False)  # public when saved
        with pytest.raises(DeliveryFailed, match="public internet"):
            webhooks.post("https://rebinding.example/h", b"{}", {}, 1.0, allow_local=False)  # private when sent
        assert receiver.requests == []
    finally:
        receiver.close()


def test_the_connection_goes_to_the_checked_address(monkeypatch):
    connected = []

    def fake_connect(address, timeout=None, *args):
        connected.append(address)
        raise ConnectionRefusedError

    monkeypatch.setattr(webhooks, "_resolve", lambda host, port: [ipaddress.ip_address(PUBLIC)])
    monkeypatch.setattr(socket, "create_connection", fake_connect)
    with pytest.raises(DeliveryFailed):
        webhooks.post("https://hooks.example.com/h", b"{}", {}, 1.0, allow_local=False)
    assert connected == [(PUBLIC, 443)]
