//! CN-vMF's head against the spec's vectors (`compnet.md` §8.1–8.4; float64 NumPy transcriptions
//! and the official `ops_test.py`), f32 tolerance 1e-5 relative. The values are written as the spec
//! gives them (1/√2 and e among them).
#![allow(clippy::excessive_precision, clippy::approx_constant)]

use burn::{
    backend::Flex,
    tensor::{Int, Tensor, TensorData},
};
use compnet::{
    loss::{cluster_loss, released_terms},
    mixture::{crop_or_pad_as, normalise_over_kernels},
    score::{MapMode, class_probabilities, occluder_map, terms},
    vmf::{VmfKernels, vmf_activation},
};

type B = Flex;

fn tensor<const D: usize>(values: &[f32], shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn close_rel(got: &[f32], expected: &[f64], rel: f64) {
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for (g, e) in got.iter().zip(expected) {
        let tol = rel * e.abs().max(1e-9);
        assert!(
            ((*g as f64) - e).abs() <= tol.max(1e-7),
            "{got:?} vs {expected:?}"
        );
    }
}

#[test]
fn vmf_cosines_and_activations_spec_8_1() {
    // Features (D = 3, H = 1, W = 3): (1,0,0), (0,0,0), (1,1,0); raw kernels (1,0,0), (0,1,1).
    let features = tensor(&[1., 0., 1., 0., 0., 1., 0., 0., 0.], [1, 3, 1, 3]);
    let kernels = VmfKernels::<B>::from_rows(tensor(&[1., 0., 0., 0., 1., 1.], [2, 3]));
    let cos = kernels.cosine(features);
    close_rel(
        &values(cos.clone()),
        &[1.0, 0.0, 0.7071067812, 0.0, 0.0, 0.5],
        1e-5,
    );
    close_rel(
        &values(vmf_activation(cos.clone(), 2.0, 0.0)),
        &[7.3890560989, 0.0, 4.1132503788, 0.0, 0.0, 2.7182818285],
        1e-5,
    );
    close_rel(
        &values(vmf_activation(cos, 30.0, 0.0)),
        &[
            1.0686474582e13,
            0.0,
            1.6322143644e9,
            0.0,
            0.0,
            3.2690173725e6,
        ],
        1e-5,
    );
}

/// §8.2: v (K = 2, 1 × 2), C = 2, M = 2, two occluder models, occ = 0.6.
fn spec_8_2() -> compnet::score::Terms<B> {
    let v = tensor(&[4., 1., 1., 4.], [1, 2, 1, 2]);
    // Rows c0m0, c0m1, c1m0, c1m1; per row [k0 pos0, k0 pos1, k1 pos0, k1 pos1].
    let raw = tensor(
        &[
            0.6, 0.2, 0.2, 0.6, // c0m0
            0.5, 0.5, 0.5, 0.5, // c0m1
            0.2, 0.6, 0.6, 0.2, // c1m0
            0.4, 0.0, 0.0, 0.0, // c1m1
        ],
        [4, 2, 1, 2],
    );
    let mixtures = normalise_over_kernels(raw);
    close_rel(
        &values(mixtures.clone()),
        &[
            0.75, 0.25, 0.25, 0.75, 0.5, 0.5, 0.5, 0.5, 0.25, 0.75, 0.75, 0.25, 1.0, 0.0, 0.0, 0.0,
        ],
        1e-6,
    );
    let occluders = normalise_over_kernels(tensor(&[1., 1., 2., 0.5], [2, 2]));
    terms(v, mixtures, occluders, 0.6, 2)
}

#[test]
fn robust_scores_softmax_and_training_terms_spec_8_2() {
    let t = spec_8_2();
    close_rel(
        &values(t.fg.clone()),
        &[
            0.26236426454,
            0.26236426454,
            1.0e-10,
            1.0e-10,
            -0.3566749438,
            -0.3566749438,
            0.47000362931,
            -23.02585093,
        ],
        1e-5,
    );
    close_rel(
        &values(t.bg.clone()),
        &[0.4054651082, 0.4054651082, 0.587786665, 0.1823215569],
        1e-5,
    );
    close_rel(
        &values(t.pair_scores()),
        &[
            0.8109302163,
            0.8501509295,
            0.8109302163,
            0.7701082218,
            0.8109302163,
            0.7701082218,
            0.8754687375,
            0.7701082218,
        ],
        1e-5,
    );
    let scores = t.scores(false);
    close_rel(&values(scores.clone()), &[0.8501509295, 0.8754687375], 1e-5);
    close_rel(&values(t.scores(true)), &[0.9932517731, 0.9932517731], 1e-5);
    let ml = scores / 2.0;
    close_rel(&values(ml.clone()), &[0.4250754648, 0.4377343687], 1e-5);
    let p = class_probabilities(ml.clone());
    close_rel(&values(p.clone()), &[0.4936708861, 0.5063291139], 1e-5);
    let labels =
        Tensor::<B, 1, Int>::from_data(TensorData::new(vec![0i64], [1]), &Default::default());
    let (ce, mixture) = released_terms(p, ml, labels, 3.0);
    close_rel(&values(ce), &[0.699496323190978], 1e-5);
    close_rel(&values(mixture), &[-1.2752263943], 1e-5);
}

#[test]
fn occluder_maps_in_each_mode_spec_8_2() {
    let t = spec_8_2();
    close_rel(
        &occluder_map(&t, 0, 0, MapMode::MixtureBg),
        &[0.3254224004, 0.1431008436],
        1e-5,
    );
    // The released tiling visits only (m0, n0) and (m1, n1) when gcd(M, N) = 2 …
    close_rel(
        &occluder_map(&t, 0, 0, MapMode::OfficialTiling),
        &[0.1431008436, 0.1431008436],
        1e-5,
    );
    // … the default enumerates every pair and picks (m0, n1): bg[n1] − fg[c0m0].
    close_rel(
        &occluder_map(&t, 0, 0, MapMode::AllPairs),
        &[0.587786665 - 0.26236426454, 0.1823215569 - 0.26236426454],
        1e-5,
    );
}

#[test]
fn crop_or_pad_as_spec_8_3() {
    let ramp = |h: usize, w: usize| {
        let v: Vec<f32> = (0..h * w).map(|i| i as f32).collect();
        tensor(&v, [1, 1, h, w])
    };
    // (13, 24) → (8, 6): input[..., 2:10, 9:15].
    let out = crop_or_pad_as(ramp(13, 24), [8, 6], 0.0);
    assert_eq!(
        values(out),
        values(ramp(13, 24).slice([0..1, 0..1, 2..10, 9..15]))
    );
    // (7, 9) → (18, 19), pad 0.5: input at [5:12, 5:14], corner 0.5.
    let out = crop_or_pad_as(ramp(7, 9), [18, 19], 0.5);
    assert_eq!(
        values(out.clone().slice([0..1, 0..1, 5..12, 5..14])),
        values(ramp(7, 9))
    );
    assert_eq!(values(out.slice([0..1, 0..1, 0..1, 0..1])), [0.5]);
    // (20, 9) → (18, 19): out[..., :, 5:14] == input[..., 1:19, :], corner 0.5.
    let out = crop_or_pad_as(ramp(20, 9), [18, 19], 0.5);
    assert_eq!(
        values(out.clone().slice([0..1, 0..1, 0..18, 5..14])),
        values(ramp(20, 9).slice([0..1, 0..1, 1..19, 0..9]))
    );
    assert_eq!(values(out.slice([0..1, 0..1, 0..1, 0..1])), [0.5]);
}

#[test]
fn cluster_loss_spec_8_4_and_zero_features() {
    // F (D = 2, 1 × 2): (3, 4), (0, −2); μ = (1, 0), (0, 1) → ((1 − 0.8) + (1 − 0)) / 2 = 0.6.
    let features = tensor(&[3., 0., 4., -2.], [1, 2, 1, 2]);
    let kernels = tensor(&[1., 0., 0., 1.], [2, 2]);
    close_rel(
        &values(cluster_loss(features, kernels.clone())),
        &[0.6],
        1e-6,
    );
    // An all-zero (post-ReLU) feature contributes nothing instead of NaN.
    let with_zero = tensor(&[3., 0., 4., 0.], [1, 2, 1, 2]);
    let loss = values(cluster_loss(with_zero, kernels))[0];
    assert!((loss - 0.1).abs() < 1e-6, "{loss}");
}

#[test]
fn occluder_roc_rule_spec_8_7() {
    use compnet::roc::{RocPoint, auc, image_roc, tpr_at_fpr};
    let occ = [2.0, -1.0, 0.5, -3.0];
    let gt = [true, false, true, false];
    let at = |t: f64, hack: bool| {
        let p = image_roc(&occ, &gt, &[t], hack)[0];
        (p.fpr, p.tpr)
    };
    assert_eq!(at(-2.5, true), (0.0, 1.0 / 3.0));
    assert_eq!(at(-2.5, false), (0.0, 0.0));
    assert_eq!(at(-1.0, true), (0.0, 0.5));
    assert_eq!(at(0.0, true), (0.0, 1.0));
    assert_eq!(at(1.5, true), (0.5, 1.0));
    assert_eq!(at(3.5, true), (1.0, 1.0));
    // A perfect map: AUC 1, TPR 1 at FPR 0.2; chance-like diagonal points: AUC 0.5.
    let curve = image_roc(&occ, &gt, &compnet::roc::thresholds(), false);
    assert!((auc(&curve) - 1.0).abs() < 1e-12);
    assert_eq!(tpr_at_fpr(&curve, 0.2), 1.0);
    let diagonal = [0.25, 0.5, 0.75].map(|r| RocPoint {
        fpr: r,
        tpr: r,
        ..RocPoint::default()
    });
    assert!((auc(&diagonal) - 0.5).abs() < 1e-12);
}

#[test]
fn one_vmf_em_iteration_spec_8_5() {
    use compnet::vmfmm::{Vmfmm, normalise};
    // κ = 30, π₀ = (½, ½), μ₀ = (1, 0), (0, 1); features at 0°, 10°, 80°, 95° with norms 2, 1, 3, 1.
    let rows: Vec<Vec<f64>> = [(0.0f64, 2.0), (10.0, 1.0), (80.0, 3.0), (95.0, 1.0)]
        .iter()
        .map(|&(deg, r): &(f64, f64)| vec![r * deg.to_radians().cos(), r * deg.to_radians().sin()])
        .collect();
    let features: Vec<Vec<f64>> = rows.iter().map(|r| normalise(r)).collect();
    let mut model = Vmfmm {
        mu: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
        pi: vec![0.5, 0.5],
        kappa: 30.0,
        mllk: Vec::new(),
    };
    let (p, mllk) = model.e_step(&features);
    let expected = [
        [1.0, 9.3577633342e-14],
        [0.99999999997, 2.7011378153e-11],
        [2.7010939946e-11, 0.99999999997],
        [7.6775130278e-15, 1.0],
    ];
    for (row, want) in p.iter().zip(expected) {
        for (g, w) in row.iter().zip(want) {
            assert!((g - w).abs() <= 1e-9 * w.max(1e-12) + 1e-20, "{p:?}");
        }
    }
    assert!((mllk - 29.050408280804586).abs() < 1e-9, "{mllk}");
    model.m_step(&features, &p);
    assert!((model.pi[0] - 0.5).abs() < 1e-9 && (model.pi[1] - 0.5).abs() < 1e-9);
    let mu = [[0.9961937, 0.0871556335], [0.0436193872, 0.999047212]];
    for (g, w) in model.mu.iter().zip(mu) {
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() < 1e-7, "{:?}", model.mu);
        }
    }
}

