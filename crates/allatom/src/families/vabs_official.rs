//! Official Vabs-Net behind the encoder interface (`{"family": "vabs", "official": {…}}`):
//! windows of amino-acid residues become one atom37 chain each
//! ([`aa_sparse_attn::official::featurize`]); the model is [`OfficialVabs`] with the official
//! weight names. A residue without a CA atom is not a node of the official model: its unit row
//! (and its atoms' rows) are zeros. Coordinates come from the graph (f32); the f64 path from a
//! file is `protein_aa::vabs_official::read_atom37`.

use aa_encoder::{AtomRows, Encoder, EncoderOutput, Featurized, LayerStates, Requirements, Window};
use aa_graph::{Element, UnitKind};
use aa_sparse_attn::features::ATOM37;
use aa_sparse_attn::official::{
    featurize, Atom37Residues, LmRows, OfficialInputs, OfficialVabs, Residue37, UNKNOWN_RESIDUE,
};
use candle_core::{DType, Device, Tensor};
use protein_aa::lm::LmFeatures;

/// The official model and its frozen language model (the `<cls>` row goes to the virtual node).
pub struct OfficialEncoder {
    /// The model.
    pub model: OfficialVabs,
    /// The language model, when the configuration names one.
    pub lm: Option<LmFeatures>,
}

struct OfficialBatch {
    input: OfficialInputs,
    /// Row of each window unit's CA atom in `input` (or the appended zero row).
    unit_rows: Tensor,
    unit_window: Vec<u32>,
    /// Rows of the real atoms in `input`, their output unit rows and graph atoms.
    atom_rows: Tensor,
    atom_unit: Vec<u32>,
    graph_atom: Vec<u32>,
}

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

impl Encoder for OfficialEncoder {
    fn family(&self) -> &str {
        "vabs"
    }

    fn unit_dim(&self) -> usize {
        self.model.config().dim
    }

    fn layer_dims(&self) -> Vec<usize> {
        vec![self.model.config().dim; self.model.config().layers]
    }

    fn requirements(&self) -> Requirements {
        Requirements { coordinates: true, unit_kinds: Some(vec![UnitKind::Residue]) }
    }

    fn featurize(&self, windows: &[&Window]) -> candle_core::Result<Featurized> {
        let lm = match &self.lm {
            Some(lm) => Some(lm.rows_and_cls(windows)?),
            None => None,
        };
        let opts = self.model.config().featurize_options();
        let mut parts = Vec::with_capacity(windows.len());
        let (mut unit_rows, mut unit_window) = (Vec::new(), Vec::new());
        let (mut atom_rows, mut atom_unit, mut graph_atom) = (Vec::new(), Vec::new(), Vec::new());
        let mut atom_base = 0u32;
        // Atom rows of the batch's missing units point at one zero row appended after the batch.
        let mut missing_unit_rows = Vec::new();
        for (wi, w) in windows.iter().enumerate() {
            let g = &*w.graph;
            let pos = g.positions.as_ref().ok_or_else(|| msg("vabs: a window without coordinates"))?;
            let members = g.unit_members();
            let mut chain = Atom37Residues::default();
            let mut kept_units = Vec::new(); // (window unit index, atom37 slot → graph atom)
            for (k, &u) in w.units.iter().enumerate() {
                let unit = &g.units[u as usize];
                if unit.kind != UnitKind::Residue {
                    return Err(msg(format!("official vabs reads amino-acid residues only, not unit {}", unit.name)));
                }
                let mut res = Residue37 {
                    residue_type: unit.type_id.min(UNKNOWN_RESIDUE),
                    positions: [[0.0; 3]; 37],
                    mask: [false; 37],
                };
                let mut slots = [u32::MAX; 37];
                for &a in members.neighbors(u as usize) {
                    let atom = &g.atoms[a as usize];
                    if atom.element == Element::H {
                        continue;
                    }
                    if let Some(s) = ATOM37.iter().position(|n| *n == atom.name) {
                        res.positions[s] = pos[a as usize].map(f64::from);
                        res.mask[s] = true;
                        slots[s] = a;
                    }
                }
                if res.mask[1] {
                    kept_units.push((k, slots));
                    chain.residues.push(res);
                }
            }
            if let Some(rows) = &lm {
                let (r, cls) = &rows[wi];
                let all = r.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                let keep: Vec<f32> = kept_units.iter().flat_map(|(k, _)| all[*k].clone()).collect();
                chain.lm = Some(LmRows { dim: cls.dim(1)?, rows: keep, cls: cls.flatten_all()?.to_vec1::<f32>()? });
            }
            let x = featurize(&chain, &opts).map_err(|e| msg(format!("official vabs: {e}")))?;
            // featurize keeps every residue given (all have a CA) in order, atoms residue-major
            // in atom37 order, then the virtual node.
            let unit_base = unit_rows.len() as u32;
            let mut ca_of = vec![None; w.units.len()];
            let mut row = atom_base;
            for (kk, (k, slots)) in kept_units.iter().enumerate() {
                for (s, &a) in slots.iter().enumerate() {
                    if a == u32::MAX {
                        continue;
                    }
                    debug_assert_eq!(x.residue_idx[(row - atom_base) as usize], kk as u32);
                    if s == 1 {
                        ca_of[*k] = Some(row);
                    }
                    atom_rows.push(row);
                    atom_unit.push(unit_base + *k as u32);
                    graph_atom.push(a);
                    row += 1;
                }
            }
            for ca in ca_of {
                match ca {
                    Some(r) => unit_rows.push(r),
                    None => {
                        missing_unit_rows.push(unit_rows.len());
                        unit_rows.push(0);
                    }
                }
                unit_window.push(wi as u32);
            }
            atom_base += x.num_atoms() as u32;
            parts.push(x);
        }
        let input = OfficialInputs::concat(&parts);
        let zero_row = input.num_atoms() as u32;
        for i in missing_unit_rows {
            unit_rows[i] = zero_row;
        }
        let dev = Device::Cpu;
        let t = |v: Vec<u32>| {
            let n = v.len();
            Tensor::from_vec(v, n, &dev)
        };
        let batch = OfficialBatch {
            unit_rows: t(unit_rows)?,
            unit_window,
            atom_rows: t(atom_rows)?,
            atom_unit,
            graph_atom,
            input,
        };
        Ok(Featurized::new(batch, windows))
    }

    fn forward(&self, input: &Featurized, train: bool) -> candle_core::Result<EncoderOutput> {
        let b: &OfficialBatch = input.get("vabs")?;
        let out = self.model.forward(&b.input, train)?;
        let d = self.unit_dim();
        let with_zero = |x: &Tensor| Tensor::cat(&[x, &Tensor::zeros((1, d), x.dtype(), x.device())?], 0);
        let units = |x: &Tensor| with_zero(x)?.index_select(&b.unit_rows, 0);
        let layers = out
            .layers
            .iter()
            .map(|l| Ok(LayerStates { units: units(&l.output)?, atoms: Some(l.output.index_select(&b.atom_rows, 0)?) }))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(EncoderOutput {
            layers,
            units: units(&out.final_nodes)?,
            unit_window: b.unit_window.clone(),
            atoms: Some(AtomRows {
                states: out.final_nodes.index_select(&b.atom_rows, 0)?,
                unit: b.atom_unit.clone(),
                graph_atom: Some(b.graph_atom.clone()),
            }),
            windows: input.windows,
            geometry: Some(input.geometry.clone()),
        })
    }
}
