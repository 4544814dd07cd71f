"""Customer messages (消息管理): templates, the SMS outbox and gateways, paper notices, phones.

- **Templates** (:class:`TemplateSet`, data in ``prepaid/templates``): Chinese (default)
  and English texts with named placeholders for every :class:`MessageKind` — low
  balance (余额不足提醒), dunning (催费/停电预警), disconnection notice (停电通知),
  disconnected (已停电), top-up received (缴费到账), reconnected (已复电), tier reached
  (阶梯提醒), monthly bill (月度账单), custom text, and the disconnection-failure work
  order to a handler. Money is written from int fen or ``Decimal`` yuan, never float;
  :func:`sms_length` counts SMS segments (70 / 67 UCS-2 characters for Chinese).
- **Outbox** (:class:`Outbox`): one message per episode (``customer/kind/episode``,
  unique in the database), delivery status, attempts, and a dispatcher that sends
  queued messages through an :class:`SmsGateway` — :class:`FileSink` (built in) or
  :class:`HttpGateway`. An invalid number is not sent (``invalid-number``) and the
  customer goes to the manual list for a paper notice.
- **Paper notices** (:func:`write_batch`): a batch as one printable HTML file (a page
  per notice, A5/A4) and a plain-text file.
- **Phones** (:func:`check_phone`): mainland mobile numbers normalised and checked,
  invalid ones classified (:class:`PhoneProblem`), listed and exported to CSV.

The callers (dunning, disconnection, reconnection, customer service) pass plain
values — a :class:`Recipient` and the template's parameters — so this package does
not depend on the account tables.
"""

from ._errors import (
    GatewayError,
    MessageError,
    MissingPlaceholderError,
    NoticeError,
    OutboxError,
    TemplateError,
    UnknownPlaceholderError,
    UnknownTemplateError,
    ValueFormatError,
)
from ._format import (
    Lang,
    ValueType,
    format_date,
    format_datetime,
    format_energy,
    format_money,
    format_month,
    format_price,
)
from ._gateway import (
    DeliveryOutcome,
    FileSink,
    HttpGateway,
    OutgoingSms,
    SendResult,
    SmsGateway,
    StreamSink,
    Try,
    open_gateway,
)
from ._length import SmsEncoding, SmsLength, sms_length
from ._notices import (
    Notice,
    NoticeBatch,
    NoticeFiles,
    PageSize,
    notices_of,
    render_html,
    render_text,
    write_batch,
)
from ._outbox import DispatchReport, Enqueued, Message, Outbox, episode_key
from ._phones import (
    PhoneCheck,
    PhoneProblem,
    check_phone,
    export_invalid_csv,
    invalid_numbers,
    normalise_phone,
)
from ._recipient import Channel, CsvRowProblem, Recipient, read_recipients_csv
from ._templates import MessageKind, RenderedMessage, Template, TemplateSet, default_templates
from .tables import MANUAL_STATUSES, MessageStatus

__all__ = [
    "MANUAL_STATUSES",
    "Channel",
    "CsvRowProblem",
    "DeliveryOutcome",
    "DispatchReport",
    "Enqueued",
    "FileSink",
    "GatewayError",
    "HttpGateway",
    "Lang",
    "Message",
    "MessageError",
    "MessageKind",
    "MessageStatus",
    "MissingPlaceholderError",
    "Notice",
    "NoticeBatch",
    "NoticeError",
    "NoticeFiles",
    "Outbox",
    "OutboxError",
    "OutgoingSms",
    "PageSize",
    "PhoneCheck",
    "PhoneProblem",
    "Recipient",
    "RenderedMessage",
    "SendResult",
    "SmsEncoding",
    "SmsGateway",
    "SmsLength",
    "StreamSink",
    "Template",
    "TemplateError",
    "TemplateSet",
    "Try",
    "UnknownPlaceholderError",
    "UnknownTemplateError",
    "ValueFormatError",
    "ValueType",
    "check_phone",
    "default_templates",
    "episode_key",
    "export_invalid_csv",
    "format_date",
    "format_datetime",
    "format_energy",
    "format_money",
    "format_month",
    "format_price",
    "invalid_numbers",
    "normalise_phone",
    "notices_of",
    "open_gateway",
    "read_recipients_csv",
    "render_html",
    "render_text",
    "sms_length",
    "write_batch",
]
