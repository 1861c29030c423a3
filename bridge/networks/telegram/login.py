"""Interactive logins: phone number + code (+ two-step password), or a QR code.

Each process owns a fresh Telethon client with an empty :class:`BridgeSession`; when it
completes, the session (auth key, data centre, update state) becomes the login's metadata.

On a configured server that allows it (never on Telegram's production servers), a phone
number without an account gets one: the flow asks for a first and last name and signs up.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

from telethon import errors
from telethon.tl import types as tl

from ...core.connector import LoginComplete, LoginError, LoginProcess, LoginPrompt, LoginRecord
from ...core.ids import LoginID, UserID
from .chats import display_name
from .client import BridgeTelegramClient
from .server import connection_problem, describe_server
from .session import BridgeSession

if TYPE_CHECKING:
    from .connector import TelegramConnector

log = logging.getLogger("bridge.networks.telegram.login")

_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{5,}$")
_NAME_LIMIT = 64  # Telegram's limit for first and last names


class _TelegramLoginProcess(LoginProcess):
    def __init__(self, connector: TelegramConnector, owner: UserID) -> None:
        self.connector = connector
        self.owner = owner
        self.session = BridgeSession()
        self.client: BridgeTelegramClient | None = None
        self.awaiting_password = False

    async def _connect(self) -> BridgeTelegramClient:
        if self.client is None:
            self.client = self.connector.client_factory(self.connector.config, self.session)
        if not self.client.is_connected():
            try:
                await self.client.connect()
            except (OSError, ConnectionError) as e:
                problem = connection_problem(self.connector.config, e)
                log.warning("Telegram login for %s failed: %s", self.owner, problem)
                await self._close()
                raise LoginError(problem[0].upper() + problem[1:] + ".") from None
        return self.client

    async def _complete(self, user: Any) -> LoginComplete:
        assert self.client is not None
        account, channels = self.client.current_state()
        self.session.set_checkpoint(account, channels)
        metadata = self.session.export(self_id=user.id)
        record = LoginRecord(
            network=self.connector.network,
            login_id=LoginID(str(user.id)),
            owner=self.owner,
            remote_name=display_name(user) or (f"@{user.username}" if user.username else str(user.id)),
            metadata=metadata,
        )
        await self._close()
        return LoginComplete(record)

    async def _password(self, password: str) -> LoginComplete:
        assert self.client is not None
        try:
            user = await self.client.sign_in(password=password)
        except errors.PasswordHashInvalidError:
            raise LoginError("That password is wrong.") from None
        except errors.FloodWaitError as e:
            raise LoginError(f"Telegram asks to wait {e.seconds} s before the next try.") from None
        return await self._complete(user)

    def _password_prompt(self) -> LoginPrompt:
        self.awaiting_password = True
        return LoginPrompt("Your account has two-step verification: send your password.", secret=True)

    async def _close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            try:
                await client.disconnect()
            except Exception:
                log.debug("Disconnecting a login client failed", exc_info=True)

    async def cancel(self) -> None:
        await self._close()


class PhoneLogin(_TelegramLoginProcess):
    """Phone number, then the code Telegram sends, then the two-step password if set.

    Where the number has no account and the config allows sign-up, the code is followed
    by a first and a last name for the new account.
    """

    def __init__(self, connector: TelegramConnector, owner: UserID) -> None:
        super().__init__(connector, owner)
        self.phone: str | None = None
        self.phone_code_hash = ""
        self.signing_up = False
        self.first_name: str | None = None

    async def start(self) -> LoginPrompt:
        return LoginPrompt(
            "Send your phone number in international format, e.g. +49 151 23456789. "
            "It is used for this login only and is not stored."
        )

    async def submit(self, text: str) -> LoginPrompt | LoginComplete:
        text = text.strip()
        if self.awaiting_password:
            return await self._password(text)
        if self.signing_up:
            return await self._sign_up(text)
        if self.phone is None:
            return await self._send_code(text)
        return await self._sign_in(text)

    async def _send_code(self, text: str) -> LoginPrompt:
        if not _PHONE.match(text):
            raise LoginError("That doesn't look like a phone number.")
        phone = "+" + re.sub(r"\D", "", text)
        client = await self._connect()
        try:
            sent = await client.send_code_request(phone)
        except (errors.PhoneNumberInvalidError, errors.PhoneNumberBannedError):
            raise LoginError("Telegram doesn't accept that phone number.") from None
        except errors.PhoneNumberUnoccupiedError:
            raise self._no_account() from None
        except errors.FloodWaitError as e:
            raise LoginError(f"Telegram asks to wait {e.seconds} s before the next try.") from None
        self.phone = phone
        self.phone_code_hash = sent.phone_code_hash
        where = "in your Telegram app" if isinstance(sent.type, tl.auth.SentCodeTypeApp) else "by Telegram"
        return LoginPrompt(f"Send the login code you got {where}.", secret=True)

    async def _sign_in(self, code: str) -> LoginPrompt | LoginComplete:
        assert self.client is not None and self.phone is not None
        code = re.sub(r"\D", "", code)
        try:
            user = await self.client.sign_in(self.phone, code, phone_code_hash=self.phone_code_hash)
        except errors.SessionPasswordNeededError:
            return self._password_prompt()
        except (errors.PhoneCodeInvalidError, errors.PhoneCodeEmptyError):
            raise LoginError("That code is wrong.") from None
        except errors.PhoneCodeExpiredError:
            self.phone = None
            raise LoginError("That code has expired: send your phone number again.") from None
        except errors.PhoneNumberUnoccupiedError:
            # The server's answer to a right code for a number without an account (Telethon
            # turns auth.authorizationSignUpRequired into the same error).
            if not self.connector.config.sign_up_allowed:
                self.phone = None
                raise self._no_account() from None
            self.signing_up = True
            return LoginPrompt(
                "There is no account with this phone number on this server yet. To create "
                "one, send its first name ('cancel' stops)."
            )
        return await self._complete(user)

    def _no_account(self) -> LoginError:
        config = self.connector.config
        log.info("Telegram has no account for a phone number given to a login; sign-up is %s",
                 "allowed" if config.sign_up_allowed else "off")
        message = "There is no Telegram account with that phone number. Create it in a Telegram app first"
        if config.server is not None and not config.sign_up_allowed:
            message += " (signing up through the bridge is off: 'networks.telegram.server.allow_sign_up')"
        return LoginError(message + ", then send the phone number again.")

    async def _sign_up(self, text: str) -> LoginPrompt | LoginComplete:
        if self.first_name is None:
            self.first_name = self._name(text, "first name")
            return LoginPrompt("Send the last name for the new account, or '-' for none.")
        last_name = "" if text == "-" else self._name(text, "last name")
        assert self.client is not None and self.phone is not None
        try:
            user = await self.client.create_account(self.phone, self.phone_code_hash, self.first_name, last_name)
        except errors.FirstNameInvalidError:
            self.first_name = None
            raise LoginError("The server doesn't accept that first name: send another one.") from None
        except errors.LastnameInvalidError:
            raise LoginError("The server doesn't accept that last name: send another one, or '-'.") from None
        except (errors.PhoneCodeExpiredError, errors.PhoneNumberOccupiedError) as e:
            self.phone, self.signing_up, self.first_name = None, False, None
            raise LoginError(f"The sign-up was refused ({e.message}): send your phone number again.") from None
        except errors.FloodWaitError as e:
            raise LoginError(f"Telegram asks to wait {e.seconds} s before the next try.") from None
        except errors.RPCError as e:
            raise LoginError(f"The server refused the sign-up ({e.message}).") from None
        log.info("Signed up a new Telegram account %s on %s", user.id, describe_server(self.connector.config))
        return await self._complete(user)

    @staticmethod
    def _name(text: str, what: str) -> str:
        if not text or len(text) > _NAME_LIMIT or any(not c.isprintable() for c in text):
            raise LoginError(f"Send a {what} of 1 to {_NAME_LIMIT} characters on one line.")
        return text


class QRLogin(_TelegramLoginProcess):
    """A QR code to scan in a logged-in Telegram app; refreshed when it expires."""

    def __init__(self, connector: TelegramConnector, owner: UserID) -> None:
        super().__init__(connector, owner)
        self._waiter: asyncio.Task[None] | None = None

    async def start(self) -> LoginPrompt:
        client = await self._connect()
        qr = await client.qr_login()
        self._waiter = asyncio.create_task(self._wait(qr), name="telegram-qr-login")
        return self._qr_prompt(qr.url)

    @staticmethod
    def _qr_prompt(url: str) -> LoginPrompt:
        return LoginPrompt(
            "Scan this code in Telegram: Settings > Devices > Link Desktop Device. "
            "A new code follows when this one expires; 'cancel' stops.",
            expects_input=False,
            qr_data=url,
        )

    async def _wait(self, qr: Any) -> None:
        host = self.connector.host
        try:
            while True:
                try:
                    user = await qr.wait()
                except asyncio.TimeoutError:
                    await qr.recreate()
                    await host.login_progress(self.owner, self._qr_prompt(qr.url))
                    continue
                except errors.SessionPasswordNeededError:
                    await host.login_progress(self.owner, self._password_prompt())
                    return
                await host.login_progress(self.owner, await self._complete(user))
                return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("QR login failed: %s", type(e).__name__)
            await host.login_progress(self.owner, LoginError(f"Telegram refused the QR login ({type(e).__name__})."))
            await self._close()

    async def submit(self, text: str) -> LoginPrompt | LoginComplete:
        if self.awaiting_password:
            return await self._password(text.strip())
        raise LoginError("Scan the QR code with Telegram; there is nothing to type yet.")

    async def cancel(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        await self._close()
