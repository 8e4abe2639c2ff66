"""Every code sample in README.md and docs/*.md runs, and passes ``mypy --strict``.

Each ```python block is a script: it runs in a subprocess of its own (working directory a
fresh temporary folder, the repository on ``PYTHONPATH``, a time limit), and must exit with
0 and leave no process behind. All of them are type-checked by one ``mypy --strict`` run. A
```toml block with a ``[supervisor]`` table is a tree file: it must load (``load_tree``, as
``stalwart check`` does), actor classes imported.

A block that is a fragment says what it needs in HTML comments right before it (only blank
lines between), which readers of the rendered page do not see:

``<!-- sample: continues -->``
    the block goes on from the previous ```python block of the page: they run as one script.
``<!-- sample: setup`` + lines of code + ``-->``
    stand-ins run before the block: the names it takes as given (``tree``, a ``connect``...).
``<!-- sample: then`` + lines of code + ``-->``
    code run after the block (and after the blocks that continue it): ``system.shutdown()``,
    or a check that the sample did what it says.
``<!-- sample: not run: <reason> -->``
    the block is type-checked but not run (it needs other hosts, say).
``<!-- sample: mypy allows <error code>: <reason> -->``
    mypy errors of that code on the block's own lines are let through: for a gap in
    Stalwart's type hints, until it is closed (an allowance nothing needs any more fails).

Use the last two sparingly, and always with the reason. Code in the comments may be indented
as a whole (for a block inside a list item). A mistake in them (an unknown word, a reason
missing, a comment before no block) fails the tests, so a sample cannot drop out unnoticed.
Errors are reported at the page's line (``docs/guide-memory.md:60``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SAMPLE_TIMEOUT_S = 60
WORKERS = 4  # (samples mostly wait on their systems: more than the cores)
MARK = "STALWART_DOC_SAMPLE"  # every process a sample starts inherits it
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+)(?P<lang>[\w+-]*)[ \t]*$")
_TREE_TABLE = re.compile(r"^\[supervisor\][ \t]*(#.*)?$")  # (a TOML tree file's top table)
_LEAVE_S = 3.0  # how long a sample's processes may take to exit after it did


class ConventionError(Exception):
    """A ``<!-- sample: ... -->`` comment that cannot be followed."""


@dataclass
class Block:
    page: str  # README.md, docs/cli.md
    line: int  # of the first line of code
    lang: str
    code: list[str]
    continues: bool = False
    setup: list[tuple[str, int]] = field(default_factory=list)  # (code, its line on the page)
    then: list[tuple[str, int]] = field(default_factory=list)
    not_run: str = ""
    allows: dict[str, str] = field(default_factory=dict)  # mypy error code -> why


@dataclass
class Sample:
    """One script: a block, with the blocks that continue it and their stand-ins."""

    blocks: list[Block]

    @property
    def where(self) -> str:
        return f"{self.blocks[0].page}:{self.blocks[0].line}"

    @property
    def name(self) -> str:  # (a module name: mypy checks them all at once)
        stem = re.sub(r"\W", "_", Path(self.blocks[0].page).stem.lower())
        return f"{stem}_l{self.blocks[0].line}"

    @property
    def lang(self) -> str:
        return self.blocks[0].lang

    @property
    def not_run(self) -> str:
        return "; ".join(b.not_run for b in self.blocks if b.not_run)

    def lines(self) -> list[tuple[str, str]]:
        """The script's lines, each with where it comes from (``page:line``)."""
        out: list[tuple[str, str]] = []
        for block in self.blocks:
            out += [(text, f"{block.page}:{n}") for text, n in block.setup]
            out += [(text, f"{block.page}:{block.line + i}") for i, text in enumerate(block.code)]
        for block in reversed(self.blocks):  # (the last block's checks before the first's cleanup)
            out += [(text, f"{block.page}:{n}") for text, n in block.then]
        return out

    def script(self) -> str:
        return "\n".join(text for text, _ in self.lines()) + "\n"


