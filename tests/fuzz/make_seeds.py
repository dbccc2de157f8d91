"""Write the seed corpus of the IDX fuzz target into corpus/idx/.

Usage: python3 make_seeds.py

The seeds are small valid inputs, plain and gzip-compressed: an image file,
a label file, and the two joined as fuzz_idx.c splits its input (a 2-byte
big-endian length of the image file, the image file, the label file).
gzip data is written with mtime 0, so the bytes are the same on every run.
"""
import gzip
import pathlib
import struct

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus" / "idx"


def image_file(count, rows, cols):
    pixels = bytes((i * 37 + 11) % 256 for i in range(count * rows * cols))
    return struct.pack(">IIII", 0x00000803, count, rows, cols) + pixels


def label_file(count):
    labels = bytes((i * 3 + 1) % 10 for i in range(count))
    return struct.pack(">II", 0x00000801, count) + labels


def pair(images, labels):
    return struct.pack(">H", len(images)) + images + labels


def compress(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def main():
    images = image_file(3, 4, 4)
    labels = label_file(3)
    seeds = {
        "images": images,
        "labels": labels,
        "images.gz": compress(images),
        "labels.gz": compress(labels),
        "pair": pair(images, labels),
        "pair-gzip": pair(compress(images), compress(labels)),
        "members.gz": compress(images[:20]) + compress(images[20:]),
    }
    CORPUS.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (CORPUS / name).write_bytes(data)


if __name__ == "__main__":
    main()
