"""The edge gate: Caddy's `forward_auth` asks it about every request before the upstream.

It answers 200 (and names the client in X-Gate-Client), 400 (a request path that could
mean another route to the upstream: an encoded slash or backslash), 401 (no or bad credentials,
with WWW-Authenticate), 429 (over budget, with Retry-After) or 503 (its Redis is
unreachable: fail closed). Credentials are static bearer tokens, kept only as SHA-256
digests, and/or JWTs checked by PyJWT (HS256 secret, RS256 public key or JWKS file, each
token checked with the key of its own algorithm; audience, issuer and expiry required, and
a lifetime of at most max_lifetime seconds). Budgets are moving windows counted in Redis,
every window of a decision in one script call, so every gate that shares the Redis shares
one budget:
- authenticated requests: one budget per client address and one per credential;
- failed authentications: one budget per client address and one for all clients together,
  apart from the good ones, so bad tokens from behind a NAT never lock out a good one.
An IPv6 client is its /ipv6_prefix network (a /64 by default), not one of 2^64 addresses.
Browsers may send the same credential as HTTP Basic (any user, the token as password):
with `?challenge=basic` the gate's 401 asks for that, for sites such as Phoenix's UI.

A budget is `requests` per `period` seconds plus at most `burst` in any one second.
Route budgets match the original path (X-Forwarded-Uri) once it is decoded as the upstream
decodes it and its dot segments are resolved, with shell-style patterns; the first that
matches is counted in addition to the default budget.

Configuration: a JSON file (GATE_CONFIG) with no secrets in it; the Redis URI and the HS256
secret come from the environment (the role's 0600 env file). One process decides many
requests at once (an async Redis client); its Python code runs on one core at a time, so
--workers runs more processes, each with its own Redis pool.
"""

from __future__ import annotations

import base64
import dataclasses
import fnmatch
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import posixpath
import re
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt
import redis.asyncio
from redis.exceptions import RedisError

log = logging.getLogger("ai_infra_gate")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


@dataclasses.dataclass(frozen=True)
class Budget:
    requests: int
    period: int
    burst: int

    def windows(self) -> list[tuple[int, int]]:
        """(requests, seconds) of each moving window the budget is made of."""
        windows = [(self.requests, self.period)]
        if 0 < self.burst < self.requests:
            windows.append((self.burst, 1))
        return windows


# Every moving window one decision touches, tested and (when all fit) recorded in one
# script: one round trip to Redis, and two gates deciding at once cannot both take the last
# request of a budget. A window is a list of the request times in it, newest first, at most
# `requests` long; the request fits when the list is shorter or its last entry is older than
# the window. Redis's own clock stamps the requests, so gates on several hosts agree.
# (The `limits` library keeps its moving windows the same way, but one key per call.)
# KEYS: the windows' keys. ARGV: requests and seconds of each window, in KEYS' order.
# Returns 0 when the request was recorded, else {index of the first full window (1-based),
# seconds until it has room}.
SPEND_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
for i, key in ipairs(KEYS) do
  local requests, seconds = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local oldest = redis.call('LINDEX', key, requests - 1)
  if oldest and tonumber(oldest) + seconds > now then
    return {i, math.max(1, math.ceil(tonumber(oldest) + seconds - now))}
  end
end
local stamp = string.format('%.6f', now)
for i, key in ipairs(KEYS) do
  local requests, seconds = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('LPUSH', key, stamp)
  redis.call('LTRIM', key, 0, requests - 1)
  redis.call('EXPIRE', key, seconds)
