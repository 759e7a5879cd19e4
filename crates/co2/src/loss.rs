//! The losses of CO2 on MoCo (`co2-moco.md` §2): MoCo's InfoNCE over the positive key and the queue
//! (§2.1), the CO2 consistency term between the query's and the positive key's similarity
//! distributions over the same negatives (§2.2, every uncertain choice of the paper an option), and
//! the community (lightly `CO2Regularizer`) form (§2.3) — differentiable, unlike that code since
//! Dec 2024.

use burn::tensor::{Tensor, activation::log_softmax, backend::Backend};
use serde::{Deserialize, Serialize};

/// Where the consistency term's negatives come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Negatives {
    /// The queue snapshot InfoNCE uses (taken before this step's enqueue): MoCo's setting.
    #[default]
    Queue,
    /// The other samples' keys in the batch (the query's own key left out).
    InBatch,
}

/// Which formula of the consistency term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Co2Form {
    /// §2.2 with the options below.
    #[default]
    Paper,
    /// §2.3, lightly's `CO2Regularizer`: positive logit included in both distributions, gradient
    /// through both, symmetric; the options `symmetric`, `include_positive` and
    /// `stop_grad_target` are ignored.
    Community,
}

/// The CO2 term's settings (`co2-moco.md` §2.2 table); α = 0 turns CO2 off (plain MoCo).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Co2Config {
    /// α, the weight of the consistency term (uncertain: 10 for MoCo v1 with τ_con 0.04).
    pub alpha: f64,
    /// τ_con, the consistency temperature (separate from InfoNCE's τ).
    pub tau_con: f64,
    /// ½·KL(P‖Q) + ½·KL(Q‖P) (default), or KL(P‖Q) only.
    #[serde(default = "yes")]
    pub symmetric: bool,
    /// Put the query–positive similarity into both distributions (lightly's form).
    #[serde(default)]
    pub include_positive: bool,
    #[serde(default)]
    pub negatives: Negatives,
    /// Treat P (the positive key's distribution) as a constant.
    #[serde(default = "yes")]
    pub stop_grad_target: bool,
    #[serde(default)]
    pub form: Co2Form,
}

fn yes() -> bool {
    true
}

impl Co2Config {
    /// The paper's most likely form (§2.2) at `alpha`, `tau_con`.
    pub fn paper(alpha: f64, tau_con: f64) -> Self {
        Self {
            alpha,
            tau_con,
            symmetric: true,
            include_positive: false,
            negatives: Negatives::Queue,
            stop_grad_target: true,
            form: Co2Form::Paper,
        }
    }

    /// lightly's `CO2Regularizer(alpha, t_consistency)` with the queue as its bank (§2.3).
    pub fn community(alpha: f64, tau_con: f64) -> Self {
        Self {
            form: Co2Form::Community,
            ..Self::paper(alpha, tau_con)
        }
    }

    /// Rejects settings no run can use, naming the key (under `prefix`, e.g. `co2`).
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return Err(format!("{prefix}.alpha = {}: expected >= 0", self.alpha));
        }
        if !(self.tau_con > 0.0 && self.tau_con.is_finite()) {
            return Err(format!(
                "{prefix}.tau_con = {}: expected a positive temperature",
                self.tau_con
            ));
        }
        Ok(())
    }
}

/// `q·k` for each row: `[B, D] × [B, D] -> [B, 1]`.
pub fn row_dot<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 2> {
    (a * b).sum_dim(1)
}

/// MoCo's logits (§2.1): `[q·k, q·n_1 … q·n_K] / τ`, `[B, 1 + K]`, with `queue` the snapshot
/// `[D, K]` of unit keys taken before this step's enqueue.
pub fn contrastive_logits<B: Backend>(
    q: Tensor<B, 2>,
    k: Tensor<B, 2>,
    queue: Tensor<B, 2>,
    tau: f64,
) -> Tensor<B, 2> {
    let positive = row_dot(q.clone(), k); // [B, 1]
    let negatives = q.matmul(queue); // [B, D] x [D, K] -> [B, K]
    Tensor::cat(vec![positive, negatives], 1) / tau
}

/// InfoNCE (§2.1): cross-entropy of `logits` with the positive at index 0, mean over the batch.
pub fn info_nce<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1> {
    -log_softmax(logits, 1).narrow(1, 0, 1).mean()
}

