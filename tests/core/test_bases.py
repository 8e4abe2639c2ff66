"""Thespian's sockets stay on loopback, and nothing outlives a system."""

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from stalwart import Child, SpecError, Supervisor, start
from stalwart.supervisors._bases import session_processes
from tests.support import Ping, Worker, wait_for


def listening(pids):
    found = []
    for pid in pids:
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                found.append((pid, conn.laddr.ip, conn.laddr.port))
    return found


def test_every_thespian_socket_listens_on_loopback_only(make_system):
    system = make_system(
        Supervisor("s", children=[Child("a", Worker), Child("b", Worker)]), base="multiproc"
    )
    assert system.ask("s/a", Ping(1)).n == 1
    pids = [p.pid for p in session_processes(system._sid)] + [os.getpid()]
    sockets = listening(pids)
    assert len(sockets) >= 4  # admin, root, supervisor, two actors (ours included)
    assert {ip for _, ip, _ in sockets} == {"127.0.0.1"}, sockets


def test_a_system_whose_owner_is_killed_shuts_itself_down(tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from stalwart import Child, Supervisor, start
        from tests.support import Worker
        system = start(Supervisor("s", children=[Child("a", Worker)]), base="multiproc",
                       report_path=None)
        print(system._sid, flush=True)
        time.sleep(600)
    """)
    )
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    sid = int(owner.stdout.readline())
    assert session_processes(sid), "the system should be running"
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    wait_for(lambda: session_processes(sid) == [], timeout=20)


def test_shutdown_leaves_no_process_and_no_listening_port(make_system):
    system = make_system(Supervisor("s", children=[Child("a", Worker)]), base="multiproc")
    sid = system._sid
    ports = [port for _, _, port in listening([p.pid for p in session_processes(sid)])]
    system.shutdown()
    assert session_processes(sid) == []

    def still_listening():
        return [
            c
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
        ]

    # the processes are gone, and their sockets with them (allowing the kernel a moment)
    wait_for(lambda: still_listening() == [], timeout=5)


def test_an_admin_port_taken_after_it_was_picked_is_picked_again(make_system, monkeypatch):
    import socket

    from stalwart.supervisors import _bases, _system

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()  # someone else got the port between the pick and the admin's bind
    picks = iter([taken.getsockname()[1]])
    monkeypatch.setattr(
        _system, "free_port", lambda host="127.0.0.1": next(picks, None) or _bases.free_port(host)
    )
    try:
        system = make_system(Supervisor("s", children=[Child("a", Worker)]), base="multiproc")
        assert system.ask("s/a", Ping(3)).n == 3
        assert system.admin_port != taken.getsockname()[1]
    finally:
        taken.close()


def test_actor_and_message_classes_written_in_the_starting_script_work_on_multiproc(tmp_path):
    """A script that defines its actor and its message in ``__main__`` and starts them on the
    multi-process base: the actors' processes are forked from it, so they know both."""
    script = tmp_path / "trainer.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        import msgspec
        from stalwart import Child, ManagedActor, Supervisor, start

        class Step(msgspec.Struct):
            n: int

        class Trainer(ManagedActor):
            def receiveMsg_Step(self, msg, sender):
                self.reply(sender, (msg.n + 1, type(self).__module__))

        if __name__ == "__main__":
            system = start(Supervisor("m", children=[Child("t", Trainer)]), base="multiproc",
                           report_path=None)
            try:
                print(system.ask("m/t", Step(1), timeout=30), system._sid, flush=True)
            finally:
                system.shutdown()
    """)
    )
    env = {**os.environ, "STALWART_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    answer, sid = done.stdout.rsplit(" ", 1)
    assert answer == "(2, '__main__')"
    assert session_processes(int(sid)) == []


def test_a_child_for_other_nodes_whose_class_is_in_the_starting_script_is_refused_at_start():
    """Another node cannot import the script that started the system: said at ``start()``,
    naming the class and what to do, before anything starts."""

    class Trainer(Worker):
        pass

    Trainer.__module__ = "__main__"  # as if written in the script
    tree = Supervisor("m", children=[Child("t", Trainer, requires={"gpu": 1})])
    with pytest.raises(SpecError) as caught:
        start(tree, base="tcp")
    assert str(caught.value) == (
        "m/t: actor: test_a_child_for_other_nodes_whose_class_is_in_the_starting_script_is"
        "_refused_at_start.<locals>.Trainer is defined in the script that starts the system"
        " (__main__), which the other nodes cannot import; move it to a module they can import"
    )


def test_an_admin_that_does_not_answer_in_time_is_stopped_and_another_started(
    make_system, monkeypatch
):
    """Thespian gives up on an admin that does not answer its creator within 5 s (under
    load) and leaves it running: Stalwart stops it, with its session, and starts another."""
    from thespian.system import multiprocCommon

    from stalwart.supervisors import _system

    ports, forked, up = [], [], []  # forked: for the first admin; up: its session, running
    new_system = _system.new_system
    start_admin, detach = (
        multiprocCommon.multiprocessCommon._startAdmin,
        multiprocCommon.detach_child,
    )

    def detach_once_up(child):  # (Thespian detaches the admin it has just forked)
        detach(child)
        forked.append(child.pid)
        wait_for(lambda: len(session_processes(child.pid)) >= 2, timeout=30)  # admin, logger
        up.extend(session_processes(child.pid))

    def no_answer_comes(self, *args):  # (the first admin's answer is not waited for)
        with monkeypatch.context() as patch:
            patch.setattr(self.transport, "run", lambda *a, **k: None)
            return start_admin(self, *args)

    def first_admin_answers_too_late(*args, **kwargs):
        ports.append(args[1]["Admin Port"])
        with monkeypatch.context() as patch:
            if len(ports) == 1:
                patch.setattr(multiprocCommon.multiprocessCommon, "_startAdmin", no_answer_comes)
                patch.setattr(multiprocCommon, "detach_child", detach_once_up)
            return new_system(*args, **kwargs)

    monkeypatch.setattr(_system, "new_system", first_admin_answers_too_late)
    system = make_system(Supervisor("s", children=[Child("a", Worker)]), base="multiproc")
    assert system.ask("s/a", Ping(4)).n == 4
    # (another admin answers in time; under heavy load one more may not, and is replaced too)
    assert len(ports) >= 2 and system.admin_port == ports[-1]
    assert len(forked) == 1 and len(up) >= 2  # it had forked the admin, which has its logger
    assert not psutil.pid_exists(forked[0])  # (collected, not left a zombie)
    assert [p.pid for p in up if p.is_running()] == []
    assert session_processes(forked[0]) == []
