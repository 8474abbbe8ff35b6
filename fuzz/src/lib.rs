//! Shared pieces of the fuzz targets.

use std::sync::OnceLock;

/// Builds the graph of a parsed structure with spatial relations and checks it is valid.
pub fn build_and_check(raw: &protein_aa::read::RawStructure) {
    let opts = protein_aa::StructureOptions { atom_knn: Some(8), unit_knn: Some(4), ..Default::default() };
    if let Ok(s) = protein_aa::build(raw, &opts) {
        s.graph.validate().expect("a built structure is a valid graph");
    }
}

/// `(config.json, model.safetensors)` of two tiny packages, made once: GlycanAA on
/// molecule graphs and Vabs-Net, with seeded random weights.
pub fn tiny_packages() -> &'static [(Vec<u8>, Vec<u8>)] {
    static P: OnceLock<Vec<(Vec<u8>, Vec<u8>)>> = OnceLock::new();
    P.get_or_init(|| {
        let configs = [
            serde_json::json!({ "family": "glycanaa", "featurisation": "molecule", "model": {
                "num_unit": 0, "num_relation": 0, "input_dim": 8, "hidden_dims": [8, 8], "batch_norm": true,
                "activation": "gelu", "concat_hidden": true, "readout_type": "mono", "variant": "hierarchical" } }),
            serde_json::json!({ "family": "vabs", "model": {
                "layers": 1, "dim": 8, "edge_dim": 4, "heads": 2, "ffn_multiplier": 2, "kernels": 8,
                "atom_knn": 4, "unit_knn": 3 } }),
        ];
        configs
            .iter()
            .map(|c| {
                let enc = allatom::runs::trainable_encoder(c, 0).expect("tiny config");
                let (family, part) = allatom::families::split_config(&enc.config).expect("family");
                let config = allatom::families::package_config(family, &part);
                let tensors: Vec<(String, candle_core::Tensor)> =
                    enc.store.all().into_iter().map(|(k, v)| (k, v.as_tensor().detach())).collect();
                let weights = safetensors::tensor::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)
                    .expect("serialize");
                (serde_json::to_vec(&config).unwrap(), weights)
            })
            .collect()
    })
}

/// With `ALLATOM_FUZZ_WRITE_SEEDS` set, writes the package target's seeds
/// (`seeds/package/`): each tiny package's config and weights behind their selector byte.
pub fn write_package_seeds_if_asked() {
    if std::env::var_os("ALLATOM_FUZZ_WRITE_SEEDS").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/package");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (config, weights)) in tiny_packages().iter().enumerate() {
        let pick = 2 * i as u8;
        std::fs::write(dir.join(format!("config-{i}")), [&[pick][..], config].concat()).unwrap();
        std::fs::write(dir.join(format!("weights-{i}")), [&[pick + 1][..], weights].concat()).unwrap();
    }
}
