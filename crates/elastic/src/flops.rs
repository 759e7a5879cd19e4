//! The official repository's FLOP counter (`elastic.md` §2.4; `allenai/elastic` `utils.py`, as
//! `classify.py` calls it on one 224 × 224 image), evaluated on the architecture rather than by
//! hooks. Its rules: a convolution counts `k² · C_in · C_out / groups` multiply-adds per output
//! position (plus `C_out` per position for a bias), a linear layer `in · out`; ReLU, max- and
//! average-pooling count one per *input* element, each call (the block's one ReLU module runs five
//! times); an affine BatchNorm two per input element; every elastic upsampling adds 8 per element
//! of its ×2 output (before the crop). Adaptive average pooling (the head's, SE's squeeze), the
//! sigmoid, the residual and path sums count nothing. Reported as GFLOPs = count / 10⁹.

use core_nets::{BlockKind, ResNetConfig};

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

/// One two-path bottleneck on a `[c_in, h, w]` input; returns its count and output side.
fn two_path_block(
    c_in: usize,
    planes: usize,
    cardinality: usize,
    stride: usize,
    [h, w]: [usize; 2],
    elastic: bool,
    se: bool,
) -> (u64, [usize; 2]) {
    let out = planes * 4;
    let groups = cardinality / 2;
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
        let mut f = conv(c_in, planes, 1, 1, ph * pw, false);
        f += batch_norm(planes * ph * pw) + per_element(planes * ph * pw);
        let [oh, ow] = [out_side(ph, 3, stride, 1), out_side(pw, 3, stride, 1)];
        f += conv(planes, planes, 3, groups, oh * ow, false);
        f += batch_norm(planes * oh * ow) + per_element(planes * oh * ow);
        f += conv(planes, out, 1, 1, oh * ow, false);
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
    if stride != 1 || c_in != out {
        flops += conv(c_in, out, 1, 1, oh * ow, false) + batch_norm(merged);
    }
    flops += per_element(merged); // the final ReLU
    (flops, [oh, ow])
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
            let elastic = config.elastic && stride == 1 && stage < 3;
            let (f, out) =
                two_path_block(c_in, planes, config.groups, stride, hw, elastic, config.se);
            flops += f;
            (c_in, hw) = (planes * 4, out);
        }
    }
    if let Some(classes) = config.num_classes {
        flops += (c_in * classes) as u64;
    }
    flops
}

/// [`resnext_flops`] in GFLOPs.
pub fn resnext_gflops(config: &ResNetConfig, size: usize) -> f64 {
    resnext_flops(config, size) as f64 / 1e9
}
