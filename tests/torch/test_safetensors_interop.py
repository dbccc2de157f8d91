"""Exchange MLP model files between tensortape and PyTorch.

Usage: test_safetensors_interop.py MLP MLP_PREDICT [--data DIR]

MLP is the example trainer and MLP_PREDICT the program that writes a model
file's logits for the Fashion-MNIST test set (tests/torch/mlp_predict.c),
both of the build under test. DIR contains the Fashion-MNIST IDX files
(default /usr/share/datasets/fashion-mnist, which .ci/setup installs).

1. tensortape to PyTorch: MLP trains one epoch and saves its model with
   --save. This script reads the file with json and numpy only, by the
   layout in the README's "File formats" (Debian 12 has no safetensors
   package), loads it into an equivalent PyTorch MLP and compares its
   logits for the 10,000 test images with those of MLP_PREDICT.
2. PyTorch to tensortape: a PyTorch MLP is trained briefly and written by
   this script, once in F32 and once in F64, with PyTorch's 1-D biases.
   MLP_PREDICT computes the logits of each file, and MLP evaluates it with
   --load and --epochs 0.

Each comparison requires the same predicted class for every sample and
every logit within the bound of `allowed_error`, and the accuracy that MLP
prints must equal PyTorch's. Prints one line per comparison and exits 0 when
all agree, 1 otherwise; 77 (skipped) without torch or the data, except under
CI=true, where that fails (see torch_import.py).
"""
import argparse
import gzip
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

from torch_import import EXIT_SKIPPED, import_torch

torch = import_torch("safetensors interop")
import numpy as np  # noqa: E402  (python3-torch depends on python3-numpy)

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"

# Hidden widths of the models, chosen to have two hidden layers, so that the
# error bound is exercised through more than one ReLU.
ENGINE_HIDDEN = "64,32"
TORCH_WIDTHS = [784, 48, 24, 10]

# Short PyTorch training, so that its model's predictions mean something
# (about 0.75 test accuracy): SGD steps of BATCH samples at rate LR.
TORCH_STEPS = 300
TORCH_BATCH = 64
TORCH_LR = 0.1
TORCH_SEED = 3

# Unit roundoff u of each dtype: half the gap between 1 and the next number.
UNIT_ROUNDOFF = {"F32": 2.0**-24, "F64": 2.0**-53}
NUMPY_DTYPE = {"F32": "<f4", "F64": "<f8"}


def read_safetensors(path):
    """Return ({name: numpy array}, metadata) of a safetensors file."""
    with open(path, "rb") as stream:
        data = stream.read()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    metadata = header.pop("__metadata__", {})
    start = 8 + header_size
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        values = np.frombuffer(data[start + begin:start + end], dtype=NUMPY_DTYPE[entry["dtype"]])
        tensors[name] = values.reshape(entry["shape"])
    return tensors, metadata


