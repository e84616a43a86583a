"""One owner per figure: the README's results table and every figure of the manual come from the committed
result files (docs/_ext/grv2_results.py renders them), and no page types a measurement of its own."""

import functools
import glob
import importlib
import importlib.util
import json
import math
import os
import re

import jinja2
import pytest

from gluon_resnetv2 import paper_results
from gluon_resnetv2.analysis.results import results_from_csv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _load_extension():
    spec = importlib.util.spec_from_file_location("grv2_results", os.path.join(DOCS, "_ext", "grv2_results.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXT = _load_extension()

#: Pages written by hand (the prose the checks below read); generated outputs and fragments are not.
GENERATED_DIRS = ("_build", "_generated", "results", "reproduce", "propagation")


def prose_pages():
    pages = [os.path.join(ROOT, "README.md")]
    for path in sorted(glob.glob(os.path.join(DOCS, "**", "*.md"), recursive=True)):
        if os.path.relpath(path, DOCS).split(os.sep)[0] not in GENERATED_DIRS:
            pages.append(path)
    return pages


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_readme_results_table_is_the_generated_one():
    readme = _read(os.path.join(ROOT, "README.md"))
    assert EXT.README_START in readme and EXT.README_END in readme
    expected = EXT.readme_with_table(readme, EXT.all_facts(DOCS))
    assert readme == expected, "README's results table is stale: run python docs/_ext/grv2_results.py --readme"


def test_readme_results_table_quotes_report_json():
    """The generated table itself: Table 3's ResNet-1001 pair and Table 1's fails found, as report.json has them."""
    table = EXT.readme_results_table(EXT.all_facts(DOCS))
    with open(os.path.join(DOCS, "reproduce", "table3-depth", "report.json"), encoding="utf-8") as handle:
        rows = {r["row"]: r for r in json.load(handle)["rows"]}
    assert f"{rows['resnet1001_v1']['test_error']:.2f} % vs {rows['resnet1001_v2']['test_error']:.2f} %" in table
    with open(os.path.join(DOCS, "reproduce", "table1-depth", "report.json"), encoding="utf-8") as handle:
        agreement = json.load(handle)["agreement"]
    assert f"{agreement['fails_found']} of the {agreement['fails_total']} among our" in table


def test_propagation_tables_are_the_packages_summaries():
    """The rendered Eqn. 5/8 tables equal PropagationResult.summary() of the committed CSV files, cell for cell."""
    facts = EXT.all_facts(DOCS)
    for kind in ("v2", "v1"):
        text = EXT.propagation_table(facts, kind)
        quoted = {
            m.group(1): m.group(2).split(" | ") for m in re.finditer(r"^\| .* \(`([^`]+)`\) \| (.*) \|$", text, re.M)
        }
        quoted.pop("--variant")  # the header row
        expected = {}
        for depth in ("110", "1001"):
            path = os.path.join(DOCS, "propagation", f"resnet{depth}_{kind}", "propagation.csv")
            for result in results_from_csv(path):
                summary = result.summary()
                expected.setdefault(summary["variant"], []).extend(
                    f"{summary[key]:.3g}" for key in ("ratio_first", "ratio_min", "shortcut_term_unit1")
                )
        assert len(quoted) == 10 and quoted == expected, kind


@functools.lru_cache(maxsize=1)
def _facts():
    return EXT.all_facts(DOCS)


SUBSTITUTION = re.compile(r"\{\{(.*?)\}\}", re.S)


@pytest.mark.parametrize("path", prose_pages(), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_substitution_names_a_figure_that_exists(path):
    """A typo in ``{{ r.table1_depth.rows.original.test_error }}`` fails here, not as an empty cell."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    facts = _facts()
    text = re.sub(r"`[^`\n]*`", "", _read(path))  # inline code shows the syntax, it is not substituted
    for match in SUBSTITUTION.finditer(text):
        value = env.from_string("{{" + match.group(1) + "}}").render(**facts)
        assert value.strip() and value != "n/a", f"{path}: {{{{{match.group(1)}}}}} renders {value!r}"


# -- the scan for typed measurements -------------------------------------------------------------------

#: Numbers that look like measurements but are goals, definitions or criteria, with the reason.
NOT_MEASUREMENTS = {
    "20": "the paper's fail criterion (test error above 20 %), also a goal's 20 % over budget",
    "80": "the paper's warm-up criterion (training error below 80 %)",
    "10": "the final training loss is the mean over the last 10 % of the iterations",
    "100": "100 % of the nominal peak",
    "1": "1 % of the arithmetic (BN, ReLU: not counted)",
    "1.0": "a goal: at least 1.0x PyTorch eager",
    "1.3": "a goal: fusion 1.3x",
    "1.4": "a goal: bfloat16 training 1.4x",
    "2": "a goal: INT8 at least 2x float32",
    "300": "the rate at which make demo's 630 s budget reaches its 2-epoch cap (arithmetic, not a measurement)",
}

MEASUREMENT = re.compile(
    r"(?<![\w.\-/^])(\d+(?:\.\d+)?)(?:\s?(%)|(x)(?![\w])|\s(images/s|img/s|GFLOP/s|MiB|MB|GB|ms)\b)"
)


def prose(text):
    """What a reader reads as sentences: no code, no substitutions, no link targets, no generated block."""
    if EXT.README_START in text:
        start, end = text.index(EXT.README_START), text.index(EXT.README_END)
        text = text[:start] + text[end:]
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)  # fenced blocks
    text = re.sub(r"`[^`\n]*`", "", text)
    text = SUBSTITUTION.sub("", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def _numbers_in(value, out):
    if isinstance(value, dict):
        for item in value.values():
            _numbers_in(item, out)
    elif isinstance(value, list):
        for item in value:
            _numbers_in(item, out)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, (int, float)):
        out.add(float(value))
    elif isinstance(value, str):
        out.update(float(m) for m in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", value))


@functools.lru_cache(maxsize=1)
def result_numbers():
    """Every number of every committed result file (what a typed figure is checked against)."""
    out = set()
    for row in (r for rows in paper_results.TABLES.values() for r in rows):
        _numbers_in([row.error, row.top5], out)
    patterns = ("results/*.json", "results/*.md", "reproduce/*/report.json")
    for pattern in patterns:
        for path in glob.glob(os.path.join(DOCS, pattern)):
            if path.endswith(".json"):
                with open(path, encoding="utf-8") as handle:
                    _numbers_in(json.load(handle), out)
            else:
                _numbers_in(_read(path), out)
    _numbers_in(EXT.all_facts(DOCS)["p"], out)
    return out


def _found(token, numbers):
    value = float(token)
    decimals = len(token.split(".")[1]) if "." in token else 0
    return any(math.isclose(round(n, decimals), value, abs_tol=1e-9) for n in numbers)


def test_scan_sees_typed_measurements():
    text = "training 1.59x fp32 at 584 images/s, 8.97 % error, peak 9916 MiB; `1.2x` in code, 3x3 conv, 6n+2"
    assert [m.group(1) for m in MEASUREMENT.finditer(prose(text))] == ["1.59", "584", "8.97", "9916"]


@pytest.mark.parametrize("path", prose_pages(), ids=lambda p: os.path.relpath(p, ROOT))
def test_no_page_types_a_measurement_without_a_result_file(path):
    """Each percentage, ratio (1.3x), rate (images/s) or size typed in prose is a goal or a criterion
    (NOT_MEASUREMENTS), the paper's own number, or a number of a committed result file; figures measured
    here are substitutions, rendered at build time."""
    numbers = result_numbers()
    unknown = []
    for match in MEASUREMENT.finditer(prose(_read(path))):
        token = match.group(1)
        if token not in NOT_MEASUREMENTS and not _found(token, numbers):
            line = match.string[max(0, match.start() - 60) : match.end() + 20].replace("\n", " ")
            unknown.append(f"{match.group(0)!r} in '...{line}...'")
    assert not unknown, f"{os.path.relpath(path, ROOT)}: figures without a result file: " + "; ".join(unknown)


def test_readme_links_point_at_files_of_the_repository():
    """GitHub renders the README without Sphinx, so its relative links are checked here (Sphinx checks the
    site's own, -n -W)."""
    readme = _read(os.path.join(ROOT, "README.md"))
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)#][^)]*)\)", readme) if "://" not in t]
    missing = [t for t in targets if not os.path.exists(os.path.join(ROOT, t))]
    assert targets and not missing, f"README links to missing files: {missing}"


#: What the API page must document (issue 19), wherever each lives.
API = ["get_model", "list_models", "ResidualUnit", "from_gluoncv", "export", "train", "resume", "plot_runs",
       "Predictor", "fuse", "quantize", "analyze", "run_table"]  # fmt: skip


def test_api_page_documents_the_public_api():
    directives = re.findall(r"^\.\. auto(?:function|class):: (\S+)", _read(os.path.join(DOCS, "api.md")), re.M)
    assert sorted(d.rsplit(".", 1)[1] for d in directives) == sorted(API)
    for dotted in directives:
        module, name = dotted.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name)), dotted
