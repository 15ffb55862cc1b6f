"""Assignments from the book's chapters: student notebooks, a grading spec and an autograder (issue 12).

A chapter's exercises are ```` ```{exercise} ```` directives (``:label: ex-...``), each followed by its
solution between a ```` ````{solution-start} LABEL ```` fence and a ```` ````{solution-end} ```` fence in
markdown cells; the cells in between (prose, and code cells tagged ``solution``) compute the answer and
glue its numbers with :func:`linattn.book.glue`. From a chapter, :func:`make_assignment` writes

- a *student notebook*: every solution block, from its start fence to its end fence inclusive, replaced
  by an answer stub (a markdown cell "Your answer" and a code cell ``# YOUR CODE HERE``, which glues
  nothing) that names the glue calls the grader expects; the exercise statements stay;
- an *instructor notebook*: the chapter unchanged, with a note in its metadata;
- a *grading spec* (JSON): per exercise, the glue names the grader expects, the instructor's values and
  a tolerance per value. The values are read from the outputs of one execution of the chapter: myst-nb's
  ``glue`` displays a value's text (its ``repr``) as a ``display_data`` output whose metadata holds
  ``{"scrapbook": {"name": NAME, "mime_prefix": ...}}`` and whose data keys carry that prefix
  (``application/papermill.record/text/plain`` when the value is not displayed).

:func:`grade` executes each submission (nbclient, a timeout per cell, every error caught), reads its
glued values the same way and scores each exercise: the fraction of its expected values matched, times
its points. A missing glue, or an error raised by a cell of the exercise, scores 0 for that exercise,
with the reason. Outputs stored in a submission are cleared before it runs: only what its code glues
counts.

Tolerances (per value in the spec, where a teacher may edit them): a float matches when
``|got - expected| <= max(rtol * max(|got|, |expected|), atol)``, by default ``rtol = 1e-6`` and
``atol = 1e-12`` (two values at rounding level, both below ``atol``, match); NaN matches NaN and an
infinity itself. Integers, bools, strings and None match exactly (an int matches a float of the same
value; a bool matches only a bool). Lists, tuples and dicts match element by element under the same
rules. Any other glued object is matched by its text exactly or, when its text holds a memory address
(``<... at 0x7f...>``), by its presence only.
"""
from __future__ import annotations

import ast
import copy
import csv
import dataclasses
import functools
import importlib.util
import io
import json
import math
import os
import pathlib
import re
import shutil
import time
from typing import Any, Iterable

__all__ = [
    "AssignError",
    "FORMAT",
    "RTOL",
    "ATOL",
    "Exercise",
    "Block",
    "Chapter",
    "parse_chapter",
    "student_notebook",
    "instructor_notebook",
    "glued",
    "grading_spec",
    "make_assignment",
    "write_student_book",
    "solution_traces",
    "load_spec",
    "match_value",
    "ExerciseScore",
    "Submission",
    "grade_notebook",
    "grade",
    "report",
    "to_csv",
]

FORMAT = "linattn-grading/1"
RTOL = 1e-6
ATOL = 1e-12
SOLUTION_TAG = "solution"
GLUE_PREFIX = "application/papermill.record/"
KINDS = ("float", "int", "bool", "str", "none", "literal", "text", "presence")


class AssignError(ValueError):
    """Bad input to ``linattn assign`` or ``linattn grade``: the message names the argument, its value
    and the fix."""


# --------------------------------------------------------------------------- parsing a chapter

_FENCE = r"(?P<fence>`{3,}|:{3,})"
_START = re.compile(rf"^{_FENCE}\{{solution-start\}}[ \t]+(?P<label>\S+)[ \t]*\n"
                    r"(?:[ \t]*:[^\n]*\n)*(?P=fence)[ \t]*(?:\n|$)", re.M)
_END = re.compile(rf"^{_FENCE}\{{solution-end\}}[ \t]*\n(?:[ \t]*:[^\n]*\n)*(?P=fence)[ \t]*(?:\n|$)", re.M)
_EXERCISE = re.compile(rf"^{_FENCE}\{{exercise\}}[ \t]*(?P<title>[^\n]*)\n(?P<opts>(?:[ \t]*:[^\n]*\n)*)", re.M)
_LABEL = re.compile(r"^[ \t]*:label:[ \t]*(\S+)", re.M)
_ANY_SOLUTION = re.compile(r"^[ \t]*(?:`{3,}|:{3,})\{solution(?:-start|-end)?\}", re.M)  # a directive, not a mention


@dataclasses.dataclass(frozen=True)
class Exercise:
    """An exercise directive: its label, its title and the index of the cell that states it."""

    label: str
    title: str
    cell: int


@dataclasses.dataclass(frozen=True)
class Block:
    """A solution block: the exercise it solves, the cells of its start and end fences, and the code
    cells in between (by index in the chapter)."""

    label: str
    start: int
    end: int
    code_cells: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Chapter:
    """A chapter's exercises and solution blocks, in order."""

    name: str
    exercises: tuple[Exercise, ...]
    blocks: tuple[Block, ...]

    def exercise(self, label: str) -> Exercise:
        """The exercise labelled ``label``."""
        return next(e for e in self.exercises if e.label == label)

    def block_of(self) -> dict[int, str]:
        """Map the index of every code cell inside a solution block to the block's label."""
        return {i: b.label for b in self.blocks for i in b.code_cells}


