//! `co2-moco.md` §8.1–8.6 in float64 (tolerance 1e-9, the spec's): momentum update, queue, InfoNCE,
//! the consistency term in both directions, its gradient wrt q, the community form, a batch of two.
//! Its own test binary, so that the CPU device switches to f64 before any tensor exists.

use burn::{
    backend::{Autodiff, Flex, flex::FlexDevice},
    module::Param,
    nn::Linear,
    tensor::{DType, Tensor, TensorData, backend::Backend},
};
use co2::{
    Co2Config, Queue, consistency_loss, info_nce,
    loss::{co2_loss, consistency_distributions, contrastive_logits, kl_divergence},
    momentum::momentum_update,
};

type AD = Autodiff<Flex>;

fn device() -> FlexDevice {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        burn::tensor::set_default_dtypes::<Flex>(&FlexDevice, DType::F64, DType::I32)
            .expect("the f64 default is set before any tensor is created");
    });
    FlexDevice
}

fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

fn close(actual: &[f64], expected: &[f64], tolerance: f64) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            (a - e).abs() <= tolerance * e.abs().max(1.0),
            "{actual:?} vs {expected:?}"
        );
    }
}

fn rows<Bk: Backend<Device = FlexDevice>>(data: &[[f64; 2]]) -> Tensor<Bk, 2> {
    let flat: Vec<f64> = data.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [data.len(), 2]), &device())
}

/// The negatives of §8.2–8.6 as a queue `[dim 2, K 3]`: (1, 0), (0, 1), (−1, 0).
fn negatives<Bk: Backend<Device = FlexDevice>>() -> Tensor<Bk, 2> {
    rows::<Bk>(&[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]).transpose()
}

#[test]
fn momentum_update_and_queue_follow_8_1() {
    let device = device();
    let with = |v: f64| -> Linear<Flex> {
        Linear {
            weight: Param::from_tensor(Tensor::full([1, 1], v, &device)),
            bias: Some(Param::from_tensor(Tensor::full([1], v, &device))),
        }
    };
    let (query, mut key) = (with(0.0), with(1.0));
    let mut seen = Vec::new();
    for _ in 0..2 {
        key = momentum_update(key, &query, 0.999);
        seen.push(values(key.weight.val())[0]);
    }
    close(&seen, &[0.999, 0.998001], 1e-12);
    assert_eq!(values(key.bias.unwrap().val()), vec![0.998001]);

    // K = 4, dim 2, batch 2: columns 0–1, then 2–3, pointer back to 0; the snapshot of a step is
    // the queue before its write.
    let queue = Queue::<Flex>::from_parts(Tensor::zeros([2, 4], &device), 0);
    let snapshot = queue.snapshot();
    let queue = queue.enqueue(rows(&[[1.0, 2.0], [3.0, 4.0]]));
    assert_eq!(values(snapshot), vec![0.0; 8]);
    assert_eq!(queue.position(), 2);
    let queue = queue.enqueue(rows(&[[5.0, 6.0], [7.0, 8.0]]));
    assert_eq!(queue.position(), 0);
    assert_eq!(
        values(queue.snapshot()),
        vec![1.0, 3.0, 5.0, 7.0, 2.0, 4.0, 6.0, 8.0]
    );
}

#[test]
fn info_nce_is_8_2() {
    let logits =
        contrastive_logits::<Flex>(rows(&[[1.0, 0.0]]), rows(&[[0.6, 0.8]]), negatives(), 0.2);
    close(&values(info_nce(logits)), &[2.132884985], 1e-9);
}

#[test]
fn consistency_term_is_8_3_in_both_directions() {
    let (q, p) = (rows::<Flex>(&[[1.0, 0.0]]), rows::<Flex>(&[[0.6, 0.8]]));
    let config = Co2Config::paper(1.0, 0.5);
    let (log_q, log_p) = consistency_distributions(q.clone(), p.clone(), negatives(), &config);
    close(
        &values(log_q.clone().exp()),
        &[0.866813, 0.117310, 0.015876],
        1e-5,
    );
    close(
        &values(log_p.clone().exp()),
        &[0.387215, 0.577657, 0.035127],
        1e-5,
    );
    close(
        &values(kl_divergence(log_p.clone(), log_q.clone())),
        &[0.6367385938],
        1e-9,
    );
    close(&values(kl_divergence(log_q, log_p)), &[0.4988957980], 1e-9);
    close(
        &values(consistency_loss(q.clone(), p.clone(), negatives(), &config)),
        &[0.5678171959],
        1e-9,
    );
    let one_way = Co2Config {
        symmetric: false,
        ..config
    };
    close(
        &values(consistency_loss(q, p, negatives(), &one_way)),
        &[0.6367385938],
        1e-9,
    );
}

