"""Abuse limits that need many objects: at most 100 endpoints per store."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.receiver import Receiver
from tests.support.service import Service

CAP = 100
CAP_MESSAGE = f"at most {CAP} endpoints"


def _create(service: Service, key: str, url: str) -> httpx.Response:
    return service.request(
        "POST", "/v1/endpoints", key, json={"url": url, "events": ["order.created"]}
    )


def _assert_cap_error(r: httpx.Response) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert CAP_MESSAGE in r.json()["error"]["message"]


def _count(service: Service, key: str) -> int:
    r = service.request("GET", "/v1/endpoints?limit=100", key)
    assert r.status_code == 200, r.text
    assert r.json()["has_more"] is False
    return len(r.json()["data"])


def test_a_store_has_at_most_100_endpoints(service: Service, receiver: Receiver) -> None:
    _, key = service.create_store()
    for i in range(CAP):
        service.create_endpoint(key, receiver.url(f"/e{i}", host="127.0.0.1"))
    _assert_cap_error(_create(service, key, receiver.url("/one-more")))
    # another store is not affected
    _, other = service.create_store(name="Other")
    service.create_endpoint(other, receiver.url("/other"))


def test_concurrent_creates_cannot_exceed_the_cap(service: Service, receiver: Receiver) -> None:
    """Count-then-insert races: 30 creates at once on a store 5 below the cap. Exactly 5 win;
    every other one gets the cap error (no 500, no 101st endpoint)."""
    _, key = service.create_store()
    free = 5
    for i in range(CAP - free):
        service.create_endpoint(key, receiver.url(f"/fill{i}", host="127.0.0.1"))
    racers = 30
    start = threading.Barrier(racers)

    def race(i: int) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            start.wait(30)
            return client.post(
                service.base_url + "/v1/endpoints",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "url": receiver.url(f"/race{i}", host="127.0.0.1"),
                    "events": ["order.created"],
                },
            )

    with ThreadPoolExecutor(racers) as pool:
        results = list(pool.map(race, range(racers)))

    created = [r for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code != 201]
    assert len(created) == free, [(r.status_code, r.text[:200]) for r in results]
    for r in refused:
        _assert_cap_error(r)
    assert _count(service, key) == CAP
    # and the cap still holds afterwards
    _assert_cap_error(_create(service, key, receiver.url("/after", host="127.0.0.1")))
