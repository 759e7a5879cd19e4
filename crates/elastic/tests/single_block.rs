//! §8.3 in float64: one two-path block (inplanes 16, planes 4, cardinality 4, stride 1, BN in eval
//! mode at its initial state) with the spec's deterministic weights and input, elastic and not,
//! against the values the spec computed with the official code. Its own test binary: the CPU
//! device is switched to f64 before any tensor exists.

use burn::{
    backend::{Flex, flex::FlexDevice},
    module::Param,
    tensor::{DType, Tensor, TensorData},
};
use core_nets::{ResNetConfig, ResidualBlock, TwoPathBottleneck};

fn f64_device() -> FlexDevice {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        burn::tensor::set_default_dtypes::<Flex>(&FlexDevice, DType::F64, DType::I32)
            .expect("the f64 default is set before any tensor is created");
    });
    FlexDevice
}

fn values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// `0.5·sin(0.7·k + i)` over the weight's row-major index k; `i` = its index in PyTorch's
/// parameter list.
fn fill(param: &mut Param<Tensor<Flex, 4>>, i: usize) {
    let shape: [usize; 4] = param.val().dims();
    let n: usize = shape.iter().product();
    let data: Vec<f64> = (0..n)
        .map(|k| 0.5 * (0.7 * k as f64 + i as f64).sin())
        .collect();
    *param = Param::from_tensor(Tensor::from_data(
        TensorData::new(data, shape),
        &f64_device(),
    ));
}

fn block(elastic: bool) -> TwoPathBottleneck<Flex> {
    let device = f64_device();
    // The first block of a two-path net with a 16-channel stem: 16 → 4·4 channels, stride 1.
    let config = ResNetConfig {
        layers: [1, 1, 1, 1],
        planes: [4, 8, 16, 32],
        stem_width: 16,
        num_classes: None,
        ..elastic::models::two_path_resnext([1, 1, 1, 1], elastic, false)
    };
    let config = ResNetConfig {
        groups: 4,
        ..config
    };
    let ResidualBlock::TwoPath(mut b) = config.init::<Flex>(&device).layer1.remove(0) else {
        panic!("a two-path block")
    };
    assert!(b.downsample.is_none() && b.elastic == elastic);
    for (conv, i) in [
        (&mut b.conv1_d.weight, 0),
        (&mut b.conv2_d.weight, 3),
        (&mut b.conv3_d.weight, 6),
        (&mut b.conv1.weight, 7),
        (&mut b.conv2.weight, 10),
        (&mut b.conv3.weight, 13),
    ] {
        fill(conv, i);
    }
    b
}

fn input() -> Tensor<Flex, 4> {
    let data: Vec<f64> = (0..16 * 25).map(|k| (0.1 * k as f64).sin()).collect();
    Tensor::from_data(TensorData::new(data, [1, 16, 5, 5]), &f64_device())
}

fn channel_sums(t: &[f64]) -> Vec<f64> {
    t.chunks(25).map(|c| c.iter().sum()).collect()
}

fn close(got: &[f64], expected: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}");
    for (g, e) in got.iter().zip(expected) {
        assert!(
            (g - e).abs() <= tolerance,
            "{what}: {got:?}\nexpected {expected:?}"
        );
    }
}

struct Expected {
    sum: f64,
    mean_abs: f64,
    channel0: [f64; 25],
    merged_channel0: Option<[f64; 25]>,
    sums: [f64; 16],
    merged_sums: [f64; 16],
}

