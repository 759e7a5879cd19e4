#!/usr/bin/env python3
"""Converts the released CompNet initialisation pickles (compnet.md §5) to one safetensors file
that `init.file` reads:

  dictionary_{layer}.pickle                                  -> "dictionary"      [K, D] float32
  mmodel_{cat}_K4_FEATDIM512_{layer}_specific_view.pickle    -> "mixtures.{cat}"  [M, K, W, H] float32

The mixtures are stored as the pickles hold them (a list of M arrays (K, W, H): W and H
transposed); vireo transposes, sizes and pads them as the released `getCompositionModel` does.
A class whose file is missing is left out (vireo then gives it empty rows).

    python3 crates/compnet/tools/convert_init_pickles.py --dictionary dictionary_pool5.pickle \\
        --mixtures mix_model_vmf_pascal3d+_EM_all/ --layer pool5 --out init_pool5.safetensors
"""
import argparse
import glob
import os
import pickle

import numpy as np
from safetensors.numpy import save_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dictionary", required=True)
    parser.add_argument("--mixtures", required=True, help="the folder of mmodel_*.pickle files")
    parser.add_argument("--layer", default="pool5")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.dictionary, "rb") as f:
        tensors = {"dictionary": np.ascontiguousarray(np.asarray(pickle.load(f), dtype=np.float32))}
    pattern = os.path.join(args.mixtures, f"mmodel_*_K4_FEATDIM512_{args.layer}_specific_view.pickle")
    for path in sorted(glob.glob(pattern)):
        cat = os.path.basename(path)[len("mmodel_"):].split("_K4_")[0]
        with open(path, "rb") as f:
            mixtures = pickle.load(f)
        tensors[f"mixtures.{cat}"] = np.ascontiguousarray(
            np.stack([np.asarray(m, dtype=np.float32) for m in mixtures]))
    save_file(tensors, args.out)
    print(f"{args.out}: {sorted(tensors)}")


if __name__ == "__main__":
    main()
