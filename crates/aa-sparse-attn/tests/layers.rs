//! aa-sparse-attn's integration tests, one binary (each test binary links candle again, which
//! costs CI time): dense equivalence, PyTorch references, the bilevel layer.

#[path = "layers/bilevel.rs"]
mod bilevel;
#[path = "layers/dense.rs"]
mod dense;
#[path = "layers/official.rs"]
mod official;
#[path = "layers/reference.rs"]
mod reference;
