//! Per-unit labels of structures for the unit-level tasks of `aa_encoder::tasks::UnitTask`
//! (which trains any encoder family on them): DSSP secondary structure and ligand-contact
//! residues of proteins, crystallographic mobility of the monosaccharides of lectin-bound
//! glycans, and the windows that carry them.

use std::path::Path;
use std::sync::Arc;

pub use aa_encoder::tasks::LabelledWindow;
use aa_graph::{Element, HeteroGraph, UnitKind};

use crate::esm_pretrain::ResidueWindow;
use crate::Structure;

/// DSSP 3-state classes: helix (H, G, I → 0), strand (E, B → 1), loop (everything else → 2).
pub fn dssp_class(c: char) -> u32 {
    match c {
        'H' | 'G' | 'I' => 0,
        'E' | 'B' => 1,
        _ => 2,
    }
}

/// Reads an MDAnalysis-style `.dssp` file (`<one char per residue> <file name>`) and pairs it
/// with the amino-acid residues of `graph` in file order: errors when the counts differ.
pub fn dssp_labels(path: &Path, graph: &HeteroGraph) -> std::result::Result<Vec<Option<u32>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let codes = text.split_whitespace().next().ok_or_else(|| format!("{}: empty DSSP file", path.display()))?;
    let residues = graph.units.iter().filter(|u| u.kind == UnitKind::Residue).count();
    let n = codes.chars().count();
    if n != residues {
        return Err(format!("{}: {n} DSSP codes for {residues} amino-acid residues", path.display()));
    }
    let mut codes = codes.chars();
    Ok(graph
        .units
        .iter()
        .map(|u| if u.kind == UnitKind::Residue { codes.next().map(dssp_class) } else { None })
        .collect())
}

/// Ligand-contact labels: 1 for amino-acid residues with a heavy atom within `cutoff` Å of a
/// heavy atom of a ligand (a non-residue, non-sugar unit of at least `min_ligand_atoms` heavy
/// atoms), 0 for other residues, `None` for non-residues. `None` overall when the structure
/// has no such ligand.
pub fn ligand_contact_labels(g: &HeteroGraph, cutoff: f32, min_ligand_atoms: usize) -> Option<Vec<Option<u32>>> {
    let pos = g.positions.as_ref()?;
    let heavy = |i: usize| g.atoms[i].element != Element::H;
    let mut per_unit = vec![0usize; g.num_units()];
    for (i, a) in g.atoms.iter().enumerate() {
        if heavy(i) {
            per_unit[a.unit as usize] += 1;
        }
    }
    let ligand: Vec<[f32; 3]> = (0..g.num_atoms())
        .filter(|&i| {
            let u = g.atoms[i].unit as usize;
            heavy(i) && g.units[u].kind == UnitKind::Other && per_unit[u] >= min_ligand_atoms
        })
        .map(|i| pos[i])
        .collect();
    if ligand.is_empty() {
        return None;
    }
    let c2 = cutoff * cutoff;
    let mut contact = vec![false; g.num_units()];
    for (i, a) in g.atoms.iter().enumerate() {
        let u = a.unit as usize;
        if !heavy(i) || g.units[u].kind != UnitKind::Residue || contact[u] {
            continue;
        }
        let p = pos[i];
        contact[u] = ligand.iter().any(|q| (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2) <= c2);
    }
    Some(
        g.units
            .iter()
            .enumerate()
            .map(|(u, unit)| (unit.kind == UnitKind::Residue).then_some(contact[u] as u32))
            .collect(),
    )
}

/// Residue windows of `graph` with labels from `labels` (indexed by unit).
pub fn labelled_windows(graph: Arc<HeteroGraph>, labels: &[Option<u32>], window: usize) -> Vec<LabelledWindow> {
    crate::esm_pretrain::residue_windows(graph, window)
        .into_iter()
        .map(|w| {
            let l = w.units.iter().map(|&u| labels[u as usize]).collect();
            LabelledWindow { window: w, labels: l }
        })
        .collect()
}

/// Relative crystallographic mobility of monosaccharides (e.g. of a lectin-bound glycan): per
/// monosaccharide, the mean B-factor of its heavy atoms; label 1 ("more mobile") when it
/// exceeds the mean over the structure's monosaccharides, else 0; `None` for other units.
/// `None` overall when the structure has fewer than two monosaccharides or their mean
/// B-factors span less than 0.01 Å² (nothing to tell apart).
pub fn sugar_mobility_labels(s: &Structure) -> Option<Vec<Option<u32>>> {
    let g = &s.graph;
    if s.b_factors.len() != g.num_atoms() {
        return None;
    }
    let mut sum = vec![(0f64, 0usize); g.num_units()];
    for (a, atom) in g.atoms.iter().enumerate() {
        if atom.element != Element::H {
            let e = &mut sum[atom.unit as usize];
            e.0 += s.b_factors[a] as f64;
            e.1 += 1;
        }
    }
    let mean: Vec<Option<f64>> = g
        .units
        .iter()
        .zip(&sum)
        .map(|(u, &(b, n))| (u.kind == UnitKind::Monosaccharide && n > 0).then(|| b / n as f64))
        .collect();
    let values: Vec<f64> = mean.iter().flatten().copied().collect();
    let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if values.len() < 2 || hi - lo < 0.01 {
        return None;
    }
    let avg = values.iter().sum::<f64>() / values.len() as f64;
    Some(mean.iter().map(|m| m.map(|v| (v > avg) as u32)).collect())
}

/// One window holding every unit of a structure (a glycan with its aglycone, a small
/// complex), with labels indexed by unit.
pub fn whole_structure_window(graph: Arc<HeteroGraph>, labels: &[Option<u32>]) -> LabelledWindow {
    let units: Vec<u32> = (0..graph.num_units() as u32).collect();
    let labels = units.iter().map(|&u| labels.get(u as usize).copied().flatten()).collect();
    LabelledWindow { window: ResidueWindow { graph, units }, labels }
}
