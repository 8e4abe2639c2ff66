"""Thespian's TCP transmits to one address, kept in the order they were sent.

Both ends of a Thespian TCP connection keep it for reuse, and each closes it on its own
once idle. A process that reuses a connection its peer has just closed learns so only
when the ACK does not come; Thespian then retries that transmit a second or more later,
and meanwhile sends what came after it to the same address over another connection. So
the later messages overtook it, and a message an actor sent just before it retired
could still be waiting to be retried when its supervisor, having its ``Retired``,
stopped: the message was lost.

While a Stalwart system is created (see ``stalwart_system``), the processes it forks get
two changes to the transport:

- a transmit that failed on a reused connection before any answer came is tried again at
  once on a new connection: the peer closed an idle connection, it is not unreachable;
- a transmit to an address waits while one sent before it to the same address is on a
  reused connection, or being sent again so (Thespian already holds it while one is on a
  new connection and no other is open).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from thespian.system.timing import ExpirationTimer
from thespian.system.transport.TCPTransport import TCPTransport, opsKey

LOOK_AGAIN = timedelta(milliseconds=50)
_numbers = itertools.count(1)


@contextmanager
def transmits_in_order() -> Iterator[None]:
    """While in effect, Thespian's TCP transport keeps each address's transmits in order."""
    saved = (TCPTransport._next_XMIT_1, TCPTransport._next_XMIT_6)
    TCPTransport._next_XMIT_1 = _start_in_turn(saved[0])
    TCPTransport._next_XMIT_6 = _retry_stale_at_once(saved[1])
    try:
        yield
    finally:
        TCPTransport._next_XMIT_1, TCPTransport._next_XMIT_6 = saved


def _start_in_turn(start: Any) -> Any:
    def _next_XMIT_1(transport: Any, intent: Any) -> Any:
        number = intent.__dict__.setdefault("_sw_number", next(_numbers))
        if _earlier_in_the_way(transport, intent, number):
            # started once a connection to the address is free, or looked at again soon
            intent.awaitingTXSlot()
            intent._retryTime = ExpirationTimer(LOOK_AGAIN)
            return True
        # (a connection taken from the open ones may have been closed by the peer)
        intent._sw_reused = _open_to(transport, intent)
        return start(transport, intent)

    return _next_XMIT_1


def _retry_stale_at_once(retry: Any) -> Any:
    def _next_XMIT_6(transport: Any, intent: Any) -> Any:
        stale = getattr(intent, "_sw_reused", False)
        intent._sw_reused = intent._sw_again = False
        result = retry(transport, intent)
        if stale and result and intent.retry(immediately=True):
            intent._attempts -= 1  # (the second call to retry() counts the same attempt)
            intent._sw_again = True
            if hasattr(intent, "_pauseUntil"):
                del intent._pauseUntil
        return result

    return _next_XMIT_6


def _earlier_in_the_way(transport: Any, intent: Any, number: int) -> bool:
    """Whether a transmit sent before ``intent`` to its address is on a reused connection
    or being sent again after one was found closed. One that failed otherwise (its peer
    unreachable, as in a partition) waits a second or more between tries: what follows
    it goes meanwhile, as Thespian sends it."""
    target = intent.targetAddr
    for other in itertools.chain(transport._transmitIntents.values(), transport._waitingTransmits):
        if other is intent or other.__dict__.get("_sw_number", number) >= number:
            continue
        on_reused = other.__dict__.get("_sw_reused", False) and hasattr(other, "socket")
        if (on_reused or other.__dict__.get("_sw_again", False)) and other.targetAddr == target:
            return True
    return False


def _open_to(transport: Any, intent: Any) -> bool:
    return opsKey(intent.targetAddr) in getattr(transport, "_openSockets", {})
