//! Checkpoints: every tensor of a run (parameters, buffers, optimizer state, EMA copies) in a
//! safetensors file, written atomically, with the step, epoch, spec hash and data-loader state.
//!
//! # Layout
//!
//! Tensors are f32, named as in the compiler's parameter table:
//!
//! | what | name |
//! | --- | --- |
//! | a trainable parameter or a buffer | its table name, `G.linear0.weight` |
//! | optimizer state | `optim.<optimizer>.<slot>.<param>`, e.g. `optim.opt_d.m.D.conv2d0.weight` ([`optim_name`]) |
//! | an EMA copy | `ema.<param>` ([`ema_name`]) |
//!
//! The safetensors header's `__metadata__` holds strings: `format` (`genc-checkpoint`),
//! `format_version` ([`FORMAT_VERSION`]), `step`, `epoch`, `spec_hash`, `data_state` (the data
//! loader's state, a JSON text), `checksum` (a 64-bit hash of every name, shape, tensor byte
//! and metadata entry, so a flipped bit anywhere is refused on load; a file made elsewhere may
//! leave it out) and any extra entries of [`Checkpoint::metadata`]. Python reads the file with `safetensors.numpy.load_file`.
//!
//! # Atomicity
//!
//! [`save`] writes `<path>.tmp` in the same folder, fsyncs it, renames it over `<path>` and
//! fsyncs the folder: at every instant `<path>` is either the previous complete checkpoint or
//! the new one. A leftover `.tmp` from a crash is ignored by [`load`] and replaced by the next
//! [`save`].

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use thiserror::Error;

/// The version of the layout above that this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The value of the `format` metadata entry.
pub const FORMAT: &str = "genc-checkpoint";

/// Metadata keys genc owns; [`Checkpoint::metadata`] may not use them.
pub const RESERVED_KEYS: [&str; 7] =
    ["format", "format_version", "step", "epoch", "spec_hash", "data_state", "checksum"];

/// The name of optimizer `optimizer`'s state `slot` (`m`, `v`, `momentum`, ...) for `param`.
pub fn optim_name(optimizer: &str, slot: &str, param: &str) -> String {
    format!("optim.{optimizer}.{slot}.{param}")
}

/// The name of the EMA copy of `param`.
pub fn ema_name(param: &str) -> String {
    format!("ema.{param}")
}

/// One f32 tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of `shape` holding `data`; `None` when the lengths disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Option<Tensor> {
        (shape.iter().product::<usize>() == data.len()).then_some(Tensor { shape, data })
    }
}

/// Everything needed to continue a run exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Optimizer steps done.
    pub step: u64,
    /// Epochs done.
    pub epoch: u64,
    /// The hash of the spec (and its resolved params) that wrote the checkpoint.
    pub spec_hash: String,
    /// The data loader's state (position, shuffle seed, ...) as a JSON text; genc does not look
    /// inside.
    pub data_state: String,
    /// Every tensor by name (sorted; safetensors sorts them too).
    pub tensors: BTreeMap<String, Tensor>,
    /// Extra string metadata (not [`RESERVED_KEYS`]).
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Adds or replaces tensor `name`.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Checks that the checkpoint holds exactly the tensors `expected` names, with their shapes:
    /// every missing, extra and mis-shaped tensor is listed by name in one error.
    pub fn validate_against<'a, N: AsRef<str>>(
        &self,
        expected: impl IntoIterator<Item = (N, &'a [usize])>,
    ) -> Result<(), CheckpointError> {
        validate_against(self, expected)
    }
}

