"""Assignments for teachers (issue 12): student notebooks, grading specs, the autograder.

The kernel tests run a tiny synthetic chapter with the book's exercise/solution structure (its glue
is myst-nb's, as ``linattn.book.glue`` calls it, without importing torch), so they take seconds a
notebook; the real chapters are only parsed here, never executed.
"""
import copy
import csv
import io
import json
import pathlib

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from linattn import assign, cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def solution(src: str):
    return new_code_cell(src, metadata={"tags": ["solution"]})


def tiny_chapter() -> nbformat.NotebookNode:
    """A chapter with two exercises; markdown cells mix statements, solution prose and fences as the
    book's do. One value is glued displayed (no mime prefix), the others as linattn.book glues them."""
    return new_notebook(cells=[
        new_markdown_cell("# A tiny chapter\n\nSome prose."),
        new_code_cell("from myst_nb import glue as _glue\n"
                      "def glue(name, value, display=False):\n    _glue(name, value, display=display)\nx = 3.0"),
        new_markdown_cell("## Exercises\n\n```{exercise} Squares\n:label: ex-t-sq\nSquare x; count to four.\n```\n\n"
                          "````{solution-start} ex-t-sq\n:class: dropdown\n````\nSECRET PROSE: the square is $x^2$."),
        solution("sq_val = x**2\nsq_n = 4\nglue('key_sq_val', sq_val); glue('key_sq_n', sq_n, display=True)"),
        solution("# NBVAL_CHECK_OUTPUT\nprint(sq_val)"),
        new_markdown_cell("It is {glue:text}`key_sq_val`.\n\n````{solution-end}\n````\n\n"
                          "```{exercise} Words\n:label: ex-t-words\nName it, say yes, list three numbers.\n```\n\n"
                          "````{solution-start} ex-t-words\n:class: dropdown\n````"),
        solution("glue('key_w_name', 'square'); glue('key_w_ok', True); glue('key_w_list', [1.5, float('nan'), 2])"),
        new_markdown_cell("SECRET TOO.\n\n````{solution-end}\n````\n\n## Summary\n\nThe end."),
    ], metadata={"kernelspec": KERNELSPEC})


def answered(student: nbformat.NotebookNode, answers: dict) -> nbformat.NotebookNode:
    """The student notebook with each answer code cell replaced by ``answers[label]`` (when given)."""
    nb = copy.deepcopy(student)
    for cell in nb.cells:
        label = cell.metadata.get("linattn", {}).get("answer")
        if cell.cell_type == "code" and label in answers:
            cell.source = answers[label]
    return nb


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The tiny chapter's assignment (its one instructor execution)."""
    root = tmp_path_factory.mktemp("assign")
    chapter = root / "tiny.ipynb"
    nbformat.write(tiny_chapter(), chapter)
    result = assign.make_assignment(chapter, root / "out")
    return result, json.loads(result.spec.read_text())


# --------------------------------------------------------------------------- structure, no kernel


def test_parse_chapter_finds_each_exercise_and_its_solution_cells():
    ch = assign.parse_chapter(tiny_chapter(), "tiny")
    assert [e.label for e in ch.exercises] == ["ex-t-sq", "ex-t-words"]
    assert ch.exercise("ex-t-sq").title == "Squares"
    assert [(b.label, b.start, b.end, b.code_cells) for b in ch.blocks] == [
        ("ex-t-sq", 2, 5, (3, 4)), ("ex-t-words", 5, 7, (6,))]


@pytest.mark.parametrize("mutate, message", [
    (lambda nb: setattr(nb.cells[5], "source", nb.cells[5].source.replace("````{solution-end}\n````", "")),
     "opens the solution of 'ex-t-words' inside"),
    (lambda nb: nb.cells.__setitem__(7, new_markdown_cell("no end")), "is never closed"),
    (lambda nb: nb.cells.insert(0, new_markdown_cell("````{solution-end}\n````")), "outside every solution block"),
    (lambda nb: nb.cells.insert(1, solution("x = 1")), "tagged 'solution' but lies outside"),
    (lambda nb: setattr(nb.cells[2], "source", nb.cells[2].source.replace("start} ex-t-sq", "start} ex-nope")),
     "no exercise above it has that label"),
])
def test_a_malformed_chapter_is_an_error_that_names_the_cell_and_the_fix(mutate, message):
    nb = tiny_chapter()
    mutate(nb)
    with pytest.raises(assign.AssignError, match=message):
        assign.parse_chapter(nb, "tiny")


def _static_spec(nb, ch, name):
    return {"chapter": name, "exercises": [{"label": b.label, "title": ch.exercise(b.label).title, "values": []}
                                           for b in ch.blocks]}


