//! The official repository's FLOP counter (`elastic.md` §2.4; `allenai/elastic` `utils.py`, as
//! `classify.py` calls it on one 224 × 224 image), evaluated on the architecture rather than by
//! hooks. Its rules: a convolution counts `k² · C_in · C_out / groups` multiply-adds per output
//! position (plus `C_out` per position for a bias), a linear layer `in · out`; ReLU, max- and
//! average-pooling count one per *input* element, each call (the block's one ReLU module runs five
//! times); an affine BatchNorm two per input element; every elastic upsampling adds 8 per element
//! of its ×2 output (before the crop). Adaptive average pooling (the head's, SE's squeeze), the
//! sigmoid, the residual and path sums count nothing. Reported as GFLOPs = count / 10⁹.

use core_nets::{BlockKind, DenseNetConfig, DlaConfig, ResNetConfig};

/// Output side of a convolution or pooling window.
fn out_side(side: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (side + 2 * padding - kernel) / stride + 1
}

/// A conv's count: `k²·C_in·(C_out/groups)` per output position, `+ C_out` with a bias.
fn conv(c_in: usize, c_out: usize, k: usize, groups: usize, positions: usize, bias: bool) -> u64 {
    ((k * k * c_in * (c_out / groups) + if bias { c_out } else { 0 }) * positions) as u64
}

/// Affine BatchNorm over `elements` inputs.
fn batch_norm(elements: usize) -> u64 {
    2 * elements as u64
}

/// ReLU / pooling over `elements` inputs.
fn per_element(elements: usize) -> u64 {
    elements as u64
}

/// A two-path block's shape: paths of `width` channels with `groups` groups each, `out` channels
/// out; SE and the projection shortcut where the ResNeXt has them (DLA passes its residual in).
struct TwoPathShape {
    c_in: usize,
    width: usize,
    groups: usize,
    out: usize,
    stride: usize,
    elastic: bool,
    se: bool,
    shortcut_conv: bool,
}

/// One two-path block on a `[c_in, h, w]` input; returns its count and output side.
fn two_path_block(b: &TwoPathShape, [h, w]: [usize; 2]) -> (u64, [usize; 2]) {
    let TwoPathShape {
        c_in,
        width,
        groups,
        out,
        stride,
        elastic,
        se,
        shortcut_conv,
    } = *b;
    let mut flops = 0;
    // The half-resolution path (full resolution when not elastic).
    let [hd, wd] = if elastic {
        let [hp, wp] = [h + h % 2, w + w % 2];
        flops += per_element(c_in * hp * wp); // avg-pool over the padded input
        [hp / 2, wp / 2]
    } else {
        [h, w]
    };
    let path = |[ph, pw]: [usize; 2]| -> (u64, [usize; 2]) {
        let mut f = conv(c_in, width, 1, 1, ph * pw, false);
        f += batch_norm(width * ph * pw) + per_element(width * ph * pw);
        let [oh, ow] = [out_side(ph, 3, stride, 1), out_side(pw, 3, stride, 1)];
        f += conv(width, width, 3, groups, oh * ow, false);
        f += batch_norm(width * oh * ow) + per_element(width * oh * ow);
        f += conv(width, out, 1, 1, oh * ow, false);
        (f, [oh, ow])
    };
    let (down, [dh, dw]) = path([hd, wd]);
    flops += down;
    if elastic {
        flops += 8 * (out * 2 * dh * 2 * dw) as u64;
    }
    let (full, [oh, ow]) = path([h, w]);
    flops += full;
    let merged = out * oh * ow;
    flops += batch_norm(merged); // bn3
    if se {
        let squeezed = out / 16;
        flops += conv(out, squeezed, 1, 1, 1, true) + per_element(squeezed);
        flops += conv(squeezed, out, 1, 1, 1, true);
    }
    if shortcut_conv && (stride != 1 || c_in != out) {
        flops += conv(c_in, out, 1, 1, oh * ow, false) + batch_norm(merged);
    }
    flops += per_element(merged); // the final ReLU
    (flops, [oh, ow])
}

