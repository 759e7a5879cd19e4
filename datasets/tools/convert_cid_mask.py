#!/usr/bin/env python3
"""Converts SAKE's cid_mask.pickle to the .npy that datasets::formats::sketch reads (sake.md §7).

The pickle is a Python-3 dict {training class id: float64 ndarray of shape (1000,)}, the mask of
ImageNet classes related to that sketch class. The output is a float64 C-order array of shape
[num_classes, 1000] whose row c is the mask of class id c.

    python datasets/tools/convert_cid_mask.py dataset/TUBerlin/zeroshot/cid_mask.pickle \
        dataset/TUBerlin/zeroshot/cid_mask.npy --cname-cid dataset/TUBerlin/zeroshot/cname_cid.txt
"""

import argparse
import pickle
import sys

import numpy as np


def count_classes(cname_cid):
    """Number of lines `name id` in cname_cid.txt (the id is the last token)."""
    with open(cname_cid) as f:
        ids = [int(line.split()[-1]) for line in f if line.strip()]
    return max(ids) + 1


def convert(masks, num_classes):
    missing = sorted(set(range(num_classes)) - set(masks))
    extra = sorted(k for k in masks if not 0 <= k < num_classes)
    if missing or extra:
        sys.exit(f"class ids missing from the pickle: {missing[:10]}, out of range: {extra[:10]}")
    width = {np.asarray(v).size for v in masks.values()}
    if len(width) != 1:
        sys.exit(f"masks of differing lengths {sorted(width)}")
    out = np.zeros((num_classes, width.pop()), dtype="<f8")
    for cid, mask in masks.items():
        out[cid] = np.asarray(mask, dtype=np.float64).reshape(-1)
    return np.ascontiguousarray(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pickle", help="cid_mask.pickle")
    parser.add_argument("npy", help="output cid_mask.npy")
    parser.add_argument("--cname-cid", help="cname_cid.txt, to size the array by its class ids")
    args = parser.parse_args()
    with open(args.pickle, "rb") as f:
        masks = {int(k): v for k, v in pickle.load(f).items()}
    num_classes = count_classes(args.cname_cid) if args.cname_cid else max(masks) + 1
    out = convert(masks, num_classes)
    np.save(args.npy, out)
    print(f"{args.npy}: {out.shape[0]} classes × {out.shape[1]}, {np.count_nonzero(out)} non-zeros")


if __name__ == "__main__":
    main()
