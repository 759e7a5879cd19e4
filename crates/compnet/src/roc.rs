//! Occluder localisation's ROC evaluation (`compnet.md` §4.3, test §8.7), made to work: per image,
//! a position is predicted occluded when `(−occ_map) < t` for thresholds t = −100, −99.95, …,
//! 99.95; TP/FP/TN/FN against the ground-truth mask at feature resolution give one
//! `(fpr, tpr, f-score, accuracy)` per threshold; curves are averaged over images at equal
//! thresholds, then over categories weighted by their image counts; reported: TPR at FPR 0.2 and
//! the AUC (trapezoids over the averaged points sorted by FPR, with (0, 0) and (1, 1) added). The
//! released script's "TP = 0 → TP = 1" hack is `tp_hack`, off by default.

/// The released thresholds: −100 to 99.95 by 0.05 (4,000 values).
pub fn thresholds() -> Vec<f64> {
    (0..4000).map(|i| -100.0 + 0.05 * i as f64).collect()
}

/// One threshold's rates.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RocPoint {
    pub fpr: f64,
    pub tpr: f64,
    pub f_score: f64,
    pub accuracy: f64,
}

/// An image's ROC points: `occ_map` and `occluded` (ground truth) at the same positions.
pub fn image_roc(
    occ_map: &[f32],
    occluded: &[bool],
    thresholds: &[f64],
    tp_hack: bool,
) -> Vec<RocPoint> {
    assert_eq!(
        occ_map.len(),
        occluded.len(),
        "score map and mask sizes differ"
    );
    thresholds
        .iter()
        .map(|&t| {
            let (mut tp, mut fp, mut tn, mut fn_) = (0.0f64, 0.0, 0.0, 0.0);
            for (&s, &gt) in occ_map.iter().zip(occluded) {
                let predicted = (-(s as f64)) < t;
                match (predicted, gt) {
                    (true, true) => tp += 1.0,
                    (true, false) => fp += 1.0,
                    (false, false) => tn += 1.0,
                    (false, true) => fn_ += 1.0,
                }
            }
            if tp_hack && tp == 0.0 {
                tp = 1.0;
            }
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
            let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
            RocPoint {
                fpr: ratio(fp, fp + tn),
                tpr: recall,
                f_score: ratio(2.0 * precision * recall, precision + recall),
                accuracy: ratio(tp + tn, tp + tn + fp + fn_),
            }
        })
        .collect()
}

/// The weighted mean of curves at equal thresholds (images of a category: weight 1 each;
/// categories: their image counts).
pub fn average(curves: &[(Vec<RocPoint>, f64)]) -> Vec<RocPoint> {
    let total: f64 = curves.iter().map(|(_, w)| w).sum();
    let len = curves.first().map_or(0, |(c, _)| c.len());
    (0..len)
        .map(|i| {
            let mut p = RocPoint::default();
            for (curve, w) in curves {
                let q = curve[i];
                let w = w / total.max(f64::MIN_POSITIVE);
                p.fpr += w * q.fpr;
                p.tpr += w * q.tpr;
                p.f_score += w * q.f_score;
                p.accuracy += w * q.accuracy;
            }
            p
        })
        .collect()
}

/// The TPR at the last threshold whose FPR is at most `fpr` (0 if none).
pub fn tpr_at_fpr(curve: &[RocPoint], fpr: f64) -> f64 {
    curve.iter().rfind(|p| p.fpr <= fpr).map_or(0.0, |p| p.tpr)
}

/// `∫ TPR d FPR` by trapezoids over the points sorted by FPR (then TPR), with (0, 0) and (1, 1).
pub fn auc(curve: &[RocPoint]) -> f64 {
    let mut points: Vec<(f64, f64)> = curve.iter().map(|p| (p.fpr, p.tpr)).collect();
    points.push((0.0, 0.0));
    points.push((1.0, 1.0));
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}
