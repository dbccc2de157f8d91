"""Runs the mlp example on a tiny synthetic IDX data set and checks the
output of --inspect, --dot, --log and --plot, the closed-form comparison of
--inspect for every --activation, and model files saved with --save and
read with --load.

Usage: test_mlp_tools.py MLP [DOT]

MLP is the example's executable. DOT, if given, is Graphviz's dot program,
used to render the --dot output. The data set has 6 x 6 images of four
classes: class c has a brighter row c over uniform noise.
"""
import csv
import json
import math
import os
import random
import re
import stat
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
# d_0 … d_T of that model: the pixels, the hidden widths and mlp's 10 classes.
WIDTHS = [SIDE * SIDE, 8, 5, 10]
EPOCHS = 3

# The engine's gradients and the closed form (computed in double from the
# same z(t)) differ only by the engine's rounding: a few units of the unit
# roundoff relative to each tensor's largest entry. Over the checks below,
# in float (2^-24) that is at most about 4e-7, and 1e-5 leaves a margin of
# 25; in double (2^-53) at most about 2e-15, and 1e-13 leaves a margin of 50.
# Both still fail for a wrong term, sign, factor or parameter, which gives
# differences of 1e-3 or more. Keyed by the dtype of the build's model files.
RELATIVE_TOLERANCE = {"F32": 1e-5, "F64": 1e-13}

# The C type of the build's tt_real, which messages about ranges name.
REAL_TYPE = {"F32": "float", "F64": "double"}

# Every --activation, those with a parameter at a value other than the
# default, so that a closed form that ignores the parameter fails.
ACTIVATIONS = ["relu", "sigmoid", "tanh", "leaky_relu:0.1", "elu:0.5", "softplus", "silu",
               "gelu", "gelu_tanh"]

# Training for the model file checks: enough for every activation to move
# the test accuracy away from its initial value on this data set.
SAVE_EPOCHS = 10
SAVE_LEARNING_RATE = "0.5"

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


# One --inspect row: layer, gradient, shape, max |diff|, relative.
INSPECT_ROW = re.compile(r"^\s*(\d+)\s+dL/d([zWb])\((\d+)\)\s+(\d+)x(\d+)\s+(\S+)\s+(\S+)\s")


def check_inspect_rows(stdout, widths, label, tolerance):
    """Checks that --inspect printed one row per layer and gradient, output
    layer first, with the right shapes and each relative difference at most
    `tolerance`. widths[t] is d_t."""
    rows = [m for m in map(INSPECT_ROW.match, stdout.splitlines()) if m]
    n_layers = len(widths) - 1
    want = [(t, g) for t in range(n_layers, 0, -1) for g in "zWb"]
    check([(int(m.group(1)), m.group(2)) for m in rows] == want,
          "%s: rows of --inspect are %s, want %s" % (
              label, [(m.group(1), m.group(2)) for m in rows], want))
    for m in rows:
        t = int(m.group(1))
        shape = (int(m.group(4)), int(m.group(5)))
        want_shape = {"z": (widths[t], BATCH), "W": (widths[t], widths[t - 1]),
                      "b": (widths[t], 1)}[m.group(2)]
        check(shape == want_shape, "%s: dL/d%s(%d) is %s, want %s"
              % (label, m.group(2), t, shape, want_shape))
        relative = float(m.group(7))
        check(math.isfinite(relative) and relative <= tolerance,
              "%s: dL/d%s(%d): relative difference %g exceeds %g"
              % (label, m.group(2), t, relative, tolerance))


def tape_ops(stdout):
    """The op of each record in the tape table that --inspect prints."""
    return re.findall(r"^ +\d+  (\w+) ", stdout, re.M)


def check_inspect(mlp, data, directory, dot, tolerance):
    dot_path = os.path.join(directory, "step.dot")
    result = run(mlp, "--data", data, "--hidden", HIDDEN, "--batch", str(BATCH), "--inspect",
                 "--dot", dot_path)
    check(result.returncode == 0, "mlp --inspect exited with %d: %s"
          % (result.returncode, result.stderr))
    check(result.stdout.startswith("inspect: one training step on the first %d training "
                                   "samples with the initial weights, loss " % BATCH),
          "--inspect does not name the initial weights: %r" % result.stdout[:120])
    check_inspect_rows(result.stdout, WIDTHS, "relu", tolerance)
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


