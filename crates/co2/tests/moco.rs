//! MoCo's structure (`co2-moco.md` §2.1, §3): exact encoder sizes, the key encoder (a copy, moved by
//! momentum, never given gradient), Shuffle-BN's single-device stand-in, one training step.

use burn::{
    backend::{Autodiff, Flex},
    module::{AutodiffModule, Module},
    optim::{GradientsParams, Optimizer, SgdConfig},
    tensor::{Distribution, Tensor},
};
use co2::{Co2Config, KeyBn, MocoConfig, co2_loss};
use core_nets::{BlockKind, ResNetConfig, count_parameters};

type B = Autodiff<Flex>;

#[test]
fn encoders_have_the_official_parameter_counts() {
    let device = Default::default();
    for (config, expected) in [
        (MocoConfig::moco_v1(), 23_770_304),
        (MocoConfig::moco_v2(), 27_966_656),
    ] {
        let encoder = config.init_encoder::<Flex>(&device);
        assert_eq!(count_parameters::<Flex, _>(&encoder), expected);
    }
}

fn tiny(key_bn: KeyBn) -> MocoConfig {
    MocoConfig {
        backbone: ResNetConfig {
            block: BlockKind::Basic,
            layers: [1, 1, 1, 1],
            planes: [4, 4, 8, 8],
            stem_width: 4,
            small_stem: true,
            num_classes: None,
            ..ResNetConfig::default()
        },
        head: co2::Head::Mlp,
        dim: 8,
        queue: 16,
        momentum: 0.99,
        tau: 0.2,
        key_bn,
    }
}

fn images(n: usize) -> Tensor<B, 4> {
    Tensor::random(
        [n, 3, 8, 8],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    )
}

#[test]
fn the_key_encoder_starts_as_a_copy_with_its_own_parameters() {
    let model = tiny(KeyBn::None).init::<B>(&Default::default());
    let x = images(4);
    let q = model.encoder_q.forward(x.clone());
    let k = model.encoder_k.forward(x);
    q.into_data()
        .assert_approx_eq::<f32>(&k.into_data(), burn::tensor::Tolerance::absolute(1e-6));
    // Distinct ids: the optimizer cannot move the key encoder by sharing the query's.
    let ids = |m: &co2::Encoder<B>| {
        let mut ids = Vec::new();
        struct Ids<'a>(&'a mut Vec<burn::module::ParamId>);
        impl<Bk: burn::tensor::backend::Backend> burn::module::ModuleVisitor<Bk> for Ids<'_> {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<Bk, D>>) {
                self.0.push(p.id);
            }
        }
        m.visit(&mut Ids(&mut ids));
        ids
    };
    let (a, b) = (ids(&model.encoder_q), ids(&model.encoder_k));
    assert!(a.iter().all(|id| !b.contains(id)));
}

#[test]
fn split_key_bn_puts_the_keys_back_in_order() {
    let device = Default::default();
    let model = tiny(KeyBn::None).init::<B>(&device);
    let x = images(4);
    let plain = model.keys(x.clone(), KeyBn::None, &[0, 1, 2, 3]);
    // One group over a permuted batch has the same BN statistics: the same keys, in order.
    let one_group = model.keys(x.clone(), KeyBn::Split { groups: 1 }, &[2, 0, 3, 1]);
    plain.clone().into_data().assert_approx_eq::<f32>(
        &one_group.into_data(),
        burn::tensor::Tolerance::absolute(1e-5),
    );
    // Two groups normalise with sub-batch statistics: other keys, still unit rows.
    let split = model.keys(x, KeyBn::Split { groups: 2 }, &[2, 0, 3, 1]);
    let norms: Vec<f32> = split
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .into_data()
        .iter::<f32>()
        .collect();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{norms:?}");
    assert!(!split.all_close(plain, Some(1e-4), Some(1e-4)));
}

#[test]
fn a_training_step_moves_only_the_query_encoder_by_gradient() {
    let device = Default::default();
    let config = tiny(KeyBn::Split { groups: 2 });
    let model = config.init::<B>(&device);
    let mut optimizer = SgdConfig::new().init::<B, co2::Moco<B>>();
    let model = model.momentum_step(config.momentum);
    let (xq, xk) = (images(4), images(4));
    let q = model.encoder_q.forward(xq);
    let k = model.keys(xk, config.key_bn, &[1, 3, 0, 2]);
    let loss = co2_loss(
        q,
        k.clone(),
        model.queue.snapshot(),
        config.tau,
        &Co2Config::paper(10.0, 0.04),
    );
    let grads = loss.total.backward();
    let grads = GradientsParams::from_grads(grads, &model);
    let key_before = model.encoder_k.clone().valid();
    let query_before = model.encoder_q.clone().valid();
    let model = optimizer.step(0.1, model, grads);
    let moved = |a: &co2::Encoder<Flex>, b: &co2::Encoder<Flex>| {
        let x = Tensor::<Flex, 4>::ones([2, 3, 8, 8], &device);
        !a.forward(x.clone())
            .all_close(b.forward(x), Some(1e-7), Some(1e-7))
    };
    let valid = model.valid();
    assert!(
        moved(&query_before, &valid.encoder_q),
        "the query encoder learns"
    );
    assert!(
        !moved(&key_before, &valid.encoder_k),
        "no gradient reaches the key encoder"
    );
    // The keys go into the queue after the step: 4 of 16 columns, pointer at 4.
    let queue = model.queue.enqueue(k);
    assert_eq!(queue.position(), 4);
}