/// DLA's single-path ResNeXt bottleneck (conv1 → bn → relu → grouped conv2 → bn → relu → conv3
/// → bn, + residual, relu).
fn bottleneck(
    c_in: usize,
    width: usize,
    groups: usize,
    out: usize,
    stride: usize,
    [h, w]: [usize; 2],
) -> (u64, [usize; 2]) {
    let mut f = conv(c_in, width, 1, 1, h * w, false);
    f += batch_norm(width * h * w) + per_element(width * h * w);
    let [oh, ow] = [out_side(h, 3, stride, 1), out_side(w, 3, stride, 1)];
    f += conv(width, width, 3, groups, oh * ow, false);
    f += batch_norm(width * oh * ow) + per_element(width * oh * ow);
    f += conv(width, out, 1, 1, oh * ow, false) + batch_norm(out * oh * ow);
    f += per_element(out * oh * ow);
    (f, [oh, ow])
}

/// The official counter's value for a two-path ResNeXt `config` on one `size × size` image.
/// Panics for any other block kind or the small stem (the counter is ELASTIC's).
pub fn resnext_flops(config: &ResNetConfig, size: usize) -> u64 {
    assert!(
        config.block == BlockKind::TwoPath && !config.small_stem && config.output_stride == 32,
        "the ELASTIC FLOP counter covers the two-path ResNeXt with the standard stem"
    );
    let stem = config.stem_width;
    let side = out_side(size, 7, 2, 3);
    let mut flops = conv(config.in_channels, stem, 7, 1, side * side, false);
    flops += batch_norm(stem * side * side) + per_element(stem * side * side) * 2; // ReLU, max-pool
    let side = out_side(side, 3, 2, 1);
    let (mut c_in, mut hw) = (stem, [side, side]);
    for (stage, (&planes, &blocks)) in config.planes.iter().zip(&config.layers).enumerate() {
        for b in 0..blocks {
            let stride = if b == 0 && stage > 0 { 2 } else { 1 };
            let shape = TwoPathShape {
                c_in,
                width: planes,
                groups: config.groups / 2,
                out: planes * 4,
                stride,
                elastic: config.elastic && stride == 1 && stage < 3,
                se: config.se,
                shortcut_conv: true,
            };
            let (f, out) = two_path_block(&shape, hw);
            flops += f;
            (c_in, hw) = (planes * 4, out);
        }
    }
    if let Some(classes) = config.num_classes {
        flops += (c_in * classes) as u64;
    }
    flops
}

/// A DLA block on `[c_in, h, w]` (`models/dla.py` `BottleneckX` / `BottleneckXElastic`).
fn dla_block(
    config: &DlaConfig,
    c_in: usize,
    out: usize,
    stride: usize,
    level: usize,
    hw: [usize; 2],
) -> (u64, [usize; 2]) {
    let bottle = out * config.cardinality / 32;
    if config.elastic {
        let shape = TwoPathShape {
            c_in,
            width: bottle / 2,
            groups: config.cardinality / 2,
            out,
            stride,
            elastic: stride == 1 && level < 5,
            se: false,
            shortcut_conv: false,
        };
        two_path_block(&shape, hw)
    } else {
        bottleneck(c_in, bottle, config.cardinality, out, stride, hw)
    }
}

/// A DLA tree on `[c_in, h, w]`, as `models/dla.py` `Tree` runs (the max-pool and projection are
/// computed at every tree with a stride or a channel change, used or not).
#[allow(clippy::too_many_arguments)]
fn dla_tree(
    config: &DlaConfig,
    depth: usize,
    c_in: usize,
    out: usize,
    stride: usize,
    level_root: bool,
    root_dim: usize,
    level: usize,
    [h, w]: [usize; 2],
) -> (u64, [usize; 2]) {
    let mut root_dim = if root_dim == 0 { 2 * out } else { root_dim };
    if level_root {
        root_dim += c_in;
    }
    let mut flops = 0;
    let [bh, bw] = if stride > 1 {
        flops += per_element(c_in * h * w);
        [h / stride, w / stride]
    } else {
        [h, w]
    };
    if c_in != out {
        flops += conv(c_in, out, 1, 1, bh * bw, false) + batch_norm(out * bh * bw);
    }
    if depth == 1 {
        let (f1, hw1) = dla_block(config, c_in, out, stride, level, [h, w]);
        let (f2, [oh, ow]) = dla_block(config, out, out, 1, level, hw1);
        flops += f1 + f2;
        // The root: 1×1 conv over the concatenation, BN, ReLU.
        flops += conv(root_dim, out, 1, 1, oh * ow, false) + batch_norm(out * oh * ow);
        flops += per_element(out * oh * ow);
        (flops, [oh, ow])
    } else {
        let (f1, hw1) = dla_tree(
            config,
            depth - 1,
            c_in,
            out,
            stride,
            false,
            0,
            level,
            [h, w],
        );
        let (f2, hw2) = dla_tree(
            config,
            depth - 1,
            out,
            out,
            1,
            false,
            root_dim + out,
            level,
            hw1,
        );
        (flops + f1 + f2, hw2)
    }
}

