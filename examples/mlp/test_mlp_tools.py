"""Runs the mlp example on a tiny synthetic IDX data set and checks the
output of --inspect, --dot, --log and --plot.

Usage: test_mlp_tools.py MLP [DOT]

MLP is the example's executable. DOT, if given, is Graphviz's dot program,
used to render the --dot output. The data set has 6 x 6 images of four
classes: class c has a brighter row c over uniform noise.
"""
import csv
import math
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree

SIDE = 6
TRAIN_COUNT = 96
TEST_COUNT = 32
BATCH = 16
HIDDEN = "8,5"
EPOCHS = 3

# The engine's gradients and the closed form (computed in double from the
# same z(t)) differ only by the engine's rounding. In float that is a few
# units of 2^-24 relative to each tensor's largest entry, about 1e-7 in
# this data set. 1e-5 leaves a margin of 100 and still fails for a wrong
# term, sign or factor, which differs by order 1.
RELATIVE_TOLERANCE = 1e-5

SVG = "{http://www.w3.org/2000/svg}"


def write_idx(directory, prefix, count, rng):
    pixels = bytearray()
    labels = bytearray()
    for _ in range(count):
        label = rng.randrange(4)
        image = [rng.randrange(160) for _ in range(SIDE * SIDE)]
        for k in range(SIDE):
            image[label * SIDE + k] += 90
        pixels += bytes(image)
        labels.append(label)
    with open(os.path.join(directory, prefix + "-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, count, SIDE, SIDE) + pixels)
    with open(os.path.join(directory, prefix + "-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, count) + labels)


def run(mlp, *arguments):
    return subprocess.run([mlp, *arguments], capture_output=True, text=True, timeout=120)


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def check_inspect(mlp, data, directory, dot):
    dot_path = os.path.join(directory, "step.dot")
    log_path = os.path.join(directory, "unused.csv")
    result = run(mlp, "--data", data, "--hidden", HIDDEN, "--batch", str(BATCH), "--inspect",
                 "--dot", dot_path, "--log", log_path)
    check(result.returncode == 0, "mlp --inspect exited with %d: %s"
          % (result.returncode, result.stderr))
    check(not os.path.exists(log_path), "--inspect trained and wrote the log")

    # One row per layer and gradient, output layer first.
    row = re.compile(r"^\s*(\d+)\s+dL/d([zWb])\((\d+)\)\s+(\d+)x(\d+)\s+(\S+)\s+(\S+)\s")
    rows = [m for m in map(row.match, result.stdout.splitlines()) if m]
    want = [(t, g) for t in (3, 2, 1) for g in "zWb"]
    check([(int(m.group(1)), m.group(2)) for m in rows] == want,
          "rows of --inspect are %s, want %s" % (
              [(m.group(1), m.group(2)) for m in rows], want))
    widths = {0: SIDE * SIDE, 1: 8, 2: 5, 3: 10}
    for m in rows:
        t = int(m.group(1))
        shape = (int(m.group(4)), int(m.group(5)))
        want_shape = {"z": (widths[t], BATCH), "W": (widths[t], widths[t - 1]),
                      "b": (widths[t], 1)}[m.group(2)]
        check(shape == want_shape, "dL/d%s(%d) is %s, want %s"
              % (m.group(2), t, shape, want_shape))
        relative = float(m.group(7))
        check(math.isfinite(relative) and relative <= RELATIVE_TOLERANCE,
              "dL/d%s(%d): relative difference %g exceeds %g"
              % (m.group(2), t, relative, RELATIVE_TOLERANCE))
    check("largest relative difference:" in result.stdout, "no summary line")
    check("\ntape: 9 records, gradients from the last backward pass\n" in result.stdout,
          "--inspect printed no tape table")
    check(re.search(r"^      w1 8x36\n      value .*\n      grad ", result.stdout, re.M),
          "the tape table lists no gradient of w1")

    with open(dot_path) as f:
        graph = f.read()
    check(graph.startswith("digraph tape {\n") and graph.endswith("}\n"),
          "the DOT file is not one digraph")
    check(graph.count('style="filled,bold"') == 6,
          "want 6 parameter nodes (w1, b1, w2, b2, w3, b3) in the DOT file")
    check(re.search(r'\[label="x\\n%dx%d", shape=box, style=dashed\]' % (SIDE * SIDE, BATCH),
                    graph) is not None, "the input x is not a dashed box")
    check(graph.count("shape=ellipse") == 9,
          "want 9 op nodes: 3 matmul, 3 add, 2 relu and cross_entropy")
    if dot:
        svg_path = os.path.join(directory, "step.svg")
        rendered = subprocess.run([dot, "-Tsvg", "-o", svg_path, dot_path],
                                  capture_output=True, text=True, timeout=120)
        check(rendered.returncode == 0, "dot failed: " + rendered.stderr)
        ElementTree.parse(svg_path)


def check_log_and_plot(mlp, data, directory):
    log_path = os.path.join(directory, "history.csv")
    plot_path = os.path.join(directory, "history.svg")
    result = run(mlp, "--data", data, "--hidden", HIDDEN, "--batch", str(BATCH), "--epochs",
                 str(EPOCHS), "--lr", "0.1", "--log", log_path, "--plot", plot_path)
    check(result.returncode == 0, "mlp --log --plot exited with %d: %s"
          % (result.returncode, result.stderr))

    with open(log_path, newline="") as f:
        lines = list(csv.reader(f))
    check(lines[0] == ["epoch", "train_loss", "test_accuracy", "seconds"],
          "CSV header is %s" % lines[0])
    check(len(lines) == EPOCHS + 1, "CSV has %d rows, want %d" % (len(lines) - 1, EPOCHS))
    printed = re.findall(r"epoch (\d+)/\d+  train_loss (\S+)  test_accuracy (\S+)",
                         result.stdout)
    for epoch, (row, line) in enumerate(zip(lines[1:], printed), start=1):
        check(int(row[0]) == epoch, "CSV row %d has epoch %s" % (epoch, row[0]))
        check("%.4f" % float(row[1]) == line[1] and "%.4f" % float(row[2]) == line[2],
              "CSV row %s does not match the printed epoch line %s" % (row, line))
        check(0 <= float(row[2]) <= 1 and float(row[3]) >= 0, "CSV row %s out of range" % row)

    root = ElementTree.parse(plot_path).getroot()
    check(root.tag == SVG + "svg", "the chart's root is %s" % root.tag)
    texts = [t.text for t in root.iter(SVG + "text")]
    for label in ("epoch", "mean training loss", "test accuracy", "training loss"):
        check(label in texts, "the chart has no text %r" % label)
    check(any(t.startswith("mlp: hidden 8,5") for t in texts), "the chart has no title")
    lines = list(root.iter(SVG + "polyline"))
    check(len(lines) == 2, "the chart has %d lines, want 2" % len(lines))
    for line in lines:
        points = line.get("points").split()
        check(len(points) == EPOCHS, "a line has %d points, want %d" % (len(points), EPOCHS))
    check(not os.path.exists(plot_path + ".tmp"), "the temporary chart was left behind")


def check_errors(mlp, data, directory):
    result = run(mlp, "--data", data, "--log", "")
    check(result.returncode == 2 and "expected a file name" in result.stderr,
          "--log '' gave %d: %s" % (result.returncode, result.stderr))
    missing = os.path.join(directory, "no such directory", "history.csv")
    result = run(mlp, "--data", data, "--epochs", "1", "--log", missing)
    check(result.returncode == 1 and missing in result.stderr,
          "--log into a missing directory gave %d: %s" % (result.returncode, result.stderr))
    missing = os.path.join(directory, "no such directory", "step.dot")
    result = run(mlp, "--data", data, "--epochs", "1", "--dot", missing)
    check(result.returncode == 1 and missing in result.stderr,
          "--dot into a missing directory gave %d: %s" % (result.returncode, result.stderr))


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        return 2
    mlp = sys.argv[1]
    dot = sys.argv[2] if len(sys.argv) == 3 else None
    with tempfile.TemporaryDirectory() as directory:
        data = os.path.join(directory, "data")
        os.mkdir(data)
        rng = random.Random(1)
        write_idx(data, "train", TRAIN_COUNT, rng)
        write_idx(data, "t10k", TEST_COUNT, rng)
        check_inspect(mlp, data, directory, dot)
        check_log_and_plot(mlp, data, directory)
        check_errors(mlp, data, directory)
    if dot is None:
        print("note: dot was not found, so the graph was not rendered")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
