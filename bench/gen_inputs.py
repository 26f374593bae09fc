#!/usr/bin/env python3
"""Generates large benign benchmark inputs (standard library only).

    python3 bench/gen_inputs.py OUT_DIR [--size-mb 1024] [--pickle-mb 200]

Writes, into OUT_DIR:
  large_p4.pkl       NumPy-style protocol-4 pickle of a float32 array (one BINBYTES8 payload)
  large_p5.pkl       NumPy-style protocol-5 pickle (_frombuffer over an in-band BYTEARRAY8)
  many_floats.pkl    protocol-4 pickle of a list of floats: opcode-heavy (9 bytes per opcode)
  big_torch.pt       PyTorch-layout zip (STORED): a real state_dict-shaped data.pkl + one storage
  big.safetensors    safetensors with one F32 tensor
  tree/              1,000 small model files and 1,000 text files
The payloads are zeros written in chunks, so memory stays small.
"""
import os
import pickle
import struct
import sys
import zipfile

CHUNK = 1 << 24


def write_zeros(f, n):
    block = b"\x00" * CHUNK
    while n > 0:
        step = min(n, CHUNK)
        f.write(block[:step])
        n -= step


def global_(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def short_unicode(s):
    return b"\x8c" + bytes([len(s)]) + s.encode()


def numpy_array_pickle(path, nbytes, protocol):
    """The opcodes numpy emits for `pickle.dumps(np.zeros(n, 'f4'), protocol)`."""
    count = nbytes // 4
    dtype = (
        global_("numpy", "dtype") + short_unicode("f4") + b"\x89\x88\x87R"
        + b"(K\x03" + short_unicode("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    with open(path, "wb") as f:
        if protocol == 4:
            f.write(b"\x80\x04" + global_("numpy.core.multiarray", "_reconstruct") + global_("numpy", "ndarray"))
            f.write(b"K\x00\x85C\x01b\x87R(K\x01J" + struct.pack("<i", count) + b"\x85" + dtype + b"\x89")
            f.write(b"\x8e" + struct.pack("<Q", nbytes))
            write_zeros(f, nbytes)
            f.write(b"tb.")
        else:
            f.write(b"\x80\x05" + global_("numpy.core.numeric", "_frombuffer"))
            f.write(b"(\x96" + struct.pack("<Q", nbytes))
            write_zeros(f, nbytes)
            f.write(dtype + b"J" + struct.pack("<i", count) + b"\x85" + short_unicode("C") + b"t\x94R.")


def torch_zip(path, nbytes):
    # data.pkl as torch.save writes it for {"weight": tensor over storage "0"}.
    data_pkl = (
        b"\x80\x02" + global_("collections", "OrderedDict") + b")R" + b"X\x06\x00\x00\x00weight"
        + global_("torch._utils", "_rebuild_tensor_v2")
        + b"((X\x07\x00\x00\x00storage" + global_("torch", "FloatStorage")
        + b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ" + struct.pack("<i", nbytes // 4) + b"tQ"
        + b"K\x00J" + struct.pack("<i", nbytes // 4) + b"\x85K\x01\x85\x89" + global_("collections", "OrderedDict")
        + b")Rtq\x00Rs."
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", b"little")
        with z.open("archive/data/0", "w", force_zip64=True) as f:
            write_zeros(f, nbytes)
        z.writestr("archive/version", b"3\n")
        z.writestr("archive/.data/serialization_id", b"1234567890")


def safetensors(path, nbytes):
    header = ('{"weight":{"dtype":"F32","shape":[%d],"data_offsets":[0,%d]},"__metadata__":{"format":"pt"}}'
              % (nbytes // 4, nbytes // 4 * 4)).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        write_zeros(f, nbytes // 4 * 4)


def tree(root):
    os.makedirs(root, exist_ok=True)
    small = b"\x80\x02" + global_("collections", "OrderedDict") + b")R."
    for i in range(1000):
        with open(os.path.join(root, f"model_{i:04}.pkl"), "wb") as f:
            f.write(small)
        with open(os.path.join(root, f"notes_{i:04}.txt"), "w") as f:
            f.write(f"notes for model {i}\n" * 20)


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    out = args[0]
    size_mb = int(args[args.index("--size-mb") + 1]) if "--size-mb" in args else 1024
    pickle_mb = int(args[args.index("--pickle-mb") + 1]) if "--pickle-mb" in args else 200
    os.makedirs(out, exist_ok=True)
    numpy_array_pickle(os.path.join(out, "large_p4.pkl"), pickle_mb << 20, 4)
    numpy_array_pickle(os.path.join(out, "large_p5.pkl"), pickle_mb << 20, 5)
    with open(os.path.join(out, "many_floats.pkl"), "wb") as f:
        pickle.dump([float(i) for i in range(pickle_mb * (1 << 20) // 9)], f, protocol=4)
    torch_zip(os.path.join(out, "big_torch.pt"), size_mb << 20)
    safetensors(os.path.join(out, "big.safetensors"), size_mb << 20)
    tree(os.path.join(out, "tree"))
    print("inputs written to", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
