"""The edge gate's decisions (roles/caddy_gate/files/gate): credentials, budgets, failures.

Budgets are counted by the gate's own Redis script, run here by fakeredis (its Lua 5.1, as
Redis's); the Molecule scenario counts them in a real Redis shared by two gates."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
import redis.asyncio
from fakeredis import FakeAsyncRedis, FakeServer

GATE_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "caddy_gate", "files", "gate")
sys.path.insert(0, os.path.abspath(GATE_DIR))

import ai_infra_gate as gate_module  # noqa: E402  pylint: disable=wrong-import-position
from ai_infra_gate import ConfigError, Gate  # noqa: E402  pylint: disable=wrong-import-position

TOKEN = "static-token-for-the-unit-tests-0123456789"
SECRET = "hs256-secret-for-the-unit-tests-0123456789abcdef"
ENV = {"GATE_JWT_SECRET": SECRET}
ISSUER = "https://idp.example"


def config(**overrides):
    base = {
        "tokens": [{"name": "ci", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}],
        "jwt": {"algorithms": ["HS256"], "audience": "langgraph", "issuer": ISSUER},
        "limits": {"default": {"requests": 20, "period": 60, "burst": 10}},
    }
    base.update(overrides)
    return base


def make_gate(**overrides):
    return Gate(config(**overrides), ENV, redis_client=FakeAsyncRedis())


# One event loop for every test: a Redis client's connections belong to the loop they were
# made in.
LOOP = asyncio.new_event_loop()


def decide(gate, headers):
    return LOOP.run_until_complete(gate.decide(headers))


def request(token=None, ip="198.51.100.7", path="/threads"):
    headers = {"X-Forwarded-For": ip, "X-Forwarded-Uri": path}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    return headers


def hs256(**claims):
    body = {"sub": "alice", "aud": "langgraph", "iss": ISSUER, "exp": int(time.time()) + 300}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, SECRET, algorithm="HS256")


def test_static_token_passes_and_names_the_client():
    decision = decide(make_gate(), request(TOKEN))
    assert decision.status == 200
    assert decision.headers() == {"X-Gate-Client": "token:ci"}


@pytest.mark.parametrize("headers", [
    request(None),
    request("wrong-token"),
    {**request(None), "Authorization": "Basic " + TOKEN},
    {**request(None), "Authorization": "Bearer "},
])
def test_missing_or_bad_credentials_are_refused(headers):
    decision = decide(make_gate(), headers)
    assert decision.status == 401
    assert decision.headers()["WWW-Authenticate"].startswith("Bearer")


def forged_hs256(secret: bytes, **claims) -> str:
    """An HS256 token signed by hand (PyJWT refuses a PEM key as an HMAC secret): what an
    attacker sends to try the public key as the shared secret."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    body = {"sub": "mallory", "aud": "langgraph", "iss": ISSUER, "exp": int(time.time()) + 60, **claims}
    signing_input = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(body).encode())
    return signing_input + "." + part(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def test_valid_jwt_passes_with_its_subject():
    assert decide(make_gate(), request(hs256())).client == "jwt:alice"


@pytest.mark.parametrize("token", [
    hs256(exp=int(time.time()) - 10),  # expired
    hs256(exp=None),  # no expiry at all
    hs256(aud="someone-else"),
    hs256(aud=None),
    hs256(iss=None),
    hs256(iss="https://other.example"),
    hs256(exp=int(time.time()) + 10 * 365 * 86400),  # valid for ten years
    hs256(iat=int(time.time()) - 3 * 86400, exp=int(time.time()) + 60),  # issued for three days
    hs256(iat="yesterday"),
    jwt.encode({"sub": "alice", "aud": "langgraph", "iss": ISSUER, "exp": int(time.time()) + 300}, "x" * 40, algorithm="HS256"),
    jwt.encode({"sub": "alice", "aud": "langgraph", "iss": ISSUER, "exp": int(time.time()) + 300}, None, algorithm="none"),
])
def test_bad_jwts_are_refused(token):
    assert decide(make_gate(), request(token)).status == 401


def test_lifetime_up_to_the_maximum_passes():
    gate = make_gate(jwt={"algorithms": ["HS256"], "audience": "langgraph", "issuer": ISSUER, "max_lifetime": 600})
    now = int(time.time())
    assert decide(gate, request(hs256(iat=now, exp=now + 600))).status == 200
    assert decide(gate, request(hs256(iat=now, exp=now + 601))).status == 401
    assert decide(gate, request(hs256(exp=now + 500))).status == 200


def test_a_subject_that_is_not_plain_ascii_is_named_by_its_digest():
    gate = make_gate()
    decision = decide(gate, request(hs256(sub="Zoë 🙂\r\nX-Injected: 1")))
    assert decision.status == 200
    client = decision.headers()["X-Gate-Client"]
    assert client.startswith("jwt:sha256-") and client.isascii() and client.isprintable()
    assert decide(gate, request(hs256(sub="Zoë 🙂"))).client != client


@pytest.fixture(name="rsa_key")
def rsa_key_fixture():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rs256(private_key, kid=None, **claims):
    body = {"sub": "bob", "aud": "langgraph", "iss": ISSUER, "exp": int(time.time()) + 300}
    body.update(claims)
    return jwt.encode(body, private_key, algorithm="RS256", headers={"kid": kid} if kid else None)


def test_rs256_with_a_public_key_file(tmp_path, rsa_key):
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "key.pem").write_bytes(pem)
    gate = make_gate(jwt={"algorithms": ["RS256"], "audience": "langgraph", "issuer": ISSUER,
                          "public_key_file": str(tmp_path / "key.pem")})
    assert decide(gate, request(rs256(rsa_key))).client == "jwt:bob"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert decide(gate, request(rs256(other))).status == 401
    # An HS256 token signed with the public key as secret (algorithm confusion) is refused.
    assert decide(gate, request(forged_hs256(pem))).status == 401


