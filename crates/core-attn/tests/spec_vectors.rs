//! The reference vectors of `axial-deeplab.md` §8.2–8.4 and §8.6, in float64 at the spec's
//! tolerance (1e-6 absolute). Every batch norm is in evaluation mode with mean 0, variance 1,
//! γ 1, β 0 and eps 0, as the spec computed them. Its own test binary: the CPU device is switched
//! to f64 before any tensor exists.

use burn::{
    backend::{Flex, flex::FlexDevice},
    module::Param,
    tensor::{DType, Tensor, TensorData},
};
use core_attn::{AxialAttention, AxialAttentionConfig, Axis, RpeConvention, Span};

fn device() -> FlexDevice {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        burn::tensor::set_default_dtypes::<Flex>(&FlexDevice, DType::F64, DType::I32)
            .expect("the f64 default is set before any tensor is created");
    });
    FlexDevice
}

fn tensor<const D: usize>(values: &[f64], shape: [usize; D]) -> Tensor<Flex, D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &device())
}

fn values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

fn assert_close(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() < 1e-6, "{what}[{i}]: {a} vs {e}\n{actual:?}");
    }
}

/// The §8.3 layer: 2 → 4 channels, 2 heads, K = L = 3, with the spec's weights.
fn spec_layer(axis: Axis, convention: RpeConvention) -> AxialAttention<Flex> {
    let mut layer = AxialAttentionConfig::new(2, 4, Span::Global { size: 3 }, axis)
        .with_heads(2)
        .with_convention(convention)
        .with_bn_eps(0.0)
        .init::<Flex>(&device());
    #[rustfmt::skip]
    let qkv = [
        1.0, 0.0,   0.0, 1.0,   1.0, 1.0,   1.0, -1.0, // head 0: q, k, v0, v1
        0.5, 0.5,   1.0, -1.0,  0.0, 1.0,   2.0, 0.0,  // head 1
    ];
    layer.qkv_transform.weight = Param::from_tensor(tensor(&qkv, [8, 2, 1]));
    #[rustfmt::skip]
    let relative = [
        0.1, 0.2, 0.3, 0.4, 0.5,      // r^q
        -0.2, -0.1, 0.0, 0.1, 0.2,    // r^k
        0.0, 1.0, 2.0, 3.0, 4.0,      // r^v0
        1.0, -1.0, 1.0, -1.0, 1.0,    // r^v1
    ];
    layer.relative = Param::from_tensor(tensor(&relative, [4, 5]));
    layer
}

const INPUT: [f64; 6] = [1.0, 0.0, -1.0, 0.5, 1.0, 0.0];

#[rustfmt::skip]
const AXPT_OUT: [f64; 12] = [
    2.003257, 2.466949, 2.671251,
    -0.571468, -0.838842, 0.040905,
    2.028270, 2.833342, 3.258974,
    1.664339, 0.134468, -0.365481,
];

#[rustfmt::skip]
const DL2_OUT: [f64; 12] = [
    3.669518, 2.5, 1.344932,
    -0.673181, -0.838842, 0.132333,
    3.077182, 2.256922, 1.731019,
    1.460848, 0.015996, -0.282717,
];

#[test]
fn full_layer_forward_matches_both_conventions() {
    // §8.3: one column, height axis: input [N=1, C=2, H=3, W=1].
    let x = tensor(&INPUT, [2, 3]).reshape([1, 2, 3, 1]);
    let axpt = spec_layer(Axis::Height, RpeConvention::Axpt).forward(x.clone());
    assert_eq!(axpt.dims(), [1, 4, 3, 1]);
    assert_close(&values(axpt), &AXPT_OUT, "AXPT");
    let dl2 = spec_layer(Axis::Height, RpeConvention::Dl2).forward(x.clone());
    assert_close(&values(dl2), &DL2_OUT, "DL2");
    // The same input along W gives the same output.
    let along_w = spec_layer(Axis::Width, RpeConvention::Axpt).forward(x.reshape([1, 2, 1, 3]));
    assert_close(&values(along_w), &AXPT_OUT, "width axis");
}

