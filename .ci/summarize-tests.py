"""Print the total of Check test cases from a meson test log.

Each Check suite prints a line like "100%: Checks: 12, Failures: 0,
Errors: 0". This adds them up over every suite in meson's testlog.json and
prints one closing line, "checks: N passed, N failed, N skipped". A suite
that failed without reporting a failed check (a crash, a timeout, an error
found by a wrapper such as valgrind) counts as one failure, so the total
never hides it; a suite that exited with meson's skip status counts as
skipped. Exits non-zero when anything failed or nothing passed.
"""
import json
import re
import sys

CHECK_SUMMARY = re.compile(r"\d+%: Checks: (\d+), Failures: (\d+), Errors: (\d+)")


def main(path):
    passed = failed = skipped = 0
    with open(path, encoding="utf-8") as log:
        for line in log:
            result = json.loads(line)
            if result["result"] == "SKIP":
                skipped += 1
                continue
            suite_passed = suite_failed = 0
            for checks, failures, errors in CHECK_SUMMARY.findall(result.get("stdout") or ""):
                suite_failed += int(failures) + int(errors)
                suite_passed += int(checks) - int(failures) - int(errors)
            if result["result"] != "OK" and suite_failed == 0:
                print(f"{result['name']}: {result['result']} without a failed check")
                suite_failed = 1
            passed += suite_passed
            failed += suite_failed
    print(f"checks: {passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