#[test]
fn vmf_clustering_finds_separated_directions_deterministically() {
    use compnet::vmfmm::{Vmfmm, VmfmmConfig};
    // Three tight bundles of directions in 3-d.
    let rows: Vec<Vec<f64>> = (0..90)
        .map(|i| {
            let jitter = 0.02 * ((i * 7 % 11) as f64 - 5.0) / 5.0;
            match i % 3 {
                0 => vec![1.0, jitter, 0.0],
                1 => vec![jitter, 1.0, 0.0],
                _ => vec![0.0, jitter, 1.0],
            }
        })
        .collect();
    let config = VmfmmConfig {
        components: 3,
        ..VmfmmConfig::default()
    };
    let model = Vmfmm::fit(&rows, &config);
    for axis in 0..3 {
        assert!(
            model.mu.iter().any(|m| m[axis] > 0.99),
            "axis {axis} missing: {:?}",
            model.mu
        );
    }
    assert_eq!(model, Vmfmm::fit(&rows, &config));
    assert!(model.mllk.windows(2).all(|w| w[1] >= w[0] - 1e-9));
}

#[test]
fn mixture_ml_initialisation_spec_8_6() {
    use compnet::mixture_init::{
        em_step, first_m_step, log_likelihood, normalise_map, sample_counts,
    };
    // K = 2, 1 × 2 positions, kernel-major [k0 pos0, k0 pos1, k1 pos0, k1 pos1].
    let image0 = vec![3.0, 1.0, 1.0, 1.0];
    let image1 = vec![1.0, 0.0, 1.0, 0.0]; // pos1 padded
    let close = |got: &[f64], want: &[f64]| {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}");
        }
    };
    close(
        &normalise_map(&image0, 2),
        &[0.7498125469, 0.4997501249, 0.2499375156, 0.4997501249],
    );
    close(
        &normalise_map(&image1, 2),
        &[0.4997501249, 0.0, 0.4997501249, 0.0],
    );
    let maps = vec![image0, image1];
    close(&sample_counts(&maps), &[2.0, 1.0, 2.0, 1.0]);
    let alpha = first_m_step(&maps, 2);
    close(
        &alpha,
        &[0.624778212, 0.4997451275, 0.3748419461, 0.4997451275],
    );
    // E-step scores on the normalised maps.
    let normalised: Vec<Vec<f64>> = maps.iter().map(|m| normalise_map(m, 2)).collect();
    assert!((log_likelihood(&normalised[0], &alpha, 2) + 1.2701370744).abs() < 1e-8);
    assert!((log_likelihood(&normalised[1], &alpha, 2) + 23.7198778994).abs() < 1e-8);
    // One EM step with one mixture keeps every map in it and stays a distribution per position.
    let (assignment, updated) = em_step(&normalised, &[alpha], 2);
    assert_eq!(assignment, [0, 0]);
    assert!(updated[0].iter().all(|a| (0.0..=1.0).contains(a)));
}

