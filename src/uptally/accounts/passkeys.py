"""Passkeys (WebAuthn, the `webauthn` package): register one from the account page, give it as
the second factor at sign-in or sign in with it alone, remove it (audit-logged).

The challenge of each ceremony is stored on the server and used up by the answer, so an answer
works once and on any instance: on the browser's session, or, before there is one (signing in
with the passkey alone), as a one-time link (`account_links`, kind "passkey", 5 minutes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from uptally import audit
from uptally.clock import Millis
from uptally.store import accounts as store
from uptally.store.accounts import PasskeyRow, SessionRow, UserRow

MAX_NAME = 64
MAX_ANSWER = 64 * 1024  # a browser's answer is a few KiB
LINK = "passkey"  # the account_links kind of a challenge given before sign-in
CHALLENGE_MS = 5 * 60_000
_ANSWER_ERRORS = (WebAuthnException, ValueError, KeyError, TypeError)


class PasskeyError(ValueError):
    """A passkey refused, with a message to show."""


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who asks for the passkey: the console's origin (scheme, host, port) and host name."""

    id: str
    name: str
    origin: str

    @staticmethod
    def of(base_url: str, name: str) -> RelyingParty:
        parts = urlsplit(base_url)
        return RelyingParty(parts.hostname or "localhost", name, f"{parts.scheme}://{parts.netloc}")


def _descriptors(keys: list[PasskeyRow]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=base64url_to_bytes(k.id)) for k in keys]


async def registration_options(
    conn: AsyncConnection, session: SessionRow, user: UserRow, rp: RelyingParty
) -> str:
    """The options for navigator.credentials.create() (JSON); its challenge is kept on the
    session."""
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=user.email,
        user_id=user.id.encode(),
        user_display_name=user.name,
        exclude_credentials=_descriptors(await store.passkeys_of(conn, user.id)),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    await store.set_challenge(conn, session.id, bytes_to_base64url(options.challenge))
    return options_to_json(options)


async def register(
    conn: AsyncConnection,
    session: SessionRow,
    user: UserRow,
    answer: str,
    name: str,
    rp: RelyingParty,
    actor: str,
    now: Millis,
) -> PasskeyRow:
    """Keep the passkey the browser made (PasskeyError if its answer does not check out)."""
    challenge = await store.take_challenge(conn, session.id)
    if challenge is None or len(answer) > MAX_ANSWER:
        raise PasskeyError("no passkey registration is under way here; start again")
    try:
        verified = verify_registration_response(
            credential=answer,
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
        )
    except _ANSWER_ERRORS as error:
        raise PasskeyError(f"the passkey was not accepted: {error}") from None
    label = " ".join(name.split())[:MAX_NAME] or "Passkey"
    row = PasskeyRow(
        id=bytes_to_base64url(verified.credential_id),
        user_id=user.id,
        name=label,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        created_at=now,
        last_used_at=None,
    )
    await store.insert_passkey(conn, row)
    await audit.append(
        conn, actor, "user.passkey_added", f"user:{user.email}", {"name": label}, at=now
    )
    return row


async def authentication_options(
    conn: AsyncConnection, session: SessionRow, user: UserRow, rp: RelyingParty
) -> str | None:
    """The options for navigator.credentials.get() (JSON), or None without passkeys."""
    keys = await store.passkeys_of(conn, user.id)
    if not keys:
        return None
    options = generate_authentication_options(
        rp_id=rp.id,
        allow_credentials=_descriptors(keys),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    await store.set_challenge(conn, session.id, bytes_to_base64url(options.challenge))
    return options_to_json(options)


async def authenticate(
    conn: AsyncConnection,
    session: SessionRow,
    user: UserRow,
    answer: str,
    rp: RelyingParty,
    now: Millis,
) -> bool:
    """Whether the browser's answer proves one of the user's passkeys (challenge used up)."""
    challenge = await store.take_challenge(conn, session.id)
    if challenge is None or len(answer) > MAX_ANSWER:
        return False
    try:
        credential = parse_authentication_credential_json(answer)
        key = next(
            (k for k in await store.passkeys_of(conn, user.id) if k.id == credential.id), None
        )
        if key is None:
            return False
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=key.public_key,
            credential_current_sign_count=key.sign_count,
        )
    except _ANSWER_ERRORS:
        return False
    return await store.used_passkey(conn, key.id, key.sign_count, verified.new_sign_count, now)


def challenge_id(challenge: str) -> str:
    """The stored form of a challenge given before sign-in (its SHA-256, like a link's)."""
    return hashlib.sha256(challenge.encode()).hexdigest()


async def sign_in_options(conn: AsyncConnection, rp: RelyingParty, now: Millis) -> str:
    """Options for signing in with a passkey alone (any of this site's passkeys, verified by
    the device's PIN or biometrics); the challenge is kept for 5 minutes, expired ones go."""
    options = generate_authentication_options(
        rp_id=rp.id, user_verification=UserVerificationRequirement.REQUIRED
    )
    await store.prune_links(conn, LINK, now)
    challenge = challenge_id(bytes_to_base64url(options.challenge))
    await store.insert_link(conn, challenge, LINK, None, now, now + CHALLENGE_MS)
    return options_to_json(options)


async def passwordless(
    conn: AsyncConnection, answer: str, rp: RelyingParty, now: Millis
) -> UserRow | None:
    """The user whose passkey (with user verification: something they have and know or are)
    made this answer to a challenge of sign_in_options(), which is used up; else None."""
    if len(answer) > MAX_ANSWER:
        return None
    try:
        credential = parse_authentication_credential_json(answer)
        client_data = parse_client_data_json(credential.response.client_data_json)
        challenge = bytes_to_base64url(client_data.challenge)
        taken, _ = await store.take_link(conn, challenge_id(challenge), LINK, now)
        key = await store.passkey_by_id(conn, credential.id) if taken else None
        if key is None:
            return None
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=client_data.challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=key.public_key,
            credential_current_sign_count=key.sign_count,
            require_user_verification=True,
        )
    except _ANSWER_ERRORS:
        return None
    if not await store.used_passkey(conn, key.id, key.sign_count, verified.new_sign_count, now):
        return None
    return await store.user_by_id(conn, key.user_id)


async def remove(
    conn: AsyncConnection, user: UserRow, credential_id: str, actor: str, now: Millis
) -> bool:
    """Forget a passkey; with the last factor gone, the recovery codes go too."""
    removed = await store.delete_passkey(conn, user.id, credential_id[:512])
    if removed:
        if user.totp_enabled_at is None and not await store.count_passkeys(conn, user.id):
            await store.replace_recovery_codes(conn, user.id, [], now)
        await audit.append(
            conn, actor, "user.passkey_removed", f"user:{user.email}", {"id": credential_id}, at=now
        )
    return removed
