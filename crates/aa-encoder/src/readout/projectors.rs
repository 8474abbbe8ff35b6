//! The two projectors of HSA-Net's hierarchical adaptive projector: each turns one layer's unit
//! rows of every window into a fixed number of tokens `[windows, T, d]`.
//!
//! - [`CrossAttention`]: `T` learned query tokens attend over the window's rows (multi-head,
//!   a softmax per window, query and head via the shared [`scatter_softmax`], the weighted sum
//!   by [`segment_attention_pool`]), output projection plus the queries as residual — LLaMo's
//!   multi-level projector shape.
//! - [`GraphMamba`]: the window's units serialised (MOL-Mamba's order: by degree, ties in unit
//!   order), a sinusoidal position added, one pre-norm residual Mamba block (RMSNorm →
//!   in-projection to `x ‖ gate` → depthwise causal convolution of width 4 → SiLU → selective
//!   scan → `· SiLU(gate)` → out-projection), and the output sequence cut into `T` contiguous
//!   segments whose means are the tokens. All windows' serialised rows are packed one after the
//!   other without padding and the block runs once over them; its convolution and scan restart
//!   at each window (`aa_graph::scan`'s packed kernels). MOL-Mamba's *graph selective scan* mixes a distance
//!   matrix into the step size Δ; its code multiplies Δ's channels by a node × node matrix
//!   truncated or padded to the channel count, which only works by accident of shapes. Here the
//!   distance enters per step: when the windows have coordinates, the distance from the previous
//!   unit in the serialisation (Gaussian-smeared, 16 centres on 0–10 Å, a linear map to the
//!   channels) is added to Δ before its softplus, so a spatial jump lets the state forget more;
//!   without coordinates Δ is MOL-Mamba's plain one.

use aa_graph::dense::LayerNorm;
use aa_graph::kernels::{scatter_mean, scatter_softmax, segment_attention_pool};
use aa_graph::linear::Linear;
use aa_graph::norm::rms_norm;
use aa_graph::scan::{causal_conv_silu_packed, selective_scan_packed};
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::UnitGeometry;

/// One layer's rows as a projector reads them.
pub(crate) struct LayerRows<'a> {
    /// Rows `[U, d]` (already normalised and projected to the token width).
    pub x: &'a Tensor,
    /// Window of each row.
    pub unit_window: &'a [u32],
    /// Number of windows.
    pub windows: usize,
    /// The rows' geometry (order and distances of the Mamba projector).
    pub geometry: Option<&'a UnitGeometry>,
}

/// Input normalisation and projection of one layer's rows to the token width.
pub(crate) struct InputProjection {
    norm: LayerNorm,
    proj: Linear,
}

impl InputProjection {
    pub fn new(vb: VarBuilder, width: usize, dim: usize) -> Result<InputProjection> {
        Ok(InputProjection {
            norm: LayerNorm::new(vb.pp("norm"), width, 1e-5)?,
            proj: Linear::new(width, dim, vb.pp("proj"))?,
        })
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.proj.forward(&self.norm.forward(x, train)?)
    }
}

/// Multi-head cross-attention from learned query tokens to a window's rows.
pub(crate) struct CrossAttention {
    queries: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
}

impl CrossAttention {
    pub fn new(vb: VarBuilder, dim: usize, tokens: usize, heads: usize) -> Result<CrossAttention> {
        if heads == 0 || !dim.is_multiple_of(heads) {
            candle_core::bail!("HSA: {heads} heads do not divide the token width {dim}");
        }
        Ok(CrossAttention {
            queries: vb.get_with_hints((tokens, dim), "queries", Init::Randn { mean: 0.0, stdev: 0.02 })?,
            q: Linear::new(dim, dim, vb.pp("q"))?,
            k: Linear::new(dim, dim, vb.pp("k"))?,
            v: Linear::new(dim, dim, vb.pp("v"))?,
            o: Linear::new(dim, dim, vb.pp("o"))?,
            heads,
        })
    }

    /// Tokens `[W, T, d]` and the attention `[U, T, H]` (each window's rows sum to 1 per query
    /// and head).
    pub fn forward(&self, rows: &LayerRows) -> Result<(Tensor, Tensor)> {
        let (u, d) = rows.x.dims2()?;
        let (t, h) = (self.queries.dim(0)?, self.heads);
        let dh = d / h;
        let q = self.q.forward(&self.queries)?.reshape((t, h, dh))?.transpose(0, 1)?.contiguous()?; // [H, T, dh]
        let k = self.k.forward(rows.x)?.reshape((u, h, dh))?.transpose(0, 1)?.contiguous()?; // [H, U, dh]
        let v = self.v.forward(rows.x)?.reshape((u, h, dh))?;
        let scores = (k.matmul(&q.transpose(1, 2)?)? / (dh as f64).sqrt())?; // [H, U, T]
        let scores = scores.permute((1, 2, 0))?.reshape((u, t * h))?; // [U, T·H]
        let dev = rows.x.device();
        let window = Tensor::from_slice(rows.unit_window, u, dev)?;
        let alpha = scatter_softmax(&scores, &window, rows.windows)?;
        let alpha = alpha.reshape((u, t, h))?;
        let pooled =
            segment_attention_pool(&alpha, &v, rows.unit_window, rows.windows)?.reshape((rows.windows, t, d))?;
        let tokens = self.o.forward(&pooled)?.broadcast_add(&self.queries.unsqueeze(0)?)?;
        Ok((tokens, alpha))
    }
}