/// `KL(A‖B) = Σ_i A_i (log A_i − log B_i)` per row, from log-probabilities `[B, K] -> [B]`: summed
/// over the K entries, never averaged (§6 pitfall 3).
pub fn kl_divergence<B: Backend>(log_a: Tensor<B, 2>, log_b: Tensor<B, 2>) -> Tensor<B, 1> {
    let [rows, _] = log_a.dims();
    (log_a.clone().exp() * (log_a - log_b))
        .sum_dim(1)
        .reshape([rows])
}

/// The similarities of `a`'s rows to the negatives, `[B, K]` (queue) or `[B, B]` (in-batch, the
/// diagonal — a sample's own key — masked out).
fn negative_similarities<B: Backend>(
    a: Tensor<B, 2>,
    keys: &Tensor<B, 2>,
    queue: &Tensor<B, 2>,
    negatives: Negatives,
) -> Tensor<B, 2> {
    match negatives {
        Negatives::Queue => a.matmul(queue.clone()),
        Negatives::InBatch => {
            let [b, _] = keys.dims();
            let own = Tensor::<B, 2>::eye(b, &a.device()) * -1e9;
            a.matmul(keys.clone().transpose()) + own
        }
    }
}

/// The two log-distributions of the consistency term: `log Q` (the query's, with gradient) and
/// `log P` (the positive key's, the pseudo label), over the same negatives, at τ_con.
pub fn consistency_distributions<B: Backend>(
    q: Tensor<B, 2>,
    p: Tensor<B, 2>,
    queue: Tensor<B, 2>,
    config: &Co2Config,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let community = config.form == Co2Form::Community;
    let include_positive = config.include_positive || community;
    let mut logits_q = negative_similarities(q.clone(), &p, &queue, config.negatives);
    let mut logits_p = negative_similarities(p.clone(), &p, &queue, config.negatives);
    if include_positive {
        let positive = row_dot(q.clone(), p.clone()); // [B, 1], the same value in both
        logits_q = Tensor::cat(vec![positive.clone(), logits_q], 1);
        logits_p = Tensor::cat(vec![positive, logits_p], 1);
    }
    let log_q = log_softmax(logits_q / config.tau_con, 1);
    let log_p = log_softmax(logits_p / config.tau_con, 1);
    let log_p = if config.stop_grad_target && !community {
        log_p.detach()
    } else {
        log_p
    };
    (log_q, log_p)
}

/// The CO2 consistency term (§2.2, §2.3), mean over the batch, *before* the weight α.
pub fn consistency_loss<B: Backend>(
    q: Tensor<B, 2>,
    p: Tensor<B, 2>,
    queue: Tensor<B, 2>,
    config: &Co2Config,
) -> Tensor<B, 1> {
    let (log_q, log_p) = consistency_distributions(q, p, queue, config);
    let symmetric = config.symmetric || config.form == Co2Form::Community;
    let forward = kl_divergence(log_p.clone(), log_q.clone());
    let per_sample = if symmetric {
        (forward + kl_divergence(log_q, log_p)) * 0.5
    } else {
        forward
    };
    per_sample.mean()
}

/// One step's losses: `total = info_nce + α · consistency`, each a mean over the batch.
#[derive(Clone, Debug)]
pub struct Co2Loss<B: Backend> {
    pub total: Tensor<B, 1>,
    pub info_nce: Tensor<B, 1>,
    pub consistency: Tensor<B, 1>,
}

/// InfoNCE at `tau` plus the CO2 term (none when α = 0) for queries `q`, positive keys `k` and the
/// queue snapshot `[D, K]`; every input unit-norm.
pub fn co2_loss<B: Backend>(
    q: Tensor<B, 2>,
    k: Tensor<B, 2>,
    queue: Tensor<B, 2>,
    tau: f64,
    co2: &Co2Config,
) -> Co2Loss<B> {
    let info_nce = info_nce(contrastive_logits(q.clone(), k.clone(), queue.clone(), tau));
    let consistency = if co2.alpha > 0.0 {
        consistency_loss(q, k, queue, co2)
    } else {
        Tensor::zeros([1], &info_nce.device())
    };
    Co2Loss {
        total: info_nce.clone() + consistency.clone() * co2.alpha,
        info_nce,
        consistency,
    }
}