#[test]
fn bernoulli_scores_and_the_dcnn_switch() {
    use compnet::bernoulli::{BernoulliModel, switch_predictions};
    // Values from tests/fixtures/bernoulli_reference.py (the spec's formula in float64 NumPy).
    let b = tensor(&[1., 0., 0., 1., 0., 0.], [1, 3, 2]);
    let alpha = [
        0.8f32, 0.1, 0.1, 0.7, 0.2,
        0.2, // class 0: [k0 p0, k0 p1, k1 p0, k1 p1, k2 p0, k2 p1]
        0.3, 0.5, 0.6, 0.5, 0.1, 0.5, // class 1 (p1 padded)
    ];
    let model = BernoulliModel::<B> {
        log_alpha: tensor(&alpha, [2, 3, 2]).log(),
        valid: tensor(&[1., 1., 1., 0.], [2, 2]),
        occluder: tensor(&[0.2, 0.3, 0.1], [3]),
        occ: 0.6,
        mixtures_per_class: 1,
        official_padding: false,
    };
    let (fg, bg) = model.terms(b.clone());
    close_rel(
        &values(fg),
        &[-1.46793835, -1.60146974, -3.14191478, -2.04233722],
        1e-5,
    );
    close_rel(&values(bg), &[-2.57985278, -2.04233722], 1e-5);
    let scores = model.scores(b.clone());
    close_rel(&values(scores.clone()), &[-3.06940809, -4.62218999], 1e-5);
    // The released padding value (log(1/(1 − 1e-3)) > 0) makes the padded term NaN.
    let official = BernoulliModel {
        official_padding: true,
        log_alpha: tensor(&alpha, [2, 3, 2]).log().slice_assign(
            [1..2, 0..3, 1..2],
            Tensor::full([1, 3, 1], (1.0f32 / (1.0 - 1e-3)).ln(), &Default::default()),
        ),
        ..model
    };
    assert!(values(official.scores(b))[1].is_nan());
    // Confident DCNN answers stay; the uncertain one goes to the compositional model.
    let logits = tensor(&[5., 0., 0.2, 0.1], [2, 2]);
    let composition = tensor(&[-3.0, -4.0, -5.0, -1.0], [2, 2]);
    let (predictions, routed) = switch_predictions(logits, composition, 0.9);
    assert_eq!((predictions, routed), (vec![0, 1], 0.5));
}