end
return 0
"""


@dataclasses.dataclass(frozen=True)
class Decision:
    status: int
    client: str = ""
    retry_after: int = 0
    reason: str = ""

    def headers(self, challenge: str = "bearer") -> dict[str, str]:
        if self.status == 200:
            return {"X-Gate-Client": self.client}
        if self.status == 401:
            # Basic for sites browsers open (Phoenix's UI): it makes them ask for the token.
            if challenge == "basic":
                return {"WWW-Authenticate": 'Basic realm="ai-infra", charset="UTF-8"'}
            return {"WWW-Authenticate": 'Bearer realm="langgraph", error="invalid_token"'}
        if self.status == 429:
            return {"Retry-After": str(self.retry_after)}
        return {}


def _budget(raw: dict[str, Any], where: str) -> Budget:
    try:
        budget = Budget(int(raw["requests"]), int(raw.get("period", 60)), int(raw.get("burst", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: needs integer requests, period and burst ({exc})") from exc
    if budget.requests < 1 or budget.period < 1 or budget.burst < 0:
        raise ConfigError(f"{where}: requests and period must be at least 1, burst at least 0")
    return budget


# A JWT subject goes into a header (X-Gate-Client) and a Redis key as it is when it is this
# plain; any other subject is named by a digest of it (headers are Latin-1, keys are ours).
_PLAIN_SUBJECT = re.compile(r"[A-Za-z0-9._@:+-]{1,128}")
# Encoded separators: the gate would see one segment where the upstream may see two.
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def normalise_path(uri: str) -> str | None:
    """The path the upstream will route, from the request's original URI: decoded once (as
    the upstream decodes it), dot segments resolved, repeated slashes merged; None when the
    path carries an encoded `/` or `\\`."""
    # Only an absolute-form request line carries a scheme; "//a/b" is a path, not a host.
    path = (urlsplit(uri).path if _ABSOLUTE_URI.match(uri) else uri.split("?", 1)[0].split("#", 1)[0]) or "/"
    if _ENCODED_SEPARATOR.search(path):
        return None
    decoded = unquote(path, errors="strict") if "%" in path else path
    resolved = posixpath.normpath("/" + decoded.lstrip("/"))
    # normpath keeps a leading "//"; it drops a trailing "/", which a pattern may name.
    resolved = "/" + resolved.lstrip("/")
    if decoded.endswith("/") and resolved != "/":
        resolved += "/"
    return resolved


class Gate:
    def __init__(self, config: dict[str, Any], environ: dict[str, str], redis_client=None):
        self.token_digests = {}
        for token in config.get("tokens", []):
            digest = str(token.get("sha256", "")).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not token.get("name"):
                raise ConfigError("tokens: every entry needs a name and the token's sha256 hex digest")
            self.token_digests[digest] = str(token["name"])

        self.jwt = config.get("jwt") or {}
        # The key for each algorithm; a token is checked only with the key of its own.
        self.jwt_keys: dict[str, Any] = {}
        self.jwks: jwt.PyJWKSet | None = None
        if self.jwt:
            self._load_jwt_keys(environ)
        if not self.token_digests and not self.jwt:
            raise ConfigError("no credentials configured: set tokens and/or jwt")

        try:
            self.ipv6_prefix = int(config.get("ipv6_prefix", 64))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"ipv6_prefix: needs an integer ({exc})") from exc
        if not 1 <= self.ipv6_prefix <= 128:
            raise ConfigError("ipv6_prefix: must be between 1 and 128")

        # Every key the gate writes starts with it (its Redis user may touch no other).
        self.prefix = str(config.get("key_prefix", "gate"))
        limits_config = config.get("limits")
        self.default_budget: Budget | None = None
        self.failed_budget: Budget | None = None
        self.failed_total_budget: Budget | None = None
        self.routes: list[tuple[str, Budget]] = []
        self.spend_script = None
        if limits_config:
            self.default_budget = _budget(limits_config.get("default", {}), "limits.default")
            if limits_config.get("failed"):
                self.failed_budget = _budget(limits_config["failed"], "limits.failed")
            if limits_config.get("failed_total"):
                self.failed_total_budget = _budget(limits_config["failed_total"], "limits.failed_total")
            for index, route in enumerate(limits_config.get("routes", [])):
                if not route.get("path"):
                    raise ConfigError(f"limits.routes[{index}]: needs a path pattern")
                self.routes.append((route["path"], _budget(route, f"limits.routes[{index}]")))
            if redis_client is None:
                uri = environ.get("GATE_REDIS_URI", "")
                if not uri.startswith(("redis://", "rediss://")):
                    raise ConfigError("GATE_REDIS_URI must be a redis:// or rediss:// URI")
                # Connects on first use, in the worker process's event loop.
                redis_client = redis.asyncio.from_url(uri, socket_timeout=2, socket_connect_timeout=2,
                                                      health_check_interval=30)
            self.spend_script = redis_client.register_script(SPEND_SCRIPT)

    def _load_jwt_keys(self, environ: dict[str, str]) -> None:
        algorithms = self.jwt.get("algorithms") or []
        if not algorithms or any(a not in ("HS256", "RS256") for a in algorithms):
            raise ConfigError("jwt.algorithms: list HS256 and/or RS256")
        # A token for any audience or issuer would pass anything else that trusts the key.
        for claim in ("audience", "issuer"):
            if not str(self.jwt.get(claim) or "").strip():
                raise ConfigError(f"jwt.{claim}: required when JWTs are accepted")
        try:
            self.max_lifetime = int(self.jwt.get("max_lifetime", 86400))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"jwt.max_lifetime: needs an integer number of seconds ({exc})") from exc
        if self.max_lifetime < 1:
            raise ConfigError("jwt.max_lifetime: must be at least 1 second")
        if "HS256" in algorithms:
            secret = environ.get("GATE_JWT_SECRET", "")
            if len(secret) < 32:
                raise ConfigError("jwt: HS256 needs GATE_JWT_SECRET of at least 32 characters")
            self.jwt_keys["HS256"] = secret
        if "RS256" in algorithms:
            if self.jwt.get("jwks_file"):
                try:
                    with open(self.jwt["jwks_file"], encoding="utf-8") as handle:
                        self.jwks = jwt.PyJWKSet.from_json(handle.read())
                except (OSError, jwt.PyJWTError, ValueError) as exc:
                    raise ConfigError(f"jwt.jwks_file: cannot read a JWKS from it ({exc})") from exc
            elif self.jwt.get("public_key_file"):
                try:
                    with open(self.jwt["public_key_file"], encoding="utf-8") as handle:
                        self.jwt_keys["RS256"] = handle.read()
                except OSError as exc:
                    raise ConfigError(f"jwt.public_key_file: {exc}") from exc
            else:
                raise ConfigError("jwt: RS256 needs public_key_file or jwks_file")

    # Credentials -------------------------------------------------------------------------
    def authenticate(self, authorization: str) -> str | None:
        """The client's name for a valid credential, else None."""
        scheme, _sep, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() == "basic":
            # A browser's Basic credentials: any user name, the token as the password.
            try:
                token = base64.b64decode(token, validate=True).decode("utf-8").partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return None
        elif scheme.lower() != "bearer":
            return None
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        for known, name in self.token_digests.items():
            if hmac.compare_digest(known, digest):
                return "token:" + name
        if self.jwt and token.count(".") == 2:
            return self._jwt_subject(token)
        return None

    def _jwt_subject(self, token: str) -> str | None:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            if algorithm not in self.jwt["algorithms"]:
                raise jwt.InvalidAlgorithmError(f"algorithm {algorithm!r} is not accepted")
            if algorithm == "RS256" and self.jwks is not None:
                kid = jwt.get_unverified_header(token).get("kid")
                key = self.jwks[kid].key if kid else self.jwks.keys[0].key
            else:
                key = self.jwt_keys[algorithm]
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.jwt["audience"],
                issuer=self.jwt["issuer"],
                leeway=int(self.jwt.get("leeway", 0)),
                options={"require": ["exp", "aud", "iss"]},
            )
            # PyJWT has checked that exp (and iat, when present) are numbers.
            if claims["exp"] - claims.get("iat", time.time()) > self.max_lifetime + int(self.jwt.get("leeway", 0)):
                raise jwt.InvalidTokenError(f"lifetime longer than {self.max_lifetime} s")
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
            log.info("JWT refused: %s", exc)
            return None
        subject = str(claims.get("sub", "anonymous"))
        if not _PLAIN_SUBJECT.fullmatch(subject):
            subject = "sha256-" + hashlib.sha256(subject.encode("utf-8", "replace")).hexdigest()[:32]
        return "jwt:" + subject

    # Budgets -----------------------------------------------------------------------------
    def client_address(self, headers: dict[str, str]) -> str:
        """The budget key of the client's address: an IPv4 address, or the IPv6 network
        of ipv6_prefix bits around it."""
        # Caddy sets X-Forwarded-For to the client's address (it trusts no proxies by
        # default); the last entry is the one the closest proxy saw.
        raw = headers.get("x-forwarded-for", "").split(",")[-1].strip()
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            return raw or "unknown"
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.ip_network(f"{address}/{self.ipv6_prefix}", strict=False))
        return str(address)

    def route_budget(self, path: str) -> tuple[str, Budget] | None:
        for index, (pattern, budget) in enumerate(self.routes):
            if fnmatch.fnmatchcase(path, pattern):
                return f"route{index}", budget
        return None

    async def spend(self, charges: list[tuple[str, str, Budget]]) -> tuple[int, int]:
        """(-1, 0) when the request fits in every budget of every one it is charged to (who,
        budget name, budget), and is counted in each; else (index of the first charge with
        no room, seconds to wait), and nothing is counted."""
        assert self.spend_script is not None
        keys, sizes, owners = [], [], []
        for index, (who, name, budget) in enumerate(charges):
            for requests, seconds in budget.windows():
                # The window's size in its name: a budget changed in the configuration starts afresh.
                keys.append(f"{self.prefix}:{who}:{name}:{requests}/{seconds}")
                sizes += [requests, seconds]
                owners.append(index)
        answer = await self.spend_script(keys=keys, args=sizes)
        if answer == 0:
            return -1, 0
        window, wait = answer
        return owners[int(window) - 1], int(wait)

    # The decision ------------------------------------------------------------------------
    async def decide(self, headers: dict[str, str]) -> Decision:
        headers = {k.lower(): v for k, v in headers.items()}
        ip = self.client_address(headers)
        try:
            path = normalise_path(headers.get("x-forwarded-uri", "/"))
        except UnicodeDecodeError:
            path = None
        if path is None:
            return Decision(400, reason=f"ambiguous path from {ip}")
        client = self.authenticate(headers.get("authorization", ""))
        if client is None:
            # Counted apart from good requests: per address, and all addresses together.
            within = Decision(401, reason=f"no valid credential from {ip}")
            charges = [("ip:" + ip, "failed", self.failed_budget, f"ip {ip} over its budget of failed logins"),
                       ("all", "failed", self.failed_total_budget,
                        "every client together over the budget of failed logins")]
        else:
            within = Decision(200, client=client)
            budgets = [("default", self.default_budget)]
            if route := self.route_budget(path):
                budgets.append(route)
            charges = [(who, name, budget, f"{who} over budget")
                       for who in ("ip:" + ip, client) for name, budget in budgets]
        charges = [charge for charge in charges if charge[2] is not None]
        if self.spend_script is None or not charges:
            return within
        try:
            index, wait = await self.spend([charge[:3] for charge in charges])
        except RedisError as exc:
            log.error("rate-limit storage unavailable, refusing: %s", exc)
            return Decision(503, reason="rate-limit storage unavailable")
        if index < 0:
            return within
        return Decision(429, client=client or "", retry_after=wait, reason=charges[index][3])