def check_inspect_activations(mlp, data, tolerance):
    """--inspect compares with the closed form of the chosen activation."""
    for activation in ACTIVATIONS:
        result = run(mlp, "--data", data, "--hidden", HIDDEN, "--batch", str(BATCH),
                     "--inspect", "--activation", activation)
        check(result.returncode == 0, "mlp --inspect --activation %s exited with %d: %s"
              % (activation, result.returncode, result.stderr))
        name = activation.split(":")[0]
        check(tape_ops(result.stdout).count(name) == len(WIDTHS) - 2,
              "--activation %s: the tape's ops are %s" % (activation, tape_ops(result.stdout)))
        check_inspect_rows(result.stdout, WIDTHS, activation, tolerance)


def read_header(path):
    """The JSON header of a safetensors file."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size))


def read_tensor(path, name):
    """The values of tensor `name` in the safetensors file `path`, in
    storage order."""
    header = read_header(path)
    entry = header[name]
    begin, end = entry["data_offsets"]
    code = {"F32": "f", "F64": "d"}[entry["dtype"]]
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + size + begin)
        data = f.read(end - begin)
    return struct.unpack("<%d%s" % (len(data) // struct.calcsize(code), code), data)


def rewrite_metadata(source, target, metadata):
    """Copies the safetensors file `source` to `target` with `metadata` as
    its metadata, padding the header with spaces to a multiple of 8 bytes."""
    with open(source, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        tensors = f.read()
    header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(target, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + tensors)


def zero_first_unit(source, target):
    """Copies the model file `source` to `target` with row 0 of w1 and b1
    set to zero, so that z(1) is exactly 0 in row 0 for every sample: the
    kink of relu, leaky_relu and elu."""
    with open(source, "rb") as f:
        data = bytearray(f.read())
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    for name in ("w1", "b1"):
        entry = header[name]
        begin, end = entry["data_offsets"]
        row_bytes = (end - begin) // entry["shape"][0]
        start = 8 + size + begin
        data[start:start + row_bytes] = bytes(row_bytes)  # +0.0 in F32 and F64
    with open(target, "wb") as f:
        f.write(data)


def build_dtype(mlp, data, directory):
    """The dtype of the build's model files: F32 for float, F64 for double."""
    path = os.path.join(directory, "dtype.safetensors")
    result = run(mlp, "--data", data, "--hidden", "", "--epochs", "0", "--save", path)
    check(result.returncode == 0, "mlp --save exited with %d: %s"
          % (result.returncode, result.stderr))
    return read_header(path)["w1"]["dtype"]


def final_accuracy(result):
    """The test accuracy of mlp's key=value summary line."""
    found = re.search(r"^epochs=\d+ .*test_accuracy=(\S+)$", result.stdout, re.M)
    check(found is not None, "no summary line in %r" % result.stdout)
    return found.group(1)


