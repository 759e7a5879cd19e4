//! Panoptic-DeepLab post-processing (`axial-deeplab.md` §4.3, DeepLab2's merge op): centres from
//! the heatmap (threshold, max-pool suppression, top-k by score), pixels grouped to the nearest
//! predicted centre, each instance's class by majority vote, stuff segments below an area limit
//! voided. Host-side, per image, row-major. None of the reference repositories' bugs of pitfall 11
//! (top-k over coordinates, non-strict k-th score).

use serde::{Deserialize, Serialize};

/// How a small stuff segment is judged (`axial-deeplab.md` §4.3 step 4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StuffAreaRule {
    /// DeepLab2's TensorFlow op: void if `area ≤ limit`; without centres, each thing class region
    /// becomes one instance.
    #[default]
    TfOp,
    /// DeepLab2's Python fallback: kept if `area ≥ limit`; without centres, thing pixels are void.
    PythonFallback,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostProcessConfig {
    pub center_threshold: f32,
    pub nms_kernel: usize,
    pub keep_k_centers: usize,
    pub stuff_area_limit: usize,
    pub stuff_area_rule: StuffAreaRule,
    pub divisor: u32,
    pub void_label: u32,
    pub thing_classes: Vec<u32>,
}

impl PostProcessConfig {
    /// The Cityscapes Axial-DeepLab configs: threshold 0.1, NMS 13, 400 centres, stuff ≥ 2048 px.
    pub fn cityscapes() -> Self {
        Self {
            center_threshold: 0.1,
            nms_kernel: 13,
            keep_k_centers: 400,
            stuff_area_limit: 2048,
            stuff_area_rule: StuffAreaRule::TfOp,
            divisor: 1000,
            void_label: 255,
            thing_classes: (11..=18).collect(),
        }
    }
}

/// Centres `(row, col)` in row-major order: scores above the threshold that equal the max over a
/// `k × k` window (padding `(k-1)/2` before, the rest after); if more than `keep_k`, those strictly
/// above the k-th largest score.
pub fn find_centers(
    heatmap: &[f32],
    [h, w]: [usize; 2],
    config: &PostProcessConfig,
) -> Vec<[usize; 2]> {
    let score = |r: usize, c: usize| {
        let v = heatmap[r * w + c];
        if v > config.center_threshold { v } else { 0.0 }
    };
    let k = config.nms_kernel.max(1);
    let before = (k - 1) / 2;
    let after = k - 1 - before;
    let mut centers = Vec::new();
    for r in 0..h {
        for c in 0..w {
            let v = score(r, c);
            if v <= 0.0 {
                continue;
            }
            let rows = r.saturating_sub(before)..(r + after + 1).min(h);
            let is_max = rows.clone().all(|rr| {
                (c.saturating_sub(before)..(c + after + 1).min(w)).all(|cc| score(rr, cc) <= v)
            });
            if is_max {
                centers.push(([r, c], v));
            }
        }
    }
    if centers.len() > config.keep_k_centers && config.keep_k_centers > 0 {
        let mut scores: Vec<f32> = centers.iter().map(|c| c.1).collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        let kth = scores[config.keep_k_centers - 1];
        centers.retain(|c| c.1 > kth);
    }
    centers.into_iter().map(|c| c.0).collect()
}

/// Instance id per pixel: `1 +` the index of the centre nearest `(y + dy, x + dx)`; 0 off things.
pub fn group_pixels(
    semantic: &[u32],
    offsets: &[[f32; 2]],
    centers: &[[usize; 2]],
    w: usize,
    thing_classes: &[u32],
) -> Vec<u32> {
    semantic
        .iter()
        .enumerate()
        .map(|(p, class)| {
            if centers.is_empty() || !thing_classes.contains(class) {
                return 0;
            }
            let (y, x) = (
                (p / w) as f32 + offsets[p][0],
                (p % w) as f32 + offsets[p][1],
            );
            let distance = |c: &[usize; 2]| {
                let (dy, dx) = (c[0] as f32 - y, c[1] as f32 - x);
                dy * dy + dx * dx
            };
            let nearest = (0..centers.len())
                .min_by(|&a, &b| distance(&centers[a]).total_cmp(&distance(&centers[b])))
                .expect("at least one centre");
            nearest as u32 + 1
        })
        .collect()
}

/// `class · divisor + instance` per pixel (`axial-deeplab.md` §4.3 step 4).
pub fn merge_panoptic(semantic: &[u32], instances: &[u32], config: &PostProcessConfig) -> Vec<u32> {
    let void = config.void_label * config.divisor;
    let is_thing = |c: &u32| config.thing_classes.contains(c);
    let mut panoptic = vec![void; semantic.len()];
    let instance_count = instances.iter().copied().max().unwrap_or(0);
    if instance_count == 0 && config.stuff_area_rule == StuffAreaRule::TfOp {
        // No centre: each thing class region is one instance.
        for (p, class) in semantic.iter().enumerate() {
            if is_thing(class) {
                panoptic[p] = class * config.divisor + 1;
            }
        }
    }
    let mut per_class = std::collections::HashMap::<u32, u32>::new();
    for id in 1..=instance_count {
        let pixels: Vec<usize> = (0..semantic.len())
            .filter(|&p| instances[p] == id && is_thing(&semantic[p]))
            .collect();
        if pixels.is_empty() {
            continue;
        }
        let class = majority_class(pixels.iter().map(|&p| semantic[p]));
        let number = per_class.entry(class).or_insert(0);
        *number += 1;
        for p in pixels {
            panoptic[p] = class * config.divisor + *number;
        }
    }
    let mut stuff_area = std::collections::HashMap::<u32, usize>::new();
    for class in semantic
        .iter()
        .filter(|c| !is_thing(c) && **c != config.void_label)
    {
        *stuff_area.entry(*class).or_insert(0) += 1;
    }
    for (p, class) in semantic.iter().enumerate() {
        if let Some(&area) = stuff_area.get(class) {
            let keep = match config.stuff_area_rule {
                StuffAreaRule::TfOp => area > config.stuff_area_limit,
                StuffAreaRule::PythonFallback => area >= config.stuff_area_limit,
            };
            if keep {
                panoptic[p] = class * config.divisor;
            }
        }
    }
    panoptic
}

