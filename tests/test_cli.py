"""The linattn command."""
import pathlib

from linattn import cli, claims

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_claims_command_prints_every_claim(capsys):
    assert cli.main(["claims"]) == 0
    out = capsys.readouterr().out
    for cid in claims.load_registry():
        assert cid in out


def test_chapters_follow_the_table_of_contents():
    chapters = cli._chapters(ROOT)
    rel = [str(c.relative_to(ROOT)) for c in chapters]
    assert "book/gram_spectrum.ipynb" in rel and "book/appendix/claims.ipynb" in rel
    assert rel.index("book/gram_spectrum.ipynb") < rel.index("book/appendix/claims.ipynb")
    assert all(c.suffix == ".ipynb" and c.exists() for c in chapters)


def test_reproduce_with_no_matching_chapter_fails_clearly(capsys):
    assert cli.main(["reproduce", "--root", str(ROOT), "--only", "no-such-chapter"]) == 1
    assert "no chapters" in capsys.readouterr().err