def _pieces(source: str) -> list[tuple[str, str]]:
    """A markdown cell's source split into ("text", s), ("start", label) and ("end", "") pieces."""
    marks = sorted([(m.start(), m.end(), "start", m.group("label")) for m in _START.finditer(source)]
                   + [(m.start(), m.end(), "end", "") for m in _END.finditer(source)])
    out, pos = [], 0
    for a, b, kind, label in marks:
        out += [("text", source[pos:a]), (kind, label)]
        pos = b
    out.append(("text", source[pos:]))
    return out


def _exercises_in(source: str, cell: int) -> list[Exercise]:
    """The exercise directives of one markdown cell (a directive without a label is skipped)."""
    found = []
    for m in _EXERCISE.finditer(source):
        label = _LABEL.search(m.group("opts"))
        if label:
            found.append(Exercise(label.group(1), m.group("title").strip(), cell))
    return found


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def parse_chapter(nb: Any, name: str = "chapter") -> Chapter:
    """The exercises and solution blocks of notebook ``nb`` (``name`` is used in error messages).

    Raises :class:`AssignError` for a malformed structure: a solution-start inside another block, a
    solution-end outside one, a block left open, a solution naming no exercise stated above it, or a
    code cell tagged ``solution`` outside every block.
    """
    exercises: list[Exercise] = []
    blocks: list[Block] = []
    inside: tuple[str, int] | None = None
    code: list[int] = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            if inside is not None:
                code.append(i)
            elif SOLUTION_TAG in _tags(cell):
                raise AssignError(f"{name}: cell {i} is tagged {SOLUTION_TAG!r} but lies outside every solution "
                                  "block; move it between a solution-start and a solution-end fence, or untag it")
            continue
        for kind, value in _pieces(cell.source):
            if kind == "text":
                if inside is None:
                    exercises += _exercises_in(value, i)
            elif kind == "start":
                if inside is not None:
                    raise AssignError(f"{name}: cell {i} opens the solution of {value!r} inside the solution of "
                                      f"{inside[0]!r} (opened in cell {inside[1]}); close it first with a "
                                      "solution-end fence")
                if value not in {e.label for e in exercises}:
                    known = ", ".join(e.label for e in exercises) or "none"
                    raise AssignError(f"{name}: cell {i} opens a solution for {value!r}, but no exercise above it "
                                      f"has that label (labels: {known}); fix the label")
                if value in {b.label for b in blocks}:
                    raise AssignError(f"{name}: cell {i} opens a second solution for {value!r}; merge the two")
                inside, code = (value, i), []
            else:
                if inside is None:
                    raise AssignError(f"{name}: cell {i} has a solution-end fence outside every solution block; "
                                      "remove it or add the solution-start fence it closes")
                blocks.append(Block(inside[0], inside[1], i, tuple(code)))
                inside = None
    if inside is not None:
        raise AssignError(f"{name}: the solution of {inside[0]!r} opened in cell {inside[1]} is never closed; "
                          "add a solution-end fence")
    return Chapter(name, tuple(exercises), tuple(blocks))


# --------------------------------------------------------------------------- glued values

_NAMED = {"nan": math.nan, "inf": math.inf, "True": True, "False": False, "None": None}
_WRAPPERS = {"float": float, "int": int, "bool": bool}
_NUMPY = re.compile(r"^(?:np|numpy)\.(float\d*|int\d*|uint\d*|bool_?|double|single|longlong)$")


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _eval(node: ast.AST) -> Any:
    """A python literal from an expression tree: numbers, strings, bools, None, nan and inf, lists,
    tuples (as lists) and dicts, and scalar wrappers (``np.float64(0.5)``, ``float(...)``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e) for e in node.elts]
    if isinstance(node, ast.Dict) and None not in node.keys:
        keys = [_eval(k) for k in node.keys]
        if all(isinstance(k, (str, int)) for k in keys):
            return dict(zip(keys, [_eval(v) for v in node.values]))
    if isinstance(node, ast.Name) and node.id in _NAMED:
        return _NAMED[node.id]
    if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
        fn = _dotted(node.func)
        m = _NUMPY.match(fn)
        if fn in _WRAPPERS or m:
            v = _eval(node.args[0])
            if fn in _WRAPPERS:
                return _WRAPPERS[fn](v)
            kind = m.group(1)
            return bool(v) if kind.startswith("bool") else int(v) if "int" in kind or kind == "longlong" else float(v)
    raise ValueError("not a literal")


def parse_text(text: str) -> Any:
    """The python value a glued text (a ``repr``) stands for; ValueError when it is not a literal."""
    try:
        return _eval(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, RecursionError, TypeError, OverflowError) as exc:
        raise ValueError(f"not a literal: {exc}") from None


def _kind(text: str | None) -> str:
    """The kind of a glued value (one of :data:`KINDS`) from its text."""
    if text is None or re.search(r" at 0x[0-9a-fA-F]+", text):
        return "presence"
    try:
        v = parse_text(text)
    except ValueError:
        return "text"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return "none" if v is None else "literal"


def _output_text(output: Any) -> str | None:
    data = output.get("data", {})
    prefix = output.get("metadata", {}).get("scrapbook", {}).get("mime_prefix", "")
    text = data.get(prefix + "text/plain", data.get("text/plain"))
    if isinstance(text, list):
        text = "".join(text)
    return text


def glued(nb: Any) -> list[tuple[int, str, str | None]]:
    """Every glue in an executed notebook's outputs, in order: (cell index, name, text of the value;
    None for a value with no text form, such as an image)."""
    found = []
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            scrap = output.get("metadata", {}).get("scrapbook") if output.get("output_type") in (
                "display_data", "execute_result") else None
            if isinstance(scrap, dict) and isinstance(scrap.get("name"), str):
                found.append((i, scrap["name"], _output_text(output)))
    return found


# --------------------------------------------------------------------------- values and tolerances


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _close(expected: Any, got: Any, rtol: float, atol: float) -> bool:
    """Whether ``got`` matches ``expected`` under the module's rules (see the module docstring)."""
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return type(got) is type(expected) and got == expected
    if isinstance(expected, int):
        return _num(got) and got == expected
    if isinstance(expected, float):
        if not _num(got):
            return False
        if math.isnan(expected) or math.isnan(got):
            return math.isnan(expected) and math.isnan(got)
        if math.isinf(expected) or math.isinf(got):
            return expected == got
        return abs(got - expected) <= max(rtol * max(abs(got), abs(expected)), atol)
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(
            _close(e, g, rtol, atol) for e, g in zip(expected, got))
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and all(
            _close(expected[k], got[k], rtol, atol) for k in expected)
    return False  # pragma: no cover - parse_text returns nothing else


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def match_value(entry: dict, text: str | None) -> tuple[bool, str]:
    """Whether a glued ``text`` matches a spec ``entry`` ({"name", "kind", "expected", "rtol", "atol"}),
    and why not (an empty string when it matches)."""
    kind, expected = entry["kind"], entry["expected"]
    if kind == "presence":
        return True, ""
    if text is None:
        return False, f"{entry['name']}: glued with no text form; glue a value such as a float"
    if kind == "text":
        return (text == expected, "" if text == expected else
                f"{entry['name']}: got {_short(text)!s}, expected {_short(expected)!s}")
    try:
        got = parse_text(text)
    except ValueError:
        return False, (f"{entry['name']}: got {_short(text)}, which is not a plain value; glue a python "
                       "number or string (float(x), x.item())")
    want = parse_text(expected)
    if _close(want, got, entry.get("rtol", RTOL), entry.get("atol", ATOL)):
        return True, ""
    how = f" (rtol {entry.get('rtol', RTOL):g})" if kind in ("float", "literal") else ""
    return False, f"{entry['name']}: got {_short(text)}, expected {_short(expected)}{how}"


