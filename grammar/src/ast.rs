//! The abstract syntax tree of a `.gen` file. Every node carries the byte span it came from;
//! no pest type appears here.

use crate::span::Span;

/// A parsed file: its items in source order, and its comments for the formatter.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
    pub comments: Vec<crate::Comment>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Dims(Dims),
    Where(Where),
    Param(Binding),
    Const(Binding),
    Def(Def),
    Train(Train),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Dims(d) => d.span,
            Item::Where(w) => w.span,
            Item::Param(b) | Item::Const(b) => b.span,
            Item::Def(d) => d.span,
            Item::Train(t) => t.span,
        }
    }
}

/// `dims B, C = 1, H4 = H / 4`
#[derive(Clone, Debug, PartialEq)]
pub struct Dims {
    pub dims: Vec<DimDecl>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DimDecl {
    pub name: Ident,
    pub value: Option<Expr>,
    pub span: Span,
}

/// `where H % 4 == 0, W % 4 == 0`
#[derive(Clone, Debug, PartialEq)]
pub struct Where {
    pub constraints: Vec<Expr>,
    pub span: Span,
}

/// `param lambda = 10.0` or `const betas = linspace(...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub name: Ident,
    pub ty: Option<Type>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefKind {
    Net,
    Block,
    Loss,
    Sampler,
}

impl DefKind {
    pub fn keyword(self) -> &'static str {
        match self {
            DefKind::Net => "net",
            DefKind::Block => "block",
            DefKind::Loss => "loss",
            DefKind::Sampler => "sampler",
        }
    }
}

/// A `net`, `block`, `loss` or `sampler` definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Def {
    pub kind: DefKind,
    pub name: Ident,
    pub params: Vec<Param>,
    pub output: Option<Type>,
    pub body: Body,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: Option<Type>,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Block(Block),
    /// `= expr`
    Expr(Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Type {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TypeKind {
    /// `[B, C, H, W]`, `int[B]`; the element type is `None` when not written (f32).
    Tensor {
        dtype: Option<String>,
        dims: Vec<Expr>,
    },
    /// `int`, `float`, `bool`, `str`
    Scalar(String),
    Tuple(Vec<Type>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `let p = e`, or `let p ~ e` when `draw` (a random draw).
    Let {
        pattern: Pattern,
        ty: Option<Type>,
        draw: bool,
        value: Expr,
    },
    /// `x = e`, `x[i] = e`, `x += e`
    Assign {
        target: Place,
        op: AssignOp,
        value: Expr,
    },
    Return(Expr),
    For {
        var: Ident,
        range: Range,
        body: Block,
    },
    If {
        cond: Expr,
        then: Block,
        otherwise: Option<Else>,
    },
    /// `log name = e`: a metric logged with the losses.
    Log {
        name: Ident,
        value: Expr,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Else {
    If(Box<Stmt>),
    Block(Block),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    Name(Ident),
    Tuple(Vec<Ident>, Span),
}

/// The left side of an assignment: a name and any indexing.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub name: Ident,
    pub indices: Vec<Vec<IndexItem>>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignOp {
    Set,
    Add,
    Sub,
    Mul,
    Div,
}

impl AssignOp {
    pub fn symbol(self) -> &'static str {
        match self {
            AssignOp::Set => "=",
            AssignOp::Add => "+=",
            AssignOp::Sub => "-=",
            AssignOp::Mul => "*=",
            AssignOp::Div => "/=",
        }
    }
}

/// `a..b` or `a..=b`; it counts down when `a > b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    pub start: Expr,
    pub end: Expr,
    pub inclusive: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// The value, and the text as written (`1_000`), which the formatter keeps.
    Int(u64, String),
    Float(f64, String),
    Str(String),
    Bool(bool),
    Name(String),
    Paren(Box<Expr>),
    Tuple(Vec<Expr>),
    List(Vec<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Vec<Arg>),
    Index(Box<Expr>, Vec<IndexItem>),
    Field(Box<Expr>, Ident),
    /// `fixed normal([64, Z])`: a draw made once and reused.
    Fixed(Box<Expr>),
    /// Stands in for an expression that failed to parse (already reported).
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Pipe,
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    MatMul,
    Pow,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Pipe => "|>",
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::MatMul => "@",
            BinaryOp::Pow => "^",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IndexItem {
    Expr(Expr),
    /// `a:b:c` with every part optional.
    Slice {
        start: Option<Expr>,
        end: Option<Expr>,
        step: Option<Expr>,
        span: Span,
    },
    /// `...`: every axis not named.
    Ellipsis(Span),
}

/// `train { ... }`
#[derive(Clone, Debug, PartialEq)]
pub struct Train {
    pub entries: Vec<TrainEntry>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainEntry {
    pub kind: TrainEntryKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TrainEntryKind {
    Data {
        pattern: Pattern,
        source: Expr,
    },
    Batch {
        dim: Ident,
        size: Expr,
    },
    Steps(Expr),
    Epochs(Expr),
    Seed(Expr),
    Optimizer {
        name: Ident,
        spec: Expr,
    },
    Schedule {
        optimizer: Ident,
        spec: Expr,
    },
    Ema {
        target: Path,
        args: Vec<Arg>,
    },
    /// `init G(std: 0.02)`: the initialisation of a net's layers, replacing the defaults.
    Init {
        target: Path,
        args: Vec<Arg>,
    },
    /// `init conv2d = normal(0, 0.02)`: the initialiser of every tensor of one layer kind
    /// (`conv2d` for its weights, `conv2d.bias` for its biases) in the spec.
    InitDefault {
        target: Path,
        rule: Expr,
    },
    Step(Vec<StepStmt>),
    Sample {
        name: Option<Ident>,
        every: Cadence,
        what: Option<Expr>,
    },
    Checkpoint(Cadence),
    Log(Cadence),
    Eval {
        name: Option<Ident>,
        every: Cadence,
        what: Expr,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepStmt {
    pub kind: StepStmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepStmtKind {
    Repeat {
        count: Expr,
        body: Vec<StepStmt>,
    },
    /// `minimize L(...) with opt`, or `maximize` when `maximize`.
    Minimize {
        maximize: bool,
        objective: Expr,
        optimizer: Ident,
    },
    /// `clip D to [-c, c]`, applied after the optimizer step.
    Clip {
        target: Path,
        range: Expr,
    },
}

/// `G.block0.conv`
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    pub segments: Vec<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cadence {
    pub count: Expr,
    pub unit: CadenceUnit,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CadenceUnit {
    Steps,
    Epochs,
}