def parse_page(text: str, page: str) -> list[Block]:
    """The fenced code blocks of a page, with the sample comments right before each."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: list[tuple[str, list[tuple[str, int]], int]] = []  # (words, code, line)
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("<!-- sample:"):
            start = i
            while "-->" not in lines[i]:
                i += 1
                if i == len(lines):
                    raise ConventionError(f"{page}:{start + 1}: a sample comment never ends")
            body = [ln for ln in lines[start : i + 1]]
            body[0] = body[0].split("<!-- sample:", 1)[1]
            body[-1] = body[-1].split("-->", 1)[0]
            words = body[0].strip()
            raw = [(ln, start + 1 + k) for k, ln in enumerate(body[1:], 1) if ln.strip()]
            dedented = textwrap.dedent("\n".join(ln for ln, _ in raw)).splitlines()
            code = [(text, n) for text, (_, n) in zip(dedented, raw)]
            pending.append((words, code, start + 1))
        elif match := _FENCE.match(lines[i]):
            indent, fence, lang = match["indent"], match["fence"], match["lang"]
            end = i + 1
            while end < len(lines) and lines[end].strip() != fence:
                end += 1
            code = [
                ln[len(indent) :] if ln.startswith(indent) else ln.lstrip()
                for ln in lines[i + 1 : end]
            ]
            block = Block(page, i + 2, lang, code)
            for words, setup, at in pending:
                _apply(block, words, setup, f"{page}:{at}")
            pending = []
            blocks.append(block)
            i = end
        elif stripped and pending:
            raise ConventionError(
                f"{page}:{pending[0][2]}: a sample comment must come right before a code block"
            )
        i += 1
    if pending:
        raise ConventionError(
            f"{page}:{pending[0][2]}: a sample comment must come right before a code block"
        )
    return blocks


def _apply(block: Block, words: str, code: list[tuple[str, int]], where: str) -> None:
    keyword, _, rest = words.partition(":")
    keyword, rest = keyword.strip(), rest.strip()
    if keyword == "continues" and not rest and not code:
        block.continues = True
    elif keyword in ("setup", "then") and (code or rest):
        lines = ([(rest, int(where.rsplit(":", 1)[1]))] if rest else []) + code
        getattr(block, keyword).extend(lines)
    elif keyword == "not run" and rest and not code:
        block.not_run = rest
    elif keyword.startswith("mypy allows") and rest and not code:
        codes = re.findall(r"[\w-]+", keyword.removeprefix("mypy allows"))
        if not codes:
            raise ConventionError(f"{where}: 'mypy allows' names no error code")
        block.allows.update(dict.fromkeys(codes, rest))
    elif keyword in ("not run", "mypy allows") or keyword.startswith("mypy allows"):
        raise ConventionError(
            f"{where}: {keyword!r} needs its reason: <!-- sample: {keyword}: why -->"
        )
    else:
        raise ConventionError(
            f"{where}: unknown sample comment {words!r} (known: continues, setup, then,"
            " not run: <reason>, mypy allows <code>: <reason>)"
        )


def collect(pages: list[Path], root: Path = ROOT) -> list[Sample]:
    """Every sample of ``pages``: python blocks (joined where one continues another) and
    tree files."""
    samples: list[Sample] = []
    for path in pages:
        page = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        previous: Sample | None = None
        for block in parse_page(path.read_text(), page):
            marked = block.continues or block.setup or block.then or block.not_run
            if block.lang == "python":
                if block.continues:
                    if previous is None:
                        raise ConventionError(f"{page}:{block.line}: continues no python block")
                    previous.blocks.append(block)
                    continue
                previous = Sample([block])
                samples.append(previous)
            elif block.lang == "toml" and any(_TREE_TABLE.match(ln) for ln in block.code):
                if block.continues or block.setup or block.then:
                    raise ConventionError(f"{page}:{block.line}: a tree file takes only 'not run'")
                samples.append(Sample([block]))
            elif marked:
                raise ConventionError(
                    f"{page}:{block.line}: a sample comment before a {block.lang or 'plain'} block"
                )
    return samples


# -- running -----------------------------------------------------------------------------------


def run_sample(sample: Sample, folder: Path) -> str:
    """Run one sample in ``folder``; '' if it passed, else what went wrong."""
    folder.mkdir(parents=True)
    if sample.lang == "toml":
        (folder / "tree.toml").write_text("\n".join(sample.blocks[0].code) + "\n")
        script = "from stalwart import load_tree\n\nload_tree('tree.toml')\n"
        origin = [(line, sample.where) for line in script.splitlines()]
    else:
        script, origin = sample.script(), sample.lines()
    path = folder / f"{sample.name}.py"
    path.write_text(script)
    token = uuid.uuid4().hex
    env = {
        **os.environ,
        MARK: token,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "STALWART_STATE_DIR": str(folder / "state"),
    }
    output = folder / "output.txt"  # (a file: processes left behind cannot hold up reading it)
    with output.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(path)],
            cwd=folder,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        proc.wait(timeout=SAMPLE_TIMEOUT_S)
        problem = f"exited with {proc.returncode}" if proc.returncode else ""
    except subprocess.TimeoutExpired:
        _kill(token)
        proc.wait()
        problem = f"did not finish within {SAMPLE_TIMEOUT_S} s"
    left = _left_behind(token)
    if left and not problem:
        problem = f"left processes behind (killed now): {left}"
    if not problem:
        return ""
    out = output.read_text(errors="replace")
    return f"{sample.where}: {problem}\n{_locate(out, path.name, origin)[-4000:]}"


def _processes(token: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK) == token and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _kill(token: str) -> None:
    procs = _processes(token)
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)


def _left_behind(token: str) -> list[str]:
    deadline = time.monotonic() + _LEAVE_S
    while (procs := _processes(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    names = []
    for proc in procs:
        try:
            names.append(f"{proc.pid} {' '.join(proc.cmdline())[:80]}")
        except psutil.Error:
            continue
    _kill(token)
    return names


def _locate(text: str, filename: str, origin: list[tuple[str, str]]) -> str:
    """``text`` with the lines of ``filename`` named by their place on the page: mypy's
    ``…/name.py:12:`` becomes ``docs/page.md:60:``; a traceback's line gets it added."""

    def place(number: str) -> str:
        n = int(number)
        return origin[n - 1][1] if 0 < n <= len(origin) else f"{filename}:{n}"

    name = re.escape(filename)
    text = re.sub(rf'({name}", line (\d+))', lambda m: f"{m[1]} ({place(m[2])})", text)
    return re.sub(rf"^\S*{name}:(\d+):", lambda m: f"{place(m[1])}:", text, flags=re.M)


