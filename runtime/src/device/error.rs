//! The device layer's errors: each one a diagnostic with a stable code and a fix hint.

use miette::Diagnostic;
use thiserror::Error;

/// Why a device could not be opened or a kernel could not run on it.
#[derive(Debug, Error, Diagnostic)]
pub enum DeviceError {
    #[error("no Vulkan device found{}", found_suffix(.found))]
    #[diagnostic(
        code(E0901),
        help(
            "genc runs its kernels through Vulkan; without a GPU it uses Mesa's lavapipe. \
             On Debian or Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`"
        )
    )]
    NoAdapter {
        /// What was asked for: `auto`, `gpu` or `cpu`.
        wanted: String,
        /// The adapters that exist but do not match, as `name (type)`.
        found: Vec<String>,
    },

    #[error("could not start the device `{name}`: {reason}")]
    #[diagnostic(code(E0902), help("run `genc devices` to see what is available, or try `--device cpu`"))]
    Init { name: String, reason: String },

    #[error("the device did not answer while listing adapters (waited {seconds} s)")]
    #[diagnostic(code(E0903), help("check the Vulkan installation with `vulkaninfo --summary`"))]
    ProbeTimeout { seconds: u64 },

    #[error("kernel `{op}` failed: {reason}")]
    #[diagnostic(code(E0904), help("this is a bug in genc's kernels; please report it with the spec"))]
    Kernel { op: String, reason: String },

    #[error("`{op}` has no device kernel yet")]
    #[diagnostic(code(E0905), help("this operation is not implemented on the device yet"))]
    Unsupported { op: String },

    #[error("reading a tensor back from the device failed: {reason}")]
    #[diagnostic(code(E0906))]
    Read { reason: String },

    #[error(
        "a tensor of shape {shape:?} needs {} MiB, more than the largest buffer of this device \
         ({} MiB)",
        .bytes >> 20,
        .limit >> 20
    )]
    #[diagnostic(
        code(E0909),
        help("lower the batch size (`batch` in the spec, or the run config), or use a GPU")
    )]
    TooLarge { shape: Vec<usize>, bytes: u64, limit: u64 },
}

fn found_suffix(found: &[String]) -> String {
    if found.is_empty() {
        String::new()
    } else {
        format!(" of the requested kind (found: {})", found.join(", "))
    }
}
