//! The parameter table: every trainable tensor and every non-trainable buffer, with its
//! stable hierarchical name (`G.conv_transpose2d0.weight`), concrete shape and initialiser.
//! Checkpoints use these names.

use genc_grammar::Span;

use crate::graph::NodeId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Updated by an optimizer.
    Trainable,
    /// Never trained and never in an EMA: running statistics, schedules, masks.
    Buffer,
}

/// How a tensor gets its first value.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    /// `U(-bound, bound)`, PyTorch's default for linear and convolution layers
    /// (`bound = 1 / sqrt(fan_in)`).
    Uniform {
        bound: f64,
    },
    /// `U(lo, hi)` (`init linear = uniform(0, 0.1)`, as `torch.nn.init.uniform_(a, b)`).
    UniformRange {
        lo: f64,
        hi: f64,
    },
    /// `N(mean, std)`: embeddings (N(0, 1)), and DCGAN's `init` (N(0, std) weights, N(1, std)
    /// norm scales).
    Normal {
        mean: f64,
        std: f64,
    },
    /// A random orthogonal matrix times `gain` over `[shape[0], the other axes]` (PyTorch's
    /// `orthogonal_`: the Q of a Gaussian matrix's QR, signs fixed by R's diagonal).
    Orthogonal {
        gain: f64,
    },
    /// The causal mask of a PixelCNN convolution: type `A` hides the centre pixel, `B` shows it.
    CausalMask {
        kind: char,
    },
    /// Computed by node `node` of the module's constant graph (`const betas = linspace(..)`).
    Computed {
        node: NodeId,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    pub kind: Kind,
    /// The net whose weights these are (`G`), or `None` for module-level buffers.
    pub owner: Option<String>,
    /// The layer call that made it.
    pub span: Span,
}

impl Entry {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Trainable parameters and buffers, each indexed from zero in order of creation (the
/// `index` of `Prim::Param` and `Prim::Buffer`).
#[derive(Clone, Debug, Default)]
pub struct ParamTable {
    pub params: Vec<Entry>,
    pub buffers: Vec<Entry>,
}

impl ParamTable {
    pub fn find(&self, kind: Kind, name: &str) -> Option<usize> {
        self.list(kind).iter().position(|e| e.name == name)
    }

    pub fn list(&self, kind: Kind) -> &Vec<Entry> {
        match kind {
            Kind::Trainable => &self.params,
            Kind::Buffer => &self.buffers,
        }
    }

    pub fn push(&mut self, entry: Entry) -> usize {
        let list = match entry.kind {
            Kind::Trainable => &mut self.params,
            Kind::Buffer => &mut self.buffers,
        };
        list.push(entry);
        list.len() - 1
    }

    /// Trainable parameters owned by `net`.
    pub fn owned_by<'a>(&'a self, net: &'a str) -> impl Iterator<Item = (usize, &'a Entry)> + 'a {
        self.params.iter().enumerate().filter(move |(_, e)| e.owner.as_deref() == Some(net))
    }
}
