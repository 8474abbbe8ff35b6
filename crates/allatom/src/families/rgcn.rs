//! The monosaccharide-level RGCN baseline of GlycanML (TorchDrug `RGCN`): relational
//! convolutions over unit nodes and unit links only — GlycanAA's flat layer layout
//! (`hidden_layers.i`, `variant: "flat"`) fed a units-only graph. This file and one line in
//! [`super::FAMILIES`] are all a family takes.

use aa_encoder::Encoder;
use anyhow::{bail, Result};
use candle_nn::VarBuilder;
use glycan_aa::model::Variant;
use serde_json::Value;

use super::glycanaa::{GlycanAAEncoder, GlycanAAFamilyConfig};
use super::{typed, Family, PackageFiles};
use crate::inputs::GlycanGraphs;

/// The RGCN family: the GlycanAA configuration, `variant` flat.
pub struct RgcnFamily;

fn config(config: &Value) -> Result<GlycanAAFamilyConfig> {
    let cfg = typed::<GlycanAAFamilyConfig>("rgcn", config)?.complete()?;
    if cfg.model.variant != Variant::Flat {
        bail!("the rgcn family has one convolution per layer: set model.variant to \"flat\"");
    }
    Ok(cfg)
}

impl Family for RgcnFamily {
    fn name(&self) -> &'static str {
        "rgcn"
    }

    fn summary(&self) -> &'static str {
        "monosaccharide-level relational GCN (GlycanML baseline)"
    }

    fn complete(&self, cfg: &Value) -> Result<Value> {
        Ok(serde_json::to_value(config(cfg)?)?)
    }

    fn load(&self, vb: VarBuilder, cfg: &Value, _files: &dyn PackageFiles) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(GlycanAAEncoder::load(vb, &config(cfg)?, true, "rgcn")?))
    }

    fn glycan_graphs(&self, cfg: &Value) -> Result<GlycanGraphs> {
        Ok(config(cfg)?.glycan_graphs())
    }
}
