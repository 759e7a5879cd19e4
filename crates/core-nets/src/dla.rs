//! DLA-X, Deep Layer Aggregation with ResNeXt blocks (Yu et al., CVPR 2018), as ELASTIC's
//! `models/dla.py` builds it (`resnet-family.md` §2.5, `elastic.md` §2.2): a stride-1 7×7 stem,
//! two conv levels, then four `Tree` levels that aggregate their blocks' outputs through 1×1
//! `Root` convs; blocks are the ResNeXt bottleneck (expansion 2 in DLA's sense: out = planes) or,
//! for the elastic models, the two-path block with paths of half the bottleneck width and half the
//! cardinality. Keys follow the released layout except `X.0`/`X.1` of PyTorch `Sequential`s,
//! which are `X.conv`/`X.norm` here ([`DLA_KEY_REMAPPING`]).

use burn::{
    module::Module,
    tensor::{Tensor, activation::relu, backend::Backend},
};
use core_norm::{Conv2d, ConvKind, KindError, Norm, NormKind};
use serde::{Deserialize, Serialize};

use crate::block::{BlockSpec, Bottleneck, ResidualBlock, TwoPathBottleneck};

/// `(pattern, replacement)` from the released DLA keys to these modules' paths: `Sequential`
/// indices become field names; a tree held in a one-element list (kept on the heap) gets its
/// `.0`.
pub const DLA_KEY_REMAPPING: &[(&str, &str)] = &[
    (r"(^|\.)(level[2-5])\.", "$1$2.0."),
    // A subtree of a deeper tree: applied three times, each pass rewrites every other nesting.
    (r"\.(tree[12])\.(tree[12]|root|project)\.", ".$1.0.$2."),
    (r"\.(tree[12])\.(tree[12]|root|project)\.", ".$1.0.$2."),
    (r"\.(tree[12])\.(tree[12]|root|project)\.", ".$1.0.$2."),
    (r"(^|\.)(base_layer|level0|level1)\.0\.", "$1$2.conv."),
    (r"(^|\.)(base_layer|level0|level1)\.1\.", "$1$2.norm."),
    (r"\.project\.0\.", ".project.conv."),
    (r"\.project\.1\.", ".project.norm."),
    // `norm`, not `bn`: the shared remapping reads a bare `.bn.` as BCN's stage 1.
    (r"\.root\.bn\.", ".root.norm."),
];

/// Everything that decides a DLA-X. Defaults: `dla60x`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DlaConfig {
    /// Convs of levels 0–1 (1 each in every released model), tree depth of levels 2–5.
    pub levels: [usize; 6],
    pub channels: [usize; 6],
    /// ResNeXt cardinality of the blocks (32; 50 for dla102x_elastic — passed explicitly, never
    /// through a shared class attribute: pitfall 7).
    pub cardinality: usize,
    /// The root adds its first input (dla102x).
    pub residual_root: bool,
    /// ELASTIC's two-path blocks (`BottleneckXElastic`); elastic where stride is 1, except in
    /// level 5.
    pub elastic: bool,
    pub num_classes: Option<usize>,
    pub norm: NormKind,
}

impl Default for DlaConfig {
    fn default() -> Self {
        Self {
            levels: [1, 1, 1, 2, 3, 1],
            channels: [16, 32, 128, 256, 512, 1024],
            cardinality: 32,
            residual_root: false,
            elastic: false,
            num_classes: Some(1000),
            norm: NormKind::BATCH,
        }
    }
}

/// A conv followed by its norm (PyTorch's `Sequential(conv, bn[, relu])`).
#[derive(Module, Debug)]
pub struct ConvBn<B: Backend> {
    pub conv: Conv2d<B>,
    pub norm: Norm<B>,
}

impl<B: Backend> ConvBn<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.norm.forward(self.conv.forward(x))
    }
}

/// `relu(bn(conv1×1(concat(xs))) [+ xs[0]])`.
#[derive(Module, Debug)]
pub struct Root<B: Backend> {
    pub conv: Conv2d<B>,
    pub norm: Norm<B>,
    pub residual: bool,
}

