//! SAKE's network and loss against the spec's vectors (`sake.md` §8.1, §8.2, §8.5), the exact
//! sizes of §3, and PyTorch: a tiny CSE-ResNet in the released checkpoint layout and a tiny
//! SE-ResNet in Cadene's ImageNet layout, both written by the committed
//! `tests/fixtures/make_sake_checkpoint.py`.

// The spec's vectors are written as the spec gives them (more digits than f32 holds).
#![allow(clippy::excessive_precision)]

use std::path::{Path, PathBuf};

use burn::{
    backend::{Autodiff, Flex},
    module::{AutodiffModule, Param},
    nn::Linear,
    tensor::{Tensor, TensorData, Tolerance},
};
use burn_store::ModuleSnapshot;
use core_nets::{ResNetConfig, SeModule, count_parameters};
use sake::{
    SakeLossConfig, SakeModelConfig, knowledge_target,
    loss::validation_kd,
    official::{load_imagenet_teacher, load_sake_checkpoint},
    soft_cross_entropy, svd_initialisation, teacher_logits,
};

type B = Flex;

fn tensor<const D: usize>(values: &[f32], shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
}

/// A linear layer from PyTorch's `[out, in]` weight.
fn linear(weight: &[f32], out: usize, inputs: usize, bias: &[f32]) -> Linear<B> {
    Linear {
        weight: Param::from_tensor(tensor(weight, [out, inputs]).transpose()),
        bias: Some(Param::from_tensor(tensor(bias, [out]))),
    }
}

fn close(got: Tensor<B, 2>, expected: &[f32], tolerance: f32) {
    let got: Vec<f32> = got.into_data().iter::<f32>().collect();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() <= tolerance, "{got:?} vs {expected:?}");
    }
}

#[test]
fn the_conditional_se_module_matches_spec_8_1() {
    let se = SeModule {
        fc1: linear(
            &[0.5, -0.5, 1., 0., 0.25, 0.25, 0.25, 0.25],
            2,
            4,
            &[0., -0.5],
        ),
        fc2: linear(
            &[1., 0., 2., 0., 1., -2., 0.5, 0.5, 0., -1., 1., 1.],
            4,
            3,
            &[0., 0.1, -0.1, 0.],
        ),
    };
    assert_eq!(se.condition_size(), 1);
    let s = [1., 2., 3., 4.];
    let x = tensor(&[s, s].concat(), [2, 4, 1, 1]);
    let y = tensor(&[0., 1.], [2, 1]);
    let out = se.forward(x.clone(), Some(y.clone())).reshape([2, 4]);
    close(
        out,
        &[
            0.92414182,
            1.7818063576,
            2.6870063306,
            1.5101626752, // y = 0
            0.9890130574,
            1.049958375,
            2.6870063306,
            2.4898373248, // y = 1
        ],
        1e-5,
    );
    // With a zero domain column both domains give the plain SE-ResNet's output.
    let plain = SeModule {
        fc1: se.fc1.clone(),
        fc2: linear(
            &[1., 0., 0., 1., 0.5, 0.5, -1., 1.],
            4,
            2,
            &[0., 0.1, -0.1, 0.],
        ),
    };
    let reference = plain.forward(x.clone(), None).reshape([2, 4]);
    let converted = plain.conditioned(1);
    let both = converted.forward(x, Some(y)).reshape([2, 4]);
    let r: Vec<f32> = reference.into_data().iter::<f32>().collect();
    close(both, &r, 1e-6);
}

#[test]
fn soft_cross_entropy_matches_spec_8_2() {
    let config = SakeLossConfig::default();
    let student = tensor(&[2., 0., -1., 0.5, 0.5, 0.], [2, 3]);
    let teacher = tensor(&[1., 1., 0., 3., 0., 0.], [2, 3]);
    let relations = tensor(&[0., 1., 0.25, 1. / 3., 0., 1.], [2, 3]);
    let target = knowledge_target(teacher.clone(), relations, &config);
    close(
        target.clone(),
        &[
            0.3641143164,
            0.491502917,
            0.1443827666,
            0.904274198,
            0.0407368314,
            0.0549889706,
        ],
        1e-6,
    );
    // Only the photo (tag 1) counts, divided by one photo.
    let masked = soft_cross_entropy(student.clone(), target, tensor(&[0., 1.], [2]));
    let masked = masked.into_scalar();
    assert!((masked - 0.985_514_6).abs() < 1e-5, "{masked}");
    let logged = validation_kd(student, teacher).into_scalar();
    assert!((logged - 1.230_615_1).abs() < 1e-5, "{logged}");
}