/// Why a checkpoint could not be written, read or used.
#[derive(Debug, Error, Diagnostic)]
pub enum CheckpointError {
    #[error("no checkpoint at `{}`", path.display())]
    #[diagnostic(
        code(E0920),
        help("check the path; a run folder has a checkpoint once its first one has been written")
    )]
    NotFound { path: PathBuf },

    #[error("could not {action} the checkpoint `{}`: {source}", path.display())]
    #[diagnostic(code(E0921), help("check that the folder exists, is writable and has free space"))]
    Io {
        /// `read`, `write`, `sync` or `rename`.
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the checkpoint `{}` is damaged: {reason}", path.display())]
    #[diagnostic(
        code(E0922),
        help(
            "the file was cut short or changed after it was written; use an earlier checkpoint \
             or start the run again (a crash during a save never damages the previous file: \
             genc writes a `.tmp` and renames it)"
        )
    )]
    Corrupt { path: PathBuf, reason: String },

    #[error("tensor `{name}` in the checkpoint `{}` is {dtype}, not f32", path.display())]
    #[diagnostic(
        code(E0923),
        help("genc checkpoints hold f32 tensors only; convert it (numpy: `x.astype(np.float32)`)")
    )]
    DType { path: PathBuf, name: String, dtype: String },

    #[error("`{}` is not a genc checkpoint: {reason}", path.display())]
    #[diagnostic(
        code(E0924),
        help(
            "genc reads safetensors files it wrote itself (metadata `format: genc-checkpoint`, \
             `format_version`); to import other weights, add that metadata (Python: \
             `save_file(tensors, path, metadata={{\"format\": \"genc-checkpoint\", \
             \"format_version\": \"1\", \"step\": \"0\", \"epoch\": \"0\"}})`)"
        )
    )]
    NotGenc { path: PathBuf, reason: String },

    #[error("the checkpoint `{}` has format version {found}; this genc reads version {FORMAT_VERSION}", path.display())]
    #[diagnostic(code(E0925), help("it was written by a newer genc: update genc, or start a new run"))]
    Version { path: PathBuf, found: String },

    #[error("the checkpoint does not match the spec{}: {summary}", in_file(.path))]
    #[diagnostic(code(E0926), help("{help}"))]
    Mismatch {
        path: Option<PathBuf>,
        /// `2 missing, 1 extra, 1 with another shape`.
        summary: String,
        /// The fix, then one line per tensor.
        help: String,
        names: Box<Mismatched>,
    },

    #[error("cannot save tensor `{name}`: {reason}")]
    #[diagnostic(code(E0927), help("this is a bug in genc's training loop; please report it"))]
    Invalid { name: String, reason: String },
}

/// The tensors that differ between a checkpoint and what the spec wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mismatched {
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    /// `(name, shape in the checkpoint, shape the spec wants)`.
    pub mis_shaped: Vec<(String, Vec<usize>, Vec<usize>)>,
}

fn in_file(path: &Option<PathBuf>) -> String {
    path.as_ref().map(|p| format!(" (`{}`)", p.display())).unwrap_or_default()
}

impl CheckpointError {
    /// Names the file a [`CheckpointError::Mismatch`] came from (other errors name it already).
    pub fn in_file(mut self, file: &Path) -> Self {
        if let CheckpointError::Mismatch { path, .. } = &mut self {
            *path = Some(file.to_path_buf());
        }
        self
    }
}

/// See [`Checkpoint::validate_against`].
pub fn validate_against<'a, N: AsRef<str>>(
    checkpoint: &Checkpoint,
    expected: impl IntoIterator<Item = (N, &'a [usize])>,
) -> Result<(), CheckpointError> {
    let mut missing = Vec::new();
    let mut mis_shaped = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, shape) in expected {
        let name = name.as_ref();
        seen.insert(name.to_string());
        match checkpoint.tensors.get(name) {
            None => missing.push(name.to_string()),
            Some(t) if t.shape != shape => {
                mis_shaped.push((name.to_string(), t.shape.clone(), shape.to_vec()))
            }
            Some(_) => {}
        }
    }
    let extra: Vec<String> = checkpoint.tensors.keys().filter(|n| !seen.contains(*n)).cloned().collect();
    if missing.is_empty() && extra.is_empty() && mis_shaped.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    let mut details = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("{} missing", missing.len()));
        details.extend(missing.iter().map(|n| format!("missing from the checkpoint: `{n}`")));
    }
    if !extra.is_empty() {
        parts.push(format!("{} extra", extra.len()));
        details.extend(extra.iter().map(|n| format!("not in the spec: `{n}`")));
    }
    if !mis_shaped.is_empty() {
        parts.push(format!("{} with another shape", mis_shaped.len()));
        details.extend(
            mis_shaped
                .iter()
                .map(|(n, have, want)| format!("`{n}` is {have:?} in the checkpoint, {want:?} in the spec")),
        );
    }
    let help = format!(
        "the spec changed since the checkpoint was written (its spec hash: `{}`); resume with the spec \
         that wrote it, or start a new run\n{}",
        checkpoint.spec_hash,
        details.join("\n")
    );
    Err(CheckpointError::Mismatch {
        path: None,
        summary: parts.join(", "),
        help,
        names: Box::new(Mismatched { missing, extra, mis_shaped }),
    })
}