def test_hs256_and_rs256_together_each_with_its_own_key(tmp_path, rsa_key):
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "key.pem").write_bytes(pem)
    gate = make_gate(jwt={"algorithms": ["HS256", "RS256"], "audience": "langgraph", "issuer": ISSUER,
                          "public_key_file": str(tmp_path / "key.pem")})
    assert decide(gate, request(rs256(rsa_key))).client == "jwt:bob"
    assert decide(gate, request(hs256())).client == "jwt:alice"
    # The public key as an HMAC secret: HS256 is checked with the HS256 secret only.
    assert decide(gate, request(forged_hs256(pem))).status == 401
    assert decide(gate, request(forged_hs256(SECRET.encode()))).client == "jwt:mallory"  # the forger is sound
    # An algorithm that is not listed is refused before any key is tried.
    only_rs = make_gate(jwt={"algorithms": ["RS256"], "audience": "langgraph", "issuer": ISSUER,
                             "public_key_file": str(tmp_path / "key.pem")})
    assert decide(only_rs, request(hs256())).status == 401


def test_rs256_with_a_jwks_file(tmp_path, rsa_key):
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    gate = make_gate(jwt={"algorithms": ["RS256"], "audience": "langgraph", "issuer": ISSUER,
                          "jwks_file": str(tmp_path / "jwks.json")})
    assert decide(gate, request(rs256(rsa_key, kid="k1"))).status == 200
    assert decide(gate, request(rs256(rsa_key, kid="unknown"))).status == 401


def test_budget_refuses_past_the_burst_with_retry_after():
    gate = make_gate()
    decisions = [decide(gate, request(TOKEN)) for _attempt in range(11)]
    assert [d.status for d in decisions[:10]] == [200] * 10
    assert decisions[10].status == 429
    assert decisions[10].headers()["Retry-After"] == "1"