_DESCRIBE = {
    "float": "a number (relative tolerance {rtol:g})",
    "int": "an integer (exact)",
    "bool": "True or False",
    "str": "a string (exact)",
    "none": "None",
    "literal": "a list or dict of numbers (element by element, relative tolerance {rtol:g})",
    "text": "an object, compared by its text",
    "presence": "any object (only its presence is checked)",
}


def describe(entry: dict) -> str:
    """What a student must glue for a spec entry, in words (never the instructor's value)."""
    return _DESCRIBE[entry["kind"]].format(rtol=entry.get("rtol", RTOL))


# --------------------------------------------------------------------------- the three outputs


def _cell_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:64]


def _stub_code(exercise: dict) -> str:
    """The code cell a student finds in place of a solution (it glues nothing)."""
    lines = [f"# YOUR CODE HERE: exercise {exercise['label']}"]
    if exercise["values"]:
        lines.append("# The autograder reads these glued values; compute each one and glue it:")
        lines += [f"# glue(\"{v['name']}\", ...)  # {describe(v)}" for v in exercise["values"]]
    else:
        lines.append("# (no value of this exercise is graded automatically)")
    return "\n".join(lines)


def _stub_markdown(exercise: dict) -> str:
    """The markdown cell a student finds in place of a solution."""
    head = f"**Your answer** to exercise `{exercise['label']}`"
    if exercise.get("title"):
        head += f" ({exercise['title']})"
    if not exercise["values"]:
        return head + ". Write your answer here; your teacher grades it by hand."
    names = "\n".join(f"- `glue(\"{v['name']}\", ...)`: {describe(v)}" for v in exercise["values"])
    return (f"{head}. Write your reasoning here, and compute in the code cell below. The autograder reads "
            f"only the values your code glues (with `glue` from `linattn.book`), under these names:\n\n{names}")


def _stub_cells(exercise: dict) -> list[Any]:
    import nbformat

    key = _cell_id(f"answer-{exercise['label']}")
    md = nbformat.v4.new_markdown_cell(_stub_markdown(exercise), id=key,
                                       metadata={"linattn": {"answer": exercise["label"]}})
    code = nbformat.v4.new_code_cell(_stub_code(exercise), id=_cell_id(f"{key}-code"),
                                     metadata={"linattn": {"answer": exercise["label"]}})
    return [md, code]


def student_notebook(nb: Any, chapter: Chapter, spec: dict) -> Any:
    """The student version of chapter ``nb``: every solution block (start fence to end fence, with the
    cells and text in between) replaced by the answer stub of its exercise in ``spec``; everything
    else kept, cell by cell (a markdown cell cut by a fence becomes the parts outside the block)."""
    import nbformat

    by_label = {e["label"]: e for e in spec["exercises"]}
    out = copy.deepcopy(nb)
    cells: list[Any] = []
    inside: str | None = None
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            if inside is None:
                cells.append(copy.deepcopy(cell))
            continue
        parts: list[str] = []
        made = 0
        for kind, value in [*_pieces(cell.source), ("flush", "")]:
            if kind == "text":
                if inside is None:
                    parts.append(value)
                continue
            text = "".join(parts).strip("\n")
            parts.clear()
            if text.strip():
                part = copy.deepcopy(cell)
                part.source = text
                if made and "id" in part:
                    part["id"] = _cell_id(f"{cell['id']}-{made}")
                cells.append(part)
                made += 1
            if kind == "start":
                inside = value
            elif kind == "end":
                cells += _stub_cells(by_label[inside])
                inside = None
    out.cells = cells
    if out.nbformat_minor < 5:  # the stubs carry cell ids (nbformat 4.5): give the other cells theirs
        out.nbformat_minor = 5
        for k, cell in enumerate(out.cells):
            cell.setdefault("id", f"cell-{k}")
    out.metadata["linattn"] = {"role": "student", "chapter": spec["chapter"],
                               "exercises": [e["label"] for e in spec["exercises"]]}
    nbformat.validate(out)
    return out


