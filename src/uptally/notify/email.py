"""Mail through the configured SMTP server (aiosmtplib), with permanent and transient failures."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr

from uptally.notify.transport import DeliveryError


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # starttls | tls | none
    username: str | None
    password: str | None
    sender: str
    timeout_s: float
    verify_tls: bool


class Mailer:
    def __init__(self, settings: SmtpSettings, concurrency: int) -> None:
        self.settings = settings
        self._slots = asyncio.Semaphore(concurrency)  # one mail server for every subscriber

    async def send(self, message: EmailMessage) -> int:
        import aiosmtplib

        s = self.settings
        if "From" not in message:
            message["From"] = s.sender
        # Flattened here, not by aiosmtplib: its policy would fold long headers into
        # encoded words, and a folded List-Unsubscribe is no longer a link.
        raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        sender = parseaddr(s.sender)[1]
        recipients = [parseaddr(message["To"])[1]]
        context = ssl.create_default_context()
        if not s.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        async with self._slots:
            try:
                await aiosmtplib.send(
                    raw,
                    sender=sender,
                    recipients=recipients,
                    hostname=s.host,
                    port=s.port,
                    username=s.username,
                    password=s.password,
                    use_tls=s.security == "tls",
                    start_tls=s.security == "starttls",
                    timeout=s.timeout_s,
                    tls_context=context,
                )
            except aiosmtplib.SMTPRecipientsRefused as error:
                codes = [r.code for r in error.recipients]
                permanent = bool(codes) and all(500 <= code < 600 for code in codes)
                raise DeliveryError(
                    f"recipient refused: {error.recipients[0].message if error.recipients else ''}",
                    permanent=permanent,
                    status=codes[0] if codes else None,
                ) from None
            except aiosmtplib.SMTPResponseException as error:
                raise DeliveryError(
                    f"SMTP {error.code}: {error.message}",
                    permanent=500 <= error.code < 600,
                    status=error.code,
                ) from None
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                raise DeliveryError(f"SMTP: {str(error) or type(error).__name__}"[:300]) from None
        return 250