/// The most frequent label; ties go to the smaller label.
fn majority_class(labels: impl Iterator<Item = u32>) -> u32 {
    let mut counts = std::collections::BTreeMap::<u32, usize>::new();
    for label in labels {
        *counts.entry(label).or_insert(0) += 1;
    }
    let best = counts.values().copied().max().unwrap_or(0);
    counts
        .into_iter()
        .find(|&(_, n)| n == best)
        .map(|(label, _)| label)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `axial-deeplab.md` §8.7: H 4, W 6, things {1, 2}, stuff {0}, divisor 1000, void 255,
    /// threshold 0.1, NMS 3.
    fn spec_case() -> (Vec<u32>, Vec<f32>, Vec<[f32; 2]>, PostProcessConfig) {
        let (h, w) = (4, 6);
        let mut semantic = Vec::new();
        for _ in 0..3 {
            semantic.extend([0, 0, 1, 1, 2, 2]);
        }
        semantic.extend([0; 6]);
        let mut heatmap = vec![0.05; h * w];
        heatmap[w + 2] = 0.9;
        heatmap[w + 3] = 0.5;
        heatmap[w + 4] = 0.8;
        let offsets = (0..h * w)
            .map(|p| {
                let (y, x) = ((p / w) as f32, (p % w) as f32);
                match (p / w, p % w) {
                    (0..=2, 2..=3) => [1.0 - y, 2.0 - x],
                    (0..=2, 4..=5) => [1.0 - y, 4.0 - x],
                    _ => [0.0, 0.0],
                }
            })
            .collect();
        let config = PostProcessConfig {
            center_threshold: 0.1,
            nms_kernel: 3,
            keep_k_centers: 400,
            stuff_area_limit: 0,
            stuff_area_rule: StuffAreaRule::TfOp,
            divisor: 1000,
            void_label: 255,
            thing_classes: vec![1, 2],
        };
        (semantic, heatmap, offsets, config)
    }

    #[test]
    fn the_spec_example_gives_its_centres_instances_and_panoptic_map() {
        let (semantic, heatmap, offsets, mut config) = spec_case();
        let centers = find_centers(&heatmap, [4, 6], &config);
        assert_eq!(centers, [[1, 2], [1, 4]]);
        let instances = group_pixels(&semantic, &offsets, &centers, 6, &config.thing_classes);
        let row = [0, 0, 1, 1, 2, 2];
        assert_eq!(instances, [row, row, row, [0; 6]].concat());
        let panoptic = merge_panoptic(&semantic, &instances, &config);
        let row = [0, 0, 1001, 1001, 2001, 2001];
        assert_eq!(panoptic, [row, row, row, [0; 6]].concat());
        // Stuff area exactly 12 at limit 12: the TF op voids it, the Python fallback keeps it.
        config.stuff_area_limit = 12;
        assert_eq!(merge_panoptic(&semantic, &instances, &config)[0], 255_000);
        config.stuff_area_rule = StuffAreaRule::PythonFallback;
        assert_eq!(merge_panoptic(&semantic, &instances, &config)[0], 0);
    }

    #[test]
    fn an_instance_takes_its_majority_class() {
        let (mut semantic, heatmap, offsets, config) = spec_case();
        semantic[3] = 2; // (0, 3)
        let centers = find_centers(&heatmap, [4, 6], &config);
        let instances = group_pixels(&semantic, &offsets, &centers, 6, &config.thing_classes);
        assert_eq!(merge_panoptic(&semantic, &instances, &config)[3], 1001);
        assert_eq!(
            majority_class([2, 1, 2, 1].into_iter()),
            1,
            "ties go to the smaller label"
        );
    }

    #[test]
    fn only_scores_strictly_above_the_kth_survive() {
        let config = PostProcessConfig {
            nms_kernel: 1,
            keep_k_centers: 2,
            ..spec_case().3
        };
        // Scores 0.9, 0.8, 0.8: the 2nd largest is 0.8, so only 0.9 is strictly above it.
        let heatmap = [0.9, 0.0, 0.8, 0.0, 0.8, 0.0];
        assert_eq!(find_centers(&heatmap, [1, 6], &config), [[0, 0]]);
    }

    #[test]
    fn without_centres_each_thing_class_is_one_instance_under_the_tf_rule() {
        let (semantic, _, offsets, config) = spec_case();
        let instances = group_pixels(&semantic, &offsets, &[], 6, &config.thing_classes);
        let panoptic = merge_panoptic(&semantic, &instances, &config);
        assert_eq!(panoptic[2], 1001);
        let python = PostProcessConfig {
            stuff_area_rule: StuffAreaRule::PythonFallback,
            ..config
        };
        assert_eq!(merge_panoptic(&semantic, &instances, &python)[2], 255_000);
    }
}