def instructor_notebook(nb: Any, spec: dict, spec_path: str) -> Any:
    """The chapter unchanged, with its grading spec named in the notebook metadata."""
    out = copy.deepcopy(nb)
    out.metadata["linattn"] = {"role": "instructor", "chapter": spec["chapter"], "grading_spec": spec_path,
                               "exercises": [e["label"] for e in spec["exercises"]]}
    return out


def grading_spec(chapter: Chapter, executed: Any, *, rtol: float = RTOL, atol: float = ATOL,
                 timeout: int = 600, scale: str = "quick", source: str = "") -> tuple[dict, list[str]]:
    """The grading spec of a chapter from one execution of it, and warnings.

    Per solution block: the names glued by its code cells, with the instructor's value (its text),
    kind and tolerances. A name also glued outside every solution block is left out (the student's
    notebook glues it too, for free), with a warning; so is a name glued twice in one block (the last
    value counts).
    """
    block_of = chapter.block_of()
    outside = {name for i, name, _ in glued(executed) if i not in block_of}
    values: dict[str, dict[str, dict]] = {b.label: {} for b in chapter.blocks}
    warnings = []
    for i, name, text in glued(executed):
        label = block_of.get(i)
        if label is None:
            continue
        if name in outside:
            warnings.append(f"{chapter.name}: {name} (glued in the solution of {label}) is also glued outside "
                            "the solutions, so it is not graded; rename one of the two")
            continue
        kind = _kind(text)
        values[label][name] = {"name": name, "kind": kind, "expected": text if text is not None else "",
                               "rtol": rtol if kind in ("float", "literal") else 0.0,
                               "atol": atol if kind in ("float", "literal") else 0.0}
    exercises = []
    for b in chapter.blocks:
        ex = chapter.exercise(b.label)
        if not values[b.label]:
            warnings.append(f"{chapter.name}: the solution of {b.label} glues no value; it is graded by hand")
        exercises.append({"label": b.label, "title": ex.title, "points": 1.0, "values": list(values[b.label].values())})
    spec = {"format": FORMAT, "chapter": chapter.name, "source": source, "scale": scale, "timeout": timeout,
            "kernel": executed.metadata.get("kernelspec", {}).get("name", "python3"),
            "tolerance": {"rtol": rtol, "atol": atol}, "exercises": exercises}
    return spec, warnings


# --------------------------------------------------------------------------- executing notebooks


@functools.lru_cache(maxsize=None)
def _install_wakeup_fix() -> None:
    """Poll the kernel's channels in short slices (issue 16: a missed zmq wake-up stalled about one
    execution in twelve); the fix lives in the repository's ``scripts/nbclient_wakeup.py`` and is
    skipped where that file is not there (an installed, not editable, package)."""
    path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "nbclient_wakeup.py"
    if not path.exists():  # pragma: no cover - installed package
        return
    spec = importlib.util.spec_from_file_location("nbclient_wakeup", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.install()
    module.log.setLevel("ERROR")  # its recovered wake-ups are a diagnostic of issue 16, not news for a teacher


@dataclasses.dataclass
class Execution:
    """What running a notebook gave: the errors by cell index (name: message), and a problem that
    stopped the run (a dead kernel, a kernel that would not start), if any."""

    errors: dict[int, str]
    problem: str = ""
    seconds: float = 0.0


def execute(nb: Any, *, cwd: pathlib.Path, timeout: int, kernel: str = "python3", scale: str = "quick",
            allow_errors: bool = True) -> Execution:
    """Execute ``nb`` in place in a fresh kernel started in ``cwd`` with ``LINATTN_SCALE=scale``.

    Each cell may run ``timeout`` seconds; a cell that runs longer is interrupted and recorded as an
    error, and the run goes on. With ``allow_errors`` every error is recorded and the run goes on;
    nothing raised by the notebook or its kernel escapes (a dead kernel is the ``problem``).
    """
    from nbclient import NotebookClient

    _install_wakeup_fix()
    errors: dict[int, str] = {}
    current = {"cell": -1}

    def started(cell: Any, cell_index: int) -> None:
        current["cell"] = cell_index

    def finished(cell: Any, cell_index: int, execute_reply: dict) -> None:
        content = (execute_reply or {}).get("content", {})
        if content.get("status") == "error":
            evalue = re.sub(r"\(\d+\.py, ", "(", str(content.get("evalue", "")))  # the kernel's name for the cell
            errors[cell_index] = f"{content.get('ename', 'Error')}: {_short(evalue, 200)}"

    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=allow_errors,
                            interrupt_on_timeout=True, record_timing=False,
                            error_on_timeout={"ename": "CellTimeoutError",
                                              "evalue": f"the cell ran longer than {timeout} s", "traceback": []},
                            on_cell_execute=started, on_cell_executed=finished,
                            resources={"metadata": {"path": str(cwd)}})
    env = {**os.environ, "LINATTN_SCALE": scale}
    t0 = time.perf_counter()
    problem = ""
    try:
        client.execute(env=env)
    except Exception as exc:  # noqa: BLE001 - a broken submission must never stop the grader
        where = f" in cell {current['cell']}" if current["cell"] >= 0 else ""
        problem = f"{type(exc).__name__}{where}: {_short(str(exc).strip().splitlines()[-1] if str(exc).strip() else '', 200)}"
    return Execution(errors, problem, time.perf_counter() - t0)