def check_save_and_load(mlp, data, directory, tolerance):
    """A model saved with each activation records it and its parameter,
    loads back with them and evaluates to the accuracy it was saved with."""
    for activation in ACTIVATIONS:
        name, _, parameter = activation.partition(":")
        path = os.path.join(directory, name + ".safetensors")
        trained = run(mlp, "--data", data, "--hidden", HIDDEN, "--batch", str(BATCH),
                      "--epochs", str(SAVE_EPOCHS), "--lr", SAVE_LEARNING_RATE,
                      "--activation", activation, "--save", path)
        check(trained.returncode == 0, "mlp --activation %s --save exited with %d: %s"
              % (activation, trained.returncode, trained.stderr))
        metadata = read_header(path)["__metadata__"]
        want = {"widths": ",".join(map(str, WIDTHS)), "activation": name}
        if parameter:
            want["activation_parameter"] = parameter
        check(metadata == want, "--activation %s saved metadata %s, want %s"
              % (activation, metadata, want))

        loaded = run(mlp, "--data", data, "--batch", str(BATCH), "--epochs", "0", "--load", path)
        check(loaded.returncode == 0, "mlp --load of a %s model exited with %d: %s"
              % (activation, loaded.returncode, loaded.stderr))
        check(final_accuracy(loaded) == final_accuracy(trained),
              "the %s model's accuracy is %s after --load, %s after training"
              % (activation, final_accuracy(loaded), final_accuracy(trained)))

        # The trained weights give larger z(t) than the initial ones, so
        # this also compares the closed form further out on g.
        inspected = run(mlp, "--data", data, "--batch", str(BATCH), "--inspect", "--load", path)
        check(inspected.returncode == 0, "mlp --inspect --load of a %s model exited with %d: %s"
              % (activation, inspected.returncode, inspected.stderr))
        check(inspected.stdout.startswith("inspect: one training step on the first %d training "
                                          "samples with the weights of %s, loss "
                                          % (BATCH, path)),
              "--inspect --load does not name the loaded weights: %r" % inspected.stdout[:160])
        check(tape_ops(inspected.stdout).count(name) == len(WIDTHS) - 2,
              "the %s model was loaded with the ops %s" % (activation, tape_ops(inspected.stdout)))
        check_inspect_rows(inspected.stdout, WIDTHS, activation + " after --load", tolerance)

        # At z = 0 the closed form must take the derivative that the op
        # takes there, e.g. alpha for elu rather than 1.
        kink = os.path.join(directory, name + "-kink.safetensors")
        zero_first_unit(path, kink)
        inspected = run(mlp, "--data", data, "--batch", str(BATCH), "--inspect", "--load", kink)
        check(inspected.returncode == 0, "mlp --inspect --load of a %s model exited with %d: %s"
              % (activation, inspected.returncode, inspected.stderr))
        zeros = re.search(r"^ +1  add .*\n +value .* zeros (\d+)/", inspected.stdout, re.M)
        check(zeros is not None and int(zeros.group(1)) >= BATCH,
              "z(1) of the %s model has fewer than %d zeros" % (activation, BATCH))
        check_inspect_rows(inspected.stdout, WIDTHS, activation + " at z = 0", tolerance)

        matching = run(mlp, "--data", data, "--batch", str(BATCH), "--epochs", "0", "--load",
                       path, "--activation", activation)
        check(matching.returncode == 0 and final_accuracy(matching) == final_accuracy(trained),
              "--load of a %s model with the same --activation gave %d: %s"
              % (activation, matching.returncode, matching.stderr))


def check_parameter_round_trip(mlp, data, directory, dtype):
    """A parameter with more digits than a float keeps is saved with the
    fewest digits that read back as the tt_real that training used."""
    path = os.path.join(directory, "digits.safetensors")
    given = "0.123456789"
    result = run(mlp, "--data", data, "--hidden", HIDDEN, "--epochs", "0", "--activation",
                 "leaky_relu:" + given, "--save", path)
    check(result.returncode == 0, "mlp --save exited with %d: %s"
          % (result.returncode, result.stderr))
    saved = read_header(path)["__metadata__"]["activation_parameter"]
    # 0.123456789 rounds to the float 0.123456791043…, which "0.12345679"
    # reads back as; in double the given text is already the shortest.
    want = {"F32": "0.12345679", "F64": given}[dtype]
    check(saved == want, "leaky_relu:%s saved activation_parameter %r, want %r"
          % (given, saved, want))
    loaded = run(mlp, "--data", data, "--epochs", "0", "--load", path, "--activation",
                 "leaky_relu:" + given)
    check(loaded.returncode == 0, "the saved slope does not match --activation leaky_relu:%s: %s"
          % (given, loaded.stderr))


