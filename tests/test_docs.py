"""README.md and docs/ stay true: short, linked, complete, and every command in them runs.

1. README.md has at most 250 lines, and its Layout names every folder of eie_jax/.
2. Every relative link and image path in README.md and docs/**/*.md names an existing file
   (an anchor after # is not checked; http(s) and mailto links are not checked).
3. Every table row and every image of the README at commit 061201e (before the README was
   split into docs/ pages) is still in README.md or a docs page, cells compared with their
   whitespace normalised. The list is the fixture tests/fixtures/readme_061201e_rows.txt (a
   clone need not have the history); `python -m tests.test_docs --write-fixture` rewrites
   it from `git show 061201e:README.md`.
4. Every `python -m experiments.<name> ... --config=...` command in a fenced sh block runs
   with `--validate_only` (its --workdir replaced by a fresh temporary directory): exit
   status 0, `config ok`, and the workdir not created. Every Python block compiles.
"""

import os
import re
import shlex
import subprocess
import sys

from tests.helpers import ROOT, run_entry_point

README = os.path.join(ROOT, "README.md")
DOCS = os.path.join(ROOT, "docs")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "readme_061201e_rows.txt")
FIXTURE_REV = "061201e"
MAX_README_LINES = 250

SHELL_LANGS = {"sh", "bash", "shell"}

# Commands with a --config that the validate-only check leaves out, and why. A command is
# left out when one of these strings is in it.
SKIPPED = {
    "--coordinator_address": "multi-host: jax.distributed waits for the other processes",
    "configs/tiny_mlp.py": "the config file the page shows how to write (extending.md)",
    "--config.prune.structure=row_budget": "the pruning rule the page shows how to add",
}

# Where an experiment's output is: a command's line that starts so is a command.
COMMAND = re.compile(r"\bpython -m experiments\.\w+")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
SEPARATOR = re.compile(r"\|(\s*:?-+:?\s*\|)+")
FOR_LOOP = re.compile(r"\bfor (\w+) in (\S+)")


def pages() -> list[str]:
    """README.md and every Markdown page under docs/, as absolute paths."""
    found = [README]
    for folder, _, files in os.walk(DOCS):
        found += [os.path.join(folder, f) for f in files if f.endswith(".md")]
    return sorted(found)


def rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def fenced_blocks(text: str) -> list[tuple[str, int, str]]:
    """(language, line number of the opening fence, body) of every ``` block."""
    blocks, lang, start, body = [], None, 0, []
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if lang is None and stripped.startswith("```"):
            lang, start, body = stripped[3:].strip().lower(), number, []
        elif lang is not None and stripped == "```":
            blocks.append((lang, start, "\n".join(body)))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, f"a ``` block opened at line {start} is never closed"
    return blocks


def prose(text: str) -> str:
    """The text outside fenced blocks and inline code spans (where links are links)."""
    out, inside = [], False
    for line in text.split("\n"):
        if line.strip().startswith("```"):
            inside = not inside
            out.append("")
        else:
            out.append("" if inside else line)
    return re.sub(r"`[^`\n]*`", "", "\n".join(out))


def normalise_row(line: str, page_dir: str) -> str:
    """A table row with each cell's whitespace collapsed and image paths repo-relative."""

    def image(match):
        return f"![{match.group(1)}]({rel_target(match.group(2), page_dir)})"

    cells = IMAGE.sub(image, line.strip()).strip("|").split("|")
    return "|" + "|".join(" ".join(cell.split()) for cell in cells) + "|"


def rel_target(target: str, page_dir: str) -> str:
    """A link target as a path relative to the repository root (anchors dropped)."""
    path = target.split("#", 1)[0]
    return os.path.normpath(os.path.relpath(os.path.join(page_dir, path), ROOT))


def items(text: str, page_dir: str) -> list[str]:
    """Every table row (`|...|`, not separators) and every image (`image PATH`) of a page."""
    found = []
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("|") and not SEPARATOR.fullmatch(stripped):
            found.append(normalise_row(stripped, page_dir))
        for match in IMAGE.finditer(line):
            found.append(f"image {rel_target(match.group(2), page_dir)}")
    return found


def fixture_items() -> list[str]:
    with open(FIXTURE, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]


