"""Trees written in TOML: the same structure as ``Supervisor``/``Child``, checked the same way.

    [system]                     # keyword arguments of start() (optional)
    base = "multiproc"
    memory_budget = "1GiB"

    [supervisor]                 # the top of the tree
    name = "shop"
    max_restarts = 5

    [[supervisor.children]]      # an actor: it has "actor"
    name = "db"
    actor = "examples.shop.actors:Database"

    [[supervisor.children]]      # a supervisor: it has "children"
    name = "workers"
    strategy = "one_for_all"
      [[supervisor.children.children]]
      name = "w"
      actor = "examples.shop.actors:Worker"
      replicas = 3

Every mistake is a :class:`TreeFileError` naming the file, the place in the tree
(``shop/workers/w``), where that is in the file (``supervisor.children[1].children[0]``)
and the field, before anything starts.
"""

from __future__ import annotations

import os
import stat
import tomllib
from typing import Any

import msgspec
import msgspec.inspect

from ._options import SystemOptions, parse_options
from ._pool import Pool
from .spec import Child, SpecError, Supervisor, shown, spec_error_in, validate_children

_SUPERVISOR_KEYS = set(Supervisor.__struct_fields__)


# Supervisor's fields but its children (a union msgspec cannot convert untagged), for types
def _field(f: Any) -> tuple[Any, ...]:
    if f.default is not msgspec.NODEFAULT:
        return (f.name, f.type, f.default)
    if f.default_factory is not msgspec.NODEFAULT:
        return (f.name, f.type, msgspec.field(default_factory=f.default_factory))
    return (f.name, f.type)


_SupervisorFields = msgspec.defstruct(
    "SupervisorFields",
    [_field(f) for f in msgspec.structs.fields(Supervisor) if f.name != "children"],
    forbid_unknown_fields=True,
)
_PoolFields = msgspec.defstruct(
    "PoolFields",
    [_field(f) for f in msgspec.structs.fields(Pool) if f.name not in ("children", "template")],
    forbid_unknown_fields=True,
)
_POOL_KEYS = set(Pool.__struct_fields__) - {"children"}
_CHILD_KEYS = set(Child.__struct_fields__)
MAX_FILE_BYTES = 1 << 20  # a tree file larger than this is refused before it is read
MAX_DEPTH = 32  # supervisors within supervisors (each level is a process and a restart scope)


class TreeFileError(SpecError):
    """A tree file is invalid: ``file: tree path (place in the file): field: problem``."""

    def __init__(self, file: str, path: str, where: str, field: str, problem: str) -> None:
        self.file, self.where, field = file, where, field or '""'
        place = f"{path} ({where})" if path and where else path or where
        parts = [file, place, field, problem] if place else [file, field, problem]
        ValueError.__init__(self, ": ".join(parts))
        self.path, self.field, self.problem = path, field, problem

    def __reduce__(self) -> tuple[Any, ...]:
        return (TreeFileError, (self.file, self.path, self.where, self.field, self.problem))


class TreeFile(msgspec.Struct, frozen=True):
    """A parsed tree file: the tree and the ``start()`` options it gives."""

    file: str
    tree: Supervisor
    options: dict[str, Any]

    def system_options(self, **overrides: Any) -> SystemOptions:
        """The options, validated, with ``overrides`` (e.g. ``base``) on top."""
        return parse_options({**self.options, **overrides})


