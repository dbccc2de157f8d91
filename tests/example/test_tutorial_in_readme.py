"""Check that the README's tutorial quotes examples/tutorial.c faithfully.

Usage: test_tutorial_in_readme.py README TUTORIAL

Every ```c block in the README section "Tutorial: training an MLP" must
appear in TUTORIAL as a run of consecutive lines, compared after removing
each line's leading and trailing spaces, so that a block may be quoted at
a different indentation. Since the test suite compiles and runs TUTORIAL,
the quoted code then compiles and trains too. Prints the first block that
is missing and exits 1, or exits 0.
"""
import re
import sys

SECTION = "## Tutorial: training an MLP"


def tutorial_blocks(readme):
    start = readme.find(SECTION)
    if start < 0:
        raise ValueError(f"the README has no section {SECTION!r}")
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start:end if end >= 0 else len(readme)]
    return re.findall(r"```c\n(.*?)```", section, flags=re.DOTALL)


def normalized_lines(text):
    return [line.strip() for line in text.splitlines()]


def contains_run(lines, run):
    return any(lines[i:i + len(run)] == run for i in range(len(lines) - len(run) + 1))


def main():
    if len(sys.argv) != 3:
        print(__doc__.splitlines()[2])
        return 2
    with open(sys.argv[1], encoding="utf-8") as stream:
        readme = stream.read()
    with open(sys.argv[2], encoding="utf-8") as stream:
        source = normalized_lines(stream.read())
    blocks = tutorial_blocks(readme)
    if not blocks:
        print(f"tutorial in README: FAILED: no ```c block under {SECTION!r}")
        return 1
    for index, block in enumerate(blocks, start=1):
        if not contains_run(source, normalized_lines(block)):
            print(f"tutorial in README: FAILED: block {index} is not in {sys.argv[2]}:")
            print(block)
            return 1
    print(f"tutorial in README: {len(blocks)} blocks found in {sys.argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