/// Gaussian centres of the step-size distance feature.
const DIST_CENTRES: usize = 16;
const DIST_MAX: f32 = 10.0;
/// Width of the causal depthwise convolution.
const CONV: usize = 4;

/// The structure-aware Graph-Mamba projector.
pub(crate) struct GraphMamba {
    norm: Tensor,
    in_proj: Linear,
    conv_w: Tensor,
    conv_b: Tensor,
    x_proj: Linear,
    dt_proj: Linear,
    dist: Linear,
    a_shift: Tensor,
    a_base: Tensor,
    d_skip: Tensor,
    out_proj: Linear,
    state: usize,
    rank: usize,
    tokens: usize,
}

/// The windows serialised: each window's rows in scan order, and the distance of each from the
/// previous one (0 for the first), when the windows have coordinates.
struct Serialised {
    members: Vec<Vec<u32>>,
    steps: Option<Vec<Vec<f32>>>,
}

fn serialise(rows: &LayerRows) -> Serialised {
    let u = rows.unit_window.len();
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); rows.windows];
    for (r, &w) in rows.unit_window.iter().enumerate() {
        members[w as usize].push(r as u32);
    }
    let degree = rows.geometry.map(|g| &g.degree).filter(|d| d.len() == u);
    for m in &mut members {
        if let Some(deg) = degree {
            m.sort_by_key(|&r| deg[r as usize]); // stable: ties keep unit order
        }
    }
    let positions = rows.geometry.and_then(|g| g.positions.as_ref()).filter(|p| p.len() == u);
    let steps = positions.map(|p| {
        members
            .iter()
            .map(|m| {
                (0..m.len())
                    .map(|i| {
                        if i == 0 {
                            return 0.0;
                        }
                        let (a, b) = (p[m[i - 1] as usize], p[m[i] as usize]);
                        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
                    })
                    .collect()
            })
            .collect()
    });
    Serialised { members, steps }
}

/// MOL-Mamba's normalised sinusoidal positions (`PosEmbedSine(normalize=True)`) of a length-`len`
/// sequence, `[len, dim]`: position `i` is `x = (i + 1) / L · 2π`; channel `j` of the first half
/// is `sin(x / 10000^(2⌊j/2⌋/d))` for even `j`, of the second half `cos` for odd `j`.
pub(crate) fn sine_positions(len: usize, dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let scale = |j: usize| 10000f64.powf((2 * (j / 2)) as f64 / dim as f64);
    let (even, odd): (Vec<f64>, Vec<f64>) = (0..half).map(|k| (scale(2 * k), scale(2 * k + 1))).unzip();
    let mut out = vec![0f32; len * dim];
    for (i, row) in out.chunks_exact_mut(dim.max(1)).enumerate() {
        let x = (i + 1) as f64 / (len as f64 + 1e-6) * std::f64::consts::TAU;
        for k in 0..half {
            row[k] = (x / even[k]).sin() as f32;
            row[half + k] = (x / odd[k]).cos() as f32;
        }
    }
    out
}

impl GraphMamba {
    pub fn new(vb: VarBuilder, dim: usize, tokens: usize, state: usize) -> Result<GraphMamba> {
        if !dim.is_multiple_of(2) || state == 0 {
            candle_core::bail!(
                "HSA: the Mamba projector needs an even token width and a state size (got {dim}, {state})"
            );
        }
        let rank = dim.div_ceil(16);
        // A[c, n] = −(n + 1)·exp(a_shift[c, n]): a_shift = 0 is Mamba's S4D-real start
        // A = −(1 … N) (MOL-Mamba's `A_log = log(arange(1, N + 1))`), written as a shift so the
        // store's constant initialiser gives it.
        let a_shift = vb.get_with_hints((dim, state), "a_shift", Init::Const(0.0))?;
        let a_base: Vec<f32> = (0..dim).flat_map(|_| (1..=state).map(|n| -(n as f32))).collect();
        let a_base = Tensor::from_vec(a_base, (dim, state), a_shift.device())?;
        let conv_bound = 1.0 / (CONV as f64).sqrt();
        Ok(GraphMamba {
            norm: vb.get_with_hints(dim, "norm", Init::Const(1.0))?,
            in_proj: Linear::no_bias(dim, 2 * dim, vb.pp("in_proj"))?,
            conv_w: vb.get_with_hints((dim, CONV), "conv_weight", Init::Uniform { lo: -conv_bound, up: conv_bound })?,
            conv_b: vb.get_with_hints(dim, "conv_bias", Init::Uniform { lo: -conv_bound, up: conv_bound })?,
            x_proj: Linear::no_bias(dim, rank + 2 * state, vb.pp("x_proj"))?,
            dt_proj: Linear::new(rank, dim, vb.pp("dt_proj"))?,
            dist: Linear::no_bias(DIST_CENTRES, dim, vb.pp("dist"))?,
            a_shift,
            a_base,
            d_skip: vb.get_with_hints(dim, "d_skip", Init::Const(1.0))?,
            out_proj: Linear::no_bias(dim, dim, vb.pp("out_proj"))?,
            state,
            rank,
            tokens,
        })
    }