# -- the tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return collect(PAGES)


@pytest.fixture(scope="module")
def mypy_run(samples, tmp_path_factory):
    """One ``mypy --strict`` over every python sample, started at once so that it runs
    while the samples do."""
    folder = tmp_path_factory.mktemp("typed")
    typed = [s for s in samples if s.lang == "python"]
    for sample in typed:
        (folder / f"{sample.name}.py").write_text(sample.script())
    command = [sys.executable, "-m", "mypy", "--strict", "--no-warn-unused-ignores"]
    command += ["--follow-imports=silent", "--cache-dir", str(ROOT / ".mypy_cache" / "samples")]
    proc = subprocess.Popen(
        [*command, *(str(folder / f"{s.name}.py") for s in typed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc, typed
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_every_sample_in_the_docs_runs(samples, mypy_run, tmp_path):
    runnable = [s for s in samples if not s.not_run]
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        problems = list(pool.map(lambda s: run_sample(s, tmp_path / s.name), runnable))
    failed = [p for p in problems if p]
    took = time.monotonic() - started
    assert not failed, f"{len(failed)} of {len(runnable)} samples failed:\n\n" + "\n\n".join(failed)
    assert took < 60, f"{len(runnable)} samples took {took:.0f} s: keep them quick"


def test_every_python_sample_in_the_docs_passes_mypy_strict(mypy_run):
    proc, typed = mypy_run
    out, _ = proc.communicate(timeout=170)
    for sample in typed:
        out = _locate(out, f"{sample.name}.py", sample.lines())
    blocks = {
        (block.page, block.line + i): block
        for sample in typed
        for block in sample.blocks
        for i in range(len(block.code))
    }
    errors, allowed = [], set()
    for line in out.splitlines():
        if (found := re.match(r"(\S+):(\d+): error: .*\[([\w-]+)\]$", line)) is None:
            continue
        block = blocks.get((found[1], int(found[2])))
        if block is not None and found[3] in block.allows:
            allowed.add((block.page, block.line, found[3]))
        else:
            errors.append(line)
    assert proc.returncode in (0, 1), out
    assert not errors, "\n".join(errors)
    stale = [
        f"{b.page}:{b.line}: mypy allows {code}: no longer needed"
        for sample in typed
        for b in sample.blocks
        for code in b.allows
        if (b.page, b.line, code) not in allowed
    ]
    assert not stale, "\n".join(stale)


def test_samples_not_run_or_not_typed_say_why_and_are_few(samples):
    skipped = [f"{s.where}: not run: {s.not_run}" for s in samples if s.not_run]
    assert len(skipped) <= len(samples) // 5, "\n".join(skipped)
    allowed = [
        f"{b.page}:{b.line}: mypy allows {c}: {why}"
        for s in samples
        for b in s.blocks
        for c, why in b.allows.items()
    ]
    assert len(allowed) <= len(samples) // 5, "\n".join(allowed)


def test_the_sample_convention(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n```python\nx = 1\n```\n\n<!-- sample: continues -->\n```python\n"
        "print(x + y)\n```\n\n<!-- sample: setup\ny = 2\n-->\n<!-- sample: then\n"
        "assert y == 2\n-->\n```python\nz = y\n```\n\n<!-- sample: not run: needs a GPU -->\n"
        "<!-- sample: mypy allows misc, attr-defined: not typed yet -->\n"
        "```python\nimport gpu\n```\n\n```sh\nmake test\n```\n\n```toml\n[supervisor]\n"
        'name = "t"\n```\n'
    )
    first, second, gpu, tree = collect([page], tmp_path)
    assert first.script() == "x = 1\nprint(x + y)\n" and first.where == "page.md:4"
    assert second.script() == "y = 2\nz = y\nassert y == 2\n"
    assert [origin for _, origin in second.lines()] == ["page.md:13", "page.md:19", "page.md:16"]
    assert gpu.not_run == "needs a GPU" and tree.lang == "toml"
    assert gpu.blocks[0].allows == {"misc": "not typed yet", "attr-defined": "not typed yet"}
    for bad, problem in (
        ("<!-- sample: contineus -->\n```python\n```\n", "unknown sample comment"),
        ("<!-- sample: not run -->\n```python\n```\n", "needs its reason"),
        ("<!-- sample: mypy allows misc -->\n```python\n```\n", "needs its reason"),
        ("<!-- sample: mypy allows: why -->\n```python\n```\n", "names no error code"),
        ("<!-- sample: continues -->\n```python\n```\n", "continues no python block"),
        ("<!-- sample: then\nx\n-->\n\ntext\n```python\n```\n", "right before a code block"),
        ("<!-- sample: not run: x -->\n```sh\n```\n", "before a sh block"),
    ):
        page.write_text(bad)
        with pytest.raises(ConventionError, match=problem):
            collect([page], tmp_path)
