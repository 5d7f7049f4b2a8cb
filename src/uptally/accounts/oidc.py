"""The OpenID Connect relying party: the provider's discovery document and keys (fetched with a
timeout, cached), the authorization URL (code flow, PKCE S256), the code exchange, and the ID
token's validation (signature with joserfc; iss, aud, exp, nonce, at_hash with authlib)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from uptally.accounts.sso import Flow
from uptally.config.console import Oidc

TIMEOUT_S = 10.0
CACHE_MS = 3_600_000  # the discovery document and keys are fetched again after an hour
LEEWAY_S = 120  # clock skew allowed between uptally and the provider
# asymmetric only: an HS256 token would be signed with the client secret, which we do not use
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class OidcError(Exception):
    """The provider could not be reached, answered wrongly, or refused; `message` says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    algorithms: tuple[str, ...]
    basic_auth: bool  # client_secret_basic (the default) rather than client_secret_post


def _metadata(doc: Mapping[str, Any], issuer: str) -> Metadata:
    def url(name: str) -> str:
        value = doc.get(name)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise OidcError(f"the provider's discovery document has no {name}")
        return value

    if doc.get("issuer") != issuer:
        raise OidcError(
            f"the provider calls itself {doc.get('issuer')!r}, not the configured issuer {issuer!r}"
        )
    offered = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return Metadata(
        issuer=issuer,
        authorization_endpoint=url("authorization_endpoint"),
        token_endpoint=url("token_endpoint"),
        jwks_uri=url("jwks_uri"),
        userinfo_endpoint=doc.get("userinfo_endpoint") or None,
        algorithms=tuple(a for a in offered if a in ALGORITHMS) or ("RS256",),
        basic_auth="client_secret_basic" in methods or "client_secret_post" not in methods,
    )


class RelyingParty:
    """uptally as the client of one provider (one `console.oidc` configuration)."""

    def __init__(self, oidc: Oidc) -> None:
        self.oidc = oidc
        self._metadata: tuple[int, Metadata] | None = None
        self._keys: tuple[int, KeySet] | None = None
        self._lock = asyncio.Lock()

    def client_secret(self) -> str | None:
        name = self.oidc.client_secret_env
        return os.environ.get(name) if name else None

    async def _get(self, http: aiohttp.ClientSession, url: str, what: str) -> Any:
        try:
            async with http.get(url, headers={"Accept": "application/json"}) as response:
                if response.status != 200:
                    raise OidcError(f"the provider's {what} answered HTTP {response.status}")
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise OidcError(
                f"could not fetch the provider's {what}: {error or type(error)}"
            ) from None

    async def metadata(self, now: int) -> Metadata:
        async with self._lock:
            if self._metadata is None or now - self._metadata[0] > CACHE_MS:
                url = self.oidc.issuer.rstrip("/") + "/.well-known/openid-configuration"
                async with _session() as http:
                    doc = await self._get(http, url, "discovery document")
                if not isinstance(doc, dict):
                    raise OidcError("the provider's discovery document is not a JSON object")
                self._metadata = (now, _metadata(doc, self.oidc.issuer))
            return self._metadata[1]

    async def _key_set(self, meta: Metadata, now: int, fresh: bool = False) -> KeySet:
        async with self._lock:
            if fresh or self._keys is None or now - self._keys[0] > CACHE_MS:
                async with _session() as http:
                    jwks = await self._get(http, meta.jwks_uri, "keys (jwks_uri)")
                try:
                    self._keys = (now, KeySet.import_key_set(jwks))
                except (JoseError, ValueError, TypeError, KeyError) as error:
                    raise OidcError(f"the provider's keys are not usable: {error}") from None
            return self._keys[1]

    def authorize_url(self, meta: Metadata, redirect_uri: str, flow: Flow) -> str:
        params = [
            ("response_type", "code"),
            ("client_id", self.oidc.client_id),
            ("redirect_uri", redirect_uri),
            ("scope", " ".join(self.oidc.scopes)),
            ("state", flow.state),
            ("nonce", flow.nonce),
            ("code_challenge", create_s256_code_challenge(flow.verifier)),
            ("code_challenge_method", "S256"),
        ]
        return str(add_params_to_uri(meta.authorization_endpoint, params))

    async def exchange(self, code: str, redirect_uri: str, flow: Flow, now: int) -> dict[str, Any]:
        """The code for tokens; the ID token's validated claims, completed from the userinfo
        endpoint when the ID token leaves out the e-mail or the groups."""
        meta = await self.metadata(now)
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": flow.verifier,
        }
        headers = {"Accept": "application/json"}
        secret = self.client_secret()
        if secret is not None and meta.basic_auth:
            pair = f"{quote(self.oidc.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            body["client_id"] = self.oidc.client_id
            if secret is not None:
                body["client_secret"] = secret
        async with _session() as http:
            try:
                async with http.post(meta.token_endpoint, data=body, headers=headers) as response:
                    tokens = await response.json(content_type=None)
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                raise OidcError(f"the token request failed: {error or type(error)}") from None
            if not isinstance(tokens, dict) or status != 200:
                found = tokens if isinstance(tokens, dict) else {}
                detail = found.get("error_description") or found.get("error")
                raise OidcError(f"the provider refused the code (HTTP {status}: {detail})")
            id_token, access = tokens.get("id_token"), tokens.get("access_token")
            if not isinstance(id_token, str):
                raise OidcError("the provider sent no ID token (is 'openid' among the scopes?)")
            claims = await self._validated(meta, id_token, flow, access, now)
            wanted = ("email", self.oidc.groups_claim)
            if (
                meta.userinfo_endpoint
                and isinstance(access, str)
                and any(name not in claims for name in wanted)
            ):
                info = await self._userinfo(http, meta.userinfo_endpoint, access)
                if info.get("sub") != claims["sub"]:
                    raise OidcError("the provider's userinfo is about someone else")
                claims = {**info, **claims}
        return claims

    async def _validated(
        self, meta: Metadata, id_token: str, flow: Flow, access: Any, now: int
    ) -> dict[str, Any]:
        try:
            keys = await self._key_set(meta, now)
            try:
                token = jwt.decode(id_token, keys, algorithms=list(meta.algorithms))
            except InvalidKeyIdError:  # the provider rolled its keys
                keys = await self._key_set(meta, now, fresh=True)
                token = jwt.decode(id_token, keys, algorithms=list(meta.algorithms))
            options = {
                "iss": {"essential": True, "values": [meta.issuer]},
                "aud": {"essential": True, "values": [self.oidc.client_id]},
            }
            params = {"nonce": flow.nonce, "client_id": self.oidc.client_id}
            if isinstance(access, str):
                params["access_token"] = access
            claims = CodeIDToken(token.claims, token.header, options, params)
            claims.validate(now=now // 1000, leeway=LEEWAY_S)
        except JoseError as error:
            raise OidcError(f"the ID token is not valid: {error}") from None
        return dict(claims)

    async def _userinfo(self, http: aiohttp.ClientSession, url: str, access: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access}", "Accept": "application/json"}
        try:
            async with http.get(url, headers=headers) as response:
                info = await response.json(content_type=None)
                if response.status != 200 or not isinstance(info, dict):
                    raise OidcError(f"the provider's userinfo answered HTTP {response.status}")
                return info
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise OidcError(f"could not fetch userinfo: {error or type(error)}") from None


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
