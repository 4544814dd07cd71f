"""The master's request API (主站): typed operations over any :class:`Transport`.

:class:`MasterClient` turns each DL/T 645 operation into one transaction (or a
series, for follow-up frames and secure control), checks that the reply answers
the request, and raises :class:`~protocol.errors.AbnormalReplyError` (naming the
error bits) when the meter refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .address import BROADCAST, WILDCARD, Address
from .codes import ControlCommand
from .di import DataValue, decode_value, encode_value, format_di
from .errors import AbnormalReplyError, DataError, ProtocolError
from .messages import (
    AckReply,
    ControlErrorReply,
    ControlReply,
    ControlRequest,
    ErrorReply,
    FreezeRequest,
    IdentityAuthReply,
    IdentityAuthRequest,
    Message,
    ReadAddressReply,
    ReadAddressRequest,
    ReadFollowUpReply,
    ReadFollowUpRequest,
    ReadReply,
    ReadRequest,
    SecureControlRequest,
    SecurityErrorReply,
    SecurityReply,
    SecurityRequest,
    TimeSyncRequest,
    WriteRequest,
    decode_message,
    to_frame,
)

if TYPE_CHECKING:
    from .security import EncryptionMachine, Session
    from .transport import Transport

__all__ = ["MAX_FOLLOW_UPS", "MasterClient", "SecureSession"]

MAX_FOLLOW_UPS = 64
"""A meter that keeps sending follow-up frames beyond this is broken."""

_ABNORMAL = (ErrorReply, SecurityErrorReply, ControlErrorReply)


@dataclass(frozen=True, slots=True)
class SecureSession:
    """An identity-authenticated session with one meter (valid for minutes)."""

    address: Address
    session: Session


class MasterClient:
    """Typed DL/T 645 operations over a transport.

    >>> async with open_transport("tcp://127.0.0.1:6455") as t:  # doctest: +SKIP
    ...     value = await MasterClient(t).read("123456781012", 0x00010000)
    """

    def __init__(self, transport: Transport, *, timeout: float | None = None) -> None:
        self.transport = transport
        self.timeout = timeout

    async def transact(self, address: Address | str, message: Message) -> Message:
        """Send one request and return the decoded reply; abnormal replies raise."""
        reply_frame = await self.transport.request(to_frame(address, message), timeout=self.timeout)
        reply = decode_message(reply_frame)
        if isinstance(reply, _ABNORMAL):
            raise AbnormalReplyError(f"meter {reply_frame.address}: {reply.describe()}", reply)
        return reply

    async def read(
        self,
        address: Address | str,
        di: int,
        *,
        blocks: int | None = None,
        since: datetime | None = None,
    ) -> DataValue:
        """Read one DI (following up with 12H while the meter has more) and decode it."""
        raw = await self.read_raw(address, di, blocks=blocks, since=since)
        return decode_value(di, raw)

    async def read_raw(
        self,
        address: Address | str,
        di: int,
        *,
        blocks: int | None = None,
        since: datetime | None = None,
    ) -> bytes:
        """The value bytes of a DI, follow-up frames joined."""
        reply = await self.transact(address, ReadRequest(di, blocks, since))
        if not isinstance(reply, ReadReply):
            raise ProtocolError(f"meter {address} answered a read with {reply.describe()}")
        raw = reply.raw
        more = reply.follow_up
        seq = 0
        while more:
            seq += 1
            if seq > MAX_FOLLOW_UPS:
                raise ProtocolError(
                    f"meter {address} sent more than {MAX_FOLLOW_UPS} follow-up frames for "
                    f"{format_di(di)}; check the meter"
                )
            follow = await self.transact(address, ReadFollowUpRequest(di, seq))
            if not isinstance(follow, ReadFollowUpReply) or follow.seq != seq:
                raise ProtocolError(
                    f"meter {address}: follow-up {seq} of {format_di(di)} answered with "
                    f"{follow.describe()}"
                )
            raw += follow.raw
            more = follow.follow_up
        return raw

    async def read_address(self, address: Address | str = WILDCARD) -> Address:
        """13H: the communication address of the (only) meter on the line."""
        reply = await self.transact(address, ReadAddressRequest())
        if not isinstance(reply, ReadAddressReply):
            raise ProtocolError(f"read address answered with {reply.describe()}")
        return reply.address

    async def write(
        self,
        address: Address | str,
        di: int,
        value: Any,
        *,
        level: int = 2,
        password: str = "000000",
        operator: str = "00000000",
    ) -> None:
        """14H: write a value (encoded with the DI's registered format)."""
        reply = await self.transact(
            address,
            WriteRequest(di, encode_value(di, value), level, password, operator),
        )
        if not isinstance(reply, AckReply):
            raise ProtocolError(f"write {format_di(di)} answered with {reply.describe()}")

    async def time_sync(self, when: datetime) -> None:
        """08H broadcast time sync (no meter replies)."""
        await self.transport.send(to_frame(BROADCAST, TimeSyncRequest(when)))

    async def freeze(self, address: Address | str, request: FreezeRequest | None = None) -> None:
        """16H freeze (instantaneous by default); a broadcast freeze gets no reply."""
        message = request or FreezeRequest()
        if Address(address).is_broadcast:
            await self.transport.send(to_frame(address, message))
            return
        await self.transact(address, message)

    async def control_plain(
        self,
        address: Address | str,
        command: ControlCommand | int,
        expiry: datetime,
        *,
        level: int = 2,
        password: str = "000000",
        operator: str = "00000000",
    ) -> ControlReply:
        """1CH in plaintext (only meters in factory/test mode accept it)."""
        reply = await self.transact(
            address, ControlRequest(int(command), expiry, level, password, operator)
        )
        if not isinstance(reply, ControlReply):
            raise ProtocolError(f"control answered with {reply.describe()}")
        return reply

    async def authenticate(
        self,
        address: Address | str,
        machine: EncryptionMachine,
        meter_number: str,
        *,
        operator: str = "00000000",
    ) -> SecureSession:
        """03H identity authentication (身份认证) through an encryption machine."""
        challenge = machine.start_identity_auth(meter_number)
        reply = await self.transact(
            address,
            IdentityAuthRequest(challenge.cipher1, challenge.random1, challenge.factor, operator),
        )
        if not isinstance(reply, IdentityAuthReply):
            raise ProtocolError(f"identity authentication answered with {reply.describe()}")
        session = machine.finish_identity_auth(challenge, reply.random2, reply.esam_serial)
        return SecureSession(Address(address), session)

    async def control_secure(
        self,
        session: SecureSession,
        machine: EncryptionMachine,
        command: ControlCommand | int,
        expiry: datetime,
        *,
        operator: str = "00000000",
    ) -> ControlReply:
        """98-level 1CH: the command and expiry enciphered with the session key, plus a MAC."""
        block = machine.control_block(session.session, int(command), expiry)
        reply = await self.transact(session.address, SecureControlRequest(block, operator))
        if not isinstance(reply, ControlReply):
            raise ProtocolError(f"control answered with {reply.describe()}")
        return reply

    async def security(
        self, address: Address | str, di: int, payload: bytes, *, operator: str = "00000000"
    ) -> bytes:
        """Any other 03H request; returns the result data."""
        reply = await self.transact(address, SecurityRequest(di, payload, operator))
        if not isinstance(reply, SecurityReply):
            raise DataError(f"security {format_di(di)} answered with {reply.describe()}")
        return reply.payload