fn check(elastic: bool, e: Expected) {
    let b = block(elastic);
    let y = values(b.forward(input()));
    let merged = values(b.forward_merged(input()));
    let sum: f64 = y.iter().sum();
    let mean_abs = y.iter().map(|v| v.abs()).sum::<f64>() / y.len() as f64;
    assert!((sum - e.sum).abs() < 1e-9 * e.sum.abs(), "sum {sum}");
    assert!((mean_abs - e.mean_abs).abs() < 1e-10, "mean |y| {mean_abs}");
    // The spec prints eight decimals: 1e-8.
    close(&y[..25], &e.channel0, 1e-8, "output channel 0");
    if let Some(m) = e.merged_channel0 {
        close(&merged[..25], &m, 1e-8, "pre-bn3 channel 0");
    }
    close(&channel_sums(&y), &e.sums, 1e-8, "output channel sums");
    close(
        &channel_sums(&merged),
        &e.merged_sums,
        1e-8,
        "pre-bn3 channel sums",
    );
    // Consistency: y = relu(merged / sqrt(1 + 1e-5) + x), the identity shortcut.
    let x = values(input());
    for ((y, m), x) in y.iter().zip(&merged).zip(&x) {
        let expected = (m / (1.0f64 + 1e-5).sqrt() + x).max(0.0);
        assert!((y - expected).abs() < 1e-12);
    }
}

#[test]
fn elastic_block_matches_the_official_values() {
    check(
        true,
        Expected {
            sum: 132.96622995623,
            mean_abs: 0.33241557489,
            channel0: [
                0.56514454, 0.75535919, 0.9613153, 1.06642503, 0.99404192, 1.01735994, 1.24787644,
                1.40608426, 1.45428876, 1.33563991, 1.33083756, 1.45093976, 1.46877746, 1.42202682,
                1.27716319, 1.30860571, 1.3278397, 1.28036716, 1.19647319, 1.06716437, 0.98664952,
                0.9369377, 0.8749772, 0.79569444, 0.69971679,
            ],
            merged_channel0: Some([
                0.56514737, 0.65552905, 0.76264978, 0.77090868, 0.6046266, 0.53793709, 0.68323738,
                0.76187038, 0.73693636, 0.55231576, 0.48936902, 0.5597352, 0.53674105, 0.45847093,
                0.29171492, 0.31111228, 0.32826774, 0.28870379, 0.22262667, 0.12086489, 0.07735248,
                0.0737287, 0.06648113, 0.04998947, 0.02425373,
            ]),
            sums: [
                28.22770585,
                0.10877584,
                9.36762824,
                7.91158915,
                0.0,
                17.75625125,
                0.62710859,
                7.15587818,
                5.51060336,
                0.33520402,
                9.85631389,
                9.14336858,
                4.02075588,
                18.76912796,
                0.0,
                14.17591917,
            ],
            merged_sums: [
                10.53057045,
                -10.22160894,
                8.73148616,
                -6.23239371,
                3.01311502,
                0.55434513,
                -4.05774776,
                7.09225605,
                -9.30721644,
                10.44667846,
                -10.37897122,
                9.11191866,
                -6.79193543,
                3.68710794,
                -0.15621552,
                -3.39272844,
            ],
        },
    );
}

#[test]
fn plain_two_path_block_matches_the_official_values() {
    check(
        false,
        Expected {
            sum: 132.44047703561,
            mean_abs: 0.33110119259,
            channel0: [
                0.31273551, 0.55527689, 0.70243277, 0.86128575, 0.77943645, 0.91825303, 1.20790849,
                1.31389747, 1.38491169, 1.21105527, 1.27642868, 1.4396815, 1.41355925, 1.36767374,
                1.19716751, 1.18578733, 1.17431154, 1.09080788, 1.04650552, 0.99440356, 0.90929743,
                0.86320937, 0.8084964, 0.74570521, 0.67546318,
            ],
            merged_channel0: None,
            sums: [
                25.43569141,
                0.44839157,
                8.28417128,
                8.93552893,
                0.0,
                17.09097532,
                1.30748973,
                6.21012211,
                7.89808993,
                0.0,
                11.1287437,
                7.87493651,
                4.39483631,
                18.3327744,
                0.0,
                15.09872584,
            ],
            merged_sums: [
                7.73854205,
                -7.68676873,
                6.7467484,
                -5.02710542,
                2.72655366,
                -0.11093412,
                -2.51750444,
                4.85503197,
                -6.63153474,
                7.6417284,
                -7.7688797,
                6.99829562,
                -5.41902127,
                3.21355019,
                -0.63673629,
                -2.01365587,
            ],
        },
    );
}