#[test]
fn the_svd_heads_are_the_best_rank_d_approximation_spec_8_5() {
    let w = [2., 0., 0., 0., 1., 0., 0., 0., 0.5, 1., 1., 0.];
    let heads = svd_initialisation(&w, 4, 3, 2);
    // last [4, 2] · second_last [2, 3].
    let product: Vec<f32> = (0..4)
        .flat_map(|i| (0..3).map(move |j| (i, j)))
        .map(|(i, j)| {
            (0..2)
                .map(|k| heads.last[i * 2 + k] * heads.second_last[k * 3 + j])
                .sum()
        })
        .collect();
    let expected = [2., 0., 0., 0., 1., 0., 0., 0., 0., 1., 1., 0.];
    for (p, e) in product.iter().zip(expected) {
        assert!((p - e).abs() < 1e-5, "{product:?}");
    }
    let residual: f32 = w
        .iter()
        .zip(&product)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f32>()
        .sqrt();
    assert!((residual - 0.5).abs() < 1e-5, "‖W − product‖ = {residual}");
    // The student's first layers: trunk of the teacher, hashing product = rank-D teacher head.
    let device = Default::default();
    let config = tiny(10, 5, 10);
    let teacher = config.init_teacher::<B>(&device);
    let x = Tensor::<B, 4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device);
    let y = tensor(&[0., 1.], [2, 1]);
    // (Computed before the teacher moves: a module cloned before its lazily initialised
    // parameters are first read gets fresh random values.)
    let pooled = teacher.forward_pooled_conditioned(x.clone(), Some(y.clone()));
    let exact = pooled.matmul(teacher.fc.as_ref().unwrap().weight.val());
    let student = sake::SakeNet::from_teacher(&teacher, &config, &device);
    let out = student.forward(x, y);
    // logits_kd − biases = pooled · (rank-D approximation of W)ᵀ; with D = 10 = rank W nothing is
    // lost but the teacher's bias, so logits_kd − last.bias − second_last.bias·last = pooled·Wᵀ.
    let via_heads = out.logits_kd
        - student.last_linear.bias.unwrap().val().unsqueeze()
        - student
            .last_linear
            .weight
            .val()
            .transpose()
            .matmul(
                student
                    .second_last_linear
                    .bias
                    .unwrap()
                    .val()
                    .unsqueeze_dim(1),
            )
            .transpose();
    via_heads
        .into_data()
        .assert_approx_eq::<f32>(&exact.into_data(), Tolerance::absolute(1e-4));
}

