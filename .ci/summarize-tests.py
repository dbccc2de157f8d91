"""Print the total of test checks from one or more meson test logs.

Usage: summarize-tests.py [NAME=]TESTLOG.json ...

Each Check suite prints a line like "100%: Checks: 12, Failures: 0,
Errors: 0", and a test that is not a Check suite (such as the torch
agreement test) prints a plain line like "torch agreement: 400 passed,
0 failed". This adds them up over every test in meson's testlog.json and
prints one closing line, "checks: N passed, N failed, N skipped". A torch
agreement problem counts as one check.

A test that failed without reporting a failed check (a crash, a timeout,
an error found by a wrapper such as valgrind) counts as one failure, so the
total never hides it. A test that passed without reporting any count
counts as one passed check, and a test that exited with meson's skip
status counts as one skipped.

Given several logs, one per build configuration, it prints a line per
configuration, named NAME (or the log's path), before the closing line
with the sum of all. A log that does not exist means the configuration
failed before its tests ran, and counts as one failure. Exits non-zero
when anything failed or nothing passed.
"""
import json
import os
import re
import sys

CHECK_SUMMARY = re.compile(r"\d+%: Checks: (\d+), Failures: (\d+), Errors: (\d+)")

# A whole line "WORDS: N passed, N failed", optionally ", N skipped".
PLAIN_SUMMARY = re.compile(r"^[\w ]+: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?$",
                           re.MULTILINE)


def count_test(result):
    """Return (passed, failed, skipped) for one test of a testlog."""
    if result["result"] == "SKIP":
        return 0, 0, 1
    stdout = result.get("stdout") or ""
    passed = failed = skipped = 0
    counted = False
    for checks, failures, errors in CHECK_SUMMARY.findall(stdout):
        failed += int(failures) + int(errors)
        passed += int(checks) - int(failures) - int(errors)
        counted = True
    for plain_passed, plain_failed, plain_skipped in PLAIN_SUMMARY.findall(stdout):
        passed += int(plain_passed)
        failed += int(plain_failed)
        skipped += int(plain_skipped or 0)
        counted = True
    if result["result"] != "OK" and failed == 0:
        print(f"{result['name']}: {result['result']} without a failed check")
        failed = 1
    elif result["result"] == "OK" and not counted:
        passed = 1
    return passed, failed, skipped


def count_log(path):
    """Return (passed, failed, skipped) over every test in one testlog."""
    if not os.path.exists(path):
        print(f"{path}: no test log, so the configuration failed before its tests ran")
        return 0, 1, 0
    totals = [0, 0, 0]
    with open(path, encoding="utf-8") as log:
        for line in log:
            for i, count in enumerate(count_test(json.loads(line))):
                totals[i] += count
    return tuple(totals)


def main(arguments):
    if not arguments:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    passed = failed = skipped = 0
    for argument in arguments:
        name, separator, path = argument.partition("=")
        if not separator:
            name = path = argument
        log_passed, log_failed, log_skipped = count_log(path)
        if len(arguments) > 1:
            print(f"configuration {name}: {log_passed} passed, {log_failed} failed, "
                  f"{log_skipped} skipped")
        passed += log_passed
        failed += log_failed
        skipped += log_skipped
    print(f"checks: {passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