/// The official counter's value for a DLA-X `config` on one `size × size` image.
pub fn dla_flops(config: &DlaConfig, size: usize) -> u64 {
    let c = config.channels;
    let area = size * size;
    // base_layer (7×7, stride 1), level0 (3×3), level1 (3×3, stride 2): conv, BN, ReLU.
    let mut flops =
        conv(3, c[0], 7, 1, area, false) + batch_norm(c[0] * area) + per_element(c[0] * area);
    flops +=
        conv(c[0], c[0], 3, 1, area, false) + batch_norm(c[0] * area) + per_element(c[0] * area);
    let side = out_side(size, 3, 2, 1);
    let a1 = side * side;
    flops += conv(c[0], c[1], 3, 1, a1, false) + batch_norm(c[1] * a1) + per_element(c[1] * a1);
    let mut hw = [side, side];
    for level in 2..6 {
        let (f, out) = dla_tree(
            config,
            config.levels[level],
            c[level - 1],
            c[level],
            2,
            level > 2,
            0,
            level,
            hw,
        );
        flops += f;
        hw = out;
    }
    // AvgPool2d(7) over the last map, the 1×1 conv classifier with bias.
    flops += per_element(c[5] * hw[0] * hw[1]);
    if let Some(classes) = config.num_classes {
        flops += conv(c[5], classes, 1, 1, 1, true);
    }
    flops
}

/// The official counter's value for a DenseNet-BC `config` on one `size × size` image
/// (`models/densenet.py`: the elastic layers' upsampling is functional and counts nothing; the
/// final ReLU and average are functional too; the classifier counts `in · out`).
pub fn densenet_flops(config: &DenseNetConfig, size: usize) -> u64 {
    let c0 = config.num_init_features;
    let side = out_side(size, 7, 2, 3);
    let mut flops = conv(3, c0, 7, 1, side * side, false);
    flops += batch_norm(c0 * side * side) + per_element(c0 * side * side) * 2; // ReLU, max-pool
    let side = out_side(side, 3, 2, 1);
    let (k, bottleneck) = (config.growth_rate, config.bn_size * config.growth_rate);
    let (mut channels, mut hw) = (c0, side * side);
    for (b, &layers) in config.block_config.iter().enumerate() {
        for _ in 0..layers {
            flops += batch_norm(channels * hw) + per_element(channels * hw); // norm1, relu1
            let width = if config.elastic {
                bottleneck / 2
            } else {
                bottleneck
            };
            let path = |positions: usize| {
                conv(channels, width, 1, 1, positions, false)
                    + batch_norm(width * positions)
                    + per_element(width * positions)
                    + conv(width, k, 3, 1, positions, false)
            };
            flops += path(hw);
            if config.elastic {
                if b < 3 {
                    flops += per_element(channels * hw); // the 2×2 average pool
                    flops += path(hw / 4);
                } else {
                    flops += path(hw);
                }
            }
            channels += k;
        }
        if b < 3 {
            let out = (channels as f64 * config.compression) as usize;
            flops += batch_norm(channels * hw) + per_element(channels * hw);
            flops += conv(channels, out, 1, 1, hw, false) + per_element(out * hw);
            channels = out;
            hw /= 4;
        }
    }
    flops += batch_norm(channels * hw);
    if let Some(classes) = config.num_classes {
        flops += (channels * classes) as u64;
    }
    flops
}
