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
    /// A device of a `--devices` list or `train.devices` is malformed.
    #[error("device {index} of the list: {message}")]
    BadDevice {
        /// Its position in the list, from 0.
        index: usize,
        /// What is wrong.
        message: String,
    },
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
    /// The backend is compiled in but found no device (no adapter, no driver).
    #[error("backend `{kind}` has no usable device here: {message}")]
    Unavailable {
        /// The backend asked for.
        kind: BackendKind,
        /// Why, as the backend says it.
        message: String,
    },
}

impl BackendError {
    /// True when the user's input is at fault (exit code 2), false when this machine lacks
    /// the device (exit code 1).
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, BackendError::Unavailable { .. })
    }
}

/// The wgpu device of `kind`, initialized here so that a machine without an adapter gets an
/// error rather than a panic at the first tensor. A device this process already initialized
/// is returned as it is.
#[cfg(feature = "wgpu")]
fn wgpu_device(kind: burn::tensor::DeviceKind) -> Result<Device, BackendError> {
    use burn::tensor::wgpu::WgpuInitError;
    match Device::wgpu_options().device_kind(kind.clone()).init() {
        Ok(device) => Ok(device),
        Err(WgpuInitError::Registration { .. }) => Ok(Device::wgpu(kind)),
        Err(e) => Err(BackendError::Unavailable {
            kind: BackendKind::Wgpu,
            message: e.to_string(),
        }),
    }
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
        BackendKind::Wgpu => wgpu_device(burn::tensor::DeviceKind::DefaultDevice),
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

/// The devices of a data-parallel training: a `--devices` list or `train.devices`, each entry a
/// [`spaces::DeviceName`] (`flex`, `wgpu`, `wgpu:1`, `cuda:0`, ...), all of one backend, which
/// this binary must have compiled in.
pub fn devices<S: AsRef<str>>(names: &[S]) -> Result<Vec<Device>, BackendError> {
    let parsed = spaces::parse_devices(names)
        .map_err(|(index, message)| BackendError::BadDevice { index, message })?;
    if parsed.is_empty() {
        return Err(BackendError::BadDevice {
            index: 0,
            message: "the list is empty".to_string(),
        });
    }
    parsed.iter().map(named_device).collect()
}

/// The device `name` names (see [`devices`]).
fn named_device(name: &spaces::DeviceName) -> Result<Device, BackendError> {
    let kind = BackendKind::ALL
        .into_iter()
        .find(|k| k.name() == name.backend)
        .unwrap_or_default();
    match (kind, name.index) {
        (BackendKind::Flex, _) | (_, None) => device(kind),
        #[cfg(feature = "wgpu")]
        (BackendKind::Wgpu, Some(i)) => wgpu_device(burn::tensor::DeviceKind::DiscreteGpu(i)),
        #[cfg(feature = "cuda")]
        (BackendKind::Cuda, Some(i)) => Ok(Device::cuda(burn::tensor::DeviceIndex::new(i))),
        #[allow(unreachable_patterns)]
        (other, Some(_)) => device(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists() {
        let two = devices(&["flex", "flex:0"]).unwrap();
        assert_eq!(two, vec![Device::flex(), Device::flex()]);
        match devices(&["flex", "cuda"]) {
            Err(BackendError::BadDevice { index: 1, message }) => {
                assert!(message.contains("two backends"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            devices::<&str>(&[]),
            Err(BackendError::BadDevice { .. })
        ));
        if !BackendKind::Cuda.is_compiled() {
            let e = devices(&["cuda:0", "cuda:1"]).unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }

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
                // compiled in, but no adapter or driver on this machine
                Err(e @ BackendError::Unavailable { .. }) => {
                    assert!(kind.is_compiled() && !e.is_invalid_input(), "{e}")
                }
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
