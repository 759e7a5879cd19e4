//! The CN-vMF head through the library (`cargo run --release -p compnet --example occluder_map`):
//! a hand-made dictionary of three kernels, two classes whose single mixture expects kernel 0 then
//! kernel 1 (class "left-right") or the reverse ("right-left") along a 1 × 4 feature map, and an
//! occluder model that explains kernel 2. An object of class "left-right" whose right half is
//! covered by an occluder is still classified, and the occluder map marks the covered half.

use burn::{
    backend::Flex,
    tensor::{Tensor, TensorData},
};
use compnet::{
    mixture::{crop_or_pad_as, normalise_over_kernels},
    score::{MapMode, class_probabilities, occluder_map, terms},
    vmf::{VmfKernels, vmf_activation},
};

fn tensor<const D: usize>(values: &[f32], shape: [usize; D]) -> Tensor<Flex, D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
}

fn main() {
    // Dictionary: the three axes of a 3-d feature space.
    let kernels =
        VmfKernels::<Flex>::from_rows(tensor(&[1., 0., 0., 0., 1., 0., 0., 0., 1.], [3, 3]));
    // Features along 4 positions (D-major): kernel 0, kernel 0, then the occluder's kernel 2 twice.
    let features = tensor(
        &[
            1.0, 0.9, 0.0, 0.1, // d0
            0.1, 0.2, 0.1, 0.0, // d1
            0.0, 0.0, 1.0, 0.9, // d2
        ],
        [1, 3, 1, 4],
    );
    let v = vmf_activation(kernels.cosine(features), 30.0, 0.0);
    // One mixture per class, stored [K, 1, 6] (a margin of one position each side) and centre-
    // cropped to the 1 × 4 map: kernel 0 then kernel 1 ("left-right"), or the reverse.
    let left_right = [
        0., 1., 1., 0., 0., 0., 0., 0., 0., 1., 1., 0., 0., 0., 0., 0., 0., 0.,
    ];
    let right_left = [
        0., 0., 0., 1., 1., 0., 0., 1., 1., 0., 0., 0., 0., 0., 0., 0., 0., 0.,
    ];
    let raw = tensor(&[left_right, right_left].concat(), [2, 3, 1, 6]);
    let mixtures = crop_or_pad_as(normalise_over_kernels(raw), [1, 4], 0.0);
    let occluders = normalise_over_kernels(tensor(&[0., 0., 1.], [1, 3]));
    let t = terms(v, mixtures, occluders, 0.6, 1);
    let ml = t.scores(false) / 4.0;
    let p: Vec<f32> = class_probabilities(ml).into_data().iter::<f32>().collect();
    println!("p(left-right) = {:.3}, p(right-left) = {:.3}", p[0], p[1]);
    let map = occluder_map(&t, 0, 0, MapMode::MixtureBg);
    println!("occluder map (positive = occluded): {map:.1?}");
}