def test_budget_per_period_with_retry_after_up_to_the_period():
    gate = make_gate(limits={"default": {"requests": 3, "period": 60, "burst": 0}})
    assert [decide(gate, request(TOKEN)).status for _attempt in range(4)] == [200, 200, 200, 429]
    wait = int(decide(gate, request(TOKEN)).headers()["Retry-After"])
    assert 55 <= wait <= 60


def test_budget_is_per_ip_and_per_credential():
    gate = make_gate(limits={"default": {"requests": 2, "period": 60, "burst": 0}})
    assert [decide(gate, request(TOKEN, ip="192.0.2.1")).status for _attempt in range(3)] == [200, 200, 429]
    # Another IP with the same token: the token's budget is spent.
    assert decide(gate, request(TOKEN, ip="192.0.2.2")).status == 429
    # Another IP and another credential: a budget of its own.
    assert decide(gate, request(hs256(), ip="192.0.2.3")).status == 200


def test_a_refused_request_spends_no_budget():
    gate = make_gate(limits={"default": {"requests": 2, "period": 60, "burst": 0}})
    assert [decide(gate, request(TOKEN, ip="192.0.2.1")).status for _attempt in range(2)] == [200, 200]
    # The token has no room: from another address it is refused, and that address's
    # budget is left whole.
    assert decide(gate, request(TOKEN, ip="192.0.2.2")).reason == "token:ci over budget"
    assert [decide(gate, request(hs256(), ip="192.0.2.2")).status for _attempt in range(3)] == [200, 200, 429]


