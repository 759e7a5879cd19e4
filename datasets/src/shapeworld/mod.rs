//! ShapeWorld: a procedural scene model that stands in for real photographs on a fresh machine.
//!
//! A scene is sampled from a seeded generator — background "stuff" regions, then shape instances,
//! each with a class, geometry, pose, palette and texture — and rendered pixel by pixel. Sampling
//! and rendering are separate so that tasks needing more than a class label (masks, occluders,
//! scales, sketches) add annotations to [`Scene`] without changing what classification sees.
//! Everything is a pure function of `(seed, split, index)`: no files, no shared state, thread-safe.

mod occlusion;
mod panoptic;
mod preview;
mod scale;
mod sketch;

pub use occlusion::{Occluder, OccluderKind, OcclusionLevel, OcclusionSample};
pub use panoptic::{PanopticInstance, PanopticSample};
pub use preview::{
    PreviewTask, Tile, heatmap_picture, instance_picture, preview_tiles, rgb_picture,
    semantic_picture, tile, to_image,
};
pub use scale::{ScaleSample, ShapeWorldScale};
pub use sketch::{Hierarchy, SketchSample};

use std::f32::consts::{PI, TAU};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use serde::{Deserialize, Serialize};

/// The shape classes. Each has its own geometry and a class-typical (but varied) palette and
/// texture, so that both shape and appearance carry the label, as in natural images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeClass {
    Disk,
    Square,
    Triangle,
    Diamond,
    Hexagon,
    Star,
    Cross,
    Ring,
    Crescent,
    Heart,
    Ellipse,
    Arrow,
    // Pretraining-only classes (the teacher's superset for SAKE, see `sketch`).
    Pentagon,
    Octagon,
    Semicircle,
    Chevron,
}

impl ShapeClass {
    pub const ALL: [ShapeClass; 16] = [
        ShapeClass::Disk,
        ShapeClass::Square,
        ShapeClass::Triangle,
        ShapeClass::Diamond,
        ShapeClass::Hexagon,
        ShapeClass::Star,
        ShapeClass::Cross,
        ShapeClass::Ring,
        ShapeClass::Crescent,
        ShapeClass::Heart,
        ShapeClass::Ellipse,
        ShapeClass::Arrow,
        ShapeClass::Pentagon,
        ShapeClass::Octagon,
        ShapeClass::Semicircle,
        ShapeClass::Chevron,
    ];

    /// The classes of ShapeWorld's tasks; the rest of [`Self::ALL`] only serves pretraining.
    pub const TASK_CLASSES: usize = 12;