impl<B: Backend> Root<B> {
    fn forward(&self, xs: Vec<Tensor<B, 4>>) -> Tensor<B, 4> {
        let first = xs[0].clone();
        let x = self.norm.forward(self.conv.forward(Tensor::cat(xs, 1)));
        relu(if self.residual { x + first } else { x })
    }
}

fn block_forward<B: Backend>(
    block: &ResidualBlock<B>,
    x: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
) -> Tensor<B, 4> {
    let residual = residual.unwrap_or_else(|| x.clone());
    match block {
        ResidualBlock::Bottleneck(b) => b.forward_with_residual(x, residual),
        ResidualBlock::TwoPath(b) => b.forward_with_residual(x, residual),
        ResidualBlock::Basic(_) => unreachable!("DLA-X is built of bottlenecks"),
    }
}

/// The pooled input and the residual of a tree (`models/dla.py` `Tree.forward`'s first lines):
/// max-pool by the stride, project when the channels change; a level root keeps `bottom` as a child.
fn bottom_and_residual<B: Backend>(
    x: &Tensor<B, 4>,
    stride: usize,
    project: Option<&ConvBn<B>>,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let bottom = if stride > 1 {
        core_ops::max_pool2d(
            x.clone(),
            [stride, stride],
            [stride, stride],
            [0, 0],
            [1, 1],
            false,
        )
    } else {
        x.clone()
    };
    let residual = match project {
        Some(p) => p.forward(bottom.clone()),
        None => bottom.clone(),
    };
    (bottom, residual)
}

/// A depth-1 tree: two blocks, their outputs (and the children handed down) rooted.
#[derive(Module, Debug)]
pub struct Tree1<B: Backend> {
    pub tree1: ResidualBlock<B>,
    pub tree2: ResidualBlock<B>,
    pub root: Root<B>,
    /// 1×1 conv + norm when the channels change.
    pub project: Option<ConvBn<B>>,
    pub stride: usize,
    pub level_root: bool,
}

impl<B: Backend> Tree1<B> {
    pub fn forward(&self, x: Tensor<B, 4>, mut children: Vec<Tensor<B, 4>>) -> Tensor<B, 4> {
        let (bottom, residual) = bottom_and_residual(&x, self.stride, self.project.as_ref());
        if self.level_root {
            children.push(bottom);
        }
        let x1 = block_forward(&self.tree1, x, Some(residual));
        let x2 = block_forward(&self.tree2, x1.clone(), None);
        self.root.forward([vec![x2, x1], children].concat())
    }
}

/// Deeper trees: two subtrees; the first's output joins the children handed to the second. (burn
/// modules cannot be recursive, so each depth is its own type.)
macro_rules! deeper_tree {
    ($name:ident, $child:ident) => {
        #[derive(Module, Debug)]
        pub struct $name<B: Backend> {
            /// One-element lists: the subtrees stay off the stack.
            pub tree1: Vec<$child<B>>,
            pub tree2: Vec<$child<B>>,
            /// 1×1 conv + norm when the channels change (its output is unused, as released: the
            /// first subtree computes its own residual).
            pub project: Option<ConvBn<B>>,
            pub stride: usize,
            pub level_root: bool,
        }

        impl<B: Backend> $name<B> {
            pub fn forward(
                &self,
                x: Tensor<B, 4>,
                mut children: Vec<Tensor<B, 4>>,
            ) -> Tensor<B, 4> {
                let (bottom, _) = bottom_and_residual(&x, self.stride, self.project.as_ref());
                if self.level_root {
                    children.push(bottom);
                }
                let x1 = self.tree1[0].forward(x, Vec::new());
                children.push(x1.clone());
                self.tree2[0].forward(x1, children)
            }
        }
    };
}

deeper_tree!(Tree2, Tree1);
deeper_tree!(Tree3, Tree2);
deeper_tree!(Tree4, Tree3);

/// A level's tree, by depth (1–4 in the released models), in a one-element list: a depth-4 tree
/// is hundreds of kilobytes by value, which the list keeps off the stack.
#[derive(Module, Debug)]
pub enum Tree<B: Backend> {
    Depth1(Vec<Tree1<B>>),
    Depth2(Vec<Tree2<B>>),
    Depth3(Vec<Tree3<B>>),
    Depth4(Vec<Tree4<B>>),
}

