"""One actor per user session: a Pool started by key, from outside and from an actor.

The tree holds a ``Login`` actor and a ``Pool`` of ``Session`` actors. Logging in asks
``Login``, which starts the user's session with ``self.start_child`` (a key per user);
the user's requests then go straight to ``app/sessions/<user>``. A session keeps its
cart in a checkpoint, so a crash loses nothing; one that has had no message for
``IDLE_S`` is stopped and forgotten, and the next login starts it afresh. The Pool
takes at most ``max_children`` sessions, and keeps one made ahead (``spares``) so that a
login does not wait for a process to be forked; the batch job is a ``significant`` child of
its own supervisor, which shuts itself down once the job is done.

    python -m examples.sessions                 # in-process
    python -m examples.sessions --base multiproc
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from stalwart import (
    Child,
    ManagedActor,
    Pool,
    PoolFull,
    StalwartError,
    Supervisor,
    UnknownPath,
    start,
)
from stalwart.testing import wait_until

IDLE_S = 1.0


class LogIn(msgspec.Struct, frozen=True):
    user: str


class Add(msgspec.Struct, frozen=True):
    item: str


class Cart(msgspec.Struct, frozen=True):
    pass


class Finish(msgspec.Struct, frozen=True):
    pass


class Login(ManagedActor):
    """Starts the user's session (or finds it running) and answers with its path."""

    def receiveMsg_LogIn(self, msg: LogIn, sender: Any) -> None:
        def failed(error: StalwartError) -> None:
            if type(error).__name__ == "AlreadyStarted":  # logged in already: the same one
                self.reply(sender, error.path)
            else:
                self.reply_error(sender, error)

        self.start_child(
            "app/sessions",
            msg.user,
            {"user": msg.user},
            on_reply=lambda path: self.reply(sender, path),
            on_error=failed,
        )


class Session(ManagedActor):
    """One user's cart."""

    def on_start(self) -> None:
        self.items: list[str] = list(self.restored_state or [])

    def snapshot(self) -> list[str]:
        return self.items

    def receiveMsg_Add(self, msg: Add, sender: Any) -> None:
        self.items.append(msg.item)
        self.reply(sender, len(self.items))

    def receiveMsg_Cart(self, msg: Cart, sender: Any) -> None:
        self.reply(sender, {"user": self.options["user"], "items": self.items})


class Job(ManagedActor):
    """A batch job: stops itself when told it is done."""

    def receiveMsg_Finish(self, msg: Finish, sender: Any) -> None:
        self.reply(sender, "done")
        self.stop()


TREE = Supervisor(
    "app",
    children=[
        Child("login", Login),
        Pool(
            "sessions",
            template=Child("session", Session),
            max_children=2,
            idle_timeout_s=IDLE_S,
            spares=1,  # a session made ahead: a login does not wait for a fork
        ),
        Supervisor(
            "batch",
            restart="transient",
            auto_shutdown="any_significant",
            children=[Child("job", Job, restart="transient", significant=True)],
        ),
    ],
)


def main(base: str) -> None:
    with start(TREE, base=base) as system:
        alice = system.ask("app/login", LogIn("alice"))
        bob = system.ask("app/login", LogIn("bob"))
        print(f"logged in: {alice}, {bob}")
        system.ask(alice, Add("tea"))
        system.ask(alice, Add("cups"))
        print(f"alice's cart: {system.ask(alice, Cart())}")
        print(f"alice again: {system.ask('app/login', LogIn('alice'))} (the same session)")
        try:
            system.start_child("app/sessions", "carol")
        except PoolFull as exc:
            print(f"carol: {type(exc).__name__}: {exc}")
        counts = system.count_children("app/sessions")
        print(f"sessions: {counts.active} running of {len(system.which_children('app/sessions'))}")

        # bob says nothing more: his session is stopped after IDLE_S (alice keeps talking)
        def bob_gone() -> bool:
            system.ask(alice, Cart())
            return "bob" not in [c.name for c in system.which_children("app/sessions")]

        wait_until(bob_gone, timeout=30)
        try:
            system.ask(bob, Cart())
        except UnknownPath as exc:
            print(f"bob idle: {exc}")
        print(f"bob again: {system.ask('app/login', LogIn('bob'))}")
        print(f"bob's new cart: {system.ask(bob, Cart())}")

        print(f"job: {system.ask('app/batch/job', Finish())}")
        wait_until(lambda: system.status()["app/batch"].state == "stopped", timeout=30)
        print("app/batch shut itself down once its significant job ended")
        print(system.status())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="simple", choices=["simple", "multiproc"])
    main(parser.parse_args().base)
