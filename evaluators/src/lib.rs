//! Data sets, loaders and evaluation of sub-networks.

pub mod data;