#[test]
fn occluder_models_from_background_activations() {
    use compnet::occluder::{
        BackgroundActivations, OccluderConfig, normalised_mean, occluder_models,
    };
    // `_white`: the mean of per-position L1-normalised vectors; an all-zero position is left out.
    let white = vec![
        vec![2.0, 2.0, 0.0],
        vec![0.0, 0.0, 0.0],
        vec![0.0, 1.0, 3.0],
    ];
    let mean = normalised_mean(&white).unwrap();
    let expected = [0.25, 0.375, 0.375];
    for (m, e) in mean.iter().zip(expected) {
        assert!((m - e).abs() < 1e-12, "{mean:?}");
    }
    assert!(normalised_mean(&[vec![0.0, 0.0]]).is_none());
    // `general`: two well-separated directions with large raw activations → two raw-mean models
    // (the released code keeps one row).
    let general: Vec<Vec<f64>> = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                vec![1e6 * (1.0 + 0.01 * i as f64), 10.0, 0.0]
            } else {
                vec![0.0, 10.0, 1e6]
            }
        })
        .collect();
    let activations = BackgroundActivations {
        white,
        noise: Vec::new(),
        general,
    };
    let config = OccluderConfig::default();
    let models = occluder_models(&activations, &config);
    // white + the non-empty general clusters (no noise images).
    assert!(models.len() >= 3, "{models:?}");
    assert!(models[1..].iter().any(|m| m[0] > 1e5) && models[1..].iter().any(|m| m[2] > 1e5));
    let single = occluder_models(
        &activations,
        &OccluderConfig {
            official_single_general_row: true,
            ..config
        },
    );
    assert_eq!(single.len(), 2);
}

