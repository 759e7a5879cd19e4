//! Multi-label evaluation (`elastic.md` §4.2, `multilabel_classify.py`): prediction = logit > 0;
//! per-class precision / recall / F1 averaged over the classes (a class with TP = 0 counts 0),
//! overall precision / recall / F1 from the summed TP / FP / FN; and, beyond the official script,
//! mean average precision and the per-object-size recall the code records (plus a per-size AP).

/// Scores in percent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MultiLabelScores {
    pub precision_per_class: f64,
    pub recall_per_class: f64,
    pub f1_per_class: f64,
    pub precision_overall: f64,
    pub recall_overall: f64,
    pub f1_overall: f64,
    /// Mean over the classes that have a positive of the average precision (ranking by logit,
    /// ties broken by image order).
    pub map: f64,
    /// Per size (small, medium, large): recall of the targets an object of that size makes.
    pub recall_by_size: [f64; 3],
    /// Per size: mAP where a class's positives are the images showing it at that size and its
    /// negatives the images without it (images showing it only at other sizes are left out).
    pub map_by_size: [f64; 3],
    /// Targets per size (how many (image, class) pairs each size column rests on).
    pub targets_by_size: [usize; 3],
}

/// `tp / (tp + other)` in percent; 0 when both are 0.
fn ratio(tp: usize, other: usize) -> f64 {
    if tp == 0 {
        0.0
    } else {
        100.0 * tp as f64 / (tp + other) as f64
    }
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// Average precision of `scores` for the 0/1 `relevant` (only where `counted`): the mean over
/// the positives of the precision at their rank. None without a positive.
pub fn average_precision(scores: &[f32], relevant: &[bool], counted: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).filter(|&i| counted[i]).collect();
    // Stable: equal scores keep image order.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut hits, mut sum) = (0usize, 0.0);
    for (rank, &i) in order.iter().enumerate() {
        if relevant[i] {
            hits += 1;
            sum += hits as f64 / (rank + 1) as f64;
        }
    }
    (hits > 0).then(|| 100.0 * sum / hits as f64)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Scores of `logits` (row-major `[images, classes]`) against 0/1 `targets` of the same shape and
/// their split by object size.
pub fn multilabel_scores(
    logits: &[f32],
    targets: &[f32],
    by_size: &[Vec<f32>; 3],
    classes: usize,
) -> MultiLabelScores {
    assert_eq!(logits.len(), targets.len(), "one logit per target");
    let images = targets.len() / classes.max(1);
    let at = |v: &[f32], i: usize, c: usize| v[i * classes + c];
    let (mut tp, mut fp, mut fn_) = (
        vec![0usize; classes],
        vec![0usize; classes],
        vec![0usize; classes],
    );
    for i in 0..images {
        for c in 0..classes {
            match (at(logits, i, c) > 0.0, at(targets, i, c) == 1.0) {
                (true, true) => tp[c] += 1,
                (true, false) => fp[c] += 1,
                (false, true) => fn_[c] += 1,
                _ => {}
            }
        }
    }
    let per_class_p: Vec<f64> = (0..classes).map(|c| ratio(tp[c], fp[c])).collect();
    let per_class_r: Vec<f64> = (0..classes).map(|c| ratio(tp[c], fn_[c])).collect();
    let (all_tp, all_fp, all_fn) = (tp.iter().sum(), fp.iter().sum(), fn_.iter().sum());
    let (p_o, r_o) = (ratio(all_tp, all_fp), ratio(all_tp, all_fn));
    let column = |v: &[f32], c: usize| (0..images).map(|i| at(v, i, c)).collect::<Vec<f32>>();
    let class_ap = |c: usize, positives: &[f32], counted: &[bool]| {
        let relevant: Vec<bool> = positives.iter().map(|&t| t == 1.0).collect();
        average_precision(&column(logits, c), &relevant, counted)
    };
    let map =
        mean((0..classes).filter_map(|c| class_ap(c, &column(targets, c), &vec![true; images])));
    let mut recall_by_size = [0.0; 3];
    let mut map_by_size = [0.0; 3];
    let mut targets_by_size = [0usize; 3];
    for s in 0..3 {
        let (mut hit, mut total) = (0usize, 0usize);
        for i in 0..images {
            for c in 0..classes {
                if at(&by_size[s], i, c) == 1.0 {
                    total += 1;
                    hit += (at(logits, i, c) > 0.0) as usize;
                }
            }
        }
        (recall_by_size[s], targets_by_size[s]) = (ratio(hit, total - hit), total);
        map_by_size[s] = mean((0..classes).filter_map(|c| {
            let positives = column(&by_size[s], c);
            let counted: Vec<bool> = (0..images)
                .map(|i| positives[i] == 1.0 || at(targets, i, c) == 0.0)
                .collect();
            class_ap(c, &positives, &counted)
        }));
    }
    MultiLabelScores {
        precision_per_class: mean(per_class_p.iter().copied()),
        recall_per_class: mean(per_class_r.iter().copied()),
        f1_per_class: mean(
            per_class_p
                .iter()
                .zip(&per_class_r)
                .map(|(&p, &r)| f1(p, r)),
        ),
        precision_overall: p_o,
        recall_overall: r_o,
        f1_overall: f1(p_o, r_o),
        map,
        recall_by_size,
        map_by_size,
        targets_by_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three images, two classes, worked by hand.
    #[test]
    fn scores_of_a_small_case() {
        // image 0: class 0 (small), class 1 (large); image 1: class 0 (large); image 2: none.
        let targets = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        let by_size = [
            vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            vec![0.0; 6],
            vec![0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        ];
        // Predictions: image 0 → class 0 only; image 1 → classes 0 and 1; image 2 → class 1.
        let logits = [2.0, -1.0, 1.0, 0.5, -3.0, 3.0];
        let s = multilabel_scores(&logits, &targets, &by_size, 2);
        // Class 0: TP 2, FP 0, FN 0 → P 100, R 100. Class 1: TP 0, FP 2, FN 1 → 0, 0.
        assert_eq!((s.precision_per_class, s.recall_per_class), (50.0, 50.0));
        assert_eq!(s.f1_per_class, 50.0);
        // Overall: TP 2, FP 2, FN 1 → P 50, R 66.7, F1 57.1.
        assert_eq!(s.precision_overall, 50.0);
        assert!((s.recall_overall - 200.0 / 3.0).abs() < 1e-9);
        assert!((s.f1_overall - 400.0 / 7.0).abs() < 1e-9);
        // AP class 0: ranks 2.0 (img 0, +), 1.0 (img 1, +) → 100. Class 1: 3.0 (img 2, −),
        // 0.5 (img 1, −), −1.0 (img 0, +) → 1/3 → 33.3. mAP 66.7.
        assert!((s.map - 200.0 / 3.0).abs() < 1e-9);
        // Small: one target (img 0, class 0), predicted → 100; large: (0,1) missed, (1,0) hit.
        assert_eq!(s.recall_by_size, [100.0, 0.0, 50.0]);
        assert_eq!(s.targets_by_size, [1, 0, 2]);
        // Small AP, class 0: counted = img 0 (+) and img 2 (−); img 1 (class 0 large) left out.
        assert_eq!(s.map_by_size[0], 100.0);
    }

    #[test]
    fn average_precision_is_stable_under_ties() {
        let scores = [1.0, 1.0, 1.0];
        let all = [true; 3];
        // Ties keep image order: the positive at index 2 ranks third.
        assert!(
            (average_precision(&scores, &[false, false, true], &all).unwrap() - 100.0 / 3.0).abs()
                < 1e-9
        );
        assert_eq!(average_precision(&scores, &[false; 3], &all), None);
    }
}

/// Semantic segmentation's per-class intersection and union, accumulated over a whole split
/// (`ws.md` §4.4): pixels labelled void (255) count in neither.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IouCounts {
    pub intersection: Vec<u64>,
    pub union: Vec<u64>,
}

impl IouCounts {
    pub fn new(classes: usize) -> Self {
        Self {
            intersection: vec![0; classes],
            union: vec![0; classes],
        }
    }

    /// Adds one batch of predicted and true labels (the same pixels, any layout).
    pub fn add(&mut self, predicted: &[i64], labels: &[i64]) {
        let classes = self.intersection.len() as i64;
        for (&p, &t) in predicted.iter().zip(labels) {
            if !(0..classes).contains(&t) {
                continue; // void
            }
            if p == t {
                self.intersection[t as usize] += 1;
                self.union[t as usize] += 1;
            } else {
                self.union[t as usize] += 1;
                if (0..classes).contains(&p) {
                    self.union[p as usize] += 1;
                }
            }
        }
    }

    /// `I_c / (U_c + 1e-10)` per class, in percent.
    pub fn iou(&self) -> Vec<f64> {
        self.intersection
            .iter()
            .zip(&self.union)
            .map(|(&i, &u)| 100.0 * i as f64 / (u as f64 + 1e-10))
            .collect()
    }

    /// The mean over all classes (a class absent from predictions and labels counts 0, as in the
    /// official evaluation).
    pub fn miou(&self) -> f64 {
        let iou = self.iou();
        iou.iter().sum::<f64>() / iou.len().max(1) as f64
    }
}

#[cfg(test)]
mod iou_tests {
    use super::IouCounts;

    #[test]
    fn iou_is_accumulated_over_pixels_and_ignores_void() {
        let mut counts = IouCounts::new(3);
        // Class 0: 2 hits, 1 miss to class 1 → I 2, U 3 (+1 predicted 0 for a 2) = 4.
        counts.add(&[0, 0, 1, 0, 2, 1], &[0, 0, 0, 2, 2, 255]);
        assert_eq!(counts.intersection, [2, 0, 1]);
        assert_eq!(counts.union, [4, 1, 2]);
        let iou = counts.iou();
        assert!(
            (iou[0] - 50.0).abs() < 1e-6 && iou[1].abs() < 1e-6 && (iou[2] - 50.0).abs() < 1e-6
        );
        assert!((counts.miou() - 100.0 / 3.0).abs() < 1e-6);
    }
}