def write_fixture() -> None:
    """Writes the rows and images of README.md at FIXTURE_REV into FIXTURE."""
    text = subprocess.run(
        ["git", "show", f"{FIXTURE_REV}:README.md"], cwd=ROOT, check=True,
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    unique = list(dict.fromkeys(items(text, ROOT)))
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    with open(FIXTURE, "w", encoding="utf-8") as f:
        f.write(
            f"# Every table row and image of README.md at commit {FIXTURE_REV}, which\n"
            "# tests/test_docs.py finds in README.md or docs/. Cells' whitespace normalised,\n"
            "# image paths relative to the repository root. Written by\n"
            "# `python -m tests.test_docs --write-fixture`.\n"
        )
        f.writelines(item + "\n" for item in unique)
    print(f"{len(unique)} rows and images -> {rel(FIXTURE)}")


# 1. The README's length and layout.


def test_readme_is_short():
    lines = read(README).count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"


def test_readme_layout_names_every_folder_of_the_package():
    text = read(README)
    layout = text[text.index("## Layout") :]
    block = fenced_blocks(layout)[0][2]
    named = set(re.findall(r"^eie_jax/(\w+)/", block, re.M))
    package = os.path.join(ROOT, "eie_jax")
    folders = {
        name for name in os.listdir(package)
        if os.path.isfile(os.path.join(package, name, "__init__.py"))
    }  # fmt: skip
    assert named == folders, f"README Layout: missing {folders - named}, stale {named - folders}"
    for top in re.findall(r"^(\w+)/ ", block, re.M):
        assert os.path.isdir(os.path.join(ROOT, top)), f"README Layout: no folder {top}/"


# 2. Links and images.


def test_every_relative_link_and_image_resolves():
    broken = []
    for page in pages():
        for number, line in enumerate(prose(read(page)).split("\n"), 1):
            for target in LINK.findall(line):
                if re.match(r"[a-z]+:", target) or target.startswith("#"):
                    continue  # http(s), mailto; an anchor on the same page
                path = os.path.join(os.path.dirname(page), target.split("#", 1)[0])
                if not os.path.exists(path):
                    broken.append(f"{rel(page)}:{number}: {target}")
    assert not broken, "links to no file:\n" + "\n".join(broken)


def test_images_are_in_docs_figures():
    for page in pages():
        for line in prose(read(page)).split("\n"):
            for _, target in IMAGE.findall(line):
                assert rel_target(target, os.path.dirname(page)).startswith("docs/figures/"), (
                    f"{rel(page)}: image {target} is not under docs/figures/"
                )


# 3. Nothing of the README at 061201e lost.


def test_every_row_and_image_of_the_old_readme_is_kept():
    present = set()
    for page in pages():
        present.update(items(read(page), os.path.dirname(page)))
    expected = fixture_items()
    assert len(expected) > 250, f"{rel(FIXTURE)} looks truncated ({len(expected)} items)"
    missing = [item for item in expected if item not in present]
    assert not missing, (
        f"{len(missing)} of {len(expected)} rows/images of README.md at {FIXTURE_REV} are in "
        "no page:\n" + "\n".join(missing[:20])
    )


# 4. Commands and code blocks.


def shell_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every `python -m experiments.` command in a fenced shell block,
    with a `for VAR in A B ...` loop's $VAR read as its first value."""
    found = []
    for page in pages():
        for lang, start, body in fenced_blocks(read(page)):
            if lang not in SHELL_LANGS:
                continue
            joined = re.sub(r"\\\n", " ", body)
            values = {m.group(1): m.group(2).rstrip(";") for m in FOR_LOOP.finditer(joined)}
            for line in joined.split("\n"):
                match = COMMAND.search(line)
                if not match:
                    continue
                command = line[match.start() :]
                for name, value in values.items():
                    command = re.sub(rf"\$\{{?{name}\}}?", value, command)
                argv = shlex.split(command, comments=True)
                found.append((f"{rel(page)}:{start}", argv))
    return found


def test_commands_are_in_shell_blocks():
    """A command shown outside a fenced sh block would escape the validate-only check."""
    misplaced = []
    for page in pages():
        text = read(page)
        for lang, start, body in fenced_blocks(text):
            if lang not in SHELL_LANGS and COMMAND.search(body) and lang != "python":
                misplaced.append(f"{rel(page)}:{start}: a ```{lang} block (use ```sh)")
        for number, line in enumerate(prose(text).split("\n"), 1):
            if re.match(r"\s*(\w+=\S+ )*python -m experiments\.", line):
                misplaced.append(f"{rel(page)}:{number}: outside a ``` block")
    assert not misplaced, "commands outside ```sh blocks:\n" + "\n".join(misplaced)


def validate_only_argvs(tmp_path) -> dict[tuple, tuple[str, list[str], str]]:
    """Each distinct command with a --config: {key: (where, argv to run, its workdir)}."""
    todo = {}
    for where, argv in shell_commands():
        line = " ".join(argv)
        if not any(arg.startswith("--config=") for arg in argv):
            continue  # flags only (plot, plot_tuning, bench_sweep, bench_timing)
        if any(marker in line for marker in SKIPPED):
            continue
        start = argv.index("python")
        args = [a for a in argv[start + 1 :] if not a.startswith("--workdir=")]
        key = tuple(a for a in args if a != "--validate_only")
        if key in todo:
            continue
        workdir = str(tmp_path / f"w{len(todo)}")
        todo[key] = (where, [*args, f"--workdir={workdir}", "--validate_only"], workdir)
    return todo


def test_every_command_validates(tmp_path):
    todo = validate_only_argvs(tmp_path)
    assert len(todo) >= 20, f"only {len(todo)} commands found: is the extraction broken?"
    failed = []
    for where, argv, workdir in todo.values():  # argv: -m <module> <flags>
        run = run_entry_point(*argv[1:])
        output = run.stdout + run.stderr
        last = output.strip().split("\n")[-1] if output.strip() else ""
        if run.returncode != 0 or "config ok" not in output:
            failed.append(f"{where}: python {' '.join(argv)}\n    exit {run.returncode}: {last}")
        elif os.path.exists(workdir):
            failed.append(f"{where}: --validate_only created its workdir: {' '.join(argv)}")
    assert not failed, "commands that do not validate:\n" + "\n".join(failed)


def test_every_python_block_compiles():
    for page in pages():
        for lang, start, body in fenced_blocks(read(page)):
            if lang == "python":
                compile(body, f"{rel(page)}:{start}", "exec")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-fixture"]:
        write_fixture()
    else:
        sys.exit("usage: python -m tests.test_docs --write-fixture")