impl<B: Backend> Tree<B> {
    pub fn forward(&self, x: Tensor<B, 4>, children: Vec<Tensor<B, 4>>) -> Tensor<B, 4> {
        match self {
            Tree::Depth1(t) => t[0].forward(x, children),
            Tree::Depth2(t) => t[0].forward(x, children),
            Tree::Depth3(t) => t[0].forward(x, children),
            Tree::Depth4(t) => t[0].forward(x, children),
        }
    }
}

#[derive(Module, Debug)]
pub struct Dla<B: Backend> {
    pub base_layer: ConvBn<B>,
    pub level0: ConvBn<B>,
    pub level1: ConvBn<B>,
    pub level2: Tree<B>,
    pub level3: Tree<B>,
    pub level4: Tree<B>,
    pub level5: Tree<B>,
    /// The classifier, a 1×1 conv with bias.
    pub fc: Option<Conv2d<B>>,
}

impl<B: Backend> Dla<B> {
    /// Every level's output: `[B, C_i, H/2^i, W/2^i]` for levels 0–5 (level 0 at full size).
    pub fn forward_levels(&self, x: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        let x0 = relu(self.level0.forward(relu(self.base_layer.forward(x))));
        let mut levels = vec![x0.clone(), relu(self.level1.forward(x0))];
        for level in [&self.level2, &self.level3, &self.level4, &self.level5] {
            let x = level.forward(levels.last().expect("level 1").clone(), Vec::new());
            levels.push(x);
        }
        levels
    }

    /// The last level's features `[B, C5, H/32, W/32]`.
    pub fn forward_features(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_levels(x).pop().expect("six levels")
    }

    /// `[B, 3, H, W] -> [B, classes]`: global average (the released `AvgPool2d(7)` at 224), the
    /// 1×1 conv classifier.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.forward_features(x);
        let [b, c, h, w] = x.dims();
        let pooled = x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c, 1, 1]);
        let fc = self.fc.as_ref().expect("DLA built without a classifier");
        let out = fc.forward(pooled);
        let classes = out.dims()[1];
        out.reshape([b, classes])
    }
}