def load(path: str, environ: dict[str, str]) -> Gate:
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return Gate(config, environ)


def create_app(gate: Gate):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def check(request):
        decision = await gate.decide(dict(request.headers))
        if decision.status != 200:
            log.info("%d %s", decision.status, decision.reason)
        body = {200: "", 400: "bad request path\n", 401: "unauthorized\n", 429: "too many requests\n",
                503: "gate unavailable\n"}[decision.status]
        challenge = request.query_params.get("challenge", "bearer")
        return PlainTextResponse(body, status_code=decision.status, headers=decision.headers(challenge))

    async def health(request):
        return PlainTextResponse("ok\n")

    # Async endpoints: the event loop waits on Redis for many requests at once, where sync
    # ones would each hold a thread of Starlette's pool.
    return Starlette(routes=[Route("/check", check, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
                             Route("/healthz", health)])


def create_app_from_environment():
    """The app for each uvicorn worker process, from GATE_CONFIG and the environment."""
    return create_app(load(os.environ["GATE_CONFIG"], dict(os.environ)))


def main() -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.environ.get("GATE_CONFIG", "/etc/ai-infra-gate/gate.json"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9180)
    parser.add_argument("--uds", default="", help="listen on this unix socket instead of --host/--port")
    parser.add_argument("--workers", type=int, default=1, help="processes (each one runs on one core at a time)")
    parser.add_argument("--check-config", action="store_true", help="load the configuration and exit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        load(args.config, dict(os.environ))
    except ConfigError as exc:
        raise SystemExit(f"ai-infra-gate: {exc}") from None
    if args.check_config:
        print("configuration OK")
        return
    os.environ["GATE_CONFIG"] = args.config
    listen = {"uds": args.uds} if args.uds else {"host": args.host, "port": args.port}
    uvicorn.run("ai_infra_gate:create_app_from_environment", factory=True, **listen,
                workers=args.workers, access_log=False, log_level="info")


if __name__ == "__main__":
    main()