    pub fn name(self) -> &'static str {
        match self {
            ShapeClass::Disk => "disk",
            ShapeClass::Square => "square",
            ShapeClass::Triangle => "triangle",
            ShapeClass::Diamond => "diamond",
            ShapeClass::Hexagon => "hexagon",
            ShapeClass::Star => "star",
            ShapeClass::Cross => "cross",
            ShapeClass::Ring => "ring",
            ShapeClass::Crescent => "crescent",
            ShapeClass::Heart => "heart",
            ShapeClass::Ellipse => "ellipse",
            ShapeClass::Arrow => "arrow",
            ShapeClass::Pentagon => "pentagon",
            ShapeClass::Octagon => "octagon",
            ShapeClass::Semicircle => "semicircle",
            ShapeClass::Chevron => "chevron",
        }
    }

    pub fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|&c| c == self)
            .expect("every class is in ALL")
    }

    /// Whether the point `(u, v)` of the unit-radius object frame lies inside the shape.
    fn contains(self, u: f32, v: f32) -> bool {
        let r2 = u * u + v * v;
        match self {
            ShapeClass::Disk => r2 <= 0.81,
            ShapeClass::Square => u.abs().max(v.abs()) <= 0.68,
            ShapeClass::Triangle => {
                // Equilateral, apex up, inscribed in the unit circle.
                v >= -0.5 && (3f32.sqrt() * u.abs() + v) <= 1.0
            }
            ShapeClass::Diamond => u.abs() / 0.75 + v.abs() <= 1.0,
            ShapeClass::Hexagon => {
                let (au, av) = (u.abs(), v.abs());
                av <= 0.8 && (3f32.sqrt() * au + av) <= 1.6
            }
            ShapeClass::Star => {
                let r = r2.sqrt();
                let angle = v.atan2(u) + PI / 2.0;
                let sector = (angle.rem_euclid(TAU / 5.0) - TAU / 10.0).abs() / (TAU / 10.0);
                r <= 0.42 + 0.58 * (1.0 - sector)
            }
            ShapeClass::Cross => {
                (u.abs() <= 0.28 && v.abs() <= 0.9) || (v.abs() <= 0.28 && u.abs() <= 0.9)
            }
            ShapeClass::Ring => (0.36..=0.9).contains(&r2),
            ShapeClass::Crescent => r2 <= 0.81 && (u - 0.38) * (u - 0.38) + v * v > 0.5,
            ShapeClass::Heart => {
                let (x, y) = (u * 1.2, -v * 1.2 + 0.25);
                let a = x * x + y * y - 1.0;
                a * a * a - x * x * y * y * y <= 0.0
            }
            ShapeClass::Ellipse => u * u / 0.9 + v * v / 0.25 <= 1.0,
            ShapeClass::Arrow => {
                (v.abs() <= 0.22 && (-0.9..=0.1).contains(&u))
                    || ((0.1..=0.9).contains(&u) && v.abs() <= (0.9 - u) * 0.9)
            }
            ShapeClass::Pentagon => (0..5).all(|k| {
                let a = PI / 2.0 + k as f32 * TAU / 5.0 + TAU / 10.0;
                u * a.cos() + v * a.sin() <= 0.9 * (PI / 5.0).cos()
            }),
            ShapeClass::Octagon => {
                u.abs().max(v.abs()).max((u.abs() + v.abs()) / 2f32.sqrt()) <= 0.78
            }
            ShapeClass::Semicircle => r2 <= 0.81 && v <= 0.2,
            ShapeClass::Chevron => u.abs() <= 0.85 && (v - (0.6 * u.abs() - 0.3)).abs() <= 0.24,
        }
    }

    /// Typical hue (degrees) and texture of the class; instances vary around them.
    fn appearance(self) -> (f32, TextureKind) {
        let i = self.index();
        (
            // The 12 task classes spread over the hue circle; the 4 extra ones fall between them.
            (i % 12) as f32 * 30.0 + (i / 12) as f32 * 15.0,
            TextureKind::ALL[i % TextureKind::ALL.len()],
        )
    }
}

/// The surface patterns of objects and stuff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextureKind {
    Solid,
    Stripes,
    Checker,
    Dots,
    Noise,
}

impl TextureKind {
    const ALL: [TextureKind; 5] = [
        TextureKind::Solid,
        TextureKind::Stripes,
        TextureKind::Checker,
        TextureKind::Dots,
        TextureKind::Noise,
    ];
}

/// A texture instance: kind, two colours, spatial frequency and orientation.
#[derive(Clone, Copy, Debug)]
pub struct Texture {
    pub kind: TextureKind,
    pub primary: [f32; 3],
    pub secondary: [f32; 3],
    /// Pattern periods per unit length of the frame the texture is evaluated in.
    pub frequency: f32,
    pub angle: f32,
    pub seed: u32,
}

impl Texture {
    fn sample(rng: &mut Xoshiro256PlusPlus, kind: TextureKind, hue: f32, frequency: f32) -> Self {
        let hue = hue + rng.random_range(-18.0..18.0);
        let sat = rng.random_range(0.45..0.95);
        let val = rng.random_range(0.55..0.95);
        let contrast = rng.random_range(0.3..0.6);
        Self {
            kind,
            primary: hsv_to_rgb(hue, sat, val),
            secondary: hsv_to_rgb(
                hue + rng.random_range(-40.0..40.0),
                sat * 0.8,
                val * (1.0 - contrast),
            ),
            frequency: frequency * rng.random_range(0.7..1.4),
            angle: rng.random_range(0.0..PI),
            seed: rng.random(),
        }
    }

    /// The colour at point `(x, y)` of the texture's frame.
    fn colour(&self, x: f32, y: f32) -> [f32; 3] {
        let (s, c) = self.angle.sin_cos();
        let (xr, yr) = (
            (x * c - y * s) * self.frequency,
            (x * s + y * c) * self.frequency,
        );
        let t = match self.kind {
            TextureKind::Solid => 0.0,
            TextureKind::Stripes => (xr.fract().abs() < 0.5) as u8 as f32,
            TextureKind::Checker => ((xr.floor() + yr.floor()).rem_euclid(2.0) < 1.0) as u8 as f32,
            TextureKind::Dots => {
                let (fx, fy) = (xr.rem_euclid(1.0) - 0.5, yr.rem_euclid(1.0) - 0.5);
                (fx * fx + fy * fy < 0.09) as u8 as f32
            }
            TextureKind::Noise => value_noise(xr, yr, self.seed),
        };
        lerp(self.primary, self.secondary, t)
    }
}