impl DlaConfig {
    /// dla60x: levels [1, 1, 1, 2, 3, 1], cardinality 32.
    pub fn dla60x() -> Self {
        Self::default()
    }
    /// dla102x: levels [1, 1, 1, 3, 4, 1], residual root.
    pub fn dla102x() -> Self {
        Self {
            levels: [1, 1, 1, 3, 4, 1],
            residual_root: true,
            ..Self::default()
        }
    }
    pub fn dla60x_elastic() -> Self {
        Self {
            elastic: true,
            ..Self::dla60x()
        }
    }
    /// dla102x_elastic: levels [1, 1, 3, 3, 3, 1], cardinality 50, residual root.
    pub fn dla102x_elastic() -> Self {
        Self {
            levels: [1, 1, 3, 3, 3, 1],
            cardinality: 50,
            residual_root: true,
            elastic: true,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), KindError> {
        let range = |what, value: usize, expected| {
            Err(KindError::Range {
                what,
                value: value as f64,
                expected,
            })
        };
        if self.levels[0] != 1 || self.levels[1] != 1 {
            return range(
                "model.levels[0..2]",
                self.levels[0].max(self.levels[1]),
                "1 conv each",
            );
        }
        if let Some(&depth) = self.levels[2..].iter().find(|&&l| !(1..=4).contains(&l)) {
            return range("model.levels[2..]", depth, "tree depths 1 to 4");
        }
        for &c in &self.channels[2..] {
            let bottle = c * self.cardinality / 32;
            let (width, groups) = if self.elastic {
                (bottle / 2, self.cardinality / 2)
            } else {
                (bottle, self.cardinality)
            };
            if groups == 0 || width == 0 || !width.is_multiple_of(groups) {
                return Err(KindError::Groups {
                    what: "model.cardinality",
                    channels: width,
                    groups,
                });
            }
        }
        Ok(())
    }

    fn block<B: Backend>(
        &self,
        in_channels: usize,
        out: usize,
        stride: usize,
        level: usize,
        device: &B::Device,
    ) -> ResidualBlock<B> {
        let bottle = out * self.cardinality / 32;
        let spec = BlockSpec {
            conv: ConvKind::Plain,
            norm: self.norm,
            in_channels,
            planes: out,
            stride,
            width: if self.elastic { bottle / 2 } else { bottle },
            out_channels: out,
            shortcut: false,
            groups: self.cardinality,
            zero_init_residual: false,
            elastic: self.elastic && stride == 1 && level < 5,
            se: false,
            se_condition: 0,
            stride_in_1x1: false,
            dilation: 1,
        };
        if self.elastic {
            ResidualBlock::TwoPath(TwoPathBottleneck::new(&spec, device))
        } else {
            ResidualBlock::Bottleneck(Bottleneck::new(&spec, device))
        }
    }

    fn conv_bn<B: Backend>(
        &self,
        i: usize,
        o: usize,
        k: usize,
        stride: usize,
        device: &B::Device,
    ) -> ConvBn<B> {
        ConvBn {
            conv: ConvKind::Plain
                .conv(i, o, k)
                .with_stride(stride)
                .with_padding(k / 2)
                .init(device),
            norm: self.norm.init(o, device),
        }
    }

    /// `models/dla.py` `Tree.__init__`, for a tree of `depth`.
    #[allow(clippy::too_many_arguments)]
    fn tree<B: Backend>(
        &self,
        depth: usize,
        in_channels: usize,
        out: usize,
        stride: usize,
        level_root: bool,
        root_dim: usize,
        level: usize,
        device: &B::Device,
    ) -> Tree<B> {
        let mut root_dim = if root_dim == 0 { 2 * out } else { root_dim };
        if level_root {
            root_dim += in_channels;
        }
        let project = (in_channels != out).then(|| self.conv_bn(in_channels, out, 1, 1, device));
        if depth == 1 {
            return Tree::Depth1(vec![Tree1 {
                tree1: self.block(in_channels, out, stride, level, device),
                tree2: self.block(out, out, 1, level, device),
                root: Root {
                    conv: ConvKind::Plain.conv(root_dim, out, 1).init(device),
                    norm: self.norm.init(out, device),
                    residual: self.residual_root,
                },
                project,
                stride,
                level_root,
            }]);
        }
        let tree1 = self.tree(depth - 1, in_channels, out, stride, false, 0, level, device);
        let tree2 = self.tree(depth - 1, out, out, 1, false, root_dim + out, level, device);
        macro_rules! join {
            ($variant:ident, $ty:ident, $child:ident) => {{
                let (Tree::$child(tree1), Tree::$child(tree2)) = (tree1, tree2) else {
                    unreachable!("subtrees of one depth")
                };
                Tree::$variant(vec![$ty {
                    tree1,
                    tree2,
                    project,
                    stride,
                    level_root,
                }])
            }};
        }
        match depth {
            2 => join!(Depth2, Tree2, Depth1),
            3 => join!(Depth3, Tree3, Depth2),
            4 => join!(Depth4, Tree4, Depth3),
            _ => panic!("tree depth {depth}: 1 to 4 are supported"),
        }
    }

    /// Builds the network; panics on a configuration that [`DlaConfig::validate`] rejects.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Dla<B> {
        if let Err(err) = self.validate() {
            panic!("invalid DLA configuration: {err}");
        }
        let c = self.channels;
        let level = |i: usize| self.tree(self.levels[i], c[i - 1], c[i], 2, i > 2, 0, i, device);
        Dla {
            base_layer: self.conv_bn(3, c[0], 7, 1, device),
            level0: self.conv_bn(c[0], c[0], 3, 1, device),
            level1: self.conv_bn(c[0], c[1], 3, 2, device),
            level2: level(2),
            level3: level(3),
            level4: level(4),
            level5: level(5),
            fc: self.num_classes.map(|k| {
                core_norm::Conv2dConfig::new(c[5], k, 1)
                    .with_bias(true)
                    .init(device)
            }),
        }
    }
}