def _clear_outputs(nb: Any) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None


# --------------------------------------------------------------------------- writing an assignment


def _read_notebook(path: pathlib.Path, argument: str) -> Any:
    import nbformat

    if not path.is_file():
        raise AssignError(f"{argument} {path}: no such notebook; give the path of a chapter's .ipynb file")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - not JSON, not a notebook
        raise AssignError(f"{argument} {path} is not a readable notebook ({type(exc).__name__}: "
                          f"{_short(str(exc), 120)}); restore it from git") from None


@dataclasses.dataclass
class Assignment:
    """The files written for one chapter and its notebooks."""

    chapter: pathlib.Path
    student: pathlib.Path
    instructor: pathlib.Path
    spec: pathlib.Path
    student_nb: Any
    warnings: list[str]
    seconds: float


def make_assignment(chapter_path: str | os.PathLike, out: str | os.PathLike, *, timeout: int = 600,
                    rtol: float = RTOL, atol: float = ATOL, name: str | None = None) -> Assignment | None:
    """Execute a chapter once and write its student notebook, instructor notebook and grading spec
    under ``out`` (``student/NAME.ipynb``, ``instructor/NAME.ipynb``, ``grading/NAME.json``; NAME is
    the chapter's file name without ``.ipynb``). None for a chapter without solution blocks.

    Raises :class:`AssignError` when the chapter is malformed or fails to execute (it must run cleanly,
    as under nbval, for its values to be the instructor's).
    """
    import nbformat

    path = pathlib.Path(chapter_path)
    if path.suffix != ".ipynb":
        raise AssignError(f"CHAPTER {path}: a chapter is a .ipynb notebook; give e.g. book/part1/kernel_regime.ipynb")
    for value, arg in ((rtol, "--rtol"), (atol, "--atol")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise AssignError(f"{arg} must be a finite number >= 0, got {value!r}")
    nb = _read_notebook(path, "CHAPTER")
    name = name or path.stem
    chapter = parse_chapter(nb, str(path))
    if not chapter.blocks:
        return None
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise AssignError(f"--out {out} is a file; give a folder for the assignments")
    executed = copy.deepcopy(nb)
    _clear_outputs(executed)
    from .book import scale as book_scale

    scale = book_scale()
    run = execute(executed, cwd=path.resolve().parent, timeout=timeout, scale=scale, allow_errors=False)
    if run.problem or run.errors:
        first = run.problem or next(f"cell {i}: {e}" for i, e in sorted(run.errors.items()))
        raise AssignError(f"CHAPTER {path} failed to execute ({first}); the instructor's values come from one "
                          "clean run: fix the chapter until it passes nbval")
    spec, warnings = grading_spec(chapter, executed, rtol=rtol, atol=atol, timeout=timeout, scale=scale,
                                  source=str(path))
    spec["chapter"] = name
    files = {k: out / k / f"{name}{ext}" for k, ext in
             (("student", ".ipynb"), ("instructor", ".ipynb"), ("grading", ".json"))}
    for f in files.values():
        f.parent.mkdir(parents=True, exist_ok=True)
    student = student_notebook(nb, chapter, spec)
    leftovers = solution_traces(student)
    if leftovers:  # pragma: no cover - a bug of student_notebook, never of the chapter
        raise AssertionError(f"student notebook of {path} keeps solution content: {leftovers}")
    nbformat.write(student, files["student"])
    nbformat.write(instructor_notebook(nb, spec, f"../grading/{name}.json"), files["instructor"])
    files["grading"].write_text(json.dumps(spec, indent=1) + "\n")
    return Assignment(path, files["student"], files["instructor"], files["grading"], student, warnings, run.seconds)


def solution_traces(nb: Any) -> list[str]:
    """Where a notebook still holds solution content: a cell tagged ``solution`` or a solution
    directive in a markdown cell (an empty list for a clean student notebook)."""
    found = []
    for i, cell in enumerate(nb.cells):
        if SOLUTION_TAG in _tags(cell):
            found.append(f"cell {i} is tagged {SOLUTION_TAG!r}")
        if cell.cell_type == "markdown" and _ANY_SOLUTION.search(cell.source):
            found.append(f"cell {i} holds a solution directive")
    return found


_MARKER = ".linattn-student-book"


def write_student_book(root: str | os.PathLike, dest: str | os.PathLike, students: dict[str, Any]) -> list[str]:
    """Copy the book at ``root`` (``_config.yml``, ``_toc.yml``, its bibliography and ``book/``) to
    ``dest`` with each chapter ``students[relative path]`` replaced by its student notebook; link
    ``_vendor`` (the self-hosted JavaScript) when it is there. Returns the student notebooks' paths.

    Raises :class:`AssignError` when a notebook or page of the copy still holds solution content
    (a chapter not given in ``students`` that has solutions, for instance).
    """
    import nbformat
    import yaml

    root, dest = pathlib.Path(root).resolve(), pathlib.Path(dest)
    if not (root / "_toc.yml").is_file() or not (root / "book").is_dir():
        raise AssignError(f"--root {root} holds no book (_toc.yml and book/); run in the book's repository or "
                          "give --root PATH")
    target = dest.resolve()
    if target == root or target == root / "book" or root / "book" in target.parents:
        raise AssignError(f"--book-dir {dest} would overwrite the book itself; give a folder such as "
                          "_build/assignments/student-book")
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / _MARKER).exists())):
        raise AssignError(f"--book-dir {dest} exists and is not a student book written by `linattn assign`; "
                          "give a new or empty folder")
    shutil.rmtree(dest / "book", ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / _MARKER).write_text("a student copy of the book, written by `linattn assign --book-dir`\n")
    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    for f in ["_config.yml", "_toc.yml", *config.get("bibtex_bibfiles", [])]:
        if (root / f).is_file():
            shutil.copy2(root / f, dest / f)
    shutil.copytree(root / "book", dest / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__",
                                                                                 "_build"))
    if (root / "_vendor").is_dir() and not (dest / "_vendor").exists():
        (dest / "_vendor").symlink_to(root / "_vendor", target_is_directory=True)
    written = []
    for rel, nb in sorted(students.items()):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(str(target))
    problems = []
    for page in sorted((dest / "book").rglob("*")):
        if page.suffix == ".ipynb":
            problems += [f"{page.relative_to(dest)}: {t}" for t in solution_traces(nbformat.read(page, as_version=4))]
        elif page.suffix == ".md" and _ANY_SOLUTION.search(page.read_text()):
            problems.append(f"{page.relative_to(dest)}: holds a solution directive")
    if problems:
        raise AssignError("the student book still holds solutions (" + "; ".join(problems[:5]) + "); make the "
                          "assignment of every chapter with exercises (run `linattn assign` with no CHAPTER)")
    return written