def test_every_chapter_of_the_book_parses_and_its_student_version_keeps_no_solution():
    chapters = cli._chapter_paths(ROOT)
    with_exercises = 0
    for path in chapters:
        nb = nbformat.read(path, as_version=4)
        ch = assign.parse_chapter(nb, str(path))
        student = assign.student_notebook(nb, ch, _static_spec(nb, ch, path.stem))
        assert assign.solution_traces(student) == [], path
        kept = "\n".join(c.source for c in student.cells)
        for i in ch.block_of():  # no line of a solution code cell survives
            assert not any(line.strip() and line in kept for line in nb.cells[i].source.splitlines()
                           if len(line.strip()) > 25 and "NBVAL" not in line), (path, i)
        assert [c.metadata["linattn"]["answer"] for c in student.cells if c.cell_type == "code"
                and "linattn" in c.metadata] == [b.label for b in ch.blocks]
        stated = [e.label for c in student.cells if c.cell_type == "markdown" for e in assign._exercises_in(c.source, 0)]
        assert stated == [e.label for e in ch.exercises]  # the statements stay
        with_exercises += bool(ch.blocks)
    assert with_exercises >= 9


@pytest.mark.parametrize("expected, got, ok", [
    ("0.25", "0.25000000001", True), ("0.25", "0.2501", False), ("3e-16", "-4e-17", True),
    ("nan", "nan", True), ("nan", "0.0", False), ("inf", "inf", True), ("4", "4.0", True), ("4", "5", False),
    ("True", "True", True), ("True", "1", False), ("'a'", "'a'", True), ("'a'", "'b'", False),
    ("[1.5, nan, 2]", "[1.5000000001, nan, 2.0]", True), ("[1.5, 2]", "[1.5]", False),
    ("{'a': 1.0}", "{'a': 1.0000000001}", True), ("0.5", "np.float64(0.5)", True),
    ("0.5", "tensor(0.5000, dtype=torch.float64)", False), ("0.5", "'0.5'", False), ("None", "None", True),
])
def test_values_match_by_kind_within_the_spec_tolerance(expected, got, ok):
    entry = {"name": "key", "kind": assign._kind(expected), "expected": expected, "rtol": 1e-6, "atol": 1e-12}
    matched, why = assign.match_value(entry, got)
    assert matched is ok and (why == "") is ok


def test_objects_without_a_plain_value_match_by_text_or_presence():
    addr = {"name": "fig", "kind": assign._kind("<Figure at 0x7f00>"), "expected": "<Figure at 0x7f00>"}
    assert addr["kind"] == "presence" and assign.match_value(addr, "<Figure at 0x1234>")[0]
    text = {"name": "expr", "kind": assign._kind("x**2 + 1"), "expected": "x**2 + 1"}
    assert text["kind"] == "text" and assign.match_value(text, "x**2 + 1")[0]
    assert not assign.match_value(text, "x**2 + 2")[0]


def test_a_bad_spec_or_submissions_folder_is_an_error_that_says_how_to_fix_it(tmp_path, capsys):
    assert cli.main(["grade", str(tmp_path / "none.json"), str(tmp_path)]) == cli.BAD_INPUT
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert cli.main(["grade", str(tmp_path / "bad.json"), str(tmp_path)]) == cli.BAD_INPUT
    assert "is not JSON" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"format": "other"}')
    assert cli.main(["grade", str(tmp_path / "other.json"), str(tmp_path)]) == cli.BAD_INPUT
    assert "is not a grading spec" in capsys.readouterr().err
    spec = {"format": assign.FORMAT, "chapter": "c", "exercises": [
        {"label": "ex", "values": [{"name": "k", "kind": "float", "expected": "zero"}]}]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert cli.main(["grade", str(tmp_path / "spec.json"), str(tmp_path)]) == cli.BAD_INPUT
    assert "not a plain value" in capsys.readouterr().err
    spec["exercises"][0]["values"][0]["expected"] = "0.0"
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "empty").mkdir()
    assert cli.main(["grade", str(tmp_path / "spec.json"), str(tmp_path / "empty")]) == cli.BAD_INPUT
    assert "holds no .ipynb file" in capsys.readouterr().err
    assert cli.main(["assign", str(tmp_path / "spec.json")]) == cli.BAD_INPUT
    assert "a chapter is a .ipynb notebook" in capsys.readouterr().err


def test_submissions_are_files_or_one_folder_a_student(tmp_path):
    spec = {"chapter": "tiny"}
    (tmp_path / "ann.ipynb").write_text("{}")
    (tmp_path / "ben").mkdir()
    (tmp_path / "ben" / "tiny.ipynb").write_text("{}")
    (tmp_path / "cy").mkdir()
    (tmp_path / "cy" / "mine.ipynb").write_text("{}")
    (tmp_path / "grades-tiny.csv").write_text("")
    found = assign.submissions(tmp_path, spec)
    assert [(s, p.relative_to(tmp_path).as_posix()) for s, p in found] == [
        ("ann", "ann.ipynb"), ("ben", "ben/tiny.ipynb"), ("cy", "cy/mine.ipynb")]