#[test]
fn queue_size_and_key_groups_are_checked_against_the_batch() {
    let config = tiny(KeyBn::Split { groups: 3 });
    let err = config.validate("model", 4).unwrap_err();
    assert!(err.contains("model.key_bn.groups = 3"), "{err}");
    let err = tiny(KeyBn::None).validate("model", 5).unwrap_err();
    assert!(
        err.contains("model.queue = 16") && err.contains("batch_size = 5"),
        "{err}"
    );
    assert!(
        tiny(KeyBn::Split { groups: 2 })
            .validate("model", 4)
            .is_ok()
    );
}

#[test]
fn the_momentum_update_leaves_the_key_bn_running_statistics_alone() {
    // §2.1: parameters only. A training-mode pass moves the query encoder's running statistics;
    // the key encoder's stay at their initial 0 / 1 through the update.
    let device = Default::default();
    let model = tiny(KeyBn::None).init::<B>(&device);
    let _ = model.encoder_q.forward(images(4) * 3.0 + 1.0);
    // burn applies running-statistics updates lazily: make the query's visible first.
    if let core_norm::Norm::Batch(bn) = &model.encoder_q.backbone.bn1 {
        let _ = bn.running_mean.value_sync();
        let _ = bn.running_var.value_sync();
    }
    let model = model.momentum_step(0.5);
    let core_norm::Norm::Batch(query_bn) = &model.encoder_q.backbone.bn1 else {
        panic!("a BN stem")
    };
    let core_norm::Norm::Batch(key_bn) = &model.encoder_k.backbone.bn1 else {
        panic!("a BN stem")
    };
    let mean = |t: Tensor<Flex, 1>| t.abs().max().into_scalar();
    assert!(mean(query_bn.running_mean.value_sync().inner()) > 0.01);
    assert_eq!(mean(key_bn.running_mean.value_sync().inner()), 0.0);
    assert_eq!(
        key_bn.running_var.value_sync().inner().into_data(),
        Tensor::<Flex, 1>::ones([4], &device).into_data()
    );
}

#[test]
fn the_learner_step_is_the_hand_written_moco_step() {
    // burn-train's Learner runs `MocoTraining::step`, then `optimize` (SGD, then the key encoder's
    // momentum update), then the strategy enqueues the keys. The hand-written order of the official
    // code: keys, loss, SGD, enqueue; the key encoder moves at the start of the next step from the
    // same query weights. Both must leave the same query encoder, key encoder and queue.
    use burn::train::TrainStep;
    use co2::experiment::{
        data::PairBatch,
        learner::{MocoTraining, Objective},
    };
    let device = Default::default();
    let config = tiny(KeyBn::Split { groups: 2 });
    let co2 = Co2Config::paper(10.0, 0.04);
    let model = config.init::<B>(&device);
    // A key encoder that differs from the query's, so the momentum step shows.
    let mut optimizer = SgdConfig::new().init::<B, co2::Moco<B>>();
    let warm = {
        let q = model.encoder_q.forward(images(4));
        let loss = co2_loss(
            q,
            model.keys(images(4), KeyBn::None, &[0, 1, 2, 3]),
            model.queue.snapshot(),
            config.tau,
            &co2,
        );
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        optimizer.step(0.5, model, grads).momentum_step(0.5)
    };
    let (xq, xk, order) = (images(4), images(4), vec![2, 0, 3, 1]);

    // By hand.
    let mut by_hand_optimizer = SgdConfig::new().init::<B, co2::Moco<B>>();
    let q = warm.encoder_q.forward(xq.clone());
    let k = warm.keys(xk.clone(), config.key_bn, &order);
    let loss = co2_loss(q, k.clone(), warm.queue.snapshot(), config.tau, &co2);
    let grads = GradientsParams::from_grads(loss.total.backward(), &warm);
    let stepped = by_hand_optimizer.step(0.1, warm.clone(), grads);
    let by_hand = co2::Moco {
        queue: stepped.queue.enqueue(k),
        ..stepped
    }
    .momentum_step(config.momentum);

    // Through the Learner's pieces.
    let mut learner_optimizer = SgdConfig::new().init::<B, MocoTraining<B>>();
    let training = MocoTraining::new(
        warm,
        Objective {
            tau: config.tau,
            co2,
            key_bn: config.key_bn,
            momentum: config.momentum,
        },
    );
    let output = training.step(PairBatch {
        query: xq,
        key: xk,
        key_order: order,
    });
    let keys = output.item.keys.clone();
    let learned = training
        .optimize(&mut learner_optimizer, 0.1, output.grads)
        .enqueued(keys)
        .moco;

    let x = images(2).inner();
    let (a, b) = (by_hand.valid(), learned.valid());
    for (name, ours, theirs) in [
        ("query", &a.encoder_q, &b.encoder_q),
        ("key", &a.encoder_k, &b.encoder_k),
    ] {
        assert!(
            ours.forward(x.clone())
                .all_close(theirs.forward(x.clone()), Some(1e-5), Some(1e-6)),
            "{name} encoders differ"
        );
    }
    assert_eq!(a.queue.position(), 4);
    assert_eq!(b.queue.position(), 4);
    assert!(
        a.queue
            .snapshot()
            .all_close(b.queue.snapshot(), Some(1e-5), Some(1e-6))
    );
}