/// A region of background "stuff" (the part of a scene that is not a countable object): a
/// half-plane cut of the image with its own texture.
#[derive(Clone, Copy, Debug)]
pub struct StuffRegion {
    /// Stuff class, `0..ShapeWorld::STUFF_CLASSES`.
    pub class: usize,
    pub texture: Texture,
}

/// Names of the stuff classes, in the order of `STUFF`.
const STUFF_NAMES: [&str; 3] = ["grass", "sky", "wall"];

/// The stuff classes: grass-like noise, sky-like smooth, wall-like checker.
const STUFF: [(f32, TextureKind); 3] = [
    (100.0, TextureKind::Noise),
    (210.0, TextureKind::Solid),
    (25.0, TextureKind::Checker),
];

/// One object: class, pose in pixels, appearance.
#[derive(Clone, Copy, Debug)]
pub struct ShapeInstance {
    pub class: ShapeClass,
    pub center: [f32; 2],
    /// Radius of the circle the shape is inscribed in, in pixels.
    pub radius: f32,
    pub rotation: f32,
    pub texture: Texture,
}

impl ShapeInstance {
    /// Whether pixel centre `(x, y)` is covered.
    pub fn covers(&self, x: f32, y: f32) -> bool {
        let (dx, dy) = (
            (x - self.center[0]) / self.radius,
            (y - self.center[1]) / self.radius,
        );
        if dx * dx + dy * dy > 1.0 {
            return false;
        }
        let (s, c) = self.rotation.sin_cos();
        self.class.contains(dx * c + dy * s, -dx * s + dy * c)
    }
}

/// Everything needed to render one image and derive its annotations.
#[derive(Clone, Debug)]
pub struct Scene {
    pub size: usize,
    /// Background regions split by the line through `split_point` with direction `split_angle`.
    pub stuff: [StuffRegion; 2],
    pub split_point: [f32; 2],
    pub split_angle: f32,
    /// Objects in painting order (later ones in front).
    pub objects: Vec<ShapeInstance>,
    /// Occluders, painted in front of every object (the occlusion task).
    pub occluders: Vec<Occluder>,
}

/// What a pixel shows: the front-most thing that covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Occluder(usize),
    Object(usize),
    /// Index into [`Scene::stuff`].
    Stuff(usize),
}

impl Scene {
    fn stuff_region_at(&self, x: f32, y: f32) -> usize {
        let (s, c) = self.split_angle.sin_cos();
        let side = (x - self.split_point[0]) * s - (y - self.split_point[1]) * c;
        (side > 0.0) as usize
    }

    /// The layer seen at the centre of pixel `(row, col)`.
    pub fn layer_at(&self, row: usize, col: usize) -> Layer {
        let (x, y) = (col as f32 + 0.5, row as f32 + 0.5);
        if let Some(k) = self.occluders.iter().rposition(|o| o.covers(x, y)) {
            return Layer::Occluder(k);
        }
        match self.objects.iter().rposition(|o| o.covers(x, y)) {
            Some(k) => Layer::Object(k),
            None => Layer::Stuff(self.stuff_region_at(x, y)),
        }
    }

    /// The layer of every pixel, row-major `[H, W]`.
    pub fn layers(&self) -> Vec<Layer> {
        let n = self.size;
        (0..n * n).map(|p| self.layer_at(p / n, p % n)).collect()
    }

