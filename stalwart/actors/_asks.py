"""``Asks[T]``: a message class that declares the type of its reply, for type checkers."""

from __future__ import annotations

from typing import Generic, TypeVar

Reply = TypeVar("Reply", covariant=True)
ReplyT = TypeVar("ReplyT")  # (in signatures: ``def ask(self, msg: Asks[ReplyT]) -> ReplyT``)


class Asks(Generic[Reply]):
    """Base of a message class whose reply is a ``Reply``:
    ``class GetBalance(msgspec.Struct, Asks[int], frozen=True)``.

    It only informs type checkers: ``system.ask(path, GetBalance(...))`` is then typed
    ``int``, while a message without it is answered as ``Any``. It adds no field, no slot
    and no behaviour at run time, so the message stays a msgspec Struct (or a plain class)
    that encodes, compares and pickles across processes as before. The reply is not
    checked when it arrives: the handler's ``self.reply`` is trusted to send a ``Reply``.
    """

    __slots__ = ()