/// ∂L_con/∂q at the §8.4 setting, by autodiff.
fn gradient_wrt_q(config: &Co2Config) -> Vec<f64> {
    let q = rows::<AD>(&[[1.0, 0.0]]).require_grad();
    let p = rows::<AD>(&[[0.6, 0.8]]);
    let loss = consistency_loss(q.clone(), p, negatives(), config);
    let grads = loss.backward();
    values(q.grad(&grads).expect("q has a gradient"))
}

#[test]
fn the_gradient_wrt_q_is_8_4() {
    let one_way = Co2Config {
        symmetric: false,
        ..Co2Config::paper(1.0, 0.5)
    };
    close(
        &gradient_wrt_q(&one_way),
        &[0.9976983627, -0.9206938084],
        1e-9,
    );
    // The spec's symmetric value is a finite difference (h = 1e-6): agreement to ~1e-9.
    close(
        &gradient_wrt_q(&Co2Config::paper(1.0, 0.5)),
        &[0.7854437621, -0.7058838458],
        1e-8,
    );
}

#[test]
fn the_community_form_is_8_5_and_keeps_its_gradient() {
    let config = Co2Config::community(1.0, 0.5);
    let (q, p) = (
        rows::<AD>(&[[1.0, 0.0]]).require_grad(),
        rows::<AD>(&[[0.6, 0.8]]).require_grad(),
    );
    let loss = consistency_loss(q.clone(), p.clone(), negatives(), &config);
    close(&values(loss.clone().inner()), &[0.409031], 1e-6);
    // lightly's current code returns this value detached; here both inputs receive gradient.
    let grads = loss.backward();
    for (name, tensor) in [("q", q), ("p", p)] {
        let g = values(tensor.grad(&grads).expect("a gradient"));
        assert!(g.iter().any(|v| v.abs() > 1e-3), "{name}: {g:?}");
    }
}

#[test]
fn a_batch_of_two_at_moco_v1_temperatures_is_8_6() {
    let q = rows::<Flex>(&[[1.0, 0.0], [0.0, 1.0]]);
    let k = rows::<Flex>(&[[0.8, 0.6], [0.6, 0.8]]);
    let symmetric = co2_loss(
        q.clone(),
        k.clone(),
        negatives(),
        0.07,
        &Co2Config::paper(10.0, 0.04),
    );
    close(&values(symmetric.info_nce), &[2.9129876565], 1e-9);
    close(&values(symmetric.total), &[3.5822727478], 1e-9);
    let one_way = Co2Config {
        symmetric: false,
        ..Co2Config::paper(10.0, 0.04)
    };
    close(
        &values(co2_loss(q, k, negatives(), 0.07, &one_way).total),
        &[4.1844043566],
        1e-9,
    );
}

#[test]
fn in_batch_negatives_leave_out_the_own_key() {
    // Three samples: each distribution runs over the two other keys only.
    let q = rows::<Flex>(&[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]);
    let p = rows::<Flex>(&[[0.8, 0.6], [0.6, 0.8], [1.0, 0.0]]);
    let config = Co2Config {
        negatives: co2::Negatives::InBatch,
        ..Co2Config::paper(1.0, 0.5)
    };
    let (log_q, _) =
        consistency_distributions(q, p.clone(), Tensor::zeros([2, 1], &device()), &config);
    let probabilities = values(log_q.exp());
    for (i, row) in probabilities.chunks(3).enumerate() {
        assert!(row[i] < 1e-12, "row {i} gives its own key mass: {row:?}");
        close(&[row.iter().sum::<f64>()], &[1.0], 1e-12);
    }
}
