"""Opens the example's --plot chart and its rendered --dot graph in a browser.

usage: test_chart_in_browser.py MLP DOT BROWSER

Trains the example for three epochs on a tiny synthetic data set with
--plot and --dot, renders the DOT file to SVG with Graphviz, and has the
browser (Chromium, headless) take a screenshot of each SVG. A chart the
browser cannot parse comes out blank, so the test decodes each screenshot
and counts the pixels drawn in the colours the files use: the chart's two
lines and the graph's parameter boxes.

Exit status 77, which meson reports as skipped, when DOT or BROWSER is
'-' (not found) and CI is not set; under CI=true a missing program fails.
"""
import os
import random
import struct
import subprocess
import sys
import tempfile
import zlib

from test_mlp_tools import TEST_COUNT, TRAIN_COUNT, write_idx

SKIP = 77

# Colours of examples/mlp/history.c (the two lines) and of
# tt_tape_write_dot (the fill of a parameter box), as RGB.
LOSS_LINE = (0x1F, 0x77, 0xB4)
ACCURACY_LINE = (0xD6, 0x27, 0x28)

# A line 2 pixels wide across two 600-pixel panels covers well over this
# many pixels; a blank or unstyled page covers none.
MIN_LINE_PIXELS = 300


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def read_png(path):
    """Returns (width, height, channels, rows) of an 8-bit, non-interlaced
    RGB or RGBA PNG, the kind a Chromium screenshot is."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path}: not a PNG file")
    position = 8
    compressed = b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace != 0:
                fail(f"{path}: PNG depth {depth}, colour type {colour}, interlace "
                     f"{interlace}: this decoder reads 8-bit RGB or RGBA only")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            compressed += body
        position += 12 + length
    raw = zlib.decompress(compressed)
    stride = width * channels
    rows = []
    previous = bytearray(stride)
    offset = 0
    for _ in range(height):
        method = raw[offset]
        line = bytearray(raw[offset + 1:offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if method == 1:
                line[i] = (line[i] + left) & 0xFF
            elif method == 2:
                line[i] = (line[i] + up) & 0xFF
            elif method == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif method == 4:
                estimate = left + up - up_left
                distances = (abs(estimate - left), abs(estimate - up), abs(estimate - up_left))
                predictor = (left, up, up_left)[distances.index(min(distances))]
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(line)
        previous = line
    return width, height, channels, rows


def count_colour(path, colour, tolerance=24):
    """Counts the pixels within `tolerance` of `colour` in each channel."""
    width, _, channels, rows = read_png(path)
    count = 0
    for line in rows:
        for x in range(width):
            pixel = line[x * channels:x * channels + 3]
            if all(abs(pixel[c] - colour[c]) <= tolerance for c in range(3)):
                count += 1
    return count


def screenshot(browser, svg, png, directory):
    # --no-sandbox: Chromium refuses to start as root with its sandbox,
    # and CI runs as root. The page is a local file that this test wrote.
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu",
               f"--user-data-dir={os.path.join(directory, 'profile')}",
               f"--screenshot={png}", "--window-size=800,700", "file://" + svg]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not os.path.exists(png):
        fail(f"{browser} did not render {svg} (status {result.returncode}): "
             f"{result.stderr.strip()[-500:]}")


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    mlp, dot, browser = sys.argv[1:]
    for name, program in (("dot", dot), ("chromium", browser)):
        if program == "-":
            if os.environ.get("CI") == "true":
                fail(f"{name} is not installed, and CI=true requires it")
            print(f"skipped: {name} is not installed")
            return SKIP
    with tempfile.TemporaryDirectory() as directory:
        data = os.path.join(directory, "data")
        os.mkdir(data)
        rng = random.Random(1)
        write_idx(data, "train", TRAIN_COUNT, rng)
        write_idx(data, "t10k", TEST_COUNT, rng)
        chart = os.path.join(directory, "chart.svg")
        tape_dot = os.path.join(directory, "tape.dot")
        result = subprocess.run([mlp, "--data", data, "--epochs", "3", "--batch", "16",
                                 "--lr", "0.5", "--quiet", "--plot", chart, "--dot", tape_dot],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            fail(f"mlp exited with {result.returncode}: {result.stderr}")
        tape_svg = os.path.join(directory, "tape.svg")
        subprocess.run([dot, "-Tsvg", tape_dot, "-o", tape_svg], check=True, timeout=60)

        chart_png = os.path.join(directory, "chart.png")
        screenshot(browser, chart, chart_png, directory)
        for label, colour in (("training loss", LOSS_LINE), ("test accuracy", ACCURACY_LINE)):
            pixels = count_colour(chart_png, colour)
            if pixels < MIN_LINE_PIXELS:
                fail(f"the browser drew {pixels} pixels of the {label} line, "
                     f"expected at least {MIN_LINE_PIXELS}")
            print(f"chart: {pixels} pixels of the {label} line")

        tape_png = os.path.join(directory, "tape.png")
        screenshot(browser, tape_svg, tape_png, directory)
        with open(tape_dot) as f:
            fill = next((line for line in f if "fillcolor" in line), None)
        if fill is None:
            fail(f"{tape_dot} has no filled node, but the parameters should be filled")
        hex_colour = fill.split('fillcolor="#', 1)[1][:6]
        colour = tuple(int(hex_colour[i:i + 2], 16) for i in (0, 2, 4))
        pixels = count_colour(tape_png, colour)
        # Four parameter boxes of at least 60 × 30 pixels each.
        if pixels < 4 * 60 * 30:
            fail(f"the browser drew {pixels} pixels of the parameter fill #{hex_colour}")
        print(f"graph: {pixels} pixels of the parameter fill #{hex_colour}")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