    /// RGB, row-major `[H, W, 3]`, values in `[0, 1]`.
    pub fn render(&self) -> Vec<f32> {
        let n = self.size;
        let scale = 1.0 / n as f32;
        let mut pixels = Vec::with_capacity(n * n * 3);
        for row in 0..n {
            for col in 0..n {
                let (x, y) = (col as f32 + 0.5, row as f32 + 0.5);
                let colour = match self.layer_at(row, col) {
                    Layer::Occluder(k) => self.occluders[k].colour(x, y),
                    Layer::Object(k) => {
                        let o = &self.objects[k];
                        o.texture
                            .colour((x - o.center[0]) / o.radius, (y - o.center[1]) / o.radius)
                    }
                    Layer::Stuff(r) => self.stuff[r].texture.colour(x * scale, y * scale),
                };
                pixels.extend_from_slice(&colour);
            }
        }
        pixels
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    fn stream(self) -> u64 {
        match self {
            Split::Train => 0x5452_4149_4e00_0000,
            Split::Val => 0x5641_4c00_0000_0000,
            Split::Test => 0x5445_5354_0000_0000,
        }
    }
}

/// Two stuff regions, a point on their border line and its direction.
type Background = ([StuffRegion; 2], [f32; 2], f32);

/// The world's fixed settings: the seed and what varies between its images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShapeWorld {
    pub seed: u64,
    /// Side of the square images, in pixels.
    pub image_size: usize,
    /// How many shape classes are used (the first `num_classes` of [`ShapeClass::ALL`]).
    pub num_classes: usize,
    /// Object radius range as a fraction of the image side.
    pub scale_range: [f32; 2],
    /// Probability that an object's texture is not its class-typical one.
    pub texture_swap: f32,
    /// Range of the number of objects in a multi-object scene (panoptic and scale tasks).
    pub objects_per_image: [usize; 2],
}

impl Default for ShapeWorld {
    fn default() -> Self {
        Self {
            seed: 0,
            image_size: 32,
            num_classes: 10,
            scale_range: [0.25, 0.45],
            texture_swap: 0.3,
            objects_per_image: [2, 4],
        }
    }
}

impl ShapeWorld {
    pub const STUFF_CLASSES: usize = STUFF.len();