# --------------------------------------------------------------------------- grading


def load_spec(path: str | os.PathLike) -> dict:
    """Read and check a grading spec written by :func:`make_assignment`."""
    path = pathlib.Path(path)
    how = "make one with `linattn assign CHAPTER.ipynb --out DIR` (DIR/grading/NAME.json)"
    if not path.is_file():
        raise AssignError(f"SPEC {path}: no such file; {how}")
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AssignError(f"SPEC {path} is not JSON ({_short(str(exc), 100)}); {how}") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise AssignError(f"SPEC {path} is not a grading spec (its 'format' must be {FORMAT!r}); {how}")
    exercises = spec.get("exercises")
    if not isinstance(exercises, list) or not exercises or not isinstance(spec.get("chapter"), str):
        raise AssignError(f"SPEC {path}: needs a 'chapter' name and a non-empty list of 'exercises'; {how}")
    for ex in exercises:
        if not isinstance(ex, dict) or not isinstance(ex.get("label"), str) or not isinstance(ex.get("values"), list):
            raise AssignError(f"SPEC {path}: every exercise needs a 'label' and a list of 'values', got {_short(repr(ex))}; "
                              f"{how}")
        for v in ex["values"]:
            if not (isinstance(v, dict) and v.get("kind") in KINDS and isinstance(v.get("name"), str)
                    and isinstance(v.get("expected"), str)):
                raise AssignError(f"SPEC {path}: exercise {ex['label']} has a "
                                  f"value without a name, a kind in {', '.join(KINDS)} and an expected text: {v!r}; "
                                  "restore the spec from `linattn assign`")
            for key in ("rtol", "atol"):
                tol = v.get(key, 0.0)
                if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < math.inf:
                    raise AssignError(f"SPEC {path}: {v['name']} has {key} {tol!r}; give a finite number >= 0")
            if v["kind"] not in ("text", "presence"):
                try:
                    parse_text(v["expected"])
                except ValueError:
                    raise AssignError(f"SPEC {path}: {v['name']} expects {v['expected']!r}, which is not a plain "
                                      f"value of kind {v['kind']!r}; write it as python writes it (e.g. 0.25)") from None
        points = ex.get("points", 1.0)
        if isinstance(points, bool) or not isinstance(points, (int, float)) or not points >= 0:
            raise AssignError(f"SPEC {path}: exercise {ex['label']} has points {points!r}; give a number >= 0")
    return spec


@dataclasses.dataclass
class ExerciseScore:
    """One exercise of one submission: points out of ``max_points``; ``status`` is ``graded``,
    ``error`` (a cell of the exercise raised), ``missing`` (an expected glue is missing), ``not-run``
    (the notebook could not be read) or ``by-hand`` (nothing to grade automatically)."""

    label: str
    points: float
    max_points: float
    matched: int
    expected: int
    status: str
    reason: str = ""


