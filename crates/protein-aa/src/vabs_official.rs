//! Structures in the official Vabs-Net layout: one chain as atom37 residues
//! ([`aa_sparse_attn::official::Atom37Residues`]), read with the conventions of the official
//! preprocessing (`Process_PDB.py` of Heisenburger2020/Vabs-Net): the first model, `ATOM`
//! records only (`HETATM` such as MSE is dropped), atom names outside atom37 (hydrogens,
//! nonstandard names) skipped, residues keyed by chain and residue number without the insertion
//! code (insertion residues merge), a later record of the same slot overwriting an earlier one
//! (alternate locations), residue names outside the 20 amino acids typed unknown (20), one
//! chain per sample. [`aa_sparse_attn::official::featurize`] turns the result into the model's
//! inputs.

use std::path::Path;

use aa_sparse_attn::features::ATOM37;
use aa_sparse_attn::official::{Atom37Residues, Residue37, UNKNOWN_RESIDUE};

use crate::read::RawStructure;
use crate::templates::AMINO_ACIDS;
use crate::StructureError;

/// The chain `chain` (the first chain with `ATOM` records when `None`) of the first model, in
/// atom37 layout (no language-model rows).
pub fn atom37_chain(raw: &RawStructure, chain: Option<&str>) -> Result<Atom37Residues, StructureError> {
    let Some(first) = raw.atoms.iter().find(|a| !a.hetatm) else {
        return Err(StructureError::new("no ATOM records (official Vabs-Net reads protein ATOM records only)"));
    };
    let model = first.model;
    let chain = chain.unwrap_or(first.chain.as_str()).to_string();
    let mut keys: Vec<i32> = Vec::new();
    let mut slot_of: std::collections::HashMap<i32, usize> = std::collections::HashMap::new();
    let mut residues: Vec<Residue37> = Vec::new();
    for a in raw.atoms.iter().filter(|a| !a.hetatm && a.model == model && a.chain == chain.as_str()) {
        let Some(s) = ATOM37.iter().position(|n| *n == a.name.as_str()) else { continue };
        let r = *slot_of.entry(a.resseq).or_insert_with(|| {
            keys.push(a.resseq);
            residues.push(Residue37 { residue_type: UNKNOWN_RESIDUE, positions: [[0.0; 3]; 37], mask: [false; 37] });
            residues.len() - 1
        });
        let res = &mut residues[r];
        res.residue_type =
            AMINO_ACIDS.iter().position(|n| *n == a.resname.as_str()).map_or(UNKNOWN_RESIDUE, |i| i as u32);
        res.positions[s] = a.pos;
        res.mask[s] = true;
    }
    if residues.is_empty() {
        let chains: std::collections::BTreeSet<&str> =
            raw.atoms.iter().filter(|a| !a.hetatm && a.model == model).map(|a| a.chain.as_str()).collect();
        return Err(StructureError::new(format!(
            "chain {chain:?} has no ATOM records with atom37 names in model {model} (chains: {})",
            chains.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(Atom37Residues { residues, lm: None })
}

/// [`atom37_chain`] of a structure file (PDB or mmCIF, optionally compressed).
pub fn read_atom37(path: &Path, chain: Option<&str>) -> Result<Atom37Residues, StructureError> {
    let with_path = |mut e: StructureError| {
        e.path = Some(path.display().to_string());
        e
    };
    let bytes = crate::read_capped(path).map_err(with_path)?;
    let raw = crate::read::read_structure(&bytes).map_err(with_path)?;
    atom37_chain(&raw, chain).map_err(with_path)
}
