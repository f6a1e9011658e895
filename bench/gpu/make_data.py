"""The benchmark data carried to the GPU machine (bench/gpu/build-artefacts.sh runs this).

    python3 make_data.py SRC DST N_TRAIN N_TEST PNG_DIR N_PNG

SRC: a Fashion-MNIST folder (IDX files, gzipped or raw). DST gets the first N_TRAIN training
and N_TEST test images and labels as gzipped IDX files (`all`: every one), in the layout genc
and bench/peers/common.py read. PNG_DIR gets the first N_PNG training images upscaled 28 -> 64
(nearest) as 8-bit grayscale PNGs, 00000.png ..., for specs/dcgan64.gen's folder source.
The standard library only: no numpy, no Pillow.
"""

import gzip
import os
import shutil
import struct
import sys
import zlib


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def find(src, name):
    for path in (os.path.join(src, name + ".gz"), os.path.join(src, name)):
        if os.path.exists(path):
            return path
    sys.exit(f"make_data: no {name}[.gz] in {src}")


def first(raw, n):
    """The first n items of an IDX file (`all`: the whole file) as IDX bytes, and its dims."""
    rank = raw[3]
    dims = list(struct.unpack(">" + "I" * rank, raw[4 : 4 + 4 * rank]))
    if n != "all":
        dims[0] = min(int(n), dims[0])
    item = 1
    for d in dims[1:]:
        item *= d
    head = raw[:4] + struct.pack(">" + "I" * rank, *dims)
    return head + raw[4 + 4 * rank : 4 + 4 * rank + dims[0] * item], dims


def chunk(kind, body):
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_gray(pixels, side):
    rows = b"".join(b"\x00" + pixels[y * side : (y + 1) * side] for y in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def main():
    src, dst, n_train, n_test, png_dir, n_png = sys.argv[1:7]
    os.makedirs(dst, exist_ok=True)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            name = f"{stem}-{kind}"
            path = find(src, name)
            out = os.path.join(dst, name + ".gz")
            if n == "all" and path.endswith(".gz"):
                shutil.copy(path, out)
                print(f"  {name}.gz: copied whole")
                continue
            data, dims = first(read(path), n)
            with gzip.open(out, "wb", compresslevel=9) as f:
                f.write(data)
            print(f"  {name}.gz: {dims}")

    raw = read(find(src, "train-images-idx3-ubyte"))
    s28, side = 28, 64
    index = [(y * s28) // side for y in range(side)]
    os.makedirs(png_dir, exist_ok=True)
    for i in range(int(n_png)):
        img = raw[16 + i * s28 * s28 : 16 + (i + 1) * s28 * s28]
        big = bytearray()
        for y in range(side):
            row = img[index[y] * s28 : (index[y] + 1) * s28]
            big += bytes(row[index[x]] for x in range(side))
        with open(os.path.join(png_dir, f"{i:05d}.png"), "wb") as f:
            f.write(png_gray(bytes(big), side))
    print(f"  {png_dir}: {n_png} grayscale PNG images of {side}x{side}")


if __name__ == "__main__":
    main()
