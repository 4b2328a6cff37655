//! The compute backend, chosen once at the binary's edge.
//!
//! qnas code is written against `burn::tensor::Device`, which picks the backend at run time, so
//! the backend is never a type parameter: [`device`] turns the user's `--device` choice into a
//! `Device` and everything downstream takes `&Device`. `flex` (pure Rust, CPU) is always
//! compiled in; `wgpu` and `cuda` only with the cargo features of the same names
//! (`cargo build --release --features wgpu`), which are never part of the default build.

use burn::tensor::Device;
use serde::Serialize;

/// A backend the user can ask for (`--device`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's `flex`: pure-Rust CPU backend (gemm + SIMD, rayon threads). Always available.
    #[default]
    Flex,
    /// burn's `wgpu` on the default adapter (`CUBECL_WGPU_DEFAULT_DEVICE` overrides it); needs
    /// the `wgpu` cargo feature.
    Wgpu,
    /// burn's `cuda` on GPU 0; needs the `cuda` cargo feature.
    Cuda,
}

impl BackendKind {
    /// Every backend, in the order the command line lists them.
    pub const ALL: [BackendKind; 3] = [BackendKind::Flex, BackendKind::Wgpu, BackendKind::Cuda];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this binary was built with the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Flex => true,
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a backend cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The backend's cargo feature was not enabled when this binary was built.
    #[error(
        "backend `{kind}` is not compiled into this qnas (compiled: {compiled}); rebuild with \
         `cargo build --release --features {kind}`"
    )]
    NotCompiled {
        /// The backend asked for.
        kind: BackendKind,
        /// The backends this binary has, comma separated.
        compiled: String,
    },
}

/// The backends compiled into this binary.
pub fn compiled() -> Vec<BackendKind> {
    [BackendKind::Flex, BackendKind::Wgpu, BackendKind::Cuda]
        .into_iter()
        .filter(|k| k.is_compiled())
        .collect()
}

/// The device of backend `kind` (without autodiff; training code wraps it with
/// `.autodiff()`). The one place where a backend is chosen.
pub fn device(kind: BackendKind) -> Result<Device, BackendError> {
    match kind {
        BackendKind::Flex => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(Device::cuda(burn::tensor::DeviceIndex::Default)),
        #[allow(unreachable_patterns)]
        other => Err(BackendError::NotCompiled {
            kind: other,
            compiled: compiled()
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_is_always_available() {
        assert!(device(BackendKind::Flex).is_ok());
        assert!(compiled().contains(&BackendKind::Flex));
    }

    #[test]
    fn missing_features_are_reported_not_ignored() {
        for kind in [BackendKind::Wgpu, BackendKind::Cuda] {
            match device(kind) {
                Ok(_) => assert!(kind.is_compiled()),
                Err(e) => {
                    assert!(!kind.is_compiled());
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("--features {kind}")), "{msg}");
                    assert!(msg.contains("compiled: flex"), "{msg}");
                }
            }
        }
    }
}
