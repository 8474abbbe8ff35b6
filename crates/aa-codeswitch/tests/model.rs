//! aa-codeswitch's integration tests, one binary (each test binary links candle again, which
//! costs CI time): parity with fair-esm / the ESM-AA reference / transformers, and the training
//! path.

#[path = "model/gradients.rs"]
mod gradients;
#[path = "model/parity.rs"]
mod parity;