    /// Checks the settings, naming the first one out of range.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=ShapeClass::ALL.len()).contains(&self.num_classes) {
            return Err(format!(
                "data.num_classes = {}: expected 1..={}",
                self.num_classes,
                ShapeClass::ALL.len()
            ));
        }
        if !(8..=1024).contains(&self.image_size) {
            return Err(format!(
                "data.image_size = {}: expected 8..=1024 pixels",
                self.image_size
            ));
        }
        let [lo, hi] = self.scale_range;
        if !(0.02 <= lo && lo <= hi && hi <= 0.5) {
            return Err(format!(
                "data.scale_range = [{lo}, {hi}]: expected 0.02 <= min <= max <= 0.5"
            ));
        }
        if !(0.0..=1.0).contains(&self.texture_swap) {
            return Err(format!(
                "data.texture_swap = {}: expected a probability in [0, 1]",
                self.texture_swap
            ));
        }
        let [lo, hi] = self.objects_per_image;
        if !(1 <= lo && lo <= hi && hi <= 16) {
            return Err(format!(
                "data.objects_per_image = [{lo}, {hi}]: expected 1 <= min <= max <= 16"
            ));
        }
        Ok(())
    }

    /// The generator of image `index` of `split`: independent streams per image, so any image can
    /// be made alone, in any order, on any thread.
    fn rng(&self, split: Split, index: u64) -> Xoshiro256PlusPlus {
        let mixed = splitmix64(self.seed ^ split.stream())
            ^ splitmix64(index.wrapping_add(0x9E37_79B9_7F4A_7C15));
        Xoshiro256PlusPlus::seed_from_u64(splitmix64(mixed))
    }

    /// A generator for task-specific draws of image `index` (occluders, extra objects, sketches):
    /// a stream of its own, so that adding them leaves the image's shared part unchanged.
    fn task_rng(&self, split: Split, index: u64, task: u64) -> Xoshiro256PlusPlus {
        let mixed = splitmix64(self.seed ^ split.stream() ^ splitmix64(task))
            ^ splitmix64(index.wrapping_add(0x9E37_79B9_7F4A_7C15));
        Xoshiro256PlusPlus::seed_from_u64(splitmix64(mixed ^ 0xA5A5_A5A5_A5A5_A5A5))
    }

    fn background(&self, rng: &mut Xoshiro256PlusPlus) -> Background {
        let n = self.image_size as f32;
        let region = |rng: &mut Xoshiro256PlusPlus| {
            let class = rng.random_range(0..STUFF.len());
            let (hue, kind) = STUFF[class];
            let frequency = rng.random_range(3.0..8.0);
            let mut texture = Texture::sample(rng, kind, hue, frequency);
            // Stuff is duller than things.
            texture.primary = lerp(texture.primary, [0.5; 3], 0.35);
            texture.secondary = lerp(texture.secondary, [0.5; 3], 0.35);
            StuffRegion { class, texture }
        };
        let stuff = [region(rng), region(rng)];
        let point = [rng.random_range(0.0..n), rng.random_range(0.0..n)];
        (stuff, point, rng.random_range(0.0..PI))
    }

    fn object(&self, rng: &mut Xoshiro256PlusPlus, class: ShapeClass) -> ShapeInstance {
        let n = self.image_size as f32;
        let radius = n * rng.random_range(self.scale_range[0]..=self.scale_range[1]);
        let (hue, mut kind) = class.appearance();
        if rng.random_bool(self.texture_swap as f64) {
            kind = TextureKind::ALL[rng.random_range(0..TextureKind::ALL.len())];
        }
        let margin = radius * 0.6;
        let frequency = rng.random_range(2.0..4.0);
        ShapeInstance {
            class,
            center: [
                rng.random_range(margin..n - margin),
                rng.random_range(margin..n - margin),
            ],
            radius,
            rotation: rng.random_range(-0.5..0.5),
            texture: Texture::sample(rng, kind, hue, frequency),
        }
    }

    /// A classification scene: one object of a uniformly drawn class on a two-region background.
    pub fn classification_scene(&self, split: Split, index: u64) -> (Scene, usize) {
        let classes = &ShapeClass::ALL[..self.num_classes];
        self.single_object_scene(&mut self.rng(split, index), classes)
    }

    /// One object of a class drawn uniformly from `classes` on a two-region background, and the
    /// index of its class in `classes`.
    fn single_object_scene(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        classes: &[ShapeClass],
    ) -> (Scene, usize) {
        let label = rng.random_range(0..classes.len());
        let background = self.background(rng);
        let object = self.object(rng, classes[label]);
        (self.scene(background, vec![object]), label)
    }

    /// A scene of `objects` (painting order) on `background`, without occluders.
    fn scene(&self, background: Background, objects: Vec<ShapeInstance>) -> Scene {
        let (stuff, split_point, split_angle) = background;
        Scene {
            size: self.image_size,
            stuff,
            split_point,
            split_angle,
            objects,
            occluders: Vec::new(),
        }
    }

    /// The settings of instance discrimination (CO2 / MoCo, `co2-moco.md` §4): classification scenes
    /// of all task classes with wide pose, scale and appearance variety, so that invariance to
    /// augmentation is learnable and a linear probe on the labels is meaningful.
    pub fn instance_discrimination() -> ShapeWorld {
        ShapeWorld {
            image_size: 64,
            num_classes: ShapeClass::TASK_CLASSES,
            scale_range: [0.2, 0.45],
            texture_swap: 0.5,
            ..ShapeWorld::default()
        }
    }

    pub fn class_names(&self) -> Vec<&'static str> {
        ShapeClass::ALL[..self.num_classes]
            .iter()
            .map(|c| c.name())
            .collect()
    }
}

/// ShapeWorld classification as a burn dataset of `len` images of one split.
#[derive(Clone, Debug)]
pub struct ShapeWorldClassification {
    pub world: ShapeWorld,
    pub split: Split,
    pub len: usize,
}

impl burn::data::dataset::Dataset<crate::ClassificationItem> for ShapeWorldClassification {
    fn get(&self, index: usize) -> Option<crate::ClassificationItem> {
        (index < self.len).then(|| {
            let (scene, label) = self.world.classification_scene(self.split, index as u64);
            crate::ClassificationItem {
                pixels: scene.render(),
                size: [scene.size, scene.size],
                label,
            }
        })
    }