/// The file [`save`] writes before renaming it over `path`: `path` with `.tmp` appended.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The checkpoint as the bytes of a safetensors file.
pub fn to_bytes(checkpoint: &Checkpoint) -> Result<Vec<u8>, CheckpointError> {
    for key in checkpoint.metadata.keys() {
        if RESERVED_KEYS.contains(&key.as_str()) {
            return Err(CheckpointError::Invalid {
                name: key.clone(),
                reason: "this metadata key is reserved for genc".into(),
            });
        }
    }
    let mut bytes: Vec<(&str, Vec<u8>, &[usize])> = Vec::with_capacity(checkpoint.tensors.len());
    for (name, t) in &checkpoint.tensors {
        if name.is_empty() || name == "__metadata__" {
            return Err(CheckpointError::Invalid {
                name: name.clone(),
                reason: "not a valid tensor name".into(),
            });
        }
        let n: usize = t.shape.iter().product();
        if n != t.data.len() {
            return Err(CheckpointError::Invalid {
                name: name.clone(),
                reason: format!("shape {:?} needs {n} values, it has {}", t.shape, t.data.len()),
            });
        }
        bytes.push((name, t.data.iter().flat_map(|x| x.to_le_bytes()).collect(), &t.shape));
    }
    let mut metadata: HashMap<String, String> =
        checkpoint.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    metadata.insert("format".into(), FORMAT.into());
    metadata.insert("format_version".into(), FORMAT_VERSION.to_string());
    metadata.insert("step".into(), checkpoint.step.to_string());
    metadata.insert("epoch".into(), checkpoint.epoch.to_string());
    metadata.insert("spec_hash".into(), checkpoint.spec_hash.clone());
    metadata.insert("data_state".into(), checkpoint.data_state.clone());
    let sum = checksum(bytes.iter().map(|(n, b, s)| (*n, *s, b.as_slice())), &metadata);
    metadata.insert("checksum".into(), format!("{sum:016x}"));

    let mut views = Vec::with_capacity(bytes.len());
    for (name, data, shape) in &bytes {
        let view = TensorView::new(Dtype::F32, shape.to_vec(), data)
            .map_err(|e| CheckpointError::Invalid { name: name.to_string(), reason: e.to_string() })?;
        views.push((*name, view));
    }
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| CheckpointError::Invalid { name: String::new(), reason: e.to_string() })
}

/// Writes `checkpoint` to `path` atomically: `<path>.tmp`, fsync, rename, fsync of the folder.
pub fn save(path: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let bytes = to_bytes(checkpoint)?;
    let tmp = temp_path(path);
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| CheckpointError::Io { action, path: p, source }
    };
    let written = (|| {
        let mut file = fs::File::create(&tmp).map_err(io("write", &tmp))?;
        file.write_all(&bytes).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("sync", &tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io("rename", path))
    })();
    if written.is_err() {
        // Best effort: the previous checkpoint is intact either way.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(path).map_err(io("sync", path))
}

/// Makes the rename durable: fsync of the folder that holds `path` (Unix; elsewhere a no-op).
fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Reads the checkpoint at `path`, refusing a missing, damaged, foreign or non-f32 file.
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CheckpointError::NotFound { path: path.to_path_buf() });
        }
        Err(source) => return Err(CheckpointError::Io { action: "read", path: path.to_path_buf(), source }),
    };
    from_bytes(path, &bytes)
}

