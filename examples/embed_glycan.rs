//! Embed glycans with a pretrained GlycanAA encoder in a few lines of Rust — the library call
//! behind `allatom embed --glycan`.
//!
//! `cargo run --release -p allatom-examples --example embed_glycan [MODEL]`
//! where MODEL is a package directory or a hub id (default: models/preglycanaa-small).

use aa_pretrain::hub::HubOptions;
use glycan_aa::encoder::GlycanEncoder;

fn main() -> anyhow::Result<()> {
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/preglycanaa-small").to_string();
    let model = std::env::args().nth(1).unwrap_or(default);
    let encoder = GlycanEncoder::from_pretrained(&model, &HubOptions::from_env())?;

    let glycans = ["Neu5Ac(a2-3)Gal(b1-4)GlcNAc", "Fuc(a1-2)Gal(b1-3)GalNAc"];
    let graphs = glycans.iter().map(|g| encoder.featurize(g)).collect::<Result<Vec<_>, _>>()?;
    let out = encoder.embed(&graphs.iter().collect::<Vec<_>>())?;

    // One row per glycan; per-monosaccharide and per-atom rows are in `out.nodes`.
    let rows = out.graph.to_vec2::<f32>()?;
    for (g, row) in glycans.iter().zip(&rows) {
        println!("{g}: {} dims, first {:?}", row.len(), &row[..4]);
    }
    let (u0, u1) = (out.offsets[0], out.offsets[0] + out.num_units[0]);
    println!("{}: {} monosaccharide rows of width {}", glycans[0], u1 - u0, out.nodes.dim(1)?);
    Ok(())
}