def check_load_errors(mlp, data, directory, dtype):
    """A file with the metadata of the files written before the activation
    was saved still loads. A mismatched --activation and an invalid
    activation in the file are rejected with messages naming the file and
    the value."""
    leaky = os.path.join(directory, "leaky_relu.safetensors")  # from check_save_and_load
    relu = os.path.join(directory, "relu.safetensors")
    widths = ",".join(map(str, WIDTHS))
    real_type = REAL_TYPE[dtype]

    def load(path, *options):
        return run(mlp, "--data", data, "--batch", str(BATCH), "--epochs", "0", "--load", path,
                   *options)

    def check_rejected(result, message, case):
        check(result.returncode == 1 and result.stderr == message,
              "%s gave %d: %r, want 1: %r" % (case, result.returncode, result.stderr, message))

    old = os.path.join(directory, "old.safetensors")
    rewrite_metadata(relu, old, {"widths": widths, "activation": "relu"})
    check(final_accuracy(load(old)) == final_accuracy(load(relu)),
          "a file with the old metadata loads to another accuracy")

    check_rejected(load(leaky, "--activation", "tanh"),
                   "mlp: %s: the model's activation is 'leaky_relu:0.1', but --activation "
                   "gives 'tanh'; omit --activation to use the model's\n" % leaky,
                   "--activation tanh with a leaky_relu:0.1 model")
    check_rejected(load(leaky, "--activation", "leaky_relu"),
                   "mlp: %s: the model's activation is 'leaky_relu:0.1', but --activation "
                   "gives 'leaky_relu:0.01'; omit --activation to use the model's\n" % leaky,
                   "--activation leaky_relu with a leaky_relu:0.1 model")

    # Without a parameter, leaky_relu takes its default slope 0.01.
    default = os.path.join(directory, "default.safetensors")
    rewrite_metadata(leaky, default, {"widths": widths, "activation": "leaky_relu"})
    check(load(default, "--activation", "leaky_relu:0.01").returncode == 0,
          "a leaky_relu file without a parameter does not load with slope 0.01")
    check_rejected(load(default, "--activation", "leaky_relu:0.1"),
                   "mlp: %s: the model's activation is 'leaky_relu:0.01', but --activation "
                   "gives 'leaky_relu:0.1'; omit --activation to use the model's\n" % default,
                   "--activation leaky_relu:0.1 with a leaky_relu model without a parameter")

    bad = os.path.join(directory, "bad.safetensors")
    cases = [
        ({"widths": widths, "activation": "swish"},
         "mlp: %s: unknown activation 'swish' in the metadata; expected relu, sigmoid, tanh, "
         "leaky_relu, elu, softplus, silu, gelu or gelu_tanh\n"),
        ({"widths": widths, "activation": "leaky_relu:0.1"},
         "mlp: %s: unknown activation 'leaky_relu:0.1' in the metadata; expected relu, "
         "sigmoid, tanh, leaky_relu, elu, softplus, silu, gelu or gelu_tanh\n"),
        ({"widths": widths, "activation": "relu", "activation_parameter": "0.5"},
         "mlp: %s: the activation 'relu' takes no parameter, but the metadata gives "
         "activation_parameter 0.5\n"),
        ({"widths": widths, "activation": "elu", "activation_parameter": "one"},
         "mlp: %s: invalid activation_parameter 'one' in the metadata; expected a finite "
         "number within the range of %s\n" % ("%s", real_type)),
        ({"widths": widths, "activation": "elu", "activation_parameter": "1e999"},
         "mlp: %s: invalid activation_parameter '1e999' in the metadata; expected a finite "
         "number within the range of %s\n" % ("%s", real_type)),
        ({"widths": widths},
         "mlp: %s: no 'activation' metadata; the file was not saved as an MLP model\n"),
    ]
    if real_type == "float":
        # 1e39 is finite, but beyond float's largest value, about 3.4e38.
        cases.append(({"widths": widths, "activation": "elu", "activation_parameter": "1e39"},
                      "mlp: %s: invalid activation_parameter '1e39' in the metadata; expected a "
                      "finite number within the range of float\n"))
    for metadata, message in cases:
        rewrite_metadata(relu, bad, metadata)
        check_rejected(load(bad), message % bad, "metadata %s" % metadata)


def check_log_and_plot(mlp, data, directory):
    log_path = os.path.join(directory, "history.csv")
    plot_path = os.path.join(directory, "history.svg")
    result = run(mlp, "--data", data, "--hidden", HIDDEN, "--batch", str(BATCH), "--epochs",
                 str(EPOCHS), "--lr", "0.01", "--optimizer", "momentum", "--schedule", "step",
                 "--activation", "leaky_relu:0.25", "--log", log_path, "--plot", plot_path)
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
    title = ("mlp: hidden %s, leaky_relu:0.25, momentum, lr 0.01, schedule step (gamma 0.5 "
             "every 5 epochs), batch %d, seed 1" % (HIDDEN, BATCH))
    check(title in texts, "the chart's title is not %r: %r" % (title, texts))
    lines = list(root.iter(SVG + "polyline"))
    check(len(lines) == 2, "the chart has %d lines, want 2" % len(lines))
    for line in lines:
        points = line.get("points").split()
        check(len(points) == EPOCHS, "a line has %d points, want %d" % (len(points), EPOCHS))
    leftovers = [name for name in os.listdir(directory) if name.startswith("history.svg.tmp")]
    check(leftovers == [], "temporary charts were left behind: %s" % leftovers)