    fn len(&self) -> usize {
        self.len
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Smooth pseudo-random values in [0, 1] on a unit lattice, bilinearly interpolated.
fn value_noise(x: f32, y: f32, seed: u32) -> f32 {
    let lattice = |i: i32, j: i32| {
        let h = splitmix64(((i as u32 as u64) << 32 | j as u32 as u64) ^ (seed as u64) << 17);
        (h >> 40) as f32 / (1u64 << 24) as f32
    };
    let (i, j) = (x.floor() as i32, y.floor() as i32);
    let (fx, fy) = (x - x.floor(), y - y.floor());
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let top = lattice(i, j) * (1.0 - sx) + lattice(i + 1, j) * sx;
    let bottom = lattice(i, j + 1) * (1.0 - sx) + lattice(i + 1, j + 1) * sx;
    top * (1.0 - sy) + bottom * sy
}

fn lerp(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn hsv_to_rgb(hue: f32, sat: f32, val: f32) -> [f32; 3] {
    let h = hue.rem_euclid(360.0) / 60.0;
    let c = val * sat.clamp(0.0, 1.0);
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = val - c;
    [r + m, g + m, b + m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_a_function_of_seed_split_and_index() {
        let world = ShapeWorld::default();
        let (a, la) = world.classification_scene(Split::Train, 7);
        let (b, lb) = world.classification_scene(Split::Train, 7);
        assert_eq!((a.render(), la), (b.render(), lb));
        let (c, _) = world.classification_scene(Split::Val, 7);
        assert_ne!(a.render(), c.render());
        let other = ShapeWorld {
            seed: 1,
            ..ShapeWorld::default()
        };
        assert_ne!(
            a.render(),
            other.classification_scene(Split::Train, 7).0.render()
        );
    }

    #[test]
    fn labels_cover_every_class_evenly() {
        let world = ShapeWorld {
            num_classes: 12,
            ..ShapeWorld::default()
        };
        let mut counts = [0usize; 12];
        for i in 0..2400 {
            counts[world.classification_scene(Split::Train, i).1] += 1;
        }
        assert!(
            counts.iter().all(|&c| (140..=260).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn every_shape_is_visible_and_distinct() {
        // Masks of the 12 classes at a fixed pose: each covers a reasonable area, no two are equal.
        let masks: Vec<Vec<bool>> = ShapeClass::ALL
            .iter()
            .map(|&class| {
                (0..64 * 64)
                    .map(|p| {
                        let (u, v) = ((p % 64) as f32 / 32.0 - 1.0, (p / 64) as f32 / 32.0 - 1.0);
                        class.contains(u, v)
                    })
                    .collect()
            })
            .collect();
        for (class, mask) in ShapeClass::ALL.iter().zip(&masks) {
            let area = mask.iter().filter(|&&m| m).count() as f32 / (64.0 * 64.0);
            assert!((0.1..0.8).contains(&area), "{class:?} covers {area}");
        }
        for i in 0..masks.len() {
            for j in i + 1..masks.len() {
                let differ = masks[i]
                    .iter()
                    .zip(&masks[j])
                    .filter(|(a, b)| a != b)
                    .count();
                assert!(
                    differ > 200,
                    "{:?} and {:?} differ in {differ} pixels",
                    ShapeClass::ALL[i],
                    ShapeClass::ALL[j]
                );
            }
        }
    }

    #[test]
    fn instances_of_a_class_vary_as_much_as_classes_do() {
        // Instance discrimination needs images of one class to differ: compare mean pixel distances
        // within and across classes.
        let world = ShapeWorld {
            image_size: 24,
            ..ShapeWorld::instance_discrimination()
        };
        let images: Vec<(Vec<f32>, usize)> = (0..120)
            .map(|i| {
                let (scene, label) = world.classification_scene(Split::Train, i);
                (scene.render(), label)
            })
            .collect();
        let (mut within, mut across) = ((0.0, 0), (0.0, 0));
        for (i, (a, la)) in images.iter().enumerate() {
            for (b, lb) in &images[i + 1..] {
                let d = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
                let acc = if la == lb { &mut within } else { &mut across };
                *acc = (acc.0 + d, acc.1 + 1);
            }
        }
        let (within, across) = (within.0 / within.1 as f32, across.0 / across.1 as f32);
        assert!(within > 0.7 * across, "within {within}, across {across}");
    }

    #[test]
    fn pixels_are_colours() {
        let (scene, _) = ShapeWorld::default().classification_scene(Split::Test, 3);
        let pixels = scene.render();
        assert_eq!(pixels.len(), 32 * 32 * 3);
        assert!(pixels.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    #[test]
    fn validation_names_the_setting() {
        let bad = ShapeWorld {
            num_classes: 17,
            ..ShapeWorld::default()
        };
        assert!(bad.validate().unwrap_err().contains("data.num_classes"));
        assert!(ShapeWorld::default().validate().is_ok());
    }
}
