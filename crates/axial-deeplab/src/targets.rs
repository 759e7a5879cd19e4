//! Panoptic-DeepLab training targets (`axial-deeplab.md` §4.2, DeepLab2 `data/sample_generator.py`)
//! from a canonical panoptic map `semantic · divisor + instance`: semantic labels and pixel weights,
//! the centre heatmap, the centre offsets and their weights. Host-side, per image, row-major.

/// What the target generator needs to know about the label space.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelSpace {
    pub divisor: u32,
    /// The void/ignore semantic label (255 for Cityscapes).
    pub ignore_label: u32,
    pub thing_classes: Vec<u32>,
    /// Gaussian σ of the centre heatmap (8).
    pub sigma: f32,
    /// Instances smaller than this (pixels) weigh `small_instance_weight` in the semantic loss.
    pub small_instance_area: usize,
    pub small_instance_weight: f32,
}

impl LabelSpace {
    /// Cityscapes (DL2): divisor 1000, ignore 255, things 11–18, σ 8, small instances < 4096 px × 3.
    pub fn cityscapes() -> Self {
        Self {
            divisor: 1000,
            ignore_label: 255,
            thing_classes: (11..=18).collect(),
            sigma: 8.0,
            small_instance_area: 4096,
            small_instance_weight: 3.0,
        }
    }
}

/// The targets of one image, `[H, W]` each (offsets `[H, W]` pairs `(dy, dx)`).
#[derive(Clone, Debug, PartialEq)]
pub struct PanopticTargets {
    pub semantic: Vec<u32>,
    pub semantic_weights: Vec<f32>,
    pub center: Vec<f32>,
    pub center_weights: Vec<f32>,
    pub offsets: Vec<[f32; 2]>,
    pub offset_weights: Vec<f32>,
    /// `(row, col)` of each non-crowd thing instance's centre.
    pub centers: Vec<[usize; 2]>,
}

