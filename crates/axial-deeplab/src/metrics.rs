//! Panoptic quality and mean IoU (`axial-deeplab.md` §4.4, panopticapi's definition) over canonical
//! panoptic maps `class · divisor + instance`, accumulated image by image.
//!
//! Per class, a predicted and a ground-truth segment match when their IoU exceeds 0.5 (unique by
//! construction); IoU ignores the ground truth's void pixels. An unmatched prediction whose area is
//! more than half void or crowd of its class is not a false positive. Crowd regions are thing pixels
//! with instance 0 and are never false negatives.

use std::collections::HashMap;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassQuality {
    pub iou_sum: f64,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl ClassQuality {
    /// `(PQ, SQ, RQ)`; `None` for a class with no segment at all.
    pub fn quality(&self) -> Option<(f64, f64, f64)> {
        let denominator = self.tp as f64 + 0.5 * self.fp as f64 + 0.5 * self.fn_ as f64;
        if denominator == 0.0 {
            return None;
        }
        let sq = if self.tp > 0 {
            self.iou_sum / self.tp as f64
        } else {
            0.0
        };
        let rq = self.tp as f64 / denominator;
        Some((sq * rq, sq, rq))
    }
}

#[derive(Clone, Debug)]
pub struct PanopticQuality {
    pub divisor: u32,
    pub void_label: u32,
    pub thing_classes: Vec<u32>,
    pub per_class: HashMap<u32, ClassQuality>,
}

/// PQ, SQ, RQ averaged over the classes that occur, and over things and stuff separately.
#[derive(Clone, Debug, PartialEq)]
pub struct PqSummary {
    pub pq: f64,
    pub sq: f64,
    pub rq: f64,
    pub pq_things: f64,
    pub pq_stuff: f64,
    pub classes: usize,
}

impl PanopticQuality {
    pub fn new(divisor: u32, void_label: u32, thing_classes: Vec<u32>) -> Self {
        Self {
            divisor,
            void_label,
            thing_classes,
            per_class: HashMap::new(),
        }
    }

    /// Adds one image: `prediction` and `truth` are `[H, W]` canonical panoptic maps.
    pub fn update(&mut self, prediction: &[u32], truth: &[u32]) {
        let class = |id: u32| id / self.divisor;
        let is_void = |id: u32| class(id) == self.void_label;
        let is_crowd =
            |id: u32| self.thing_classes.contains(&class(id)) && id.is_multiple_of(self.divisor);
        let mut area_pred: HashMap<u32, usize> = HashMap::new();
        let mut area_true: HashMap<u32, usize> = HashMap::new();
        let mut overlap: HashMap<(u32, u32), usize> = HashMap::new();
        for (&p, &t) in prediction.iter().zip(truth) {
            *area_pred.entry(p).or_default() += 1;
            *area_true.entry(t).or_default() += 1;
            *overlap.entry((p, t)).or_default() += 1;
        }
        let mut matched_pred = std::collections::HashSet::new();
        let mut matched_true = std::collections::HashSet::new();
        for (&(p, t), &inter) in &overlap {
            if is_void(p) || is_void(t) || is_crowd(t) || class(p) != class(t) {
                continue;
            }
            let void_in_pred = overlap
                .get(&(p, self.void_label * self.divisor))
                .copied()
                .unwrap_or(0);
            let union = area_pred[&p] - void_in_pred + area_true[&t] - inter;
            let iou = inter as f64 / union as f64;
            if iou > 0.5 {
                let q = self.per_class.entry(class(t)).or_default();
                q.tp += 1;
                q.iou_sum += iou;
                matched_pred.insert(p);
                matched_true.insert(t);
            }
        }
        for (&t, _) in area_true.iter().filter(|(t, _)| !matched_true.contains(t)) {
            if !is_void(t) && !is_crowd(t) {
                self.per_class.entry(class(t)).or_default().fn_ += 1;
            }
        }
        for (&p, &area) in area_pred.iter().filter(|(p, _)| !matched_pred.contains(p)) {
            if is_void(p) {
                continue;
            }
            // Void pixels, and crowd pixels of the same class, under the prediction.
            let ignored: usize = overlap
                .iter()
                .filter(|((pp, t), _)| {
                    *pp == p && (is_void(*t) || (is_crowd(*t) && class(*t) == class(p)))
                })
                .map(|(_, n)| n)
                .sum();
            if ignored * 2 <= area {
                self.per_class.entry(class(p)).or_default().fp += 1;
            }
        }
    }

    pub fn summary(&self) -> PqSummary {
        let mean = |filter: &dyn Fn(u32) -> bool, pick: fn((f64, f64, f64)) -> f64| {
            let values: Vec<f64> = self
                .per_class
                .iter()
                .filter(|(c, _)| filter(**c))
                .filter_map(|(_, q)| q.quality().map(pick))
                .collect();
            if values.is_empty() {
                0.0
            } else {
                values.iter().sum::<f64>() / values.len() as f64
            }
        };
        let all = |_: u32| true;
        let things = |c: u32| self.thing_classes.contains(&c);
        let stuff = |c: u32| !self.thing_classes.contains(&c);
        PqSummary {
            pq: mean(&all, |q| q.0),
            sq: mean(&all, |q| q.1),
            rq: mean(&all, |q| q.2),
            pq_things: mean(&things, |q| q.0),
            pq_stuff: mean(&stuff, |q| q.0),
            classes: self
                .per_class
                .values()
                .filter(|q| q.quality().is_some())
                .count(),
        }
    }
}

/// Mean IoU over semantic classes from a confusion matrix, void excluded.
#[derive(Clone, Debug)]
pub struct SemanticConfusion {
    pub classes: usize,
    pub void_label: u32,
    /// `[truth][prediction]` counts.
    pub matrix: Vec<u64>,
}

impl SemanticConfusion {
    pub fn new(classes: usize, void_label: u32) -> Self {
        Self {
            classes,
            void_label,
            matrix: vec![0; classes * classes],
        }
    }

    pub fn update(&mut self, prediction: &[u32], truth: &[u32]) {
        for (&p, &t) in prediction.iter().zip(truth) {
            if t == self.void_label || t as usize >= self.classes || p as usize >= self.classes {
                continue;
            }
            self.matrix[t as usize * self.classes + p as usize] += 1;
        }
    }

    /// Mean over the classes present in truth or prediction.
    pub fn mean_iou(&self) -> f64 {
        let n = self.classes;
        let ious: Vec<f64> = (0..n)
            .filter_map(|c| {
                let tp = self.matrix[c * n + c] as f64;
                let row: u64 = self.matrix[c * n..(c + 1) * n].iter().sum();
                let col: u64 = (0..n).map(|r| self.matrix[r * n + c]).sum();
                let union = row as f64 + col as f64 - tp;
                (union > 0.0).then(|| tp / union)
            })
            .collect();
        if ious.is_empty() {
            0.0
        } else {
            ious.iter().sum::<f64>() / ious.len() as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panoptic_quality_counts_matches_false_positives_and_negatives() {
        // 2×6: stuff 0 in columns 0–1, an instance of class 1 in columns 2–3, void in 4–5.
        let truth = [
            0, 0, 1001, 1001, 255_000, 255_000, 0, 0, 1001, 1001, 255_000, 255_000,
        ];
        // The instance predicted on 3 of its 4 pixels (IoU 3/4); the stuff gets one more pixel
        // (IoU 4/5); a second instance lies entirely on void (not a false positive).
        let pred = [0, 0, 1001, 1001, 1002, 1002, 0, 0, 1001, 0, 1002, 1002];
        let mut pq = PanopticQuality::new(1000, 255, vec![1]);
        pq.update(&pred, &truth);
        let thing = pq.per_class[&1];
        assert_eq!((thing.tp, thing.fp, thing.fn_), (1, 0, 0));
        assert!((thing.iou_sum - 0.75).abs() < 1e-12);
        let stuff = pq.per_class[&0];
        assert!((stuff.iou_sum - 0.8).abs() < 1e-12);
        let s = pq.summary();
        assert!((s.pq - 0.775).abs() < 1e-12, "{s:?}");
        assert_eq!((s.pq_things, s.pq_stuff), (0.75, 0.8));
        // A missed instance is a false negative; a wrong one a false positive.
        let mut pq = PanopticQuality::new(1000, 255, vec![1]);
        pq.update(&[0, 0, 0, 1001], &[0, 1001, 1001, 0]);
        let thing = pq.per_class[&1];
        assert_eq!((thing.tp, thing.fp, thing.fn_), (0, 1, 1));
        assert_eq!(pq.summary().pq_things, 0.0);
    }

    #[test]
    fn mean_iou_ignores_void() {
        let mut m = SemanticConfusion::new(2, 255);
        m.update(&[0, 0, 1, 1], &[0, 1, 1, 255]);
        // class 0: tp 1, union 2 → 0.5; class 1: tp 1, union 2 → 0.5.
        assert!((m.mean_iou() - 0.5).abs() < 1e-12);
    }
}
