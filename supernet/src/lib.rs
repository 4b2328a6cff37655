//! Burn modules of the weight-sharing supernet.
