//! The CN-vMF head module against a PyTorch transcription of the spec
//! (`tests/fixtures/make_head_fixture.py`): scores in both background modes, ml, the
//! temperature-2 softmax, the mixture-bg occluder maps, the released loss and its gradients with
//! respect to the kernels and the raw mixtures (through normalisation, clamping, cropping and
//! padding).

use std::path::Path;

use burn::{
    backend::{Autodiff, Flex},
    tensor::{Int, Tensor, TensorData, Tolerance},
};
use compnet::{
    head::{CompositionalHead, HeadConfig},
    loss::{cluster_loss, released_terms},
    score::{MapMode, occluder_map},
};

type A = Autodiff<Flex>;

fn reference(key: &str) -> TensorData {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/head_tiny.safetensors");
    core_nets::read_safetensors_tensor(&path, key).unwrap()
}

fn relative(got: TensorData, key: &str, tolerance: f32) {
    got.assert_approx_eq::<f32>(&reference(key), Tolerance::rel_abs(tolerance, 1e-6));
}

#[test]
fn the_head_and_released_loss_match_pytorch_with_gradients() {
    let device = Default::default();
    let f = Tensor::<A, 4>::from_data(reference("f"), &device);
    let occluders = Tensor::<A, 2>::from_data(reference("occl"), &device);
    let config = HeadConfig {
        mixtures_per_class: 2,
        ..HeadConfig::default()
    };
    let head = CompositionalHead::<A>::new(
        Tensor::from_data(reference("w"), &device),
        Tensor::from_data(reference("mix"), &device),
        config.clone(),
    );
    let out = head.forward(f.clone(), occluders.clone());
    relative(out.scores.clone().into_data(), "scores", 1e-4);
    relative(out.ml.clone().into_data(), "ml", 1e-4);
    relative(out.probabilities.clone().into_data(), "p", 1e-4);
    let localising = CompositionalHead {
        config: HeadConfig {
            mixture_bg: true,
            ..config
        },
        ..head.clone()
    };
    relative(
        localising.forward(f.clone(), occluders).scores.into_data(),
        "scores_mixture_bg",
        1e-4,
    );
    let labels: Vec<i64> = reference("y").iter::<f32>().map(|v| v as i64).collect();
    // The mixture-bg occluder map of each image for its label (§2.7), padded positions included.
    let maps: Vec<f32> = labels
        .iter()
        .enumerate()
        .flat_map(|(b, &y)| occluder_map(&out.terms, b, y as usize, MapMode::MixtureBg))
        .collect();
    TensorData::new(maps, [2, 12])
        .assert_approx_eq::<f32>(&reference("occ_map"), Tolerance::rel_abs(1e-4, 1e-4));
    let labels = Tensor::<A, 1, Int>::from_data(TensorData::new(labels, [2]), &device);
    let (ce, mixture) = released_terms(out.probabilities, out.ml, labels, 3.0);
    let cluster = cluster_loss(f, head.conv1o1.unit_kernels());
    let loss = ce + cluster.mul_scalar(3.0) + mixture;
    relative(loss.clone().into_data(), "loss", 1e-4);
    let grads = loss.backward();
    let grad_w = head.conv1o1.weight.grad(&grads).unwrap().reshape([6, 5]);
    relative(grad_w.into_data(), "grad_w", 1e-3);
    relative(
        head.mix_model.grad(&grads).unwrap().into_data(),
        "grad_mix",
        1e-3,
    );
}