def test_a_student_book_is_the_book_with_student_chapters_and_no_solution(tmp_path):
    chapters = cli._chapter_paths(ROOT)
    students = {}
    for path in chapters:
        nb = nbformat.read(path, as_version=4)
        ch = assign.parse_chapter(nb, str(path))
        if ch.blocks:
            students[str(path.relative_to(ROOT))] = assign.student_notebook(nb, ch, _static_spec(nb, ch, path.stem))
    dest = tmp_path / "student-book"
    written = assign.write_student_book(ROOT, dest, students)
    assert len(written) == len(students)
    assert (dest / "_config.yml").is_file() and (dest / "_toc.yml").is_file()
    for page in (dest / "book").rglob("*.ipynb"):
        nb = nbformat.read(page, as_version=4)
        assert assign.solution_traces(nb) == [], page
        assert not any("solution" in c.metadata.get("tags", []) for c in nb.cells)
    assert assign.write_student_book(ROOT, dest, students)  # rewriting its own folder is fine
    missing = dict(students)
    missing.pop(sorted(missing)[0])
    with pytest.raises(assign.AssignError, match="still holds solutions"):
        assign.write_student_book(ROOT, tmp_path / "partial", missing)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(assign.AssignError, match="not a student book"):
        assign.write_student_book(ROOT, tmp_path / "mine", students)
    with pytest.raises(assign.AssignError, match="overwrite the book itself"):
        assign.write_student_book(ROOT, ROOT / "book", students)


# --------------------------------------------------------------------------- with a kernel


