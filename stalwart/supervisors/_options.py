"""Options of ``start()``: validated up front, so a typo is an error that names it."""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any, Literal

import msgspec

from ._services import check_service_options
from .spec import SpecError, shown

Base = Literal["simple", "multiproc", "tcp"]
BASES = ("simple", "multiproc", "tcp")


class SystemOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of a running system (the keyword arguments of :func:`stalwart.start`).

    What each one means is written once, in the docstring of ``start`` (where editors show
    it); importing ``stalwart`` adds those descriptions here. A test keeps the parameters of
    ``start`` and these fields the same: names, order, types and defaults.
    """

    base: Base = "simple"
    admin_port: int | None = None
    start_timeout_s: float = 30.0
    shutdown_timeout_s: float = 30.0
    ask_timeout_s: float = 5.0
    root_max_restarts: int = 1
    root_within_s: float = 60.0
    state_dir: str | None = None
    report_path: str | None = "final-report.json"
    dead_letter_limit: int = 10_000
    event_limit: int = 10_000
    loopback_only: bool = True
    hang_report_s: float = 10.0
    lend_cpu: bool = True
    store: str | None = ":memory:"
    telemetry: dict[str, Any] = msgspec.field(default_factory=dict)
    correlator: dict[str, Any] | None = msgspec.field(default_factory=dict)
    memory: dict[str, Any] | None = msgspec.field(default_factory=dict)
    memory_budget: str | int | None = None
    memory_thresholds: tuple[float, float, float] = (70.0, 85.0, 95.0)
    memory_interval_s: float = 1.0
    hold_limit: int = 10_000
    chaos: bool = False
    node: str | None = None
    listen: tuple[str, int] | None = None
    capabilities: dict[str, str | int | float | bool] = msgspec.field(default_factory=dict)
    cluster: dict[str, Any] = msgspec.field(default_factory=dict)
    tracing: bool = False

    def __post_init__(self) -> None:
        for field in self.__struct_fields__:  # (as in TOML; a larger one cannot even be shown)
            value = getattr(self, field)
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise SpecError("start", field, f"must be a 64-bit integer, got {shown(value)}")
        positive = ("start_timeout_s", "shutdown_timeout_s", "ask_timeout_s", "root_within_s")
        for field in (*positive, "hang_report_s"):
            if not getattr(self, field) > 0:
                raise SpecError("start", field, f"must be > 0, got {getattr(self, field)!r}")
        for field in ("dead_letter_limit", "event_limit"):
            if getattr(self, field) < 0:
                raise SpecError("start", field, f"must be >= 0, got {getattr(self, field)!r}")
        if self.hold_limit < 1:
            raise SpecError("start", "hold_limit", f"must be >= 1, got {self.hold_limit!r}")
        if self.root_max_restarts < 0:
            raise SpecError(
                "start", "root_max_restarts", f"must be >= 0, got {self.root_max_restarts!r}"
            )
        check_service_options(self)
        if self.tracing and not _otel_installed():
            raise SpecError(
                "start",
                "tracing",
                "needs the OpenTelemetry SDK: pip install 'stalwart[otel]'"
                " (opentelemetry-api and opentelemetry-sdk)",
            )
        if self.admin_port is not None and not 1 <= self.admin_port <= 65535:
            raise SpecError("start", "admin_port", f"must be a TCP port, got {self.admin_port!r}")
        self._check_cluster()

    def _check_cluster(self) -> None:
        from ..actors._placement import check_requires

        if self.base != "tcp":
            for field in ("node", "listen"):
                if getattr(self, field) is not None:
                    raise SpecError("start", field, 'needs base="tcp" (a cluster)')
            return
        if self.node is None:
            msgspec.structs.force_setattr(self, "node", "leader")
        if not self.node or "/" in str(self.node):
            raise SpecError("start", "node", f"expected a name without '/', got {self.node!r}")
        if self.listen is not None:
            host, port = self.listen
            if not 0 <= port <= 65535:
                raise SpecError("start", "listen", f"port must be 0..65535, got {shown(port)}")
            if self.loopback_only and host not in ("127.0.0.1", "localhost", "::1"):
                raise SpecError(
                    "start",
                    "listen",
                    f"{host} is not loopback: Thespian's TCP transport unpickles what it"
                    " receives, so pass loopback_only=False only on a network you trust",
                )
        try:
            check_requires(self.capabilities)
        except ValueError as exc:
            raise SpecError("start", "capabilities", str(exc)) from None


def _otel_installed() -> bool:
    """The OpenTelemetry SDK can be imported (looked up, not imported)."""
    try:
        return importlib.util.find_spec("opentelemetry.sdk.trace") is not None
    except ModuleNotFoundError:  # (not even the ``opentelemetry`` namespace)
        return False


def parse_options(options: dict[str, Any]) -> SystemOptions:
    """Validate ``start()`` keyword arguments; errors name the option."""
    try:
        return msgspec.convert(options, SystemOptions)
    except msgspec.ValidationError as exc:
        text = str(exc)
        inner = _raised_by_a_check(exc)
        if inner is not None:
            raise inner from None
        field = text.rsplit("`$.", 1)[-1].rstrip("`") if "`$." in text else "options"
        if "unknown field" in text.lower():
            field = text.split("`")[1] if "`" in text else "options"
            known = ", ".join(SystemOptions.__struct_fields__)
            raise SpecError("start", field, f"unknown option (known: {known})") from None
        if field == "base":
            problem = f"expected one of {', '.join(BASES)}, got {shown(options.get(field))}"
            raise SpecError("start", field, problem) from None
        raise SpecError("start", field, text) from None


def _raised_by_a_check(exc: BaseException) -> SpecError | None:
    """The SpecError a check raised while converting (msgspec gives it as the cause).

    A service's own settings are named after its option (``correlator: capacity: ...``).
    """
    cause = exc.__cause__
    if not isinstance(cause, SpecError) or cause.path == "start":
        return cause if isinstance(cause, SpecError) else None
    first, inner = cause, cause.__cause__ or cause.__context__
    while inner is not None:  # the first raised (a wrapper may have named it "settings")
        first = inner if isinstance(inner, SpecError) else first
        inner = inner.__cause__ or inner.__context__
    return SpecError("start", first.path, f"{first.field}: {first.problem}")


def describe_options(start_doc: str | None) -> None:
    """Add the description of each option, the items of ``start_doc`` (the docstring of
    ``start``) from ``- ``base``:`` on, to the docstring of :class:`SystemOptions`, from
    which the configuration reference is generated."""
    first = "- ``base``:"
    if not SystemOptions.__doc__ or not start_doc or first not in start_doc:  # (python -OO)
        return
    summary = inspect.cleandoc(SystemOptions.__doc__).split("\n\n", 1)[0]
    items = inspect.cleandoc(start_doc).split(first, 1)[1]
    SystemOptions.__doc__ = f"{summary}\n\n{first}{items}"
