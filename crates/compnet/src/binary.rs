//! Binary encodings for the mixtures' initialisation (`compnet.md` §2.9 steps 1–2): a kernel is
//! "on" at a position when the cosine distance of the unit feature to it is below a per-class
//! threshold — the smallest t in {0, 0.05, …, 0.95} that puts the mean number of on-kernels per
//! position strictly between 2 and 15 (else 0.45); two images are compared by the rate of one
//! map's on-entries with no on-entry of the same kernel in the other's 3×3 neighbourhood, after a
//! centre crop or zero-pad to the same size, averaged over both directions.

/// A binary map `[K, H, W]`, kernel-major.
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryMap {
    pub kernels: usize,
    pub height: usize,
    pub width: usize,
    pub on: Vec<bool>,
}

impl BinaryMap {
    /// `dist[k, y, x] < t` of cosine distances `[K, H, W]`.
    pub fn from_distances(distances: &[f64], [kernels, height, width]: [usize; 3], t: f64) -> Self {
        Self {
            kernels,
            height,
            width,
            on: distances.iter().map(|&d| d < t).collect(),
        }
    }

    fn at(&self, k: usize, y: usize, x: usize) -> bool {
        self.on[(k * self.height + y) * self.width + x]
    }

    /// Centre zero-padded or cropped to `[h, w]` (pad before `⌊(out − in)/2⌋`, crop from
    /// `⌊(in − out)/2⌋`, as `crop_or_pad_as`).
    pub fn aligned_to(&self, h: usize, w: usize) -> Self {
        let offset = |inner: usize, outer: usize| -> isize {
            if outer >= inner {
                ((outer - inner) / 2) as isize
            } else {
                -(((inner - outer) / 2) as isize)
            }
        };
        let (dy, dx) = (offset(self.height, h), offset(self.width, w));
        let mut on = vec![false; self.kernels * h * w];
        for k in 0..self.kernels {
            for y in 0..h {
                for x in 0..w {
                    let (sy, sx) = (y as isize - dy, x as isize - dx);
                    if sy >= 0
                        && sx >= 0
                        && (sy as usize) < self.height
                        && (sx as usize) < self.width
                    {
                        on[(k * h + y) * w + x] = self.at(k, sy as usize, sx as usize);
                    }
                }
            }
        }
        Self {
            kernels: self.kernels,
            height: h,
            width: w,
            on,
        }
    }

    /// Mean on-kernels per position.
    pub fn mean_on_per_position(&self) -> f64 {
        self.on.iter().filter(|&&b| b).count() as f64 / (self.height * self.width).max(1) as f64
    }
}

/// The class's threshold: the smallest of 0, 0.05, …, 0.95 whose mean on-count per position over
/// `distances` (each `[K, H, W]` with its shape) lies in (2, 15); else 0.45.
pub fn class_threshold(maps: &[(Vec<f64>, [usize; 3])]) -> f64 {
    (0..20)
        .map(|i| 0.05 * i as f64)
        .find(|&t| {
            let mean = maps
                .iter()
                .map(|(d, shape)| BinaryMap::from_distances(d, *shape, t).mean_on_per_position())
                .sum::<f64>()
                / maps.len().max(1) as f64;
            mean > 2.0 && mean < 15.0
        })
        .unwrap_or(0.45)
}

/// The rate of `b`'s on-entries (aligned to `a`) without an on-entry of the same kernel in `a`'s
/// 3×3 neighbourhood; 0 when `b` has none.
pub fn miss_rate(a: &BinaryMap, b: &BinaryMap) -> f64 {
    let b = b.aligned_to(a.height, a.width);
    let (mut on, mut missed) = (0usize, 0usize);
    for k in 0..a.kernels {
        for y in 0..a.height {
            for x in 0..a.width {
                if !b.at(k, y, x) {
                    continue;
                }
                on += 1;
                let found = (y.saturating_sub(1)..(y + 2).min(a.height)).any(|yy| {
                    (x.saturating_sub(1)..(x + 2).min(a.width)).any(|xx| a.at(k, yy, xx))
                });
                if !found {
                    missed += 1;
                }
            }
        }
    }
    if on == 0 {
        0.0
    } else {
        missed as f64 / on as f64
    }
}

/// The symmetrised distance `(miss(a, b) + miss(b, a)) / 2`.
pub fn pairwise_distance(a: &BinaryMap, b: &BinaryMap) -> f64 {
    (miss_rate(a, b) + miss_rate(b, a)) / 2.0
}
