"""Webhook signing, the posted bytes and the backoff, without a database."""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from resource_mgr.config import load_settings
from resource_mgr.events.delivery import DeliveryPolicy, encode, sign, verify
from resource_mgr.events.services import check_events, check_url
from resource_mgr.errors import Invalid


def test_the_signature_is_the_hex_hmac_sha256_of_the_raw_body():
    raw = b'{"id":"01ABC","type":"reservation.committed"}'
    # an independent computation: what a receiver in any language does
    expected = hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    assert sign("s3cret", raw) == "sha256=" + expected
    # a fixed vector (RFC 4231 test case 2: key "Jefe")
    assert sign("Jefe", b"what do ya want for nothing?") == \
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_verify_refuses_another_secret_a_changed_body_and_no_header():
    raw = encode({"id": "E1", "data": {"名": "廣州"}})
    header = sign("k1", raw)
    assert verify("k1", raw, header)
    assert not verify("k2", raw, header)
    assert not verify("k1", raw + b" ", header)
    assert not verify("k1", raw, None) and not verify("k1", raw, "")
    assert not verify("k1", raw, header.replace("sha256=", "sha1="))


def test_the_body_is_compact_utf8_json_and_the_same_bytes_each_time():
    body = {"id": "E1", "type": "fault.opened", "data": {"名": "廣州", "n": 1}}
    raw = encode(body)
    assert raw == encode(dict(body)) and json.loads(raw) == body
    assert "廣州".encode() in raw and b": " not in raw


def test_backoff_doubles_from_the_base_up_to_the_max_delay():
    policy = DeliveryPolicy(retry_base_seconds=5, retry_max_delay_seconds=60)
    assert [policy.backoff(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert policy.backoff(0) == 5


def test_the_policy_comes_from_the_settings_and_survives_a_job_params_round_trip():
    settings = load_settings(environ={"RMGR_EVENT_RETRY_BASE_SECONDS": "0.5", "RMGR_EVENT_MAX_ATTEMPTS": "7",
                                      "RMGR_EVENT_GIVE_UP_HOURS": "2"})
    policy = DeliveryPolicy.from_settings(settings)
    assert (policy.retry_base_seconds, policy.max_attempts, policy.give_up_seconds) == (0.5, 7, 7200)
    assert DeliveryPolicy.from_dict(json.loads(json.dumps(policy.as_dict()))) == policy
    assert DeliveryPolicy.from_dict(None) == DeliveryPolicy()


@pytest.mark.parametrize("url", ["ftp://x.example/", "x.example/h", "https://", "http://a b/", "javascript:alert(1)",
                                 "https://x.example:0x1/"])
def test_only_http_and_https_urls_with_a_host_are_taken(url):
    with pytest.raises(Invalid) as err:
        check_url(url)
    assert err.value.field == "url"


def test_event_types_are_checked_and_kept_in_the_contracts_order():
    assert check_events(None) is None
    assert check_events(["service.created", "reservation.preoccupied", "service.created"]) == \
        ["reservation.preoccupied", "service.created"]
    for bad in ([], ["reservation.nope"]):
        with pytest.raises(Invalid) as err:
            check_events(bad)
        assert err.value.field == "events"
