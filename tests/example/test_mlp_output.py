"""Check what the MLP example prints on a terminal, through a pipe, and
with --quiet.

Usage: test_mlp_output.py MLP

MLP is the example's executable. The script writes a tiny synthetic data
set in the IDX format (see examples/mlp/idx.h) to a temporary directory and
trains on it for EPOCHS epochs, four times: through a pipe and under a
pseudo-terminal (Python's pty module), each with and without --quiet. It
asserts that
  - through a pipe, the output is exactly one summary line per epoch and
    the final key=value line, with no carriage return or escape sequence;
  - on a terminal, each epoch draws a progress bar (with samples/s and the
    running loss) that a carriage return and an erase-line sequence then
    replace with the same summary line;
  - with --quiet, either way, only the key=value line appears;
  - on a terminal, an error during an epoch starts on a new line after the
    progress bar.
It prints the first failed assertion and exits 1, or exits 0.
"""
import os
import pty
import re
import select
import struct
import subprocess
import sys
import tempfile

EPOCHS = 3
TRAIN_SAMPLES = 200
TEST_SAMPLES = 40
IMAGE_SIDE = 4
CLASSES = 10

# The example's own lines, as printed by examples/mlp/progress.c and mlp.c.
EPOCH_LINE = re.compile(r"epoch (\d+)/%d  train_loss \d+\.\d{4}  test_accuracy \d\.\d{4}  "
                        r"seconds \d+\.\d{2}" % EPOCHS)
SUMMARY_LINE = re.compile(r"epochs=%d train_seconds=\d+\.\d{3} train_loss=\d+\.\d{4} "
                          r"test_accuracy=\d\.\d{4}" % EPOCHS)
PROGRESS_BAR = re.compile(r"\repoch (\d+)/%d \[[#.]{30}\] +\d+%%  \d+ samples/s  "
                          r"loss \d+\.\d{4}\x1b\[K" % EPOCHS)
ERASE_LINE = "\r\x1b[K"

# Seconds to wait for a run; the data set trains in well under a second.
TIMEOUT = 120


def write_idx(path, magic, dimensions, payload):
    with open(path, "wb") as stream:
        stream.write(struct.pack(">I", magic))
        for size in dimensions:
            stream.write(struct.pack(">I", size))
        stream.write(bytes(payload))


def write_dataset(directory):
    """Write train and test sets whose class shows in the pixel values."""
    for prefix, count in (("train", TRAIN_SAMPLES), ("t10k", TEST_SAMPLES)):
        labels = [i % CLASSES for i in range(count)]
        pixels = []
        for i, label in enumerate(labels):
            pixels += [(label * 25 + (i * 7 + p) % 5) % 256 for p in range(IMAGE_SIDE ** 2)]
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte"), 0x803,
                  (count, IMAGE_SIDE, IMAGE_SIDE), pixels)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte"), 0x801, (count,),
                  labels)


def arguments(mlp, directory, quiet):
    args = [mlp, "--data", directory, "--epochs", str(EPOCHS), "--batch", "16",
            "--hidden", "8", "--threads", "1", "--optimizer", "adam", "--lr", "0.01"]
    return args + ["--quiet"] if quiet else args


def run_through_pipe(args):
    run = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
    if run.returncode != 0:
        raise AssertionError(f"exit status {run.returncode}: {run.stderr}")
    return run.stdout


