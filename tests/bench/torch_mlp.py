"""Train an MLP on Fashion-MNIST with PyTorch, for comparison with tensortape.

The model matches the MLP example: Linear and ReLU layers of the given
widths, softmax cross-entropy, plain SGD over shuffled minibatches. Prints
one line, "train_seconds=S samples=N", where S counts the training loop
only (not loading, not model construction).

Usage: torch_mlp.py --data DIR --hidden 256 --batch 64 --threads 1
"""
import argparse
import gzip
import os
import sys
import time

import numpy
import torch

N_CLASSES = 10


def read_idx(directory, name, magic):
    """Return the array stored in the IDX file NAME or NAME.gz in directory."""
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        path += ".gz"
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as stream:
        data = stream.read()
    if int.from_bytes(data[0:4], "big") != magic:
        sys.exit(f"torch_mlp: {path}: invalid magic number")
    dimensions = data[3]
    shape = [int.from_bytes(data[4 + 4 * d:8 + 4 * d], "big") for d in range(dimensions)]
    return numpy.frombuffer(data, dtype=numpy.uint8, offset=4 + 4 * dimensions).reshape(shape)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--hidden", default="256", help="comma-separated hidden widths")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images = read_idx(args.data, "train-images-idx3-ubyte", 0x00000803)
    labels = read_idx(args.data, "train-labels-idx1-ubyte", 0x00000801)
    x = torch.from_numpy(images.reshape(len(images), -1).astype(numpy.float32) / 255.0)
    y = torch.from_numpy(labels.astype(numpy.int64))

    widths = [x.shape[1]] + [int(w) for w in args.hidden.split(",") if w] + [N_CLASSES]
    layers = []
    for t in range(1, len(widths)):
        layers.append(torch.nn.Linear(widths[t - 1], widths[t]))
        if t + 1 < len(widths):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_function = torch.nn.CrossEntropyLoss()

    start = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.randperm(len(x))
        for first in range(0, len(x), args.batch):
            batch = order[first:first + args.batch]
            optimizer.zero_grad()
            loss = loss_function(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    print(f"train_seconds={seconds:.4f} samples={len(x) * args.epochs}")


if __name__ == "__main__":
    main()
