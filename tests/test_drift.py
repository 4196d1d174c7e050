"""Docs and code that drift apart: the docs are self-contained and state what the code does,
the data folder's layout is named in one module, and nothing there is dead."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from batch_platform.paths import DBT_PROJECT_DIR, PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "batch_platform"
DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
MENTION = re.compile(r"`([^`\s<>]+\.md)`")


def package_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_page_the_docs_refer_to_is_a_file_of_the_repository():
    """Links, and `name.md` mentions, resolve (from the page or the project root) inside it."""
    broken = []
    for doc in DOCS:
        text = doc.read_text()
        for target in LINK.findall(text) + MENTION.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor of the same page
            candidates = [
                (base / target.split("#")[0]).resolve() for base in (doc.parent, PROJECT_ROOT)
            ]
            if not any(p.is_relative_to(PROJECT_ROOT) and p.exists() for p in candidates):
                broken.append(f"{doc.relative_to(PROJECT_ROOT)} -> {target}")
    assert broken == []


def test_the_architecture_states_the_settlement_window_dbt_uses():
    settlement_days = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"][
        "settlement_days"
    ]
    stated = re.findall(
        r"`settlement_days` \((\d+)\)", (PROJECT_ROOT / "docs/ARCHITECTURE.md").read_text()
    )
    assert stated and {int(n) for n in stated} == {settlement_days}


def test_the_registry_doc_covers_every_file_a_service_folder_holds_and_how_models_build():
    doc = (PROJECT_ROOT / "docs" / "REGISTRY.md").read_text()
    staging = DBT_PROJECT_DIR / "models" / "staging"
    kinds = set()
    for folder in staging.iterdir():
        for file in folder.iterdir():
            name = file.name.replace(folder.name, "<service>", 1)
            kinds.add(re.sub(r"__\w+\.sql$", "__<entity>.sql", name))
    assert {kind for kind in kinds if kind not in doc} == set()
    # Every materialization the staging models use is explained, with the partition-window
    # hooks an incremental model needs and the `dt` column the lake adds.
    used = set()
    for model in staging.rglob("*.sql"):
        used |= set(re.findall(r"materialized\s*=\s*'(\w+)'", model.read_text()))
    assert used and {m for m in used if f"`{m}`" not in doc} == set()
    for name in ("delete_partition_window", "in_partition_window", "`dt`"):
        assert name in doc


def test_only_paths_names_the_data_folders():
    """Every folder under the data folder comes from batch_platform/paths.py, so one variable
    (BATCH_PLATFORM_DATA_DIR) moves all of them, e.g. to a mount every worker shares."""
    spelled = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()}"
        for path, text in package_sources().items()
        if path.name != "paths.py"
        for number, line in enumerate(text.splitlines(), 1)
        if re.search(r"""["'](data/)?lake["'/]""", line)
        or re.search(r"""/ *["'](data|landing|services|lake)\b""", line)
    ]
    assert spelled == []


def test_nothing_defined_in_paths_or_the_lake_module_is_unused():
    sources = package_sources()
    everything = "\n".join(sources.values())
    unused = []
    for module in (PACKAGE / "paths.py", PACKAGE / "extract" / "lake.py"):
        for node in ast.parse(sources[module]).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            else:
                continue
            for name in names:
                if len(re.findall(rf"\b{re.escape(name)}\b", everything)) < 2:
                    unused.append(f"{module.name}:{name}")
    assert unused == []