#[test]
fn binary_encodings_thresholds_and_image_distances() {
    use compnet::binary::{BinaryMap, class_threshold, miss_rate, pairwise_distance};
    // K = 2, 1 × 3 maps. a: kernel 0 on at x = 0, kernel 1 on at x = 2.
    let a = BinaryMap {
        kernels: 2,
        height: 1,
        width: 3,
        on: vec![true, false, false, false, false, true],
    };
    // b: kernel 0 on at x = 1 (a's x = 0 is a neighbour: found), kernel 1 on at x = 0 (a's
    // kernel 1 is on only at x = 2: missed).
    let b = BinaryMap {
        kernels: 2,
        height: 1,
        width: 3,
        on: vec![false, true, false, true, false, false],
    };
    assert_eq!(miss_rate(&a, &b), 0.5);
    assert_eq!(miss_rate(&b, &a), 0.5);
    assert_eq!(pairwise_distance(&a, &b), 0.5);
    assert_eq!(pairwise_distance(&a, &a), 0.0);
    // A map with nothing on misses nothing.
    let empty = BinaryMap {
        on: vec![false; 6],
        ..a.clone()
    };
    assert_eq!(miss_rate(&a, &empty), 0.0);
    // Alignment: a 1 × 1 map padded to 1 × 3 sits in the middle.
    let dot = BinaryMap {
        kernels: 1,
        height: 1,
        width: 1,
        on: vec![true],
    };
    assert_eq!(dot.aligned_to(1, 3).on, [false, true, false]);
    // Threshold: distances 0.1 for 3 of 4 kernels at every position → on-count 3 from t = 0.15.
    let distances = vec![0.1, 0.1, 0.1, 0.9];
    assert!((class_threshold(&[(distances, [4, 1, 1])]) - 0.15).abs() < 1e-12);
    // Never in (2, 15) → the fallback.
    assert_eq!(class_threshold(&[(vec![0.5], [1, 1, 1])]), 0.45);
}