def check_output_paths(mlp, data, directory):
    """A --save or --plot path that cannot be written is rejected before
    training, with a message naming the path. Special files are left as they
    were, and a replaced chart keeps its permission bits."""
    outputs = os.path.join(directory, "outputs")
    os.mkdir(outputs)
    fifo = os.path.join(outputs, "fifo")
    os.mkfifo(fifo)
    link = os.path.join(outputs, "link.safetensors")
    os.symlink("target.safetensors", link)
    missing = os.path.join(outputs, "no such directory", "model.safetensors")
    cases = [
        ("--save", missing, "cannot create a temporary file beside it: No such file or directory"),
        ("--plot", missing, "cannot create a temporary file beside it: No such file or directory"),
        ("--plot", fifo, "is a FIFO (named pipe), not a regular file"),
        ("--save", fifo, "is a FIFO (named pipe), not a regular file"),
        ("--save", link, "is a symbolic link, not a regular file"),
        ("--plot", outputs, "is a directory, not a regular file"),
    ]
    for option, path, reason in cases:
        result = run(mlp, "--data", data, "--hidden", HIDDEN, "--epochs", "1", option, path)
        want = "mlp: %s: %s: %s" % (option, path, reason)
        check(result.returncode == 1 and want in result.stderr,
              "%s %s gave %d, want the message %r: %s"
              % (option, path, result.returncode, want, result.stderr))
        check("epoch 1/" not in result.stdout, "%s %s: training ran before the path was "
              "rejected" % (option, path))
    check(stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced")
    check(os.path.islink(link), "the symbolic link was replaced")
    check(not os.path.exists(os.path.join(outputs, "target.safetensors")),
          "a model was written through the symbolic link")

    plot_path = os.path.join(outputs, "private.svg")
    save_path = os.path.join(outputs, "private.safetensors")
    for path in (plot_path, save_path):
        with open(path, "w") as f:
            f.write("old contents")
        os.chmod(path, 0o600)
    result = run(mlp, "--data", data, "--hidden", HIDDEN, "--epochs", "1", "--plot", plot_path,
                 "--save", save_path)
    check(result.returncode == 0, "mlp --plot --save over 0600 files exited with %d: %s"
          % (result.returncode, result.stderr))
    for path in (plot_path, save_path):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        check(mode == 0o600, "the replaced %s has mode %o, want 600" % (path, mode))
    with open(plot_path) as f:
        check(f.read().startswith("<?xml"), "the chart was not replaced")
    check("w1" in read_header(save_path), "the model was not replaced")
    leftovers = sorted(set(os.listdir(outputs))
                       - {"fifo", "link.safetensors", "private.svg", "private.safetensors"})
    check(leftovers == [], "files left behind: %s" % leftovers)


def check_initial_gain(mlp, data, directory, dtype):
    """Each activation starts its weights with PyTorch's gain for it. The
    normal draws are the same for every activation with the same seed, so
    every weight of every layer is relu's times the ratio of the gains."""
    gains = {"relu": math.sqrt(2), "tanh": 5 / 3, "sigmoid": 1.0,
             "leaky_relu:0.5": math.sqrt(2 / (1 + 0.5 ** 2)), "elu": math.sqrt(2),
             "gelu": math.sqrt(2)}
    # Each weight is rounded once to tt_real, so a ratio is off by at most
    # two roundings.
    tolerance = {"F32": 2.5 * 2.0 ** -24, "F64": 2.5 * 2.0 ** -53}[dtype]
    files = {}
    for activation in gains:
        files[activation] = os.path.join(directory, "init-%s.safetensors" % activation)
        result = run(mlp, "--data", data, "--hidden", HIDDEN, "--epochs", "0", "--activation",
                     activation, "--save", files[activation])
        check(result.returncode == 0, "mlp --activation %s --epochs 0 --save gave %d: %s"
              % (activation, result.returncode, result.stderr))
    for activation, gain in gains.items():
        for layer in range(1, len(WIDTHS)):
            relu = read_tensor(files["relu"], "w%d" % layer)
            other = read_tensor(files[activation], "w%d" % layer)
            worst = max(abs(b / a * math.sqrt(2) / gain - 1) for a, b in zip(relu, other)
                        if a != 0)
            check(worst <= tolerance, "w%d with %s is not relu's times %.6f / sqrt(2): "
                  "relative error %.3g" % (layer, activation, gain, worst))


def check_option_effects(mlp, data, directory):
    """Options that would have no effect are rejected with status 2 and the
    reason; a repeated option takes its last value."""
    log_path = os.path.join(directory, "unused.csv")
    cases = [
        (["--inspect", "--log", log_path], "--log has no effect with --inspect"),
        (["--inspect", "--plot", log_path], "--plot has no effect with --inspect"),
        (["--inspect", "--save", log_path], "--save has no effect with --inspect"),
        (["--epochs", "3", "--inspect"], "--epochs has no effect with --inspect"),
        (["--inspect", "--lr", "0.1"], "--lr has no effect with --inspect"),
        (["--inspect", "--optimizer", "adam"], "--optimizer has no effect with --inspect"),
        (["--inspect", "--quiet"], "--quiet has no effect with --inspect"),
        (["--step-gamma", "0.1"], "--step-gamma has no effect without --schedule step"),
        (["--schedule", "cosine", "--step-epochs", "2"],
         "--step-epochs has no effect without --schedule step"),
        (["--schedule", "step", "--step-epochs", "2", "--schedule", "constant"],
         "--step-epochs has no effect without --schedule step"),
    ]
    for options, reason in cases:
        result = run(mlp, "--data", data, "--hidden", HIDDEN, *options)
        check(result.returncode == 2 and result.stderr.startswith("mlp: %s" % reason),
              "%s gave %d: %r, want 2 and %r" % (" ".join(options), result.returncode,
                                                  result.stderr, reason))
    check(not os.path.exists(log_path), "a rejected --inspect run wrote %s" % log_path)
    check("which does not train" in run(mlp, "--inspect", "--log", log_path).stderr,
          "--log with --inspect does not say why it is rejected")

    # The last --epochs wins, and --step-gamma counts with --schedule step.
    result = run(mlp, "--data", data, "--hidden", HIDDEN, "--batch", str(BATCH), "--epochs",
                 "5", "--epochs", "1", "--schedule", "step", "--step-gamma", "0.1")
    check(result.returncode == 0 and result.stdout.splitlines()[-1].startswith("epochs=1 "),
          "--epochs 5 --epochs 1 gave %d: %r" % (result.returncode, result.stdout))


def check_messages(mlp, data, dtype):
    """Messages about numbers too small or too large for tt_real name its C
    type, and the list of activations is complete."""
    real_type = REAL_TYPE[dtype]
    result = run(mlp, "--data", data, "--lr", "1e-320")
    check(result.returncode == 2 and
          "large enough to be nonzero in %s precision (%s)"
          % ("single" if real_type == "float" else "double", real_type) in result.stderr,
          "--lr 1e-320 gave %d: %r" % (result.returncode, result.stderr))
    huge = "1e39" if real_type == "float" else "1e309"
    result = run(mlp, "--data", data, "--activation", "leaky_relu:" + huge)
    check(result.returncode == 2 and result.stderr.startswith(
        "mlp: invalid value 'leaky_relu:%s' for option '--activation': expected relu, "
        "sigmoid, tanh, leaky_relu[:SLOPE], elu[:ALPHA], softplus, silu, gelu or gelu_tanh, "
        "where a bracketed parameter is a number within the range of %s\n" % (huge, real_type)),
          "--activation leaky_relu:%s gave %d: %r" % (huge, result.returncode, result.stderr))
    help_text = run(mlp, "--help").stdout
    for activation in ACTIVATIONS:
        name = activation.split(":")[0]
        check(re.search(r"\b%s\b" % name, help_text), "--help does not list %s" % name)


def check_epochs_without_history(mlp, data):
    """A huge --epochs allocates nothing up front: this run fails only when
    the rate makes training diverge in epoch 1."""
    result = run(mlp, "--data", data, "--hidden", HIDDEN, "--batch", "1", "--lr", "1e300",
                 "--epochs", "18446744073709551615")
    check(result.returncode == 1 and
          result.stderr.startswith("mlp: training diverged in epoch 1 "),
          "--epochs 2^64-1 gave %d: %r" % (result.returncode, result.stderr))


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
        dtype = build_dtype(mlp, data, directory)
        tolerance = RELATIVE_TOLERANCE[dtype]
        check_inspect(mlp, data, directory, dot, tolerance)
        check_inspect_activations(mlp, data, tolerance)
        check_log_and_plot(mlp, data, directory)
        check_save_and_load(mlp, data, directory, tolerance)
        check_parameter_round_trip(mlp, data, directory, dtype)
        check_load_errors(mlp, data, directory, dtype)
        check_output_paths(mlp, data, directory)
        check_errors(mlp, data, directory)
        check_option_effects(mlp, data, directory)
        check_initial_gain(mlp, data, directory, dtype)
        check_messages(mlp, data, dtype)
        check_epochs_without_history(mlp, data)
    if dot is None:
        print("note: dot was not found, so the graph was not rendered")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
