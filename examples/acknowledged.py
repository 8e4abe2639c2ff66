"""Nothing acknowledged is lost: accounts SIGKILLed right after they answer, and their branch.

    python -m examples.acknowledged [--deposits 20]

Each account checkpoints after every deposit (it defines ``snapshot``), so its
answer leaves only once the new balance is kept. The run deposits into an
account, kills its process the moment the answer arrives, deposits again, and
at the end kills the branch supervisor itself, with every account below it.
Every balance still counts every deposit that was acknowledged.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from typing import Any

import msgspec

from stalwart import Child, ManagedActor, Supervisor, System, start


class Deposit(msgspec.Struct, frozen=True):
    amount: int


class Balance(msgspec.Struct, frozen=True):
    pass


class Account(ManagedActor):
    def on_start(self) -> None:
        self.balance = self.restored_state or 0  # the last checkpoint, after a restart

    def snapshot(self) -> Any:
        return self.balance  # kept after each deposit, before its answer leaves

    def receiveMsg_Deposit(self, msg: Deposit, sender: Any) -> None:
        self.balance += msg.amount
        self.reply(sender, self.balance)

    def receiveMsg_Balance(self, msg: Balance, sender: Any) -> None:
        self.reply(sender, self.balance)


def tree() -> Supervisor:
    branch = Supervisor(
        "branch",
        max_restarts=1000,  # every kill below is a crash; this run is not about intensity
        children=[Child("alice", Account), Child("bob", Account)],
    )
    return Supervisor("bank", children=[branch])


def kill(system: System, path: str) -> None:
    """SIGKILL the process running ``path`` (once the tree knows which one that is)."""
    deadline = time.monotonic() + 15
    while not (pid := system.status()[path].pid):  # 0 while it is being restarted
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} has no process to kill")
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deposits", type=int, default=20)
    args = parser.parse_args(argv)
    expected = {"alice": 0, "bob": 0}
    with (
        tempfile.TemporaryDirectory() as folder,
        start(tree(), base="multiproc", report_path=f"{folder}/report.json") as system,
    ):
        for i in range(args.deposits):
            name = "alice" if i % 2 else "bob"
            path = f"bank/branch/{name}"
            acknowledged = system.ask(path, Deposit(i + 1), timeout=15)
            expected[name] += i + 1
            assert acknowledged == expected[name]
            kill(system, path)  # the moment the answer is here
        print(f"{args.deposits} deposits, each followed by a SIGKILL of its account")
        kill(system, "bank/branch")  # the supervisor, and every account below it
        print("then a SIGKILL of the branch supervisor")
        for name, balance in expected.items():
            now = system.ask(f"bank/branch/{name}", Balance(), timeout=15)
            print(f"{name}: acknowledged {balance}, balance now {now}")
            if now != balance:
                print("an acknowledged deposit was lost")
                return 1
        restarts = system.status()["bank/branch"].restarts
        print(f"nothing acknowledged was lost (the branch restarted {restarts} time(s))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