/// The `(6σ + 3)²` Gaussian patch, peak 1 at index `3σ + 1` (51×51, peak at 25 for σ = 8).
pub fn gaussian_patch(sigma: f32) -> (usize, Vec<f32>) {
    let size = (6.0 * sigma + 3.0).round() as usize;
    let centre = (3.0 * sigma + 1.0).round();
    let values = (0..size * size)
        .map(|p| {
            let (dy, dx) = ((p / size) as f32 - centre, (p % size) as f32 - centre);
            (-(dy * dy + dx * dx) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    (size, values)
}

/// Targets of `panoptic` (`[H, W]`, `semantic · divisor + instance`); `crowd(segment id)` says
/// whether a segment is a crowd region (no centre, no offsets, no centre loss). Thing pixels with
/// instance 0 are crowd regions of the canonical map (`axial-deeplab.md` §7).
pub fn panoptic_targets(
    panoptic: &[u32],
    [h, w]: [usize; 2],
    space: &LabelSpace,
    crowd: impl Fn(u32) -> bool,
) -> PanopticTargets {
    let n = h * w;
    let semantic: Vec<u32> = panoptic.iter().map(|&id| id / space.divisor).collect();
    let mut semantic_weights: Vec<f32> = semantic
        .iter()
        .map(|&s| if s == space.ignore_label { 0.0 } else { 1.0 })
        .collect();
    let mut center_weights: Vec<f32> = semantic
        .iter()
        .zip(panoptic)
        .map(|(&s, &id)| {
            let crowd_region =
                crowd(id) || (space.thing_classes.contains(&s) && id % space.divisor == 0);
            if s == space.ignore_label || crowd_region {
                0.0
            } else {
                1.0
            }
        })
        .collect();
    let mut center = vec![0.0f32; n];
    let mut offsets = vec![[0.0f32; 2]; n];
    let mut offset_weights = vec![0.0f32; n];
    let mut centers = Vec::new();
    let (patch_size, patch) = gaussian_patch(space.sigma);
    let half = (patch_size / 2) as i64;
    // Segments in order of first appearance.
    let mut ids: Vec<u32> = Vec::new();
    for &id in panoptic {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    for id in ids {
        let class = id / space.divisor;
        if !space.thing_classes.contains(&class) || id % space.divisor == 0 {
            continue;
        }
        let pixels: Vec<usize> = (0..n).filter(|&p| panoptic[p] == id).collect();
        if pixels.len() < space.small_instance_area {
            for &p in &pixels {
                semantic_weights[p] = space.small_instance_weight;
            }
        }
        if crowd(id) {
            for &p in &pixels {
                center_weights[p] = 0.0;
            }
            continue;
        }
        let [cy, cx] = rounded_mean(&pixels, w);
        centers.push([cy, cx]);
        for &p in &pixels {
            offsets[p] = [cy as f32 - (p / w) as f32, cx as f32 - (p % w) as f32];
            offset_weights[p] = 1.0;
        }
        // Paste the Gaussian centred on (cy, cx), combining overlaps with max.
        for py in 0..patch_size as i64 {
            for px in 0..patch_size as i64 {
                let (y, x) = (cy as i64 + py - half, cx as i64 + px - half);
                if (0..h as i64).contains(&y) && (0..w as i64).contains(&x) {
                    let p = y as usize * w + x as usize;
                    let g = patch[py as usize * patch_size + px as usize];
                    center[p] = center[p].max(g);
                }
            }
        }
    }
    PanopticTargets {
        semantic,
        semantic_weights,
        center,
        center_weights,
        offsets,
        offset_weights,
        centers,
    }
}

/// The mean `(row, col)` of `pixels`, rounded half to even (NumPy's `round`).
fn rounded_mean(pixels: &[usize], w: usize) -> [usize; 2] {
    let count = pixels.len() as f64;
    let row = pixels.iter().map(|&p| (p / w) as f64).sum::<f64>() / count;
    let col = pixels.iter().map(|&p| (p % w) as f64).sum::<f64>() / count;
    [
        row.round_ties_even() as usize,
        col.round_ties_even() as usize,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gaussian_patch_has_the_spec_values() {
        // axial-deeplab.md §8.8.
        let (size, patch) = gaussian_patch(8.0);
        assert_eq!(size, 51);
        let at = |dy: usize, dx: usize| patch[(25 + dy) * 51 + 25 + dx];
        for (value, expected) in [
            (at(0, 0), 1.0),
            (at(0, 8), 0.606531),
            (at(8, 8), 0.367879),
            (at(0, 16), 0.135335),
        ] {
            assert!((value - expected).abs() < 1e-6, "{value} vs {expected}");
        }
    }

    #[test]
    fn a_small_instance_gets_its_centre_offsets_and_weights() {
        // §8.8: a 3×3 instance at rows 10–12, cols 20–22 has centre (11, 21); (10, 20) → (1, 1).
        let (h, w) = (32, 40);
        let space = LabelSpace::cityscapes();
        let mut panoptic = vec![7000u32; h * w]; // stuff class 7
        for r in 10..13 {
            for c in 20..23 {
                panoptic[r * w + c] = 11_001;
            }
        }
        panoptic[0] = 255_000; // void
        let t = panoptic_targets(&panoptic, [h, w], &space, |_| false);
        assert_eq!(t.centers, [[11, 21]]);
        assert_eq!(t.offsets[10 * w + 20], [1.0, 1.0]);
        assert_eq!(t.offsets[12 * w + 22], [-1.0, -1.0]);
        assert_eq!(t.center[11 * w + 21], 1.0);
        assert!((t.center[11 * w + 29] - 0.606531).abs() < 1e-6);
        assert_eq!(t.semantic[10 * w + 20], 11);
        assert_eq!(t.semantic_weights[10 * w + 20], 3.0, "small instance");
        assert_eq!(t.semantic_weights[5], 1.0);
        assert_eq!(
            (t.semantic_weights[0], t.center_weights[0]),
            (0.0, 0.0),
            "void"
        );
        assert_eq!(t.center_weights[5], 1.0, "stuff counts for the centre loss");
        assert_eq!(t.offset_weights[5], 0.0, "offsets only on things");
        assert_eq!(t.offset_weights[11 * w + 21], 1.0);
        // A crowd instance: no centre, no offsets, no centre loss.
        let crowd = panoptic_targets(&panoptic, [h, w], &space, |id| id == 11_001);
        assert!(crowd.centers.is_empty());
        assert_eq!(crowd.center_weights[11 * w + 21], 0.0);
        assert_eq!(crowd.offset_weights[11 * w + 21], 0.0);
    }
}