/// Parses the bytes of a checkpoint file; `path` is only for the messages.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.to_path_buf(), reason };
    let not_genc =
        |reason: &str| CheckpointError::NotGenc { path: path.to_path_buf(), reason: reason.into() };
    if bytes.is_empty() {
        return Err(corrupt("the file is empty".into()));
    }
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(describe(&e)))?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| corrupt(describe(&e)))?;
    let mut metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();

    match metadata.get("format") {
        Some(f) if f == FORMAT => {}
        Some(_) => return Err(not_genc("its `format` metadata is not `genc-checkpoint`")),
        None => return Err(not_genc("it has no `format` metadata")),
    }
    let version =
        metadata.get("format_version").ok_or_else(|| not_genc("it has no `format_version` metadata"))?;
    if version.parse::<u32>().ok() != Some(FORMAT_VERSION) {
        return Err(CheckpointError::Version { path: path.to_path_buf(), found: version.clone() });
    }

    let mut tensors = BTreeMap::new();
    let mut raw: Vec<(String, Vec<usize>, &[u8])> = Vec::new();
    for (name, view) in file.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(CheckpointError::DType {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{:?}", view.dtype()),
            });
        }
        raw.push((name.to_string(), view.shape().to_vec(), view.data()));
    }
    raw.sort_by(|a, b| a.0.cmp(&b.0));

    // A file genc wrote has a checksum; one made elsewhere (Python, with the metadata the
    // E0924 help gives) may not, and is taken as it is.
    if let Some(stored) = metadata.get("checksum") {
        let rest: HashMap<String, String> =
            metadata.iter().filter(|(k, _)| *k != "checksum").map(|(k, v)| (k.clone(), v.clone())).collect();
        let sum = checksum(raw.iter().map(|(n, s, b)| (n.as_str(), s.as_slice(), *b)), &rest);
        if *stored != format!("{sum:016x}") {
            return Err(corrupt(
                "its checksum does not match its contents (a changed or damaged byte)".into(),
            ));
        }
    }

    for (name, shape, data) in raw {
        let values = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        tensors.insert(name, Tensor { shape, data: values });
    }

    let number = |key: &str| -> Result<u64, CheckpointError> {
        let text = metadata.get(key).ok_or_else(|| corrupt(format!("it has no `{key}` metadata")))?;
        text.parse().map_err(|_| corrupt(format!("its `{key}` metadata `{text}` is not a whole number")))
    };
    let step = number("step")?;
    let epoch = number("epoch")?;
    let spec_hash = metadata.get("spec_hash").cloned().unwrap_or_default();
    let data_state = metadata.get("data_state").cloned().unwrap_or_default();
    for key in RESERVED_KEYS {
        metadata.remove(key);
    }
    Ok(Checkpoint { step, epoch, spec_hash, data_state, tensors, metadata })
}

/// safetensors' reason, in the user's terms.
fn describe(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as S;
    match e {
        S::HeaderTooSmall | S::InvalidHeaderLength | S::MetadataIncompleteBuffer => {
            format!("it is cut short or not a safetensors file ({e})")
        }
        _ => format!("it is not a valid safetensors file ({e})"),
    }
}

/// Identifies a spec: a hash of its text and its `param` overrides (`name=value`, in any
/// order), as 16 hex digits. A resumed run checks it against the checkpoint's `spec_hash`.
pub fn spec_hash(text: &str, overrides: &[String]) -> String {
    let mut h = Hasher::default();
    h.bytes(text.as_bytes());
    let mut sorted: Vec<&String> = overrides.iter().collect();
    sorted.sort();
    for o in sorted {
        h.bytes(o.as_bytes());
    }
    format!("{:016x}", h.finish())
}

/// A 64-bit hash of the tensors (sorted by name: name, shape, bytes) and the metadata (sorted
/// by key). Not cryptographic: it catches damage, not tampering.
fn checksum<'a>(
    tensors: impl Iterator<Item = (&'a str, &'a [usize], &'a [u8])>,
    metadata: &HashMap<String, String>,
) -> u64 {
    let mut h = Hasher::default();
    let mut sorted: Vec<_> = tensors.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (name, shape, data) in sorted {
        h.bytes(name.as_bytes());
        h.word(shape.len() as u64);
        for &d in shape {
            h.word(d as u64);
        }
        h.bytes(data);
    }
    let mut keys: Vec<_> = metadata.iter().collect();
    keys.sort();
    for (k, v) in keys {
        h.bytes(k.as_bytes());
        h.bytes(v.as_bytes());
    }
    h.finish()
}

/// A word-at-a-time multiply-xorshift hash (fast enough for hundreds of MB).
struct Hasher {
    state: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher { state: 0x243f_6a88_85a3_08d3 }
    }
}

impl Hasher {
    fn word(&mut self, w: u64) {
        self.state = (self.state ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.state ^= self.state >> 29;
    }

    /// The bytes and their length (so that `ab`+`c` and `a`+`bc` differ).
    fn bytes(&mut self, b: &[u8]) {
        self.word(b.len() as u64);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.word(u64::from_le_bytes(last));
    }

    fn finish(&self) -> u64 {
        let mut x = self.state;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^ (x >> 33)
    }
}