    /// Tokens `[W, T, d]` (zeros for a window without rows). The windows' serialised rows are
    /// packed one after the other without padding, and the block runs once over all of them
    /// (the convolution and the scan restart at each window).
    pub fn forward(&self, rows: &LayerRows) -> Result<Tensor> {
        let (d, dev) = (rows.x.dim(1)?, rows.x.device().clone());
        let s = serialise(rows);
        let lens: Vec<usize> = s.members.iter().map(Vec::len).filter(|&l| l > 0).collect();
        let order: Vec<u32> = s.members.iter().flatten().copied().collect();
        let r = order.len();
        if r == 0 {
            return Tensor::zeros((rows.windows, self.tokens, d), rows.x.dtype(), &dev);
        }
        // Positions depend on the window's length only: computed once per length.
        let mut positions: std::collections::HashMap<usize, Vec<f32>> = Default::default();
        let mut pe = Vec::with_capacity(r * d);
        for &l in &lens {
            pe.extend_from_slice(positions.entry(l).or_insert_with(|| sine_positions(l, d)));
        }
        let xs = rows.x.index_select(&Tensor::from_vec(order, r, &dev)?, 0)?;
        let xs = (xs + Tensor::from_vec(pe, (r, d), &dev)?)?;
        let bias = match &s.steps {
            Some(st) => Some(self.distance_bias(&st.concat(), &dev)?),
            None => None,
        };
        let ys = (&xs + self.block(&rms_norm(&xs, &self.norm, 1e-5)?, bias.as_ref(), &lens)?)?;
        // Segment means: token t of a length-L window averages positions ⌊tL/T⌋ … ⌊(t+1)L/T⌋ − 1
        // (at least one position).
        let t = self.tokens;
        let (mut seg, mut start) = (Vec::with_capacity(r), 0usize);
        let mut src = Vec::with_capacity(r);
        for (w, m) in s.members.iter().enumerate() {
            let len = m.len();
            if len == 0 {
                continue;
            }
            for j in 0..t {
                let lo = j * len / t;
                let hi = ((j + 1) * len / t).max(lo + 1);
                for p in lo..hi {
                    src.push((start + p) as u32);
                    seg.push((w * t + j) as u32);
                }
            }
            start += len;
        }
        let n = src.len();
        let picked = ys.index_select(&Tensor::from_vec(src, n, &dev)?, 0)?;
        scatter_mean(&picked, &Tensor::from_vec(seg, n, &dev)?, rows.windows * t)?.reshape((rows.windows, t, d))
    }

    /// The Gaussian-smeared distance of each packed row from the previous unit, mapped to the
    /// channels, `[R, d]`.
    fn distance_bias(&self, steps: &[f32], dev: &Device) -> Result<Tensor> {
        let spacing = DIST_MAX / (DIST_CENTRES - 1) as f32;
        let coeff = -0.5 / (spacing * spacing);
        let rbf: Vec<f32> = steps
            .iter()
            .flat_map(|&r| (0..DIST_CENTRES).map(move |k| (coeff * (r - k as f32 * spacing).powi(2)).exp()))
            .collect();
        self.dist.forward(&Tensor::from_vec(rbf, (steps.len(), DIST_CENTRES), dev)?)
    }

    /// The Mamba block on packed rows `[R, d]`, the sequences of `lens` one after the other.
    fn block(&self, z: &Tensor, dist_bias: Option<&Tensor>, lens: &[usize]) -> Result<Tensor> {
        let d = z.dim(1)?;
        let xr = self.in_proj.forward(z)?;
        let (x, res) = (xr.narrow(1, 0, d)?, xr.narrow(1, d, d)?);
        // Causal depthwise convolution of width CONV and its SiLU, one kernel.
        let x = causal_conv_silu_packed(&x, &self.conv_w, &self.conv_b, lens)?;
        let dbl = self.x_proj.forward(&x)?;
        let dt = dbl.narrow(1, 0, self.rank)?;
        let b = dbl.narrow(1, self.rank, self.state)?.contiguous()?;
        let c = dbl.narrow(1, self.rank + self.state, self.state)?.contiguous()?;
        let mut pre = self.dt_proj.forward(&dt.contiguous()?)?;
        if let Some(bias) = dist_bias {
            pre = (pre + bias)?;
        }
        // Δ = softplus(pre), the skip D·x and the gate SiLU(res) happen inside the scan kernel.
        let a = self.a_shift.exp()?.mul(&self.a_base)?;
        let y = selective_scan_packed(&x, &pre, &a, &b, &c, &self.d_skip, &res, lens)?;
        self.out_proj.forward(&y)
    }
}
