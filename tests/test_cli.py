"""The linattn command."""
import pathlib

import pytest

from linattn import cli, claims

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_claims_command_prints_every_claim(capsys):
    assert cli.main(["claims"]) == 0
    out = capsys.readouterr().out
    for cid in claims.load_registry():
        assert cid in out


def test_claims_json_and_version_and_info(capsys):
    import json

    from linattn import __version__

    assert cli.main(["claims", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows} == set(claims.load_registry())
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and __version__ in capsys.readouterr().out
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "data folder" in out and "width_sweep" in out


def test_chapters_follow_the_table_of_contents():
    chapters = cli._chapter_paths(ROOT)
    rel = [str(c.relative_to(ROOT)) for c in chapters]
    assert "book/gram_spectrum.ipynb" in rel and "book/appendix/claims.ipynb" in rel
    assert rel.index("book/gram_spectrum.ipynb") < rel.index("book/appendix/claims.ipynb")
    assert all(c.suffix == ".ipynb" and c.exists() for c in chapters)


def test_chapters_with_no_match_or_outside_the_repository_fail_clearly(capsys, tmp_path):
    assert cli.main(["chapters", "--root", str(ROOT), "--only", "no-such-chapter"]) == cli.BAD_INPUT
    assert "no chapters" in capsys.readouterr().err
    assert cli.main(["chapters", "--root", str(tmp_path)]) == cli.BAD_INPUT
    assert "_toc.yml not found" in capsys.readouterr().err