#[test]
fn reversed_tables_turn_one_convention_into_the_other() {
    // §8.3 equivalence: reversing r^q and r^v along the offset axis under DL2 gives AXPT.
    let mut layer = spec_layer(Axis::Height, RpeConvention::Dl2);
    let table = layer.relative.val();
    let reversed = table.clone().flip([1]);
    let rows = |t: Tensor<Flex, 2>, from, len| t.narrow(0, from, len);
    let mixed = Tensor::cat(
        vec![
            rows(reversed.clone(), 0, 1),
            rows(table, 1, 1),
            rows(reversed, 2, 2),
        ],
        0,
    );
    layer.relative = Param::from_tensor(mixed);
    let x = tensor(&INPUT, [2, 3]).reshape([1, 2, 3, 1]);
    assert_close(&values(layer.forward(x)), &AXPT_OUT, "reversed DL2");
}

#[test]
fn output_norm_channels_are_interleaved_content_then_position() {
    // §8.4: γ of bn_output selects sv (even channels), sve (odd channels) or their sum.
    let sv: [f64; 12] = [
        0.843204, 0.483474, -0.014174, -0.523099, -0.516526, -0.614976, 0.514572, 0.517509,
        0.510515, 1.027397, 0.631666, -0.503081,
    ];
    let sve: [f64; 12] = [
        1.160053, 1.983474, 2.685425, -0.048369, -0.322316, 0.655881, 1.513699, 2.315833, 2.748459,
        0.636941, -0.497198, 0.137600,
    ];
    let run = |gamma: [f64; 8]| {
        let mut layer = spec_layer(Axis::Height, RpeConvention::Axpt);
        layer.bn_output.weight = Param::from_tensor(tensor(&gamma, [8]));
        values(layer.forward(tensor(&INPUT, [2, 3]).reshape([1, 2, 3, 1])))
    };
    assert_close(&run([1., 0., 1., 0., 1., 0., 1., 0.]), &sv, "content");
    assert_close(&run([0., 1., 0., 1., 0., 1., 0., 1.]), &sve, "positional");
    let first = run([1., 1., 0., 0., 0., 0., 0., 0.]);
    let sum: Vec<f64> = (0..3).map(|i| sv[i] + sve[i]).collect();
    assert_close(&first[..3], &sum, "channel 0 = sv + sve");
    assert_close(&first[3..], &[0.0; 9], "other channels off");
}

#[test]
fn zero_projections_attend_uniformly_to_the_value_table() {
    // §8.2: q, k, v all zero → out[g·gp + c, i] = mean_j r^v[c, idx(i, j)].
    for (convention, rv, expected) in [
        (RpeConvention::Axpt, [0., 1., 2., 3., 4.], [1.0, 2.0, 3.0]),
        (RpeConvention::Dl2, [0., 1., 2., 3., 4.], [3.0, 2.0, 1.0]),
        (
            RpeConvention::Axpt,
            [1., -1., 1., -1., 1.],
            [1. / 3., -1. / 3., 1. / 3.],
        ),
        (
            RpeConvention::Dl2,
            [1., -1., 1., -1., 1.],
            [1. / 3., -1. / 3., 1. / 3.],
        ),
    ] {
        let mut layer = spec_layer(Axis::Height, convention);
        layer.qkv_transform.weight = Param::from_tensor(tensor(&[0.0; 16], [8, 2, 1]));
        let mut table = vec![0.0; 10];
        table.extend(rv);
        table.extend(rv);
        layer.relative = Param::from_tensor(tensor(&table, [4, 5]));
        let out = values(layer.forward(tensor(&INPUT, [2, 3]).reshape([1, 2, 3, 1])));
        for channel in 0..4 {
            assert_close(
                &out[channel * 3..channel * 3 + 3],
                &expected,
                "uniform attention",
            );
        }
    }
}

#[test]
fn similarity_norm_offsets_cancel_in_the_softmax() {
    // §8.6: a constant added per (term, head) to bn_similarity's running mean or bias changes nothing.
    let x = tensor(&INPUT, [2, 3]).reshape([1, 2, 3, 1]);
    let base = values(spec_layer(Axis::Height, RpeConvention::Axpt).forward(x.clone()));
    let mut layer = spec_layer(Axis::Height, RpeConvention::Axpt);
    let shift = tensor(&[0.3, -1.2, 2.0, 0.7, -0.4, 5.0], [6]);
    layer.bn_similarity.bias = Param::from_tensor(shift.clone());
    layer.bn_similarity.running_mean = burn::module::RunningState::new(shift.mul_scalar(-2.0));
    let shifted = values(layer.forward(x));
    for (a, b) in base.iter().zip(&shifted) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}
