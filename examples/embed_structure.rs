//! Embed the glycans of a glycoprotein structure (every glycan tree found in a PDB/mmCIF file)
//! and map the rows back to chains and residues — the library calls behind
//! `allatom embed --structure`.
//!
//! `cargo run --release -p allatom-examples --example embed_structure -- FILE [MODEL]`
//! (default FILE: biopython's 7DDO, an N-glycosylated ACE2, after `cargo xtask fetch-data`).

use aa_pretrain::hub::HubOptions;
use allatom::Model;
use protein_aa::{read_structure_file, StructureOptions};

fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut args = std::env::args().skip(1);
    let file = args.next().unwrap_or(format!("{root}/data/fetched/structures/biopython/7DDO.pdb"));
    let model = args.next().unwrap_or_else(|| allatom::DEFAULT_MODEL.to_string());
    let model = Model::from_pretrained(&model, &HubOptions::from_env())?;
    let structure = read_structure_file(std::path::Path::new(&file), &StructureOptions::default())?;

    for tree in &structure.glycans {
        let window = model.glycan_window(&tree.iupac)?;
        let out = model.encoder.encode(&[&window], false)?;
        let graph = model.encoder.readout().forward(&out, false)?;
        // Monosaccharide rows follow the IUPAC string, as `iupac_order` lists the units.
        let residues: Vec<String> =
            tree.iupac_order.iter().map(|&u| allatom::embed::unit_label(&structure.graph, u)).collect();
        let norm: f32 = graph.sqr()?.sum_all()?.sqrt()?.to_scalar()?;
        println!(
            "{} on {}: residues {residues:?}, embedding norm {norm:.3}",
            tree.iupac,
            tree.attached_to.as_deref().unwrap_or("nothing (free glycan)")
        );
    }
    Ok(())
}