#[test]
fn parameter_and_state_dict_counts_equal_the_official_models() {
    // sake.md §3 (exact, official code) and resnet-family.md §3.1.
    let device = Default::default();
    let count = |config: &SakeModelConfig| count_parameters::<B, _>(&config.init::<B>(&device));
    let tu = SakeModelConfig::default();
    assert_eq!(count(&tu), 26_264_564);
    let sketchy = SakeModelConfig {
        num_classes: 100,
        ..tu.clone()
    };
    assert_eq!(count(&sketchy), 26_256_764);
    assert_eq!(
        count(&SakeModelConfig {
            hashing_dim: 512,
            ..sketchy
        }),
        27_667_516
    );
    let teacher = tu.init_teacher::<B>(&device);
    assert_eq!(count_parameters::<B, _>(&teacher), 28_103_128);
    let plain = ResNetConfig::se_resnet50().init::<B>(&device);
    assert_eq!(count_parameters::<B, _>(&plain), 28_088_024);
    // state_dict entries: our tensors plus PyTorch's 53 `num_batches_tracked` counters.
    let batch_norms = 1 + 16 * 3 + 4;
    assert_eq!(teacher.collect(None, None, false).len() + batch_norms, 384);
    assert_eq!(
        tu.init::<B>(&device).collect(None, None, false).len() + batch_norms,
        388
    );
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(key: &str) -> TensorData {
    core_nets::read_safetensors_tensor(&fixture("sake_tiny.safetensors"), key).unwrap()
}

/// The fixture's network: layers [2, 1, 1, 1], planes [4, 8, 8, 16], stem 8.
fn tiny(hashing_dim: usize, num_classes: usize, teacher_classes: usize) -> SakeModelConfig {
    SakeModelConfig {
        backbone: ResNetConfig {
            layers: [2, 1, 1, 1],
            planes: [4, 8, 8, 16],
            stem_width: 8,
            ..ResNetConfig::cse_resnet50()
        },
        hashing_dim,
        num_classes,
        teacher_classes,
        ems: false,
    }
}

fn approx(got: TensorData, key: &str, tolerance: f32) {
    got.assert_approx_eq::<f32>(&reference(key), Tolerance::absolute(tolerance));
}

#[test]
fn a_released_layout_sake_checkpoint_matches_pytorch() {
    let device = Default::default();
    let config = tiny(6, 5, 10);
    let (model, report) =
        load_sake_checkpoint::<Autodiff<B>>(&config, &fixture("sake_tiny.pth.tar"), &device)
            .unwrap();
    assert_eq!(report.model_entry.as_deref(), Some("state_dict"));
    let x = Tensor::<Autodiff<B>, 4>::from_data(reference("x"), &device);
    let y = Tensor::<Autodiff<B>, 2>::from_data(reference("y"), &device);
    // Eval mode (running statistics).
    let eval = model.valid().forward(x.clone().inner(), y.clone().inner());
    approx(eval.logits.into_data(), "eval_cls", 1e-4);
    approx(eval.logits_kd.clone().into_data(), "eval_kd", 1e-4);
    // Training mode (batch statistics) and the input gradient.
    let x = x.require_grad();
    let train = model.forward(x.clone(), y);
    approx(train.logits.clone().into_data(), "train_cls", 1e-4);
    approx(train.logits_kd.clone().into_data(), "train_kd", 1e-4);
    let w_cls = Tensor::<Autodiff<B>, 2>::from_data(reference("w_cls"), &device);
    let w_kd = Tensor::<Autodiff<B>, 2>::from_data(reference("w_kd"), &device);
    let objective = (train.logits * w_cls).sum() + (train.logits_kd * w_kd).sum();
    let grads = objective.backward();
    approx(x.grad(&grads).unwrap().into_data(), "grad_x", 1e-4);
    // Knowledge preservation on the fixture's teacher logits and relation rows.
    let teacher = Tensor::<B, 2>::from_data(reference("teacher"), &device);
    let cid = Tensor::<B, 2>::from_data(reference("cid"), &device);
    let y: Tensor<B, 1> = Tensor::<B, 2>::from_data(reference("y"), &device).reshape([2]);
    let target = knowledge_target(teacher, cid, &SakeLossConfig::default());
    let loss = soft_cross_entropy(eval.logits_kd, target, y);
    approx(loss.into_data(), "kd_loss", 1e-5);
}

#[test]
fn cadenes_imagenet_layout_becomes_a_teacher_that_ignores_the_domain() {
    let device = Default::default();
    let config = tiny(6, 5, 10);
    let (teacher, report) =
        load_imagenet_teacher::<B>(&config, &fixture("se_tiny.pth"), &device).unwrap();
    assert!(report.model_entry.is_none());
    let x = Tensor::<B, 4>::from_data(reference("x"), &device);
    for bit in [0., 1.] {
        let y = tensor(&[bit, bit], [2, 1]);
        approx(
            teacher_logits(&teacher, x.clone(), y).into_data(),
            "teacher",
            1e-4,
        );
    }
    // The student starts from it: same trunk.
    let student = sake::SakeNet::from_teacher(&teacher, &config, &device);
    let y = tensor(&[0., 1.], [2, 1]);
    student
        .backbone
        .forward_pooled_conditioned(x.clone(), Some(y.clone()))
        .into_data()
        .assert_approx_eq::<f32>(
            &teacher.forward_pooled_conditioned(x, Some(y)).into_data(),
            Tolerance::absolute(1e-6),
        );
}

#[test]
fn a_checkpoint_of_another_size_is_refused_by_name() {
    let device = Default::default();
    let err = load_sake_checkpoint::<B>(&tiny(64, 5, 10), &fixture("sake_tiny.pth.tar"), &device)
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("D = 64") && text.contains("shape"), "{text}");
    let err = load_imagenet_teacher::<B>(&tiny(6, 5, 10), &fixture("sake_tiny.pth.tar"), &device)
        .unwrap_err();
    assert!(format!("{err:#}").contains("Cadene"), "{err:#}");
}

