"""Write the seed corpora of the fuzz targets into corpus/NAME/.

Usage: python3 make_seeds.py

The seeds are small valid inputs.

idx: plain and gzip-compressed IDX files, an image file, a label file, and
the two joined as fuzz_idx.c splits its input (a 2-byte big-endian length
of the image file, the image file, the label file). gzip data is written
with mtime 0, so the bytes are the same on every run.

safetensors: files in the layout of the README's "File formats", with F32
and F64 tensors, metadata, 0-D, 1-D and empty shapes and other dtypes.

json: documents that use every part of the grammar: each kind of value,
escapes, multi-byte UTF-8 and nesting deeper than a safetensors header.
"""
import gzip
import json
import pathlib
import struct

CORPORA = pathlib.Path(__file__).resolve().parent / "corpus"


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


def idx_seeds():
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
    return seeds


def safetensors_file(tensors, metadata=None):
    """tensors: (name, dtype, shape, data bytes) in the order of their data."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    # Padded with spaces so that the data start at a multiple of 8 bytes,
    # as tt_safetensors_save writes it.
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def floats(form, values):
    return struct.pack("<" + form * len(values), *values)


def safetensors_seeds():
    weights = [0.5, -1.25, 2.0, 3.0e-3, -0.0, 7.0]
    biases = [0.25, -4.0]
    model_metadata = {"widths": "3,2", "activation": "relu"}
    return {
        "model-f32": safetensors_file([
            ("w1", "F32", [2, 3], floats("f", weights)),
            ("b1", "F32", [2, 1], floats("f", biases)),
        ], model_metadata),
        "model-f64": safetensors_file([
            ("w1", "F64", [2, 3], floats("d", weights)),
            ("b1", "F64", [2, 1], floats("d", biases)),
        ], model_metadata),
        "shapes-0d-1d": safetensors_file([
            ("scalar", "F64", [], floats("d", [1.5])),
            ("bias", "F32", [3], floats("f", [1.0, float("inf"), float("nan")])),
        ]),
        "other-dtypes": safetensors_file([
            ("empty", "F32", [0, 4], b""),
            ("steps", "I64", [2], struct.pack("<qq", 1, -2)),
            ("half", "BF16", [1, 2], b"\x80\x3f\x00\x40"),
            ("mask", "BOOL", [3], b"\x01\x00\x01"),
        ]),
        "metadata-only": safetensors_file([], {"note": "caf\u00e9 \"quoted\"\n"}),
        "empty-header": struct.pack("<Q", 2) + b"{}",
    }


def json_seeds():
    header = safetensors_seeds()["model-f32"]
    (length,) = struct.unpack("<Q", header[:8])
    return {
        "safetensors-header": header[8:8 + length],
        "literals": b'[null, true, false, 0, -0, 1, -12]',
        "numbers": b'[0.5, -1.25e+3, 6.02E23, 1e-7, 18446744073709551615, '
                   b'18446744073709551616]',
        "escapes": b'{"a\\"b": "\\\\ \\/ \\b \\f \\n \\r \\t \\u0000 \\u00e9 '
                   b'\\ud83d\\ude00"}',
        "utf8": '{"caf\u00e9": "\u20ac \U0001f600 \u00ff"}'.encode(),
        "nested": b' {"x": [[[{"y": [[]]}]], {}], "x": "twice"} \n',
        "string": b'"just a string"',
    }


def main():
    corpora = {
        "idx": idx_seeds(),
        "safetensors": safetensors_seeds(),
        "json": json_seeds(),
    }
    for corpus, seeds in corpora.items():
        directory = CORPORA / corpus
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (directory / name).write_bytes(data)


if __name__ == "__main__":
    main()
