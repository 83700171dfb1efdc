"""The server's pure parts: routes from the stage holders, the canary split, request checks, /metrics."""
from __future__ import annotations

import random

import pytest

from gitmodel import serverequests, servemetrics, serving
from gitmodel.refs import Version
from gitmodel.registry import StageEvent

PROD = serving.Arm("prod", "v1.0.0", "a" * 32, "m#prod#1")
CANARY = serving.Arm("canary", "v1.1.0", "b" * 32, "m#canary#2")


def event(stage: str, version: str, commit: str, fraction: float | None = None) -> StageEvent:
    message = f"Assigning stage {stage} to artifact m version {version}\n\n" + \
        (f"Fraction: {fraction:g}\n" if fraction is not None else "Gate: none\n")
    return StageEvent("m", stage, 1, f"m#{stage}#1", commit, 0, message=message, version=Version.parse(version))


def test_plan_routes_splits_only_for_another_checkpoint_with_a_fraction():
    md5 = {"c1": "a" * 32, "c2": "b" * 32, "c3": "a" * 32}.get
    routes = serving.plan_routes("m", {"prod": event("prod", "v1.0.0", "c1"),
                                       "canary": event("canary", "v1.1.0", "c2", 0.1)}, lambda e: md5(e.commit))
    assert (routes.prod.version, routes.canary.version, routes.fraction) == ("v1.0.0", "v1.1.0", 0.1)
    same = serving.plan_routes("m", {"prod": event("prod", "v1.0.0", "c1"),
                                     "canary": event("canary", "v1.0.1", "c3", 0.1)}, lambda e: md5(e.commit))
    assert same.canary is None and same.fraction == 0.0
    no_fraction = serving.plan_routes("m", {"prod": event("prod", "v1.0.0", "c1"),
                                            "canary": event("canary", "v1.1.0", "c2")}, lambda e: md5(e.commit))
    assert no_fraction.canary is None
    assert serving.plan_routes("m", {}, lambda e: None).prod is None


def test_seeded_draws_give_the_canary_its_share():
    routes = serving.Routes(PROD, CANARY, 0.1)
    rng = random.Random(0)
    share = sum(serving.choose(routes, None, rng) is CANARY for _ in range(10000)) / 10000
    assert 0.09 <= share <= 0.11


def test_a_user_stays_on_one_arm_and_users_split_by_the_fraction():
    routes = serving.Routes(PROD, CANARY, 0.2)
    rng = random.Random(0)
    keys = [serving.user_hash(f"user-{i}") for i in range(5000)]
    first = [serving.choose(routes, k, rng) for k in keys]
    assert [serving.choose(routes, k, rng) for k in keys] == first
    assert 0.18 <= sum(a is CANARY for a in first) / len(first) <= 0.22
    # a canary that grows keeps its users and adds new ones
    wider = serving.Routes(PROD, CANARY, 0.5)
    assert all(serving.choose(wider, k, rng) is CANARY for k, a in zip(keys, first) if a is CANARY)
    assert serving.user_hash("ann") != "ann" and len(serving.user_hash("ann")) == 16


def test_no_canary_sends_everything_to_prod():
    rng = random.Random(0)
    assert all(serving.choose(serving.Routes(PROD), None, rng) is PROD for _ in range(100))
    assert serving.choose(serving.Routes(None), None, rng) is None


LIMITS = serverequests.Limits(max_body_bytes=100, max_tokens_cap=16)


def test_a_chat_prompt_is_the_contents_and_the_log_input_the_last_user_message():
    body = b'{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}'
    parsed = serverequests.parse(serverequests.CHAT, body, "m", serverequests.Limits())
    assert (parsed.prompt, parsed.input) == ("be brief\nhi", "hi")
    single = serverequests.parse(serverequests.CHAT, b'{"messages": [{"role": "user", "content": "hi"}]}', "m",
                                 serverequests.Limits())
    assert single.prompt == "hi"


@pytest.mark.parametrize("raw, status, code", [
    (b"x" * 101, 413, "request_too_large"),
    (b'{"prompt": "hi", "max_tokens": 17}', 400, "max_tokens_too_large"),
    (b'{"prompt": "hi", "max_tokens": true}', 400, "invalid_value"),
    (b'{"prompt": "hi", "model": "other"}', 404, "model_not_found"),
    (b'{"prompt": ["a", "b"]}', 400, "invalid_type"),
    (b'{"prompt": "hi", "stream": "yes"}', 400, "invalid_type"),
    (b'{"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}', 400, "invalid_type"),
])
def test_bad_requests_are_api_errors(raw, status, code):
    with pytest.raises(serverequests.ApiError) as e:
        serverequests.parse(serverequests.COMPLETIONS, raw, "m", LIMITS)
    assert (e.value.status, e.value.code) == (status, code)
    assert set(e.value.body()["error"]) == {"message", "type", "param", "code"}


def test_metrics_are_prometheus_text_with_a_cumulative_histogram():
    metrics = servemetrics.Metrics("m")
    metrics.observe("v1.0.0", "prod", 200, 0.02)
    metrics.observe("v1.0.0", "prod", 500, 3.0)
    metrics.observe("", "", 400, 0.001)
    text = metrics.render(serving.Routes(PROD, CANARY, 0.1))
    lines = text.splitlines()
    assert 'gitmodel_requests_total{model="m",version="v1.0.0",stage="prod",status="500"} 1' in lines
    assert 'gitmodel_request_errors_total{model="m",version="v1.0.0",stage="prod",kind="server"} 1' in lines
    assert 'gitmodel_request_latency_seconds_bucket{model="m",version="v1.0.0",stage="prod",le="0.025"} 1' in lines
    assert 'gitmodel_request_latency_seconds_bucket{model="m",version="v1.0.0",stage="prod",le="5"} 2' in lines
    assert 'gitmodel_request_latency_seconds_bucket{model="m",version="v1.0.0",stage="prod",le="+Inf"} 2' in lines
    assert 'gitmodel_request_latency_seconds_count{model="m",version="v1.0.0",stage="prod"} 2' in lines
    assert 'gitmodel_serving{model="m",version="v1.1.0",stage="canary"} 0.1' in lines
    assert 'gitmodel_serving{model="m",version="v1.0.0",stage="prod"} 0.9' in lines
    assert text.endswith("\n")


def test_the_listening_socket_lets_asyncio_turn_nagle_off_on_each_connection():
    """Regression: a socket made with protocol 0 kept Nagle's algorithm on (asyncio sets TCP_NODELAY only
    when the protocol says TCP), and every response waited ~40 ms for the client's delayed ACK."""
    import asyncio
    import socket

    from gitmodel import serveapp

    async def main() -> int:
        seen = asyncio.get_running_loop().create_future()

        async def handle(reader, writer):
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listening = serveapp.listen("127.0.0.1", 0)
        server = await asyncio.start_server(handle, sock=listening)
        async with server:
            _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
            nodelay = await asyncio.wait_for(seen, 10)
            writer.close()
        return nodelay

    assert asyncio.run(main()) != 0


def test_a_port_in_use_is_an_error_that_names_it():
    from gitmodel import serveapp
    from gitmodel.errors import GitModelError

    held = serveapp.listen("127.0.0.1", 0)
    port = held.getsockname()[1]
    try:
        with pytest.raises(GitModelError) as e:
            serveapp.listen("127.0.0.1", port)
        assert e.value.message.startswith(f"cannot listen on 127.0.0.1:{port}: ")
    finally:
        held.close()