#[test]
fn training_the_student_never_moves_the_teacher() {
    // The student's trunk is a copy with its own parameter ids (an optimizer keys by id) and its
    // own BN running statistics (a clone would share them).
    type A = Autodiff<B>;
    let device = Default::default();
    let config = tiny(6, 5, 10);
    let (teacher, _) =
        load_imagenet_teacher::<A>(&config, &fixture("se_tiny.pth"), &device).unwrap();
    let student = sake::SakeNet::from_teacher(&teacher, &config, &device);
    // (Running statistics are not optimised; their ids do not matter.)
    let ids = |m: &core_nets::ResNet<A>| {
        m.collect(None, None, false)
            .into_iter()
            .filter(|s| !s.full_path().contains("running_"))
            .map(|s| s.tensor_id.unwrap())
            .collect::<Vec<_>>()
    };
    let (t, s) = (ids(&teacher), ids(&student.backbone));
    assert!(t.iter().all(|id| !s.contains(id)), "shared parameter ids");
    let x = Tensor::<A, 4>::from_data(reference("x"), &device);
    let y = Tensor::<A, 2>::from_data(reference("y"), &device);
    let before = teacher_logits(&teacher.valid(), x.clone().inner(), y.clone().inner());
    // A training-mode forward updates the student's running statistics only.
    let _ = student.forward(x.clone() * 3.0 + 1.0, y.clone());
    let after = teacher_logits(&teacher.valid(), x.inner(), y.inner());
    after
        .into_data()
        .assert_approx_eq::<f32>(&before.into_data(), Tolerance::absolute(0.0));
}

#[test]
fn the_ems_option_gives_minus_distances_and_the_margin_loss() {
    // Official `EMSLayer` / `EMSLoss` (the `--ems-loss` option), values from PyTorch.
    let ems = sake::EmsLayer::<B> {
        cpars: Param::from_tensor(tensor(&[1., 0., 0., 0., 3., 4.], [3, 2])),
    };
    let logits = ems.forward(tensor(&[1., 0., 0., 2.], [2, 2]));
    close(
        logits.clone(),
        &[0.0, -1.0, -4.472_136, -2.236_068, -2.0, -3.605_551],
        1e-5,
    );
    let labels = Tensor::<B, 1, burn::tensor::Int>::from_data(
        TensorData::new(vec![0i64, 1], [2]),
        &Default::default(),
    );
    let loss = sake::loss::ems_cross_entropy(logits, labels, 2.0).into_scalar();
    assert!((loss - 1.220_054).abs() < 1e-5, "{loss}");
    // The classifier is the only difference: same counts otherwise, `linear.cpars` in place of
    // `linear.weight` / `linear.bias`.
    let device = Default::default();
    let plain = tiny(6, 5, 10);
    let with_ems = SakeModelConfig {
        ems: true,
        ..plain.clone()
    };
    let (a, b) = (
        count_parameters::<B, _>(&plain.init::<B>(&device)),
        count_parameters::<B, _>(&with_ems.init::<B>(&device)),
    );
    assert_eq!(a - b, 5, "a bias of 5 classes fewer");
}