@dataclasses.dataclass
class Submission:
    """A student's grade on one spec."""

    student: str
    path: str
    exercises: list[ExerciseScore]
    problem: str = ""
    seconds: float = 0.0

    @property
    def points(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(e.max_points for e in self.exercises if e.status != "by-hand")


def _regions(nb: Any, labels: set[str]) -> list[str | None]:
    """The exercise each cell of a submission belongs to: an answer stub's own label, else the label of
    the last exercise stated above it, until a markdown heading that states none."""
    out, current = [], None
    for cell in nb.cells:
        own = cell.get("metadata", {}).get("linattn", {}).get("answer") if isinstance(
            cell.get("metadata", {}).get("linattn"), dict) else None
        if cell.cell_type == "markdown":
            stated = [e.label for e in _exercises_in(cell.source, 0) if e.label in labels]
            if stated:
                current = stated[-1]
            elif cell.source.lstrip().startswith("#"):
                current = None
        out.append(own if own in labels else current)
    return out


def _not_run(spec: dict, reason: str) -> list[ExerciseScore]:
    return [ExerciseScore(e["label"], 0.0, float(e.get("points", 1.0)), 0, len(e["values"]),
                          "not-run" if e["values"] else "by-hand", reason if e["values"] else "graded by hand")
            for e in spec["exercises"]]


def _score(ex: dict, values: dict[str, str | None], errors: list[str], untouched: bool, outside: str) -> ExerciseScore:
    """Score one exercise from the glued values and the errors of its cells."""
    points, n = float(ex.get("points", 1.0)), len(ex["values"])
    if not n:
        return ExerciseScore(ex["label"], 0.0, points, 0, 0, "by-hand", "graded by hand")
    if errors:
        return ExerciseScore(ex["label"], 0.0, points, 0, n, "error", "; ".join(errors))
    missing = [v["name"] for v in ex["values"] if v["name"] not in values]
    if missing:
        why = "not attempted (the answer cell is as handed out); " if untouched else ""
        extra = f"; the notebook raised {outside}" if outside else ""
        return ExerciseScore(ex["label"], 0.0, points, 0, n, "missing", f"{why}missing glue: {', '.join(missing)}{extra}")
    results = [match_value(v, values[v["name"]]) for v in ex["values"]]
    matched = sum(ok for ok, _ in results)
    return ExerciseScore(ex["label"], round(points * matched / n, 6), points, matched, n, "graded",
                         "; ".join(why for ok, why in results if not ok))


def grade_notebook(spec: dict, path: str | os.PathLike, student: str, *, timeout: int | None = None) -> Submission:
    """Execute one submission and score it against ``spec``; never raises for a broken submission
    (unreadable, not a notebook, a syntax error, an exception, a dead kernel, a cell that never ends):
    each is a reason in the result."""
    import nbformat

    path = pathlib.Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - not JSON, not a notebook
        return Submission(student, str(path), _not_run(spec, f"not a readable notebook ({type(exc).__name__})"),
                          problem=f"not a readable notebook: {type(exc).__name__}: {_short(str(exc), 120)}")
    _clear_outputs(nb)  # only what the submission's code glues now counts
    run = execute(nb, cwd=path.resolve().parent, timeout=int(timeout or spec.get("timeout", 600)),
                  kernel=spec.get("kernel", "python3"), scale=spec.get("scale", "quick"))
    labels = {e["label"] for e in spec["exercises"]}
    regions = _regions(nb, labels)
    values = {name: text for _, name, text in glued(nb)}
    stubs = {e["label"]: _stub_code(e) for e in spec["exercises"]}
    untouched = {cell.metadata["linattn"]["answer"] for cell in nb.cells
                 if cell.cell_type == "code" and isinstance(cell.get("metadata", {}).get("linattn"), dict)
                 and stubs.get(cell.metadata["linattn"].get("answer")) == cell.source}
    outside = [f"{e} in cell {i} (outside the exercises)" for i, e in sorted(run.errors.items()) if regions[i] is None]
    problem = "; ".join(([run.problem] if run.problem else []) + outside[:1])
    scores = []
    for ex in spec["exercises"]:
        errs = [f"cell {i}: {e}" for i, e in sorted(run.errors.items()) if regions[i] == ex["label"]]
        scores.append(_score(ex, values, errs, ex["label"] in untouched, problem))
    return Submission(student, str(path), scores, problem, run.seconds)


def submissions(folder: str | os.PathLike, spec: dict) -> list[tuple[str, pathlib.Path]]:
    """The (student, notebook) pairs of a submissions folder, sorted by student: each ``*.ipynb`` in
    it is one student's (named by the file), and each subfolder one student's (named by the folder),
    holding ``CHAPTER.ipynb`` or exactly one notebook."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise AssignError(f"SUBMISSIONS_DIR {folder} is not a folder; give the folder that holds one .ipynb "
                          "per student (or one subfolder per student)")
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            found.append((entry.stem, entry))
        elif entry.is_dir():
            named = entry / f"{spec['chapter']}.ipynb"
            notebooks = sorted(p for p in entry.glob("*.ipynb"))
            if named.is_file():
                found.append((entry.name, named))
            elif len(notebooks) == 1:
                found.append((entry.name, notebooks[0]))
            elif notebooks:
                found.append((entry.name, named))  # reported as not readable: which one is meant is unclear
    if not found:
        raise AssignError(f"SUBMISSIONS_DIR {folder} holds no .ipynb file and no student folder with one; put each "
                          f"student's {spec['chapter']}.ipynb there as STUDENT.ipynb or STUDENT/{spec['chapter']}.ipynb")
    return found


def grade(spec: dict, folder: str | os.PathLike, *, timeout: int | None = None,
          progress: Any = None) -> list[Submission]:
    """Grade every submission in ``folder`` (see :func:`submissions`) against ``spec``, in student order;
    ``progress`` (a callable) is given each :class:`Submission` as it is graded."""
    graded = []
    for student, path in submissions(folder, spec):
        try:
            sub = grade_notebook(spec, path, student, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - a grader bug on one notebook must not lose the others' grades
            why = f"the grader failed on this notebook ({type(exc).__name__}: {_short(str(exc), 120)}); please report it"
            sub = Submission(student, str(path), _not_run(spec, why), problem=why)
        graded.append(sub)
        if progress is not None:
            progress(sub)
    return graded


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def report(sub: Submission) -> str:
    """A submission's grade as text: the total, then one line an exercise."""
    lines = [f"{sub.student}: {_fmt(sub.points)} / {_fmt(sub.max_points)} points"
             + (f"  [{sub.problem}]" if sub.problem else "")]
    for e in sub.exercises:
        detail = f"{e.matched}/{e.expected} values" if e.status == "graded" else e.status
        lines.append(f"  {e.label:24s} {_fmt(e.points)} / {_fmt(e.max_points)}  ({detail})"
                     + (f"  {e.reason}" if e.reason else ""))
    return "\n".join(lines)


CSV_COLUMNS = ("student", "exercise", "points", "max_points", "matched", "expected", "status", "reason")


def to_csv(graded: Iterable[Submission]) -> str:
    """One row per student and exercise, then a TOTAL row per student (no timings: the same
    submissions give the same file)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for sub in graded:
        for e in sub.exercises:
            w.writerow([sub.student, e.label, _fmt(e.points), _fmt(e.max_points), e.matched, e.expected, e.status,
                        e.reason])
        w.writerow([sub.student, "TOTAL", _fmt(sub.points), _fmt(sub.max_points),
                    sum(e.matched for e in sub.exercises), sum(e.expected for e in sub.exercises),
                    "problem" if sub.problem else "", sub.problem])
    return buf.getvalue()


# --------------------------------------------------------------------------- the commands


def add_commands(sub: Any) -> None:
    """Add ``assign`` and ``grade`` to the ``linattn`` command's subparsers."""
    a = sub.add_parser("assign", help="student and instructor notebooks and a grading spec from chapters")
    a.add_argument("chapters", nargs="*", metavar="CHAPTER",
                   help=".ipynb chapters (default: every chapter of _toc.yml under --root)")
    a.add_argument("--out", default="_build/assignments", metavar="DIR",
                   help="folder for student/, instructor/ and grading/ (default _build/assignments)")
    a.add_argument("--book-dir", default=None, metavar="DIR",
                   help="also write a copy of the book whose chapters are the student notebooks")
    a.add_argument("--root", default=".", help="the book's repository (default: .)")
    a.add_argument("--timeout", type=int, default=600, help="seconds a cell may take (default 600)")
    a.add_argument("--rtol", type=float, default=RTOL, help=f"relative tolerance of floats (default {RTOL:g})")
    a.add_argument("--atol", type=float, default=ATOL, help=f"absolute tolerance of floats (default {ATOL:g})")
    a.set_defaults(handler=cli_assign)
    g = sub.add_parser("grade", help="execute and score student notebooks against a grading spec")
    g.add_argument("spec", metavar="SPEC.json")
    g.add_argument("submissions", metavar="SUBMISSIONS_DIR",
                   help="one STUDENT.ipynb per student, or one STUDENT/ folder per student")
    g.add_argument("--csv", default=None, metavar="FILE",
                   help="where to write the grades (default SUBMISSIONS_DIR/grades-CHAPTER.csv)")
    g.add_argument("--timeout", type=int, default=None, help="seconds a cell may take (default: the spec's)")
    g.set_defaults(handler=cli_grade)


def _usage(exc: Exception) -> Exception:
    from .cli import UsageError

    return UsageError(str(exc))


def _relative(path: pathlib.Path) -> pathlib.Path:
    """``path`` relative to the working folder when it lies under it (for messages and the spec)."""
    try:
        return path.resolve().relative_to(pathlib.Path.cwd().resolve())
    except ValueError:
        return path


def cli_assign(args: Any) -> int:
    """``linattn assign``: make the assignments of the chapters given (or of every chapter)."""
    from .cli import _chapter_paths

    try:
        root = pathlib.Path(args.root).resolve()
        if args.timeout <= 0:
            raise AssignError(f"--timeout must be a positive number of seconds, got {args.timeout}")
        paths = [pathlib.Path(c) for c in args.chapters] or [_relative(c) for c in _chapter_paths(root)]
        stems = [p.stem for p in paths]
        dupes = sorted({s for s in stems if stems.count(s) > 1})
        if dupes:
            raise AssignError(f"CHAPTER: two chapters share the name {dupes[0]!r}; make their assignments into "
                              "two --out folders")
        students: dict[str, Any] = {}
        for p in paths:
            made = make_assignment(p, args.out, timeout=args.timeout, rtol=args.rtol, atol=args.atol)
            if made is None:
                print(f"{p}: no exercises with solutions; skipped")
                continue
            for w in made.warnings:
                print(f"warning: {w}")
            spec = json.loads(made.spec.read_text())
            n = sum(len(e["values"]) for e in spec["exercises"])
            print(f"{p}: {len(spec['exercises'])} exercises, {n} graded values ({made.seconds:.0f} s) -> "
                  f"{made.student}, {made.instructor}, {made.spec}")
            try:
                students[str(p.resolve().relative_to(root))] = made.student_nb
            except ValueError:
                students[p.name] = made.student_nb
        if args.book_dir:
            written = write_student_book(root, args.book_dir, students)
            print(f"student book: {len(written)} student chapters in {args.book_dir}; build it with "
                  f"`python scripts/nbclient_wakeup.py build {args.book_dir}` (jupyter-book, as `make book` runs it)")
    except AssignError as exc:
        raise _usage(exc) from None
    return 0


def cli_grade(args: Any) -> int:
    """``linattn grade``: score every submission, print the grades and write them as CSV."""
    try:
        spec = load_spec(args.spec)
        if args.timeout is not None and args.timeout <= 0:
            raise AssignError(f"--timeout must be a positive number of seconds, got {args.timeout}")
        folder = pathlib.Path(args.submissions)
        pairs = submissions(folder, spec)
        out = pathlib.Path(args.csv) if args.csv else folder / f"grades-{spec['chapter']}.csv"
        if out.is_dir():
            raise AssignError(f"--csv {out} is a folder; give a file name such as grades.csv")
    except AssignError as exc:
        raise _usage(exc) from None
    print(f"grading {len(pairs)} submissions of {spec['chapter']} ({len(spec['exercises'])} exercises)")
    graded = grade(spec, folder, timeout=args.timeout,
                   progress=lambda sub: print(report(sub) + f"\n  ({sub.seconds:.0f} s)", flush=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_csv(graded))
    print(f"{len(graded)} submissions graded -> {out}")
    return 0