def write_safetensors(path, tensors, metadata):
    """Write {name: numpy array} and string metadata as a safetensors file."""
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, values in tensors.items():
        dtype = {np.dtype("float32"): "F32", np.dtype("float64"): "F64"}[values.dtype]
        blob = np.ascontiguousarray(values, dtype=NUMPY_DTYPE[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(values.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as stream:
        stream.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_idx(path):
    """Return the array of a gzip-compressed IDX file of unsigned bytes."""
    with gzip.open(path, "rb") as stream:
        data = stream.read()
    (magic,) = struct.unpack(">I", data[:4])
    dims = struct.unpack(">" + "I" * (magic & 0xff), data[4:4 + 4 * (magic & 0xff)])
    return np.frombuffer(data[4 + 4 * len(dims):], dtype=np.uint8).reshape(dims)


def load_split(directory, prefix):
    images = read_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"))
    return images.reshape(len(images), -1), labels


def scaled_pixels(images, dtype):
    """Pixels times the dtype's 1/255, one rounding as in the engine."""
    numpy_type = np.dtype(NUMPY_DTYPE[dtype]).type
    return images.astype(numpy_type) * numpy_type(1.0 / 255.0)


def torch_logits(weights, biases, x, dtype):
    """Logits n × C of the MLP of eq. 1-3 in PyTorch, in `dtype`."""
    def as_tensor(values):
        return torch.from_numpy(np.array(values, dtype=NUMPY_DTYPE[dtype]))

    h = as_tensor(x)
    for t, (weight, bias) in enumerate(zip(weights, biases)):
        h = torch.nn.functional.linear(h, as_tensor(weight), as_tensor(bias).reshape(-1))
        if t + 1 < len(weights):
            h = torch.relu(h)
    return h.numpy().astype(np.float64)


def allowed_error(weights, biases, x, u):
    """Bound on |tensortape − PyTorch| for each logit, n × C.

    A dot product of k terms plus a bias, rounded with unit roundoff u, is
    off by at most γ(k+1)·(|w|·|h| + |b|), with γ(m) = m·u/(1 − m·u): the
    standard forward error bound of a sum of m rounded terms, whatever the
    order of summation, which covers blocked and vectorized products. One
    more rounding is allowed for
    converting the file's weights, or the pixels, to the other side's type,
    so γ(k+2). An error e
    in h(t-1) reaches z(t) as at most |W(t)|·e, and ReLU does not enlarge
    it. So with a(0) = |x| and e(0) = 0 (both sides scale the pixels with
    the same single rounding):
        a(t) = |W(t)|·a(t-1) + |b(t)|,
        e(t) = γ(k_t + 2)·a(t) + |W(t)|·e(t-1),
    and each program is within e(T) of the exact result, so they are within
    2·e(T) of each other. u is that of the less precise of the two sides.
    """
    a = np.abs(np.asarray(x, dtype=np.float64))
    e = np.zeros_like(a)
    for weight, bias in zip(weights, biases):
        w = np.abs(np.asarray(weight, dtype=np.float64))
        b = np.abs(np.asarray(bias, dtype=np.float64).reshape(-1))
        k = w.shape[1]
        gamma = (k + 2) * u / (1 - (k + 2) * u)
        a = a @ w.T + b
        e = gamma * a + e @ w.T
    return 2 * e


def compare(label, engine, reference, bound, labels):
    """Print and return whether the logits agree; both are n × C."""
    engine_classes = np.argmax(engine, axis=1)
    reference_classes = np.argmax(reference, axis=1)
    mismatched = int(np.sum(engine_classes != reference_classes))
    difference = np.abs(engine - reference)
    worst = float(np.max(difference / bound))
    ordered = np.sort(reference, axis=1)
    margin = float(np.min((ordered[:, -1] - ordered[:, -2]) / bound.max(axis=1)))
    accuracy = float(np.mean(reference_classes == labels))
    ok = mismatched == 0 and worst <= 1.0
    print(f"{label}: {'ok' if ok else 'FAILED'}: {len(engine)} samples, "
          f"{mismatched} different classes, largest difference {float(difference.max()):.3g} "
          f"= {worst:.3g} of its bound, smallest top-two gap {margin:.3g} bounds, "
          f"accuracy {accuracy:.4f}")
    return ok, accuracy


def engine_logits(predict, model, data, directory):
    """Logits n × C of tensortape for a model file, via MLP_PREDICT."""
    output = os.path.join(directory, "logits.safetensors")
    subprocess.run([predict, model, data, output], check=True)
    tensors, _ = read_safetensors(output)
    dtype = read_header(output)["logits"]["dtype"]
    return np.asarray(tensors["logits"], dtype=np.float64).T, dtype


def read_header(path):
    with open(path, "rb") as stream:
        (size,) = struct.unpack("<Q", stream.read(8))
        return json.loads(stream.read(size))


def example_accuracy(mlp, model, data):
    """The test accuracy that `mlp --load MODEL --epochs 0` prints."""
    run = subprocess.run([mlp, "--data", data, "--load", model, "--epochs", "0"],
                         capture_output=True, text=True, check=True)
    return float(re.search(r"test_accuracy=([0-9.]+)", run.stdout).group(1))


def train_torch_model(train_images, train_labels):
    """Return the weights and biases of a briefly trained PyTorch MLP."""
    torch.manual_seed(TORCH_SEED)
    layers = []
    for t in range(1, len(TORCH_WIDTHS)):
        layers.append(torch.nn.Linear(TORCH_WIDTHS[t - 1], TORCH_WIDTHS[t]))
        if t + 1 < len(TORCH_WIDTHS):
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(net.parameters(), lr=TORCH_LR)
    x = torch.from_numpy(scaled_pixels(train_images, "F32"))
    y = torch.from_numpy(train_labels.astype(np.int64))
    for step in range(TORCH_STEPS):
        batch = slice(step * TORCH_BATCH, (step + 1) * TORCH_BATCH)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
        optimizer.step()
    linears = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
    return ([layer.weight.detach().numpy().copy() for layer in linears],
            [layer.bias.detach().numpy().copy() for layer in linears])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mlp")
    parser.add_argument("predict")
    parser.add_argument("--data", default=DEFAULT_DATA)
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")):
        if os.environ.get("CI") == "true":
            print(f"safetensors interop: FAILED because {args.data} has no Fashion-MNIST")
            return 1
        print(f"safetensors interop: SKIPPED because {args.data} has no Fashion-MNIST "
              "(apt-get install dataset-fashion-mnist)")
        return EXIT_SKIPPED

    test_images, test_labels = load_split(args.data, "t10k")
    all_ok = True
    with tempfile.TemporaryDirectory() as directory:
        # 1. tensortape → PyTorch
        model = os.path.join(directory, "engine.safetensors")
        subprocess.run([args.mlp, "--data", args.data, "--hidden", ENGINE_HIDDEN, "--epochs",
                        "1", "--threads", "1", "--save", model], check=True,
                       stdout=subprocess.DEVNULL)
        tensors, metadata = read_safetensors(model)
        widths = [int(width) for width in metadata["widths"].split(",")]
        dtype = read_header(model)["w1"]["dtype"]
        weights = [tensors[f"w{t}"] for t in range(1, len(widths))]
        biases = [tensors[f"b{t}"] for t in range(1, len(widths))]
        if metadata["activation"] != "relu" or [w.shape[1] for w in weights] != widths[:-1]:
            print(f"tensortape to PyTorch: FAILED: unexpected metadata {metadata}")
            return 1
        x = scaled_pixels(test_images, dtype)
        engine, _ = engine_logits(args.predict, model, args.data, directory)
        reference = torch_logits(weights, biases, x, dtype)
        bound = allowed_error(weights, biases, x, UNIT_ROUNDOFF[dtype])
        ok, accuracy = compare(f"tensortape to PyTorch ({dtype})", engine, reference, bound,
                               test_labels)
        all_ok &= ok

        # 2. PyTorch → tensortape, in each dtype
        train_images, train_labels = load_split(args.data, "train")
        weights, biases = train_torch_model(train_images, train_labels)
        for file_dtype in ["F32", "F64"]:
            model = os.path.join(directory, f"torch-{file_dtype}.safetensors")
            numpy_dtype = NUMPY_DTYPE[file_dtype]
            saved = {}
            for t in range(1, len(TORCH_WIDTHS)):
                saved[f"w{t}"] = weights[t - 1].astype(numpy_dtype)
                saved[f"b{t}"] = biases[t - 1].astype(numpy_dtype)  # 1-D, as PyTorch keeps it
            write_safetensors(model, saved, {"widths": ",".join(map(str, TORCH_WIDTHS)),
                                             "activation": "relu"})
            engine, engine_dtype = engine_logits(args.predict, model, args.data, directory)
            # The less precise side sets u: the file's dtype or the build's.
            u = max(UNIT_ROUNDOFF[file_dtype], UNIT_ROUNDOFF[engine_dtype])
            x = scaled_pixels(test_images, engine_dtype)
            reference = torch_logits(weights, biases, x, file_dtype)
            bound = allowed_error(weights, biases, x, u)
            ok, accuracy = compare(f"PyTorch ({file_dtype}) to tensortape", engine, reference,
                                   bound, test_labels)
            printed = example_accuracy(args.mlp, model, args.data)
            if abs(printed - round(accuracy, 4)) > 1e-9:
                print(f"PyTorch ({file_dtype}) to mlp --load: FAILED: mlp printed accuracy "
                      f"{printed:.4f}, PyTorch's is {accuracy:.4f}")
                ok = False
            all_ok &= ok
    print(f"safetensors interop: {'passed' if all_ok else 'FAILED'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