def load_tree(file: str | os.PathLike[str]) -> TreeFile:
    """Read and check a TOML tree file; raises :class:`TreeFileError` on any mistake."""
    name = os.fspath(file)
    label = os.path.basename(name)
    try:
        info = os.stat(name)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):  # (reading a FIFO or a device might never end)
            raise TreeFileError(label, "", "", "file", "is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            problem = f"is {info.st_size} bytes: a tree file has at most {MAX_FILE_BYTES}"
            raise TreeFileError(label, "", "", "file", problem)
        with open(name, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise TreeFileError(label, "", "", "file", "does not exist") from None
    except IsADirectoryError:
        raise TreeFileError(label, "", "", "file", "is a folder, not a TOML file") from None
    except OSError as exc:
        raise TreeFileError(label, "", "", "file", f"cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r})"
        raise TreeFileError(label, "", "", "syntax", problem) from None
    except ValueError as exc:  # TOMLDecodeError, or a number of more than 4300 digits
        raise TreeFileError(label, "", "", "syntax", str(exc)) from None
    except RecursionError:
        raise TreeFileError(label, "", "", "syntax", "arrays or tables nested too deep") from None
    unknown = set(data) - {"system", "supervisor"}
    if unknown:
        key = sorted(unknown)[0]
        raise TreeFileError(label, "", key, key, "unknown table (known: system, supervisor)")
    top = data.get("supervisor")
    if not isinstance(top, dict):
        raise TreeFileError(label, "", "supervisor", "supervisor", "missing: the top of the tree")
    tree = parse_node(label, top, "supervisor", "", top=True)
    assert isinstance(tree, Supervisor)
    try:
        validate_children(tree.name, tree.children)
    except SpecError as exc:
        raise TreeFileError(label, exc.path, "", exc.field, exc.problem) from None
    options = data.get("system", {})
    if not isinstance(options, dict):
        raise TreeFileError(label, "", "system", "system", "expected a table")
    try:
        parse_options(options)
    except SpecError as exc:
        raise TreeFileError(label, "", "system", exc.field, exc.problem) from None
    return TreeFile(name, tree, dict(options))


def _supervisor(file: str, node: dict[str, Any], where: str, parent: str) -> Supervisor:
    path = _path(file, node, where, parent)
    if path.count("/") >= MAX_DEPTH:
        problem = f"supervisors nested more than {MAX_DEPTH} deep (flatten the tree)"
        raise TreeFileError(file, path, where, "children", problem)
    _known(file, node, _SUPERVISOR_KEYS, path, where, "supervisor")
    children_nodes = node.get("children", [])
    if not isinstance(children_nodes, list):
        raise TreeFileError(file, path, where, "children", "expected an array of tables")
    children: list[Child | Supervisor] = []
    for i, child in enumerate(children_nodes):
        place = f"{where}.children[{i}]"
        if not isinstance(child, dict):
            raise TreeFileError(file, path, place, "children", "expected a table")
        children.append(parse_node(file, child, place, path))
    fields = {k: v for k, v in node.items() if k != "children"}
    checked = _convert(file, fields, _SupervisorFields, path, where)
    try:
        return Supervisor(**msgspec.structs.asdict(checked), children=tuple(children))
    except SpecError as exc:
        raise TreeFileError(file, path, where, exc.field, exc.problem) from None


def parse_node(
    file: str, node: dict[str, Any], where: str, parent: str, top: bool = False
) -> Child | Supervisor:
    """A table of the tree: a Pool (it has "template"), a supervisor ("children", or the
    top), or an actor."""
    if "template" in node:
        return _pool(file, node, where, parent)
    if top or "children" in node:
        return _supervisor(file, node, where, parent)
    return _child(file, node, where, parent)


def _pool(file: str, node: dict[str, Any], where: str, parent: str) -> Pool:
    path = _path(file, node, where, parent)
    _known(file, node, _POOL_KEYS, path, where, "pool")
    template = node["template"]
    if not isinstance(template, dict):
        problem = "expected a table: an actor (with actor) or a supervisor (with children)"
        raise TreeFileError(file, path, where, "template", problem)
    place = f"{where}.template"
    made = parse_node(file, template, place, path)
    fields = {k: v for k, v in node.items() if k != "template"}
    checked = _convert(file, fields, _PoolFields, path, where)
    try:
        return Pool(**msgspec.structs.asdict(checked), template=made)
    except SpecError as exc:
        raise TreeFileError(file, path, where, exc.field, exc.problem) from None


def _child(file: str, node: dict[str, Any], where: str, parent: str) -> Child:
    path = _path(file, node, where, parent)
    if "actor" not in node:
        raise TreeFileError(
            file, path, where, "actor", 'missing: "module:Class" (or give it "children")'
        )
    _known(file, node, _CHILD_KEYS, path, where, "child")
    child: Child = _convert(file, node, Child, path, where)
    return child


def _path(file: str, node: dict[str, Any], where: str, parent: str) -> str:
    name = node.get("name")
    if not isinstance(name, str) or not name:
        raise TreeFileError(file, parent, where, "name", f"expected a name, got {shown(name)}")
    return f"{parent}/{name}" if parent else name


def _known(
    file: str, node: dict[str, Any], keys: set[str], path: str, where: str, what: str
) -> None:
    for key in node:
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise TreeFileError(file, path, where, key, f"unknown {what} setting (known: {known})")


def _at(cls: Any, field: str, node: Any) -> tuple[Any, Any]:
    """The msgspec type and the value at ``field`` (``levels``, ``breaker.fallback[0]``,
    ``?`` for ``cls`` itself); the type is None where it cannot be told."""
    info: Any = msgspec.inspect.type_info(cls)
    for part in field.replace("[", ".[").split(".") if field != "?" else ():
        if part.startswith("["):
            items = [t for t in _members(info) if hasattr(t, "item_type")]
            index = int(part[1:-1]) if part[1:-1].isdigit() else -1
            info = items[0].item_type if len(items) == 1 else None
            node = node[index] if isinstance(node, list) and 0 <= index < len(node) else None
            continue
        struct = _struct_of(info, node)
        fields = struct.fields if struct is not None else ()
        info = next((f.type for f in fields if f.encode_name == part), None)
        node = node.get(part) if isinstance(node, dict) else None
    return info, node


def _members(info: Any) -> tuple[Any, ...]:
    if isinstance(info, msgspec.inspect.UnionType):
        return tuple(info.types)
    return () if info is None else (info,)


def _struct_of(info: Any, node: Any) -> Any:
    """The struct type among ``info``'s members that ``node`` is (by its tag if several)."""
    structs = [t for t in _members(info) if isinstance(t, msgspec.inspect.StructType)]
    if len(structs) > 1 and isinstance(node, dict):
        structs = [t for t in structs if node.get(t.tag_field) == t.tag]
    return structs[0] if len(structs) == 1 else None


def _accepted(cls: Any, field: str, node: Any, text: str) -> str:
    """What ``field`` accepts, when ``text`` says that a name or a value there is not: the
    known settings of a table, the kinds of a tagged table, the values of a Literal; or ""."""
    info, value = _at(cls, field, node)
    if text.startswith("Object contains unknown field `"):
        struct = _struct_of(info, value)
        known = [f.encode_name for f in struct.fields] if struct is not None else []
        return f"(known: {', '.join(known)})" if known else ""
    if not text.startswith(("Invalid value", "Invalid enum value", "Expected `")):
        return ""
    parent, _, last = field.rpartition(".")  # a tag: the kind of a fallback or a backoff
    union = _members(_at(cls, parent or "?", node)[0])
    kinds = sorted(str(t.tag) for t in union if getattr(t, "tag_field", None) == last)
    members = _members(info)
    literals = [t for t in members if isinstance(t, msgspec.inspect.LiteralType)]
    if not kinds and (len(literals) == len(members) or "enum" in text):
        kinds = [str(v) for t in literals for v in t.values]  # (checkpoint = true: a type)
    return f"expected one of {', '.join(kinds)}, got {shown(value)}" if kinds else ""


def _convert(file: str, node: dict[str, Any], cls: Any, path: str, where: str) -> Any:
    try:
        return msgspec.convert(node, cls)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = "?"
        if "`$." in text:
            field = text.rsplit("`$.", 1)[1].rstrip("`")
            text = text.rsplit(" - at ", 1)[0]
        elif (inner := spec_error_in(text)) is not None:  # raised by a check while converting
            field, text = inner.field, inner.problem
        accepted = _accepted(cls, field, node, text)
        if text.startswith("Object contains unknown field `"):
            unknown = text.split("`")[1]
            field = f"{field}.{unknown}" if field != "?" else unknown
            text = f"unknown setting {accepted}".rstrip()
        elif accepted:
            text = accepted
        raise TreeFileError(file, path, where, field, text) from None
    except SpecError as exc:
        raise TreeFileError(file, path, where, exc.field, exc.problem) from None