def test_assign_writes_a_student_notebook_an_instructor_notebook_and_a_spec(made):
    result, spec = made
    assert [(e["label"], [v["name"] for v in e["values"]]) for e in spec["exercises"]] == [
        ("ex-t-sq", ["key_sq_val", "key_sq_n"]), ("ex-t-words", ["key_w_name", "key_w_ok", "key_w_list"])]
    kinds = {v["name"]: (v["kind"], v["expected"]) for e in spec["exercises"] for v in e["values"]}
    assert kinds == {"key_sq_val": ("float", "9.0"), "key_sq_n": ("int", "4"), "key_w_name": ("str", "'square'"),
                     "key_w_ok": ("bool", "True"), "key_w_list": ("literal", "[1.5, nan, 2]")}
    student = nbformat.read(result.student, as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "SECRET" not in text and "sq_val = x**2" not in text and assign.solution_traces(student) == []
    assert "Square x; count to four." in text and "## Summary" in text      # statements and the rest stay
    stubs = [c for c in student.cells if "linattn" in c.metadata]
    assert [c.cell_type for c in stubs] == ["markdown", "code"] * 2
    assert stubs[0].source.startswith("**Your answer**") and stubs[1].source.startswith("# YOUR CODE HERE")
    assert 'glue("key_sq_val", ...)' in stubs[1].source and "9.0" not in stubs[1].source + stubs[0].source
    instructor = nbformat.read(result.instructor, as_version=4)
    assert [c.source for c in instructor.cells] == [c.source for c in tiny_chapter().cells]
    assert instructor.metadata["linattn"]["grading_spec"] == "../grading/tiny.json"


@pytest.fixture(scope="module")
def graded(made, tmp_path_factory):
    """A class of submissions, graded through the command: the instructor's notebook, untouched, a
    partly right one, a syntax error, an exception, a file that is not JSON, one in a folder."""
    result, spec = made
    folder = tmp_path_factory.mktemp("subs")
    student = nbformat.read(result.student, as_version=4)
    nbformat.write(nbformat.read(result.instructor, as_version=4), folder / "alice.ipynb")
    nbformat.write(student, folder / "bob.ipynb")
    nbformat.write(answered(student, {"ex-t-sq": "glue('key_sq_val', x**2 + 1e-3); glue('key_sq_n', 4.0)",
                                      "ex-t-words": "glue('key_w_name', 'square'); glue('key_w_ok', True)\n"
                                                    "glue('key_w_list', (1.5000000001, float('nan'), 2.0))"}),
                   folder / "carol.ipynb")
    nbformat.write(answered(student, {"ex-t-sq": "glue('key_sq_val', x**2); glue('key_sq_n', 4)",
                                      "ex-t-words": "def f(:\n    pass"}), folder / "dave.ipynb")
    nbformat.write(answered(student, {"ex-t-sq": "1 / 0"}), folder / "erin.ipynb")
    (folder / "frank.ipynb").write_text("this is not a notebook {")
    (folder / "gina").mkdir()
    nbformat.write(answered(student, {"ex-t-sq": "glue('key_sq_val', 9.0); glue('key_sq_n', 4)"}),
                   folder / "gina" / "tiny.ipynb")
    assert cli.main(["grade", str(result.spec), str(folder), "--timeout", "60"]) == 0
    rows = list(csv.DictReader(io.StringIO((folder / "grades-tiny.csv").read_text())))
    return folder, {(r["student"], r["exercise"]): r for r in rows}


def test_the_instructor_scores_full_marks_and_an_untouched_student_zero(graded):
    _, rows = graded
    assert rows["alice", "TOTAL"]["points"] == "2.00" and rows["alice", "TOTAL"]["max_points"] == "2.00"
    assert rows["bob", "TOTAL"]["points"] == "0.00"
    assert rows["bob", "ex-t-sq"]["status"] == "missing"
    assert "not attempted" in rows["bob", "ex-t-sq"]["reason"] and "key_sq_val" in rows["bob", "ex-t-sq"]["reason"]


def test_points_are_the_fraction_of_values_matched(graded):
    _, rows = graded
    assert rows["carol", "ex-t-sq"]["points"] == "0.50" and rows["carol", "ex-t-sq"]["matched"] == "1"
    assert "key_sq_val: got 9.001, expected 9.0" in rows["carol", "ex-t-sq"]["reason"]
    assert rows["carol", "ex-t-words"]["points"] == "1.00"   # a tuple for a list, nan for nan, 2.0 for 2, 1.5 within rtol
    assert rows["gina", "ex-t-sq"]["points"] == "1.00" and rows["gina", "TOTAL"]["points"] == "1.00"


def test_broken_submissions_are_reported_not_crashed_on(graded):
    _, rows = graded
    assert rows["dave", "ex-t-sq"]["points"] == "1.00"
    assert rows["dave", "ex-t-words"]["status"] == "error" and "SyntaxError" in rows["dave", "ex-t-words"]["reason"]
    assert rows["erin", "ex-t-sq"]["status"] == "error"
    assert "ZeroDivisionError: division by zero" in rows["erin", "ex-t-sq"]["reason"]
    assert rows["frank", "TOTAL"]["status"] == "problem" and "not a readable notebook" in rows["frank", "TOTAL"]["reason"]
    assert rows["frank", "ex-t-sq"]["status"] == "not-run"


def test_grading_is_deterministic(graded, made):
    folder, rows = graded
    result, _ = made
    again = folder.parent / "again"
    again.mkdir(exist_ok=True)
    for name in ("carol.ipynb", "dave.ipynb"):
        (again / name).write_bytes((folder / name).read_bytes())
    spec = assign.load_spec(result.spec)
    text = assign.to_csv(assign.grade(spec, again, timeout=60))
    first = (folder / "grades-tiny.csv").read_text().splitlines()
    assert text.splitlines()[1:] == [line for line in first if line.startswith(("carol,", "dave,"))]


def test_a_cell_that_never_ends_is_interrupted_and_scored_zero(made, tmp_path):
    result, _ = made
    spec = assign.load_spec(result.spec)
    student = nbformat.read(result.student, as_version=4)
    nbformat.write(answered(student, {"ex-t-sq": "glue('key_sq_val', 9.0); glue('key_sq_n', 4)",
                                      "ex-t-words": "import time\nwhile True:\n    time.sleep(0.05)"}),
                   tmp_path / "hal.ipynb")
    sub = assign.grade_notebook(spec, tmp_path / "hal.ipynb", "hal", timeout=10)
    print(assign.report(sub))
    assert [e.points for e in sub.exercises] == [1.0, 0.0]
    assert "CellTimeoutError" in sub.exercises[1].reason


def test_a_real_chapter_assigned_and_graded_end_to_end(tmp_path):
    """The one real chapter these tests execute (twice, about 15-25 s a run on 2 busy cores): its spec
    holds the names its solutions glue, read through linattn.book.glue, and the instructor's notebook
    scores full marks."""
    import re

    chapter = ROOT / "book" / "part3" / "influence_functions.ipynb"
    made = assign.make_assignment(chapter, tmp_path / "out")
    spec = assign.load_spec(made.spec)
    nb = nbformat.read(chapter, as_version=4)
    ch = assign.parse_chapter(nb, str(chapter))
    for ex, block in zip(spec["exercises"], ch.blocks):
        static = {n for i in block.code_cells for n in re.findall(r"glue\(\"(\w+)\"", nb.cells[i].source)}
        assert ex["label"] == block.label and {v["name"] for v in ex["values"]} == static and static
    assert assign.solution_traces(nbformat.read(made.student, as_version=4)) == []
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "teacher.ipynb").write_bytes(made.instructor.read_bytes())
    (sub,) = assign.grade(spec, tmp_path / "subs")
    assert sub.problem == "" and sub.points == sub.max_points == len(spec["exercises"])