def run_under_terminal(args, expected_status=0):
    """Return everything the program wrote to a pseudo-terminal. With an
    expected status other than 0, standard error goes to the terminal too,
    as in an interactive shell."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(args, stdout=terminal,
                               stderr=subprocess.PIPE if expected_status == 0 else terminal)
    os.close(terminal)
    output = b""
    while True:
        ready, _, _ = select.select([controller], [], [], TIMEOUT)
        if not ready:
            process.kill()
            raise AssertionError(f"no output for {TIMEOUT} s")
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the program closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    status = process.wait(timeout=TIMEOUT)
    if status != expected_status:
        errors = process.stderr.read().decode() if process.stderr else output.decode()
        raise AssertionError(f"exit status {status}, want {expected_status}: {errors}")
    # The terminal turns each "\n" into "\r\n".
    return output.decode().replace("\r\n", "\n")


def check(condition, message, output):
    if not condition:
        raise AssertionError(f"{message}\noutput: {output!r}")


def check_pipe(output):
    check("\r" not in output and "\x1b" not in output,
          "a pipe received a carriage return or escape sequence", output)
    lines = output.splitlines()
    check(len(lines) == EPOCHS + 1, f"expected {EPOCHS + 1} lines", output)
    for epoch, line in enumerate(lines[:-1], start=1):
        match = EPOCH_LINE.fullmatch(line)
        check(match and int(match.group(1)) == epoch, f"line {epoch} is not epoch {epoch}'s",
              output)
    check(SUMMARY_LINE.fullmatch(lines[-1]), "the last line is not the key=value line", output)


def check_terminal(output):
    lines = output.split("\n")
    check(lines[-1] == "", "the output does not end with a newline", output)
    lines = lines[:-1]
    check(len(lines) == EPOCHS + 1, f"expected {EPOCHS + 1} lines", output)
    for epoch, line in enumerate(lines[:-1], start=1):
        # Each line: one or more bar drawings, the erase, the summary.
        check(ERASE_LINE in line, f"epoch {epoch}: no erase before the summary", output)
        bars, summary = line.rsplit(ERASE_LINE, 1)
        match = EPOCH_LINE.fullmatch(summary)
        check(match and int(match.group(1)) == epoch, f"epoch {epoch}: wrong summary", output)
        drawings = PROGRESS_BAR.findall(bars)
        check(drawings and all(int(e) == epoch for e in drawings),
              f"epoch {epoch}: no progress bar drawn for this epoch", output)
        check(PROGRESS_BAR.sub("", bars) == "", f"epoch {epoch}: unexpected text", output)
    check(SUMMARY_LINE.fullmatch(lines[-1]), "the last line is not the key=value line", output)


def check_quiet(output):
    check("\r" not in output.replace("\r\n", "\n") and "\x1b" not in output,
          "--quiet printed a carriage return or escape sequence", output)
    lines = output.splitlines()
    check(len(lines) == 1 and SUMMARY_LINE.fullmatch(lines[0]),
          "--quiet printed more than the key=value line", output)


def check_error_after_bar(mlp, directory):
    """An error during an epoch starts on a line of its own, after the bar."""
    # A rate of 1e300 drives the loss to infinity or NaN within the epoch,
    # in float and in double.
    args = [mlp, "--data", directory, "--epochs", "1", "--batch", "1", "--hidden", "8",
            "--threads", "1", "--lr", "1e300"]
    output = run_under_terminal(args, expected_status=1)
    lines = output.split("\n")
    bar = re.compile(r"(\repoch 1/1 \[[#.]{30}\] +\d+%  \d+ samples/s  loss \S+\x1b\[K)+")
    check(bar.fullmatch(lines[0]), "the first line is not the progress bar", output)
    check(lines[1].startswith("mlp: training diverged in epoch 1 "),
          "the error does not start the second line", output)
    check(lines[2:] == [""], "unexpected text after the error", output)


def main():
    if len(sys.argv) != 2:
        print(__doc__.splitlines()[2])
        return 2
    mlp = sys.argv[1]
    with tempfile.TemporaryDirectory() as directory:
        write_dataset(directory)
        cases = [
            ("pipe", run_through_pipe, False, check_pipe),
            ("terminal", run_under_terminal, False, check_terminal),
            ("pipe, --quiet", run_through_pipe, True, check_quiet),
            ("terminal, --quiet", run_under_terminal, True, check_quiet),
        ]
        for name, run, quiet, check_output in cases:
            try:
                check_output(run(arguments(mlp, directory, quiet)))
            except AssertionError as error:
                print(f"mlp output, {name}: FAILED: {error}")
                return 1
            print(f"mlp output, {name}: passed")
        try:
            check_error_after_bar(mlp, directory)
        except AssertionError as error:
            print(f"mlp output, error after the bar: FAILED: {error}")
            return 1
        print("mlp output, error after the bar: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
