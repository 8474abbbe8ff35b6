//! Embed glycans with a pretrained encoder package in a few lines of Rust — the library calls
//! behind `allatom embed --glycan`. Any family loads the same way (`Model::from_pretrained`).
//!
//! `cargo run --release -p allatom-examples --example embed_glycan [MODEL]`
//! where MODEL is a package directory, a hub id or `preglycanaa-small` (the built-in default).

use aa_pretrain::hub::HubOptions;
use allatom::Model;

fn main() -> anyhow::Result<()> {
    let model = std::env::args().nth(1).unwrap_or_else(|| allatom::DEFAULT_MODEL.to_string());
    let model = Model::from_pretrained(&model, &HubOptions::from_env())?;

    let glycans = ["Neu5Ac(a2-3)Gal(b1-4)GlcNAc", "Fuc(a1-2)Gal(b1-3)GalNAc"];
    let windows = glycans.iter().map(|g| model.glycan_window(g)).collect::<Result<Vec<_>, _>>()?;
    let out = model.encoder.encode(&windows.iter().collect::<Vec<_>>(), false)?;
    let graph = model.encoder.readout().forward(&out, false)?;

    // One row per glycan; per-monosaccharide rows in `out.units`, per-atom rows in `out.atoms`,
    // every layer's in `out.layers`.
    for (g, row) in glycans.iter().zip(graph.to_vec2::<f32>()?) {
        println!("{g}: {} dims, first {:?}", row.len(), &row[..4]);
    }
    println!(
        "{}: {} monosaccharide rows of width {}, {} layers",
        glycans[0],
        out.unit_rows(0).len(),
        out.units.dim(1)?,
        out.layers.len()
    );
    Ok(())
}