def test_gates_sharing_a_redis_share_the_budgets():
    server = FakeServer()
    gates = [Gate(config(limits={"default": {"requests": 3, "period": 60}}), ENV,
                  redis_client=FakeAsyncRedis(server=server)) for _gate in range(2)]
    statuses = [decide(gates[attempt % 2], request(TOKEN)).status for attempt in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_a_decision_is_one_round_trip_to_redis():
    client = FakeAsyncRedis()
    sent, keys = [], []
    execute = client.execute_command

    async def record(*args, **kwargs):
        sent.append(args[0])
        if args[0] == "EVALSHA":
            keys.append(int(args[2]))
        return await execute(*args, **kwargs)
    client.execute_command = record
    gate = Gate(config(limits={"default": {"requests": 20, "period": 60, "burst": 10},
                               "routes": [{"path": "/threads*", "requests": 5, "period": 60, "burst": 4}]}),
                ENV, redis_client=client)
    decide(gate, request(TOKEN))  # loads the script once
    sent.clear()
    # Eight windows (address and token; default and route; period and burst), one call.
    for _attempt in range(3):
        assert decide(gate, request(TOKEN)).status == 200
    assert sent == ["EVALSHA"] * 3
    assert keys[-3:] == [8] * 3


def test_failed_logins_have_budgets_of_their_own():
    gate = make_gate(limits={"default": {"requests": 2, "period": 60, "burst": 0},
                             "failed": {"requests": 3, "period": 60}})
    assert [decide(gate, request("wrong")).status for _attempt in range(5)] == [401, 401, 401, 429, 429]
    # Bad tokens from behind the same NAT do not lock out a good one, nor spend its budget.
    assert [decide(gate, request(TOKEN)).status for _attempt in range(3)] == [200, 200, 429]
    # Another address has failed logins left.
    assert decide(gate, request("wrong", ip="192.0.2.9")).status == 401


def test_failed_logins_of_every_client_together_are_capped():
    gate = make_gate(limits={"default": {"requests": 20, "period": 60},
                             "failed": {"requests": 5, "period": 60},
                             "failed_total": {"requests": 4, "period": 60}})
    statuses = [decide(gate, request("wrong", ip=f"192.0.2.{i}")).status for i in range(1, 7)]
    assert statuses == [401, 401, 401, 401, 429, 429]
    assert decide(gate, request(TOKEN, ip="192.0.2.50")).status == 200


def test_route_budget_is_counted_on_top_of_the_default():
    gate = make_gate(limits={"default": {"requests": 3, "period": 60},
                             "routes": [{"path": "/threads/*/runs*", "requests": 2, "period": 60}]})
    assert decide(gate, request(TOKEN, path="/threads/t1/runs/wait?x=1")).status == 200
    assert decide(gate, request(TOKEN, path="/threads/t1/runs/stream")).status == 200
    assert decide(gate, request(TOKEN, path="/threads/t1/runs/stream")).status == 429
    assert decide(gate, request(TOKEN, path="/threads/t1")).status == 200
    # The route's two requests were the default budget's too: it is spent now.
    assert decide(gate, request(TOKEN, path="/threads/t2")).status == 429


@pytest.mark.parametrize("path", [
    "/%74hreads/t1/runs/stream",
    "/threads/t1/%72uns/stream",
    "/threads/./t1/runs/stream",
    "/threads/t1/x/../runs/stream",
    "//threads//t1/runs/stream",
    "/other/../threads/t1/runs",
])
def test_an_encoded_or_dotted_path_meets_the_route_budget_of_the_path_it_means(path):
    gate = make_gate(limits={"default": {"requests": 100, "period": 60},
                             "routes": [{"path": "/threads/*/runs*", "requests": 1, "period": 60}]})
    assert decide(gate, request(TOKEN, path="/threads/t1/runs/wait")).status == 200
    assert decide(gate, request(TOKEN, path=path)).status == 429


@pytest.mark.parametrize("path", ["/threads%2Ft1/runs/stream", "/threads%2ft1/runs", "/threads/t1%5C..%5Cruns", "/%ff%fe"])
def test_a_path_with_an_encoded_separator_or_bad_encoding_is_refused(path):
    decision = decide(make_gate(), request(TOKEN, path=path))
    assert decision.status == 400 and decision.headers() == {}


@pytest.mark.parametrize("uri, path", [
    ("/threads?x=%2F", "/threads"),
    ("/threads/", "/threads/"),
    ("/", "/"),
    ("", "/"),
    ("/a/../../b", "/b"),
    ("//threads//t1/runs", "/threads/t1/runs"),
    ("https://edge.example/%74hreads?x=1", "/threads"),
    ("/caf%C3%A9", "/café"),
])
def test_normalise_path(uri, path):
    assert gate_module.normalise_path(uri) == path


def test_ipv6_clients_are_counted_per_network():
    gate = make_gate(limits={"default": {"requests": 2, "period": 60}})
    assert decide(gate, request(TOKEN, ip="2001:db8:1:2::1")).status == 200
    assert decide(gate, request(TOKEN, ip="2001:db8:1:2:ffff::9")).status == 200
    # Same /64, another address: the network's budget is spent (the token's too).
    assert decide(gate, request(hs256(), ip="2001:db8:1:2::abcd")).status == 429
    # Another /64 and another credential: budgets of their own.
    assert decide(gate, request(hs256(), ip="2001:db8:1:3::1")).status == 200
    assert gate.client_address({"x-forwarded-for": "::ffff:192.0.2.1"}) == "192.0.2.1"
    assert gate.client_address({"x-forwarded-for": "203.0.113.5, 198.51.100.7"}) == "198.51.100.7"
    wide = make_gate(ipv6_prefix=48)
    assert wide.client_address({"x-forwarded-for": "2001:db8:1:2::1"}) == "2001:db8:1::/48"


def test_no_limits_configured_means_auth_only():
    gate = make_gate(limits=None)
    assert all(decide(gate, request(TOKEN)).status == 200 for _attempt in range(50))


def test_unreachable_redis_fails_closed():
    client = redis.asyncio.from_url("redis://127.0.0.1:1", socket_timeout=0.5, socket_connect_timeout=0.5)
    gate = Gate(config(), ENV, redis_client=client)
    assert decide(gate, request(TOKEN)).status == 503


def test_a_redis_that_refuses_the_script_fails_closed():
    gate = make_gate(limits={"default": {"requests": 20, "period": 60}, "failed": {"requests": 5, "period": 60}})

    async def refuse(**_kwargs):
        raise redis.exceptions.ResponseError("NOPERM this user has no permissions to run the 'time' command")
    gate.spend_script = refuse
    assert decide(gate, request(TOKEN)).status == 503
    assert decide(gate, request("wrong")).status == 503


@pytest.mark.parametrize("overrides, message", [
    ({"tokens": [], "jwt": None}, "no credentials configured"),
    ({"tokens": [{"name": "x", "sha256": "not-a-digest"}]}, "sha256 hex digest"),
    ({"jwt": {"algorithms": ["HS512"]}}, "HS256 and/or RS256"),
    ({"jwt": {"algorithms": ["HS256"], "issuer": ISSUER}}, "jwt.audience: required"),
    ({"jwt": {"algorithms": ["HS256"], "audience": "langgraph", "issuer": " "}}, "jwt.issuer: required"),
    ({"jwt": {"algorithms": ["HS256"], "audience": "a", "issuer": "i", "max_lifetime": 0}}, "at least 1 second"),
    ({"jwt": {"algorithms": ["HS256"], "audience": "a", "issuer": "i", "max_lifetime": "long"}}, "integer number"),
    ({"jwt": {"algorithms": ["RS256"], "audience": "a", "issuer": "i"}}, "public_key_file or jwks_file"),
    ({"jwt": {"algorithms": ["RS256"], "audience": "a", "issuer": "i", "jwks_file": "/nonexistent/jwks.json"}},
     "cannot read a JWKS"),
    ({"ipv6_prefix": 0}, "between 1 and 128"),
    ({"ipv6_prefix": "wide"}, "ipv6_prefix: needs an integer"),
    ({"limits": {"default": {"requests": 5}, "failed": {"requests": -1}}}, "limits.failed"),
    ({"limits": {"default": {"requests": 0}}}, "at least 1"),
    ({"limits": {"default": {"requests": "many"}}}, "integer"),
    ({"limits": {"default": {"requests": 5}, "routes": [{"requests": 1}]}}, "path pattern"),
])
def test_bad_configuration_says_what_is_wrong(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_gate(**overrides)


def test_short_hs256_secret_and_bad_redis_uri_are_refused():
    with pytest.raises(ConfigError, match="at least 32"):
        Gate(config(), {"GATE_JWT_SECRET": "short"}, redis_client=FakeAsyncRedis())
    with pytest.raises(ConfigError, match="redis://"):
        Gate(config(), {**ENV, "GATE_REDIS_URI": "http://example"})


def test_load_reports_a_malformed_file(tmp_path):
    (tmp_path / "gate.json").write_text("{not json")
    with pytest.raises(ConfigError, match="gate.json"):
        gate_module.load(str(tmp_path / "gate.json"), ENV)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_credentials_carry_the_token_for_browsers():
    gate = make_gate()
    headers = request()
    headers["Authorization"] = basic("operator", TOKEN)
    assert decide(gate, headers).status == 200
    headers["Authorization"] = basic("operator", hs256())
    assert decide(gate, headers).client == "jwt:alice"
    for wrong in (basic(TOKEN, ""), basic("operator", "wrong"), "Basic not-base64!", "Basic " + base64.b64encode(b"\xff:\xfe").decode()):
        headers["Authorization"] = wrong
        assert decide(gate, headers).status == 401, wrong


def test_refusal_challenges_bearer_or_basic():
    decision = decide(make_gate(), request())
    assert decision.headers()["WWW-Authenticate"].startswith("Bearer ")
    assert decision.headers("basic")["WWW-Authenticate"].startswith("Basic realm=")
