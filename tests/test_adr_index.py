"""docs/adr: the index lists every record and nothing else, every link in the ADRs and in
CONTRIBUTING.md resolves, and every record says its status, context, decision and
consequences (docs/adr/README.md)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADR = ROOT / "docs" / "adr"
RECORDS = sorted(path for path in ADR.glob("[0-9][0-9][0-9][0-9]-*.md"))
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _links(document: Path) -> list[str]:
    return [target for target in _LINK.findall(document.read_text()) if "://" not in target]


def test_the_index_lists_every_record_and_only_those() -> None:
    listed = {target for target in _links(ADR / "README.md") if re.match(r"\d{4}-", target)}
    assert listed == {path.name for path in RECORDS}
    numbers = [path.name[:4] for path in RECORDS]
    assert len(set(numbers)) == len(numbers), "two records share a number"


@pytest.mark.parametrize("record", RECORDS, ids=lambda path: path.name[:4])
def test_every_record_has_a_status_context_decision_and_consequences(record: Path) -> None:
    text = record.read_text()
    assert text.startswith(f"# {record.name[:4]}"), "the title starts with the record's number"
    assert re.search(r"^Status: \**(proposed|accepted|superseded|deprecated)", text, re.M | re.I)
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[:3] == ["Context", "Decision", "Consequences"], headings


@pytest.mark.parametrize(
    "document", [*RECORDS, ADR / "README.md", ROOT / "CONTRIBUTING.md"], ids=lambda path: path.name
)
def test_every_link_resolves(document: Path) -> None:
    missing = [t for t in _links(document) if not (document.parent / t).resolve().exists()]
    assert not missing, missing
